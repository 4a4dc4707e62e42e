//! `keyward webhooks …`: endpoints, deliveries and the callback signing key, over the API.

use anyhow::Result;
use std::process::ExitCode;

use keyward_client::{DeliveryView, NewWebhookRequest, WebhookPatch, WebhookView};

use super::governance::print;
use crate::args::WebhooksCommand;
use crate::output;

fn endpoint_rows(items: &[WebhookView]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|w| {
            let state = match (&w.disabled, &w.disabled_reason) {
                (false, _) => "enabled".to_string(),
                (true, Some(r)) => format!("disabled ({r})"),
                (true, None) => "disabled".to_string(),
            };
            vec![w.id.clone(), w.url.clone(), w.events.join(","), state]
        })
        .collect();
    output::table(&["ID", "URL", "EVENTS", "STATE"], &rows)
}

fn endpoint_detail(w: &WebhookView) -> String {
    let mut out = endpoint_rows(std::slice::from_ref(w));
    if let Some(d) = &w.description {
        out.push_str(&format!("\ndescription: {d}"));
    }
    if let Some(t) = w.previous_secret_until {
        out.push_str(&format!("\nprevious secret signs until {t}"));
    }
    if let Some(s) = &w.secret {
        out.push_str(&format!("\n\nsecret (shown once, store it now): {s}"));
    }
    out
}

fn delivery_rows(items: &[DeliveryView]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|d| {
            let answer = match (d.last_status, &d.last_error) {
                (Some(s), _) => s.to_string(),
                (None, Some(e)) => e.clone(),
                (None, None) => "-".into(),
            };
            vec![
                d.id.clone(),
                d.message_id.clone(),
                d.kind.clone(),
                d.status.clone(),
                d.attempts.to_string(),
                answer,
                d.created_at.format("%Y-%m-%d %H:%M:%SZ").to_string(),
            ]
        })
        .collect();
    output::table(&["ID", "WEBHOOK-ID", "TYPE", "STATUS", "ATTEMPTS", "LAST ANSWER", "CREATED"], &rows)
}

pub async fn run(cmd: WebhooksCommand) -> Result<ExitCode> {
    match cmd {
        WebhooksCommand::List { remote } => {
            let page = super::client(&remote, true)?.list_webhooks().await?;
            print(&remote, &page, || endpoint_rows(&page.items))?;
        }
        WebhooksCommand::Create { remote, url, events, description } => {
            let w =
                super::client(&remote, true)?.create_webhook(&NewWebhookRequest { url, events, description }).await?;
            print(&remote, &w, || endpoint_detail(&w))?;
        }
        WebhooksCommand::Show { remote, id } => {
            let w = super::client(&remote, true)?.get_webhook(&id).await?;
            print(&remote, &w, || endpoint_detail(&w))?;
        }
        WebhooksCommand::Update { remote, id, url, events, description, disable, enable } => {
            let patch = WebhookPatch {
                url,
                events: (!events.is_empty()).then_some(events),
                description: description.map(Some),
                disabled: if disable {
                    Some(true)
                } else if enable {
                    Some(false)
                } else {
                    None
                },
            };
            let w = super::client(&remote, true)?.update_webhook(&id, &patch).await?;
            print(&remote, &w, || endpoint_detail(&w))?;
        }
        WebhooksCommand::Delete { remote, id } => {
            super::client(&remote, true)?.delete_webhook(&id).await?;
            println!("deleted {id}");
        }
        WebhooksCommand::RotateSecret { remote, id, overlap } => {
            let w = super::client(&remote, true)?.rotate_webhook_secret(&id, overlap.as_deref()).await?;
            print(&remote, &w, || endpoint_detail(&w))?;
        }
        WebhooksCommand::Test { remote, id } => {
            let d = super::client(&remote, true)?.test_webhook(&id).await?;
            print(&remote, &d, || format!("queued {} (webhook-id {})", d.id, d.message_id))?;
        }
        WebhooksCommand::Deliveries { remote, id, limit } => {
            let page = super::client(&remote, true)?.list_deliveries(&id, limit).await?;
            print(&remote, &page, || delivery_rows(&page.items))?;
        }
        WebhooksCommand::Retry { remote, id, delivery_id } => {
            super::client(&remote, true)?.retry_delivery(&id, &delivery_id).await?;
            println!("{delivery_id} is due again");
        }
        WebhooksCommand::SigningKey { remote } => {
            let k = super::client(&remote, true)?.webhook_signing_key().await?;
            print(&remote, &k, || k.public_key.clone())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
