//! `keyward ratelimit …`: rate limiting as a service and its overrides.

use anyhow::{anyhow, Result};
use std::process::ExitCode;

use keyward_client::{LimitAnswer, LimitRequest, OverrideRequest, OverrideView};

use super::governance::print;
use crate::args::{OverridesCommand, RatelimitCommand};

/// `60s`, `15m`, `1h` … as the milliseconds the API takes.
fn millis(flag: &str, raw: &str) -> Result<u64> {
    keyward_core::duration::parse(raw)
        .and_then(|d| u64::try_from(d.num_milliseconds()).ok())
        .ok_or_else(|| anyhow!("{flag} {raw:?} is not a duration like 60s, 15m or 1h"))
}

fn answer_line(a: &LimitAnswer) -> String {
    let verdict = if a.success { "allowed" } else { "refused" };
    let reset = chrono::DateTime::from_timestamp_millis(a.reset).map(|t| t.to_rfc3339()).unwrap_or_default();
    let by = a.override_id.as_deref().map(|o| format!("  (override {o})")).unwrap_or_default();
    format!("{verdict}: {} of {} left, whole again at {reset}{by}", a.remaining, a.limit)
}

fn override_line(o: &OverrideView) -> String {
    format!("{}  {:<20} {:<24} {} per {} ms", o.id, o.namespace, o.identifier, o.limit, o.duration)
}

pub async fn run(cmd: RatelimitCommand) -> Result<ExitCode> {
    match cmd {
        RatelimitCommand::Limit { remote, namespace, identifier, limit, duration, cost } => {
            let req = LimitRequest { namespace, identifier, limit, duration: millis("--duration", &duration)?, cost };
            let a = super::client(&remote, true)?.ratelimit(&req).await?;
            print(&remote, &a, || answer_line(&a))?;
            return Ok(if a.success { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
        RatelimitCommand::Overrides(OverridesCommand::List { remote, namespace }) => {
            let client = super::client(&remote, true)?;
            let mut items = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = client.list_ratelimit_overrides(namespace.as_deref(), cursor.as_deref()).await?;
                items.extend(page.items);
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            print(&remote, &items, || items.iter().map(override_line).collect::<Vec<_>>().join("\n"))?;
        }
        RatelimitCommand::Overrides(OverridesCommand::Set { remote, namespace, identifier, limit, duration }) => {
            let req = OverrideRequest { namespace, identifier, limit, duration: millis("--duration", &duration)? };
            let o = super::client(&remote, true)?.set_ratelimit_override(&req).await?;
            print(&remote, &o, || override_line(&o))?;
        }
        RatelimitCommand::Overrides(OverridesCommand::Delete { remote, id }) => {
            let o = super::client(&remote, true)?.delete_ratelimit_override(&id).await?;
            print(&remote, &o, || format!("deleted {}", override_line(&o)))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
