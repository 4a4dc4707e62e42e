use anyhow::{Context, Result};
use std::process::ExitCode;

use keyward_client::{CreateKeyRequest, ImportKey, KeyGrant, KeyView, ListKeys, UpdateKeyRequest};
use keyward_core::wire::keys::{CreditsSpec, RateLimitSpec};

use crate::args::{KeyFields, Remote, ServerKeyCommand};
use crate::output;

pub(crate) fn meta(raw: &Option<String>) -> Result<Option<serde_json::Value>> {
    raw.as_deref().map(|m| serde_json::from_str(m).context("--meta must be JSON")).transpose()
}

/// `--grant ROLE=SCOPE,SCOPE`.
pub(crate) fn grants(raw: &Option<Vec<String>>) -> Result<Option<Vec<KeyGrant>>> {
    let Some(list) = raw else { return Ok(None) };
    list.iter()
        .map(|g| {
            let (role, scopes) =
                g.split_once('=').with_context(|| format!("--grant {g:?}: use ROLE=SCOPE[,SCOPE…]"))?;
            let scopes = scopes.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
            Ok(KeyGrant { role: role.trim().to_string(), scopes })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// A create request from the command line's key fields.
pub(crate) fn create_request(
    fields: &KeyFields,
    environment: Option<String>,
    key_type: Option<String>,
    expires_in: Option<String>,
) -> Result<CreateKeyRequest> {
    let f = fields.clone();
    Ok(CreateKeyRequest {
        name: f.name,
        environment,
        key_type,
        expires_at: f.expires_at,
        expires_in,
        ip_allowlist: f.ip_allowlist,
        roles: f.roles,
        permissions: f.permissions,
        scopes: f.scopes,
        grants: grants(&f.grants)?,
        meta: meta(&f.meta)?,
        callback_url: f.callback_url,
        ratelimits: ratelimits(&fields.ratelimits)?,
        credits: credits(fields)?,
        external_id: f.external_id,
        ..Default::default()
    })
}

/// `--ratelimit 100/1m` or `100/1m:fast` (repeatable) as the API's limits.
pub(crate) fn ratelimits(specs: &Option<Vec<String>>) -> Result<Option<Vec<RateLimitSpec>>> {
    specs
        .as_ref()
        .map(|v| {
            v.iter()
                .map(|s| {
                    let l = keyward_core::ratelimit::RateLimit::parse_spec(s)
                        .map_err(|e| anyhow::anyhow!("--ratelimit {s:?}: {e}"))?;
                    Ok(RateLimitSpec::from(&l))
                })
                .collect()
        })
        .transpose()
}

/// `--credits N [--refill daily|monthly[:DAY]]`.
fn credits(f: &crate::args::KeyFields) -> Result<Option<CreditsSpec>> {
    credits_of(f.credits, f.refill.as_deref())
}

/// `--credits N [--refill …]` of any command.
pub(crate) fn credits_of(credits: Option<u64>, refill: Option<&str>) -> Result<Option<CreditsSpec>> {
    use keyward_core::ratelimit::{Interval, Refill};
    let Some(remaining) = credits else { return Ok(None) };
    let refill = match refill {
        None => None,
        Some("daily") => Some(Refill { interval: Interval::Daily, amount: remaining, day: 1 }),
        Some(m) if m == "monthly" || m.starts_with("monthly:") => {
            let day = match m.strip_prefix("monthly:") {
                Some(d) => d.parse().map_err(|_| anyhow::anyhow!("--refill monthly:DAY takes a day 1-31"))?,
                None => 1,
            };
            Some(Refill { interval: Interval::Monthly, amount: remaining, day })
        }
        Some(other) => anyhow::bail!("--refill {other:?}: use daily, monthly or monthly:DAY"),
    };
    Ok(Some(CreditsSpec { remaining, refill }))
}

/// The keys of an import file: a JSON array, or NDJSON (one key a line, blank lines skipped).
pub(crate) fn import_file(text: &str, format: Option<&str>) -> Result<Vec<ImportKey>> {
    let array = match format {
        Some(f) => f == "json",
        None => text.trim_start().starts_with('['),
    };
    if array {
        return serde_json::from_str(text).context("the file is not a JSON array of keys");
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| serde_json::from_str(l).with_context(|| format!("line {}: not a key", n + 1)))
        .collect()
}

/// The role a service account key holds through its account, and what the role grants
/// (left out when either cannot be read: the key is shown anyway).
async fn inherited(c: &keyward_client::Client, k: &KeyView) -> Option<output::Inherited> {
    let owner = k.owner.as_ref().filter(|o| o.kind == "service_account")?;
    let a = c.get_service_account(&owner.id).await.ok()?;
    let permissions = c.get_role(&a.role).await.ok()?.permissions.unwrap_or_default();
    Some(output::Inherited { account: a.name, account_id: a.id, role: a.role, permissions })
}

fn show(remote: &Remote, k: &KeyView) -> Result<()> {
    output::print_key(remote.json, k)
}

pub async fn run(cmd: ServerKeyCommand) -> Result<ExitCode> {
    match cmd {
        ServerKeyCommand::Create { remote, fields, environment, key_type, expires_in, idempotency_key } => {
            let c = super::client(&remote, true)?;
            let req = create_request(&fields, Some(environment), key_type, expires_in)?;
            let k = c.create_key(&req, idempotency_key.as_deref()).await?;
            show(&remote, &k)?;
        }
        ServerKeyCommand::List { remote, status, environment, kind, q, external_id, owner, limit, cursor } => {
            let c = super::client(&remote, true)?;
            let f = ListKeys { status, environment, kind, q, external_id, owner, limit, cursor, ..Default::default() };
            let page = c.list_keys(&f).await?;
            if remote.json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                println!("{}", output::key_rows(&page.items));
                if let Some(n) = page.next_cursor {
                    println!("\nmore: --cursor {n}");
                }
            }
        }
        ServerKeyCommand::Show { remote, id } => {
            let c = super::client(&remote, true)?;
            let k = c.get_key(&id).await?;
            let inherited = if remote.json { None } else { inherited(&c, &k).await };
            output::print_key_with(remote.json, &k, inherited.as_ref())?;
        }
        ServerKeyCommand::Update { remote, id, fields, no_expiry, disable, enable, no_identity } => {
            let c = super::client(&remote, true)?;
            let req = UpdateKeyRequest {
                name: fields.name.clone(),
                roles: fields.roles.clone(),
                permissions: fields.permissions.clone(),
                scopes: fields.scopes.clone(),
                grants: grants(&fields.grants)?,
                ip_allowlist: fields.ip_allowlist.clone(),
                meta: meta(&fields.meta)?,
                expires_at: if no_expiry { Some(None) } else { fields.expires_at.clone().map(Some) },
                callback_url: fields.callback_url.clone().map(Some),
                ratelimits: ratelimits(&fields.ratelimits)?,
                credits: credits(&fields)?.map(Some),
                enabled: if disable { Some(false) } else { enable.then_some(true) },
                external_id: if no_identity { Some(None) } else { fields.external_id.clone().map(Some) },
            };
            let k = c.update_key(&id, &req).await?;
            show(&remote, &k)?;
        }
        ServerKeyCommand::Revoke { remote, id } => {
            let k = super::client(&remote, true)?.revoke_key(&id).await?;
            show(&remote, &k)?;
        }
        ServerKeyCommand::Usage { remote, id, since, granularity, tag } => {
            let back = keyward_core::duration::parse(&since)
                .ok_or_else(|| anyhow::anyhow!("--since {since:?} is not a duration like 90m, 24h or 7d"))?;
            let from = chrono::Utc::now() - back;
            let client = super::client(&remote, true)?;
            let u = match &tag {
                Some(t) => client.key_usage_for_tag(&id, t, Some(from), None, granularity.as_deref()).await?,
                None => client.key_usage(&id, Some(from), None, granularity.as_deref()).await?,
            };
            if remote.json {
                println!("{}", serde_json::to_string_pretty(&u)?);
            } else {
                println!("{}", crate::output::usage(&u));
            }
        }
        ServerKeyCommand::Rotate { remote, id, grace } => {
            let k = super::client(&remote, true)?.rotate_key(&id, grace.as_deref()).await?;
            show(&remote, &k)?;
        }
        ServerKeyCommand::Import { remote, file, format } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let keys = import_file(&text, format.as_deref())?;
            let answer = super::client(&remote, true)?.import_keys(&keys).await?;
            if remote.json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                println!("imported {} keys", answer.imported);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_files_of_either_format() {
        let key = r#"{"hash": {"variant": "sha256_hex", "value": "00"}, "name": "a"}"#;
        assert_eq!(import_file(&format!(" [{key}, {key}]"), None).unwrap().len(), 2);
        assert_eq!(import_file(&format!("{key}\n\n{key}\n"), None).unwrap().len(), 2);
        assert_eq!(import_file(&format!("{key}\n"), Some("ndjson")).unwrap().len(), 1);
        let e = import_file(&format!("{key}\n{{\"hash\": 1}}\n"), None).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(import_file(&format!("{key}\n"), Some("json")).is_err());
    }
}
