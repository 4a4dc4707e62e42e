//! Open-loop load: request i is due at start + i/rate, and its latency is measured from
//! that due time (or its send, if sent early), so a stalled server cannot hide its queueing
//! (no coordinated omission).
//! HTTP/1.1 keep-alive over raw TCP: on a 2-core machine the load generator shares the CPU
//! with the server, so it must cost as little as possible.
//! For `bench/coldstart.sh`: `--run-for` sends random keys as fast as the connections allow
//! (closed loop) for that long, `--reconnect` rides out a server restart, and `--series`
//! writes the answers per time bucket.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(clap::Args)]
pub struct Args {
    /// e.g. http://127.0.0.1:5399/v1/keys/verify
    #[arg(long)]
    url: String,
    /// Secrets, one per line.
    #[arg(long)]
    keys: std::path::PathBuf,
    /// Requests per second; 0 sends each key once, as fast as `connections` allow.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    duration: u64,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Send the key as `X-API-Key` (as a gateway client does) instead of in a JSON body.
    #[arg(long)]
    key_in_header: bool,
    /// With rate 0: random keys as fast as the connections allow, for this many seconds.
    #[arg(long)]
    run_for: Option<u64>,
    /// A refused connection or one that breaks is counted (`failed`) and made again, instead
    /// of ending the run.
    #[arg(long)]
    reconnect: bool,
    /// A 2xx answer without `"code":"VALID"` counts as `not_valid`.
    #[arg(long)]
    expect_valid: bool,
    /// Writes `# start_unix_ms MS` then `BUCKET GOOD BAD` lines: answers per bucket of
    /// `--bucket-ms` from the start, good = 2xx (and VALID with `--expect-valid`).
    #[arg(long)]
    series: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 1000)]
    bucket_ms: u64,
}

/// One connection's tally.
#[derive(Default)]
struct Tally {
    lat: Vec<u64>,
    errors: u64,
    not_valid: u64,
    failed: u64,
    /// Per bucket: good answers, bad ones (non-2xx, not valid, failed).
    buckets: Vec<[u64; 2]>,
}

impl Tally {
    fn count(&mut self, bucket: usize, good: bool) {
        if self.buckets.len() <= bucket {
            self.buckets.resize(bucket + 1, [0, 0]);
        }
        self.buckets[bucket][usize::from(!good)] += 1;
    }
}

const TIMER_TICK: Duration = Duration::from_millis(1);

/// `http://host:port/path` → (`host:port`, `/path`).
fn split_url(url: &str) -> Result<(String, String)> {
    let rest = url.strip_prefix("http://").context("only http:// URLs")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    Ok((host.to_string(), format!("/{path}")))
}

fn request(host: &str, path: &str, key: &str, in_header: bool) -> Vec<u8> {
    let (extra, body) = if in_header {
        (format!("X-API-Key: {key}\r\n"), String::new())
    } else {
        (String::new(), format!(r#"{{"key":"{key}"}}"#))
    };
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one response from `conn` (buffering any excess in `buf`): whether it was a 2xx, and
/// whether its body says `"code":"VALID"`.
async fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(bool, bool)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end])?;
            let ok = head.get(9..10) == Some("2");
            let len = head
                .lines()
                .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
                .map(|(_, v)| v.trim().parse::<usize>())
                .transpose()?
                .unwrap_or(0);
            let total = end + 4 + len;
            while buf.len() < total {
                fill(conn, buf).await?;
            }
            const VALID: &[u8] = br#""code":"VALID""#;
            let valid = buf[end + 4..total].windows(VALID.len()).any(|w| w == VALID);
            buf.drain(..total);
            return Ok((ok, valid));
        }
        fill(conn, buf).await?;
    }
}

