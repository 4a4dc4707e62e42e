//! Open-loop load: request i is due at start + i/rate, and its latency is measured from
//! that due time (or its send, if sent early), so a stalled server cannot hide its queueing
//! (no coordinated omission).
//! HTTP/1.1 keep-alive over raw TCP: on a 2-core machine the load generator shares the CPU
//! with the server, so it must cost as little as possible.

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

/// Reads one response from `conn` (buffering any excess in `buf`); true when it was a 2xx.
async fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<bool> {
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
            buf.drain(..total);
            return Ok(ok);
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

pub async fn run(a: Args) -> Result<()> {
    let keys: Arc<Vec<String>> =
        Arc::new(std::fs::read_to_string(&a.keys)?.lines().filter(|l| !l.is_empty()).map(String::from).collect());
    anyhow::ensure!(!keys.is_empty(), "no keys in {}", a.keys.display());
    let (host, path) = split_url(&a.url)?;
    let total = if a.rate == 0 { keys.len() as u64 } else { a.rate * a.duration };
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for w in 0..a.connections as u64 {
        let (keys, host, path) = (keys.clone(), host.clone(), path.clone());
        let (rate, conns, in_header) = (a.rate, a.connections as u64, a.key_in_header);
        tasks.push(tokio::spawn(async move {
            let mut conn = TcpStream::connect(&host).await?;
            conn.set_nodelay(true)?;
            let mut buf = Vec::with_capacity(8192);
            let mut lat = Vec::with_capacity((total / conns + 1) as usize);
            let mut errors = 0u64;
            let mut i = w;
            // Everyone starts together, so requests / elapsed is the rate achieved.
            tokio::time::sleep_until(start.into()).await;
            while i < total {
                let due =
                    if rate == 0 { Instant::now() } else { start + Duration::from_secs_f64(i as f64 / rate as f64) };
                // Tokio's timer ticks in whole milliseconds: wake up to 1 ms early and send
                // then, timing from the send; a late request is timed from when it was due.
                if let Some(wake) = due.checked_sub(TIMER_TICK).filter(|w| *w > Instant::now()) {
                    tokio::time::sleep_until(wake.into()).await;
                }
                let from = due.min(Instant::now());
                let key =
                    if rate == 0 { &keys[i as usize] } else { &keys[rand::thread_rng().gen_range(0..keys.len())] };
                conn.write_all(&request(&host, &path, key, in_header)).await?;
                let ok = read_response(&mut conn, &mut buf).await?;
                lat.push(from.elapsed().as_micros() as u64);
                errors += u64::from(!ok);
                i += conns;
            }
            anyhow::Ok((lat, errors))
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await??;
        lat.extend(l);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct =
        |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "{}",
        serde_json::json!({
            "requests": lat.len(), "errors": errors, "rps": (lat.len() as f64 / secs).round(),
            "p50_us": pct(0.50), "p99_us": pct(0.99), "max_us": lat.last().copied().unwrap_or(0),
        })
    );
    Ok(())
}
