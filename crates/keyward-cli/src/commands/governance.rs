//! `keyward members …`, `keyward approvals …`, `keyward policies …` and password login.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use keyward_client::{ApprovalView, LoginRequest, MemberView, PolicyPatch};

use crate::args::{ApprovalsCommand, LoginArgs, LogoutArgs, MembersCommand, PasswordInput, PoliciesCommand, Remote};
use crate::{output, userconfig};

/// `--password-stdin`, else `KEYWARD_PASSWORD`, else a prompt without echo.
fn password(input: &PasswordInput, prompt: &str) -> Result<String> {
    if input.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    if let Ok(p) = std::env::var("KEYWARD_PASSWORD") {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password: use --password-stdin or set KEYWARD_PASSWORD");
    }
    Ok(rpassword::prompt_password(prompt)?)
}

/// JSON with `--json`, else the text.
pub(crate) fn print<T: serde::Serialize>(remote: &Remote, value: &T, text: impl FnOnce() -> String) -> Result<()> {
    if remote.json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", text());
    }
    Ok(())
}

fn member_line(m: &MemberView) -> String {
    let mfa = if m.mfa_enabled { "mfa" } else { "-" };
    format!("{}  {}  {}  {}  {mfa}", m.id, m.email, m.role, m.status)
}

fn approval_detail(a: &ApprovalView) -> String {
    let by: Vec<&str> = a.approved_by.iter().map(|v| v.member_id.as_str()).collect();
    let mut lines = vec![
        format!("id            {}", a.id),
        format!("action        {}", a.action),
        format!("key           {}", a.key_id),
        format!("status        {}", a.status),
        format!("requested by  {}", a.requested_by),
        format!(
            "approvals     {} of {} ({})",
            a.approved_by.len(),
            a.required,
            if by.is_empty() { "-".into() } else { by.join(", ") }
        ),
        format!("expires       {}", a.expires_at.format("%Y-%m-%d %H:%M:%SZ")),
    ];
    if a.details.as_object().is_some_and(|o| !o.is_empty()) {
        lines.push(format!("details       {}", a.details));
    }
    if let Some(r) = &a.reason {
        lines.push(format!("reason        {r}"));
    }
    lines.join("\n")
}

/// `--server` must say how to reach the server: `127.0.0.1:5399` alone is refused with the
/// URL it probably meant, rather than failing later as an unreachable host.
fn server_url(server: &str) -> Result<()> {
    let lower = server.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        bail!("--server {server:?} has no scheme: write http://{server} (or https://… when the server speaks TLS)");
    }
    Ok(())
}

/// Why a login did not work, in the words a person acts on: no server there, or the server
/// said no.
fn login_failure(server: &str, e: keyward_client::ClientError, refused: &str) -> anyhow::Error {
    match e {
        keyward_client::ClientError::Transport(why) => {
            anyhow::anyhow!("cannot reach a Keyward server at {server} ({why}); is `keyward serve` running there?")
        }
        keyward_client::ClientError::Api { status: 401 | 403, message, .. } => {
            anyhow::anyhow!("{server} answered, and {refused}: {message}")
        }
        other => anyhow::Error::new(other).context(format!("{server} answered unexpectedly")),
    }
}

pub async fn login(a: LoginArgs) -> Result<ExitCode> {
    server_url(&a.server)?;
    let token = match (&a.token, &a.email) {
        (Some(t), _) => {
            let client = super::new_client(&a.server, Some(t.clone()), a.ca_cert.as_deref())?;
            // Check the pair before saving it: a typo should fail here, not on first use.
            client.me().await.map_err(|e| login_failure(&a.server, e, "refused this token"))?;
            t.clone()
        }
        (None, Some(email)) => {
            let pw = password(&a.password, "Password: ")?;
            let client = super::new_client(&a.server, None, a.ca_cert.as_deref())?;
            let req = LoginRequest {
                email: email.clone(),
                password: pw,
                otp: a.otp.clone(),
                workspace_id: a.workspace_id.clone(),
            };
            let s = client.login(&req).await.map_err(|e| login_failure(&a.server, e, "refused the sign-in"))?;
            eprintln!("Session valid until {}", s.expires_at.format("%Y-%m-%d %H:%M:%SZ"));
            s.token
        }
        (None, None) => bail!("give --token or --email"),
    };
    let path = userconfig::save_login(&a.server, &token)?;
    println!("Logged in to {}; saved in {}", a.server, path.display());
    Ok(ExitCode::SUCCESS)
}