async fn fill(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<()> {
    let mut chunk = [0u8; 4096];
    let n = conn.read(&mut chunk).await?;
    if n == 0 {
        bail!("connection closed");
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

async fn connect(host: &str) -> Result<TcpStream> {
    let conn = TcpStream::connect(host).await?;
    conn.set_nodelay(true)?;
    Ok(conn)
}

pub async fn run(a: Args) -> Result<()> {
    let keys: Arc<Vec<String>> =
        Arc::new(std::fs::read_to_string(&a.keys)?.lines().filter(|l| !l.is_empty()).map(String::from).collect());
    anyhow::ensure!(!keys.is_empty(), "no keys in {}", a.keys.display());
    let (host, path) = split_url(&a.url)?;
    let closed = a.rate == 0 && a.run_for.is_some();
    let total = match (a.rate, closed) {
        (0, true) => u64::MAX,
        (0, false) => keys.len() as u64,
        (rate, _) => rate * a.duration,
    };
    let start = Instant::now() + Duration::from_millis(50);
    let start_unix_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() + 50;
    let end = a.run_for.map(|s| start + Duration::from_secs(s));
    let bucket_ms = a.bucket_ms.max(1);
    let mut tasks = Vec::new();
    for w in 0..a.connections as u64 {
        let (keys, host, path) = (keys.clone(), host.clone(), path.clone());
        let (rate, conns, in_header, reconnect, expect_valid) =
            (a.rate, a.connections as u64, a.key_in_header, a.reconnect, a.expect_valid);
        tasks.push(tokio::spawn(async move {
            let mut conn = match connect(&host).await {
                Ok(c) => Some(c),
                Err(_) if reconnect => None,
                Err(e) => return Err(e),
            };
            let mut buf = Vec::with_capacity(8192);
            let mut t =
                Tally { lat: Vec::with_capacity((total.min(1 << 20) / conns + 1) as usize), ..Tally::default() };
            let mut i = w;
            // Everyone starts together, so requests / elapsed is the rate achieved.
            tokio::time::sleep_until(start.into()).await;
            while i < total && end.is_none_or(|e| Instant::now() < e) {
                let Some(c) = conn.as_mut() else {
                    // The server is away (restarting): try again shortly.
                    match connect(&host).await {
                        Ok(c) => conn = Some(c),
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                    continue;
                };
                let due =
                    if rate == 0 { Instant::now() } else { start + Duration::from_secs_f64(i as f64 / rate as f64) };
                // Tokio's timer ticks in whole milliseconds: wake up to 1 ms early and send
                // then, timing from the send; a late request is timed from when it was due.
                if let Some(wake) = due.checked_sub(TIMER_TICK).filter(|w| *w > Instant::now()) {
                    tokio::time::sleep_until(wake.into()).await;
                }
                let from = due.min(Instant::now());
                let key = if rate == 0 && !closed {
                    &keys[i as usize]
                } else {
                    &keys[rand::thread_rng().gen_range(0..keys.len())]
                };
                let answered = async {
                    c.write_all(&request(&host, &path, key, in_header)).await?;
                    read_response(c, &mut buf).await
                }
                .await;
                let bucket = (Instant::now().saturating_duration_since(start).as_millis() as u64 / bucket_ms) as usize;
                match answered {
                    Ok((ok, valid)) => {
                        t.lat.push(from.elapsed().as_micros() as u64);
                        t.errors += u64::from(!ok);
                        let bad_code = ok && expect_valid && !valid;
                        t.not_valid += u64::from(bad_code);
                        t.count(bucket, ok && !bad_code);
                    }
                    Err(_) if reconnect => {
                        t.failed += 1;
                        t.count(bucket, false);
                        conn = None;
                        buf.clear();
                    }
                    Err(e) => return Err(e),
                }
                i += conns;
            }
            anyhow::Ok(t)
        }));
    }
    let mut all = Tally::default();
    for task in tasks {
        let t = task.await??;
        all.lat.extend(t.lat);
        all.errors += t.errors;
        all.not_valid += t.not_valid;
        all.failed += t.failed;
        for (b, [good, bad]) in t.buckets.into_iter().enumerate() {
            if all.buckets.len() <= b {
                all.buckets.resize(b + 1, [0, 0]);
            }
            all.buckets[b][0] += good;
            all.buckets[b][1] += bad;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if let Some(file) = &a.series {
        let mut out = format!("# start_unix_ms {start_unix_ms}\n");
        for (b, [good, bad]) in all.buckets.iter().enumerate() {
            out.push_str(&format!("{b} {good} {bad}\n"));
        }
        std::fs::write(file, out)?;
    }
    let lat = &mut all.lat;
    lat.sort_unstable();
    let pct =
        |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "{}",
        serde_json::json!({
            "requests": lat.len(), "errors": all.errors, "not_valid": all.not_valid, "failed": all.failed,
            "rps": (lat.len() as f64 / secs).round(),
            "p50_us": pct(0.50), "p99_us": pct(0.99), "max_us": lat.last().copied().unwrap_or(0),
        })
    );
    Ok(())
}
