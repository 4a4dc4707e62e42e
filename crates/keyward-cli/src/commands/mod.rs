mod apps;
mod audit;
mod governance;
mod identities;
mod init;
mod keys;
mod management_keys;
mod operator_tokens;
mod pairs;
mod ratelimit;
mod roles;
mod scan;
mod serve;
mod verify_tokens;
mod webhooks;

use anyhow::Result;
use std::process::ExitCode;

use keyward_client::{Client, VerifyKeyRequest};

use crate::args::{Cli, Command, KeysCommand, Remote};
use crate::{output, userconfig};

pub async fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Init(a) => init::run(a).await,
        Command::Serve(a) => serve::run(a).await,
        Command::Gateway(a) => serve::gateway(a).await,
        Command::Config(crate::args::ConfigCommand::Show(a)) => serve::show_config(a),
        Command::Login(a) => governance::login(a).await,
        Command::Logout(a) => governance::logout(a).await,
        Command::Members(c) => governance::members(c).await,
        Command::Approvals(c) => governance::approvals(c).await,
        Command::Policies(c) => governance::policies(c).await,
        Command::Roles(c) => roles::roles(c).await,
        Command::Audit(c) => audit::run(c).await,
        Command::Webhooks(c) => webhooks::run(c).await,
        Command::Identities(c) => identities::run(c).await,
        Command::ManagementKeys(c) => management_keys::run(c).await,
        Command::VerifyTokens(c) => verify_tokens::run(c).await,
        Command::Apps(c) => apps::run(c).await,
        Command::ServiceAccounts(c) => roles::service_accounts(c).await,
        Command::Ratelimit(c) => ratelimit::run(c).await,
        Command::Scan(a) => scan::run(a).await,
        Command::Keys(KeysCommand::Pair(p)) => pairs::run(p).await,
        Command::Keys(KeysCommand::Server(k)) => keys::run(k).await,
        Command::Request(a) => pairs::request(a).await,
        Command::Workspaces(crate::args::WorkspacesCommand::Create { storage, name, prefix, owner_email, json }) => {
            let opts = keyward_server::bootstrap::InitOptions { workspace_name: name, prefix, owner_email };
            init::create_workspace(storage, opts, json).await
        }
        Command::OperatorTokens(c) => operator_tokens::run(c).await,
        Command::Verify(a) => {
            let client = client(&a.remote, false)?;
            let v = client
                .verify_key(&VerifyKeyRequest {
                    key: a.key.into(),
                    ip: a.ip.map(Into::into),
                    permissions: a.permissions.map(Into::into),
                    scope: a.scope.map(Into::into),
                    workspace_id: a.workspace.map(Into::into),
                    environment: a.environment.map(Into::into),
                    cost: a.cost,
                    tags: (!a.tags.is_empty()).then(|| a.tags.into_iter().map(Into::into).collect()),
                    ratelimits: None,
                })
                .await?;
            if a.remote.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{}", output::verify_line(&v));
            }
            Ok(if v.valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

/// A client for the server named by flags, env or `keyward login`.
fn client(remote: &Remote, needs_token: bool) -> Result<Client> {
    let (saved_url, saved_token) = userconfig::load_login()?;
    let server = remote.server.clone().or(saved_url).unwrap_or_else(|| "http://127.0.0.1:5399".into());
    let token = remote.token.clone().or(saved_token);
    if needs_token && token.is_none() {
        anyhow::bail!(
            "no credentials: run `keyward login --server URL --token KEY` (or `--email EMAIL`), or pass --token"
        );
    }
    new_client(&server, token, remote.ca_cert.as_deref())
}

/// A client for `server`, also trusting the PEM CA in `ca_cert` (`--ca-cert` /
/// `KEYWARD_CA_CERT`), for an `https://` server with a private CA.
pub(crate) fn new_client(server: &str, token: Option<String>, ca_cert: Option<&std::path::Path>) -> Result<Client> {
    let ca = match ca_cert {
        Some(p) => Some(std::fs::read(p).map_err(|e| anyhow::anyhow!("--ca-cert {}: {e}", p.display()))?),
        None => None,
    };
    Ok(Client::with_ca(server, token, ca.as_deref())?)
}
