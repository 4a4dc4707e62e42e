//! Human-readable output: aligned tables and key details.

use keyward_client::{IdentityView, KeyView, VerifyResponse};

pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    for r in rows {
        out.push('\n');
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string()).unwrap_or_else(|| "-".into())
}

/// A key in its rotation's grace period: still `active`, replaced by `rotated_to`.
fn rotating(k: &KeyView) -> Option<&str> {
    k.rotated_to.as_deref().filter(|_| k.status == keyward_client::KeyStatus::Active)
}

/// The status column: "rotating → key_new" for the old key of a rotation under way, and
/// "active ← key_old" for the new one when the old one is in the same list.
fn list_status(k: &KeyView, all: &[KeyView]) -> String {
    if let Some(to) = rotating(k) {
        return format!("rotating → {to}");
    }
    match k.rotated_from.as_deref() {
        Some(from) if all.iter().any(|o| o.id == from && rotating(o) == Some(k.id.as_str())) => {
            format!("{} ← {from}", k.status_str())
        }
        _ => k.status_str(),
    }
}

pub fn key_rows(keys: &[KeyView]) -> String {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.id.clone(),
                k.name.clone(),
                k.environment.clone(),
                list_status(k, keys),
                format!("{}…", k.start),
                time(k.expires_at),
                time(k.last_used_at),
                k.requests_24h.map_or_else(|| "-".to_string(), |n| n.to_string()),
                owner(k),
            ]
        })
        .collect();
    table(&["ID", "NAME", "ENV", "STATUS", "START", "EXPIRES", "LAST USED", "REQ/24H", "OWNER"], &rows)
}

/// Identities as a table: id, external id, shared limits and credits.
pub fn identity_rows(items: &[IdentityView]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            let limits: Vec<String> =
                i.ratelimits.iter().map(|l| format!("{}={}/{}", l.name, l.limit, l.duration)).collect();
            vec![
                i.id.clone(),
                i.external_id.clone(),
                if limits.is_empty() { "-".into() } else { limits.join(", ") },
                i.credits.as_ref().map_or_else(|| "-".to_string(), |c| c.remaining.to_string()),
                time(Some(i.created_at)),
            ]
        })
        .collect();
    table(&["ID", "EXTERNAL ID", "RATE LIMITS", "CREDITS", "CREATED"], &rows)
}

/// `▁▂▃▄▅▆▇█` scaled to the largest value (a blank for zero).
pub fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| match v {
            0 => ' ',
            _ => BARS[usize::try_from((v * 7).div_ceil(max.max(1))).unwrap_or(7).min(7)],
        })
        .collect()
}

/// A key's usage: totals by code, a sparkline over the range, then the non-empty buckets.
pub fn usage(u: &keyward_client::KeyUsage) -> String {
    let codes: Vec<String> = u.by_code.iter().map(|(c, n)| format!("{c} {n}")).collect();
    let mut out = format!(
        "{}  {} verifications from {} to {} ({})\n{}\n|{}|\n",
        u.key_id,
        u.total,
        u.from.format("%Y-%m-%d %H:%MZ"),
        u.to.format("%Y-%m-%d %H:%MZ"),
        u.granularity,
        if codes.is_empty() { "-".to_string() } else { codes.join(", ") },
        sparkline(&u.buckets.iter().map(|b| b.total).collect::<Vec<_>>())
    );
    let rows: Vec<Vec<String>> = u
        .buckets
        .iter()
        .filter(|b| b.total > 0)
        .map(|b| {
            let refused = b.total - b.by_code.get("VALID").copied().unwrap_or(0);
            vec![b.start.format("%Y-%m-%d %H:%MZ").to_string(), b.total.to_string(), refused.to_string()]
        })
        .collect();
    out.push_str(&table(&["START", "TOTAL", "REFUSED"], &rows));
    out
}

/// The service account owning a key, else the member who made it.
fn owner(k: &KeyView) -> String {
    k.owner.as_ref().map_or_else(|| "-".to_string(), |o| o.id.clone())
}

trait StatusStr {
    fn status_str(&self) -> String;
}