pub async fn logout(a: LogoutArgs) -> Result<ExitCode> {
    let client = super::client(&a.remote, true)?;
    let token = a.remote.token.clone().or(userconfig::load_login()?.1).unwrap_or_default();
    // Only sessions end on the server; a management key stays valid and is just forgotten.
    if keyward_core::keyformat::parse(&token).is_some_and(|t| t.kind == keyward_core::keyformat::TokenKind::Session) {
        client.logout().await?;
    }
    userconfig::clear_login()?;
    println!("Logged out");
    Ok(ExitCode::SUCCESS)
}

pub async fn members(cmd: MembersCommand) -> Result<ExitCode> {
    match cmd {
        MembersCommand::List { remote } => {
            let page = super::client(&remote, true)?.list_members(Some(200), None).await?;
            print(&remote, &page, || {
                let rows: Vec<Vec<String>> = page
                    .items
                    .iter()
                    .map(|m| {
                        vec![
                            m.id.clone(),
                            m.email.clone(),
                            m.role.to_string(),
                            m.status.clone(),
                            m.mfa_enabled.to_string(),
                        ]
                    })
                    .collect();
                output::table(&["ID", "EMAIL", "ROLE", "STATUS", "MFA"], &rows)
            })?;
        }
        MembersCommand::Invite { remote, email, role } => {
            let inv = super::client(&remote, true)?.invite_member(&email, &role).await?;
            print(&remote, &inv, || {
                format!(
                    "{}\n\nSetup token (shown once; valid until {}):\n\n  {}\n\nThe member runs: keyward members setup --setup-token <token>",
                    member_line(&inv.member),
                    inv.setup_expires_at.format("%Y-%m-%d %H:%M:%SZ"),
                    inv.setup_token
                )
            })?;
        }
        MembersCommand::Setup { remote, setup_token, password: input } => {
            let pw = password(&input, "New password: ")?;
            let m = super::client(&remote, false)?.setup_member(&setup_token, &pw).await?;
            print(&remote, &m, || {
                format!("{}\nPassword set; log in with keyward login --email {}", member_line(&m), m.email)
            })?;
        }
        MembersCommand::SetRole { remote, id, role } => {
            let m = super::client(&remote, true)?.change_role(&id, &role).await?;
            print(&remote, &m, || member_line(&m))?;
        }
        MembersCommand::Remove { remote, id } => {
            super::client(&remote, true)?.remove_member(&id).await?;
            println!("Removed {id}");
        }
        MembersCommand::Me { remote } => {
            let m = super::client(&remote, true)?.me().await?;
            print(&remote, &m, || member_line(&m))?;
        }
        MembersCommand::Password { remote, password: input } => {
            let pw = password(&input, "New password: ")?;
            let current = std::env::var("KEYWARD_CURRENT_PASSWORD").ok();
            super::client(&remote, true)?.set_password(&pw, current.as_deref()).await?;
            println!("Password set");
        }
        MembersCommand::MfaEnrol { remote } => {
            let e = super::client(&remote, true)?.enrol_totp().await?;
            print(&remote, &e, || {
                format!(
                    "Add this to your authenticator app, then run keyward members mfa-confirm --otp <code>\n\n  secret: {}\n  uri:    {}",
                    e.secret, e.otpauth_uri
                )
            })?;
        }
        MembersCommand::MfaConfirm { remote, otp } => {
            let r = super::client(&remote, true)?.confirm_totp(&otp).await?;
            print(&remote, &r, || {
                format!(
                    "MFA is on. Recovery codes (shown once, each works once):\n\n  {}",
                    r.recovery_codes.join("\n  ")
                )
            })?;
        }
        MembersCommand::MfaDisable { remote, otp } => {
            super::client(&remote, true)?.disable_totp(&otp).await?;
            println!("MFA is off");
        }
        MembersCommand::CreateKey { remote, name, expires_in, otp } => {
            let req = keyward_client::NewManagementKeyRequest { name, expires_in, otp };
            let k = super::client(&remote, true)?.create_management_key_with(&req).await?;
            print(&remote, &k, || {
                format!("Management key {} (role {}), shown once:\n\n  {}\n", k.id, k.role, k.management_key)
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn approvals(cmd: ApprovalsCommand) -> Result<ExitCode> {
    let (remote, a) = match cmd {
        ApprovalsCommand::List { remote, status } => {
            let status = (status != "all").then_some(status);
            let page = super::client(&remote, true)?.list_approvals(status.as_deref()).await?;
            print(&remote, &page, || {
                let rows: Vec<Vec<String>> = page
                    .items
                    .iter()
                    .map(|a| {
                        vec![
                            a.id.clone(),
                            a.action.clone(),
                            a.key_id.clone(),
                            a.status.clone(),
                            format!("{}/{}", a.approved_by.len(), a.required),
                            a.requested_by.clone(),
                        ]
                    })
                    .collect();
                output::table(&["ID", "ACTION", "KEY", "STATUS", "APPROVALS", "REQUESTED BY"], &rows)
            })?;
            return Ok(ExitCode::SUCCESS);
        }
        ApprovalsCommand::Show { remote, id } => {
            let a = super::client(&remote, true)?.get_approval(&id).await?;
            (remote, a)
        }
        ApprovalsCommand::Approve { remote, id, otp } => {
            let a = super::client(&remote, true)?.approve(&id, &otp).await?;
            (remote, a)
        }
        ApprovalsCommand::Reject { remote, id, otp, reason } => {
            let a = super::client(&remote, true)?.reject(&id, &otp, reason.as_deref()).await?;
            (remote, a)
        }
        ApprovalsCommand::Cancel { remote, id } => {
            let a = super::client(&remote, true)?.cancel_approval(&id).await?;
            (remote, a)
        }
    };
    print(&remote, &a, || approval_detail(&a))?;
    Ok(ExitCode::SUCCESS)
}

/// `key.create=2` style pairs.
fn pairs(list: &[String], flag: &str) -> Result<Vec<(String, String)>> {
    list.iter()
        .map(|p| {
            p.split_once('=')
                .map(|(a, v)| (a.trim().to_string(), v.trim().to_string()))
                .with_context(|| format!("--{flag} takes ACTION=VALUE, e.g. key.create=2"))
        })
        .collect()
}

pub async fn policies(cmd: PoliciesCommand) -> Result<ExitCode> {
    match cmd {
        PoliciesCommand::Show { remote } => {
            let p = super::client(&remote, true)?.policies().await?;
            println!("{}", serde_json::to_string_pretty(&p)?);
        }
        PoliciesCommand::Set {
            remote,
            body,
            approvals,
            approver_roles,
            require_mfa,
            temporary_max_days,
            permanent_requires_ip_allowlist,
        } => {
            let client = super::client(&remote, true)?;
            let mut patch = match &body {
                Some(b) => serde_json::from_str::<serde_json::Value>(b).context("the policy must be a JSON object")?,
                None => serde_json::json!({}),
            };
            let obj = patch.as_object_mut().context("the policy must be a JSON object")?;
            // A rule given by flags starts from the current one, so setting only the number
            // keeps the approver roles (and the other way round).
            let current = serde_json::to_value(client.policies().await?)?;
            for (action, n) in pairs(&approvals, "approvals")? {
                let rule =
                    obj.entry(action.clone()).or_insert_with(|| current.get(&action).cloned().unwrap_or_default());
                let n: serde_json::Value = n.parse::<u32>().map(Into::into).unwrap_or(serde_json::Value::String(n));
                rule["approvals"] = n;
            }
            for (action, roles) in pairs(&approver_roles, "approver-roles")? {
                let rule =
                    obj.entry(action.clone()).or_insert_with(|| current.get(&action).cloned().unwrap_or_default());
                rule["approver_roles"] = roles.split(',').map(|r| r.trim().to_string()).collect();
            }
            if let Some(v) = require_mfa {
                obj.insert("require_mfa".into(), v.into());
            }
            if let Some(v) = temporary_max_days {
                obj.insert("temporary_max_days".into(), v.into());
            }
            if let Some(v) = permanent_requires_ip_allowlist {
                obj.insert("permanent_requires_ip_allowlist".into(), v.into());
            }
            let patch: PolicyPatch = serde_json::from_value(patch).context("not a valid policy")?;
            let p = client.set_policies(&patch).await?;
            if let keyward_client::PolicyAnswer::Pending(a) = &p {
                eprintln!("the change waits on approval request {}; the policy in force is unchanged", a.id);
            }
            println!("{}", serde_json::to_string_pretty(&p)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
