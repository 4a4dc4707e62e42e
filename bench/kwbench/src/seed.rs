use std::io::Write;
use std::sync::Arc;

use keyward_client::{Client, CreateKeyRequest};

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
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let client = Arc::new(Client::new(&a.server, Some(a.token))?);
    let started = std::time::Instant::now();
    let per = a.count.div_ceil(a.concurrency);
    let mut tasks = Vec::new();
    for w in 0..a.concurrency {
        let client = client.clone();
        let n = per.min(a.count.saturating_sub(w * per));
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                let req = CreateKeyRequest {
                    name: Some(format!("bench-{w}-{i}")),
                    permissions: Some(vec!["wallet.read".into(), "tx.create".into()]),
                    scopes: Some(vec!["wallet:*".into()]),
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
