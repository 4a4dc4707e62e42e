use std::io::Write;
use std::sync::Arc;

use keyward_client::{Client, CreateKeyRequest};
use keyward_core::wire::keys::{CreditsSpec, RateLimitSpec};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    server: String,
    #[arg(long)]
    token: String,
    #[arg(long)]
    count: usize,
    /// Appended to, one secret per line.
    #[arg(long)]
    out: std::path::PathBuf,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Gives each key this rate limit (LIMIT/DURATION, e.g. 1000000/1s; repeatable).
    #[arg(long = "ratelimit")]
    ratelimits: Vec<String>,
    /// Gives each key this many credits.
    #[arg(long)]
    credits: Option<u64>,
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let client = Arc::new(Client::new(&a.server, Some(a.token))?);
    let started = std::time::Instant::now();
    let per = a.count.div_ceil(a.concurrency);
    let limits = a
        .ratelimits
        .iter()
        .map(|s| keyward_core::ratelimit::RateLimit::parse_spec(s).map(|l| RateLimitSpec::from(&l)))
        .collect::<Result<Vec<_>, _>>()?;
    let limits = (!limits.is_empty()).then_some(limits);
    let credits = a.credits.map(|remaining| CreditsSpec { remaining, refill: None });
    let mut tasks = Vec::new();
    for w in 0..a.concurrency {
        let client = client.clone();
        let (ratelimits, credits) = (limits.clone(), credits.clone());
        let n = per.min(a.count.saturating_sub(w * per));
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                let req = CreateKeyRequest {
                    name: Some(format!("bench-{w}-{i}")),
                    permissions: Some(vec!["wallet.read".into(), "tx.create".into()]),
                    scopes: Some(vec!["wallet:*".into()]),
                    ratelimits: ratelimits.clone(),
                    credits: credits.clone(),
                    ..Default::default()
                };
                let k = client.create_key(&req, None).await?;
                out.push(k.secret.unwrap_or_default());
            }
            anyhow::Ok(out)
        }));
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&a.out)?;
    for t in tasks {
        for s in t.await?? {
            writeln!(f, "{s}")?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!("seeded {} keys in {secs:.1} s ({:.0} creates/s)", a.count, a.count as f64 / secs);
    Ok(())
}