impl StatusStr for KeyView {
    /// The status, and "(disabled)" after it while the key is disabled.
    fn status_str(&self) -> String {
        let s = serde_json::to_value(self.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        if self.enabled {
            s
        } else {
            format!("{s} (disabled)")
        }
    }
}

/// What a service account key holds through its account: the account's name and id, its
/// role, and what the role grants.
pub struct Inherited {
    pub account: String,
    pub account_id: String,
    pub role: String,
    pub permissions: Vec<String>,
}

pub fn key_detail(k: &KeyView, inherited: Option<&Inherited>) -> String {
    let list = |v: &[String]| if v.is_empty() { "-".to_string() } else { v.join(", ") };
    let status = match rotating(k) {
        Some(to) => format!("rotating → {to} (this key stops at {})", time(k.expires_at)),
        None => k.status_str(),
    };
    let mut rows = vec![
        ("id", k.id.clone()),
        ("name", k.name.clone()),
        ("status", status),
        ("environment", k.environment.clone()),
        ("start", format!("{}…", k.start)),
        ("roles", list(&k.roles)),
        ("permissions", list(&k.permissions)),
        ("scopes", list(&k.scopes)),
        ("grants", grants(k)),
        ("owner", k.owner.as_ref().map_or_else(|| "-".to_string(), |o| format!("{} ({})", o.id, o.kind))),
        (
            "inherited",
            inherited.map_or_else(
                || "-".to_string(),
                |i| {
                    format!(
                        "role {} from service account {} ({}): {}",
                        i.role,
                        i.account,
                        i.account_id,
                        list(&i.permissions)
                    )
                },
            ),
        ),
        (
            "identity",
            match (&k.external_id, &k.identity_id) {
                (Some(x), Some(id)) => format!("{x} ({id})"),
                _ => "-".to_string(),
            },
        ),
        ("ip allowlist", list(&k.ip_allowlist)),
        ("meta", serde_json::Value::Object(k.meta.clone()).to_string()),
        ("expires", time(k.expires_at)),
        ("created", time(Some(k.created_at))),
        ("last used", time(k.last_used_at)),
    ];
    if !k.ratelimits.is_empty() {
        let l: Vec<String> = k.ratelimits.iter().map(|l| format!("{}={}/{}", l.name, l.limit, l.duration)).collect();
        rows.push(("rate limits", l.join(", ")));
    }
    if let Some(c) = &k.credits {
        let refill = c.refill.map_or_else(String::new, |r| match r.interval {
            keyward_core::ratelimit::Interval::Daily => format!(" (refill {} daily)", r.amount),
            keyward_core::ratelimit::Interval::Monthly => format!(" (refill {} monthly on day {})", r.amount, r.day),
        });
        rows.push(("credits", format!("{}{refill}", c.remaining)));
    }
    if let Some(ip) = &k.last_used_ip {
        rows.push(("last used ip", ip.clone()));
    }
    if let Some(t) = k.disabled_at {
        rows.push(("disabled", time(Some(t))));
    }
    if let Some(t) = k.revoked_at {
        rows.push(("revoked", time(Some(t))));
    }
    if let Some(to) = &k.rotated_to {
        rows.push(("rotated to", to.clone()));
    }
    if let Some(from) = &k.rotated_from {
        rows.push(("rotated from", from.clone()));
    }
    let w = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    rows.iter().map(|(l, v)| format!("{l:<w$}  {v}")).collect::<Vec<_>>().join("\n")
}

fn grants(k: &KeyView) -> String {
    if k.grants.is_empty() {
        return "-".to_string();
    }
    k.grants.iter().map(|g| format!("{} in {}", g.role, g.scopes.join(","))).collect::<Vec<_>>().join("; ")
}

pub fn verify_line(v: &VerifyResponse) -> String {
    let code = serde_json::to_value(v.code).ok().and_then(|c| c.as_str().map(str::to_string)).unwrap_or_default();
    let mut line = match (&v.key_id, &v.name) {
        (Some(id), Some(name)) => format!("{code}  {id}  {name}"),
        _ => code,
    };
    if let Some(r) = &v.ratelimit {
        line.push_str(&format!("  ratelimit {} {}/{} left", r.name, r.remaining, r.limit));
    }
    if let Some(c) = &v.credits {
        line.push_str(&format!("  credits {}", c.remaining));
    }
    line
}

/// Prints a key (JSON or text); a secret, present only in the answer that created it, once.
pub fn print_key(json: bool, k: &KeyView) -> anyhow::Result<()> {
    print_key_with(json, k, None)
}

/// [`print_key`], with what a service account key inherits (text only: JSON is the key object).
pub fn print_key_with(json: bool, k: &KeyView, inherited: Option<&Inherited>) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(k)?);
    } else {
        println!("{}", key_detail(k, inherited));
        if let Some(s) = &k.secret {
            println!("\nSecret (shown once, store it now):\n\n  {s}\n");
        }
    }
    Ok(())
}
