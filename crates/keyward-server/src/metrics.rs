//! Prometheus metrics: plain atomics bumped where things happen (the verify path adds a
//! handful of relaxed increments, no lock, no allocation), rendered in the text exposition
//! format on `GET /metrics`. No label names a key or carries a secret.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use keyward_core::codes::VerifyCode;

/// Counters of the connection limit, shown by `/healthz` (bumped by the accept loop).
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub open: AtomicU64,
    /// Connections refused because `max_connections` were open.
    pub refused: AtomicU64,
}

/// A histogram with fixed bucket bounds (seconds); counts per bucket, the total in
/// nanoseconds.
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    sum_ns: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self.bounds.iter().position(|b| secs <= *b).unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Relaxed);
            match self.bounds.get(i) {
                Some(le) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let _ = writeln!(out, "{name}_sum {}", self.sum_ns.load(Relaxed) as f64 / 1e9);
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

const VERIFY_BOUNDS: &[f64] = &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0];
const FLUSH_BOUNDS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

/// What the verify path counts, one copy per stripe: each thread bumps its own, so the two
/// cores never fight over one cache line; a scrape adds the stripes up.
#[repr(align(128))]
struct Stripe {
    verifications: [AtomicU64; VerifyCode::ALL.len()],
    /// Per bucket of [`VERIFY_BOUNDS`] (and one past the last).
    duration: [AtomicU64; VERIFY_BOUNDS.len() + 1],
    duration_ns: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

impl Default for Stripe {
    fn default() -> Self {
        Stripe {
            verifications: std::array::from_fn(|_| AtomicU64::new(0)),
            duration: std::array::from_fn(|_| AtomicU64::new(0)),
            duration_ns: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
        }
    }
}

const STRIPES: usize = 8;

static NEXT_STRIPE: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static MY_STRIPE: usize = (NEXT_STRIPE.fetch_add(1, Relaxed) as usize) % STRIPES;
}

/// The credentials verification looks up in storage on a cache miss.
#[derive(Debug, Clone, Copy)]
pub enum Lookup {
    SecretKey,
    PublicKey,
    VerifyToken,
}

impl Lookup {
    const ALL: [Lookup; 3] = [Lookup::SecretKey, Lookup::PublicKey, Lookup::VerifyToken];

    fn as_str(self) -> &'static str {
        match self {
            Lookup::SecretKey => "secret_key",
            Lookup::PublicKey => "public_key",
            Lookup::VerifyToken => "verify_token",
        }
    }
}

pub struct Metrics {
    started: Instant,
    stripes: Box<[Stripe]>,
    /// Storage reads made by verifications, by [`Lookup`] (cache misses that were looked up).
    storage_reads: [AtomicU64; 3],
    pub flush_duration: Histogram,
    flush_failures: AtomicU64,
    deliveries: AtomicU64,
    delivery_failures: AtomicU64,
    /// When (ms since `started`) this node last knew it had every change event.
    heard_ms: AtomicU64,
    /// The highest change event's sequence number applied to the cache.
    event_seq: AtomicU64,
    /// Times the change listener connected and caught up (once at start, then per loss).
    listener_connects: AtomicU64,
    /// Keys the cache was warmed with at start (`cache/warm.rs`).
    warmed: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            storage_reads: std::array::from_fn(|_| AtomicU64::new(0)),
            flush_duration: Histogram::new(FLUSH_BOUNDS),
            flush_failures: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            delivery_failures: AtomicU64::new(0),
            heard_ms: AtomicU64::new(0),
            event_seq: AtomicU64::new(0),
            listener_connects: AtomicU64::new(0),
            warmed: AtomicU64::new(0),
        }
    }
}

/// Gauges read when scraped.
pub struct Gauges {
    pub cache_entries: u64,
    /// Whether the sets of existing secret keys, public keys and verify tokens are loaded.
    pub known_loaded: bool,
    /// Verifications not counted because the usage buffer was full.
    pub usage_entries_dropped: u64,
    /// Usage rows the database refused (left out of their flush).
    pub usage_rows_dropped: u64,
    /// Tag counts not kept: their key named too many distinct tags between two flushes.
    pub usage_tags_dropped: u64,
    pub outbox_pending: Option<i64>,
    /// Answers given without Redis (when it is configured).
    pub redis_errors: Option<u64>,
    /// Redis runs for keys' limits (exact, lease takes, lease returns) and the tokens this
    /// node holds in leases (when Redis is configured).
    pub redis_limits: Option<RedisLimits>,
}

/// Redis script runs for keys' limits, and leased tokens held (`limits/lease.rs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisLimits {
    pub exact_runs: u64,
    /// Script runs that carried the exact checks (and rate limiting as a service's).
    pub exact_batches: u64,
    pub lease_runs: u64,
    pub return_runs: u64,
    pub lease_tokens_held: u64,
}

impl Metrics {
    fn stripe(&self) -> &Stripe {
        &self.stripes[MY_STRIPE.with(|i| *i)]
    }

    fn total(&self, f: impl Fn(&Stripe) -> &AtomicU64) -> u64 {
        self.stripes.iter().map(|s| f(s).load(Relaxed)).sum()
    }

    pub fn verified(&self, code: VerifyCode, started: Instant) {
        let d = started.elapsed();
        let s = self.stripe();
        s.verifications[code.index()].fetch_add(1, Relaxed);
        let secs = d.as_secs_f64();
        let i = VERIFY_BOUNDS.iter().position(|b| secs <= *b).unwrap_or(VERIFY_BOUNDS.len());
        s.duration[i].fetch_add(1, Relaxed);
        s.duration_ns.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    pub fn cache(&self, hit: bool) {
        let s = self.stripe();
        if hit { &s.cache_hits } else { &s.cache_misses }.fetch_add(1, Relaxed);
    }

    /// A verification's read of storage for a credential this node had not cached.
    pub fn storage_read(&self, what: Lookup) {
        self.storage_reads[what as usize].fetch_add(1, Relaxed);
    }

    pub fn flushed(&self, took: Duration, ok: bool) {
        self.flush_duration.observe(took);
        if !ok {
            self.flush_failures.fetch_add(1, Relaxed);
        }
    }

    pub fn delivery(&self, ok: bool) {
        if ok { &self.deliveries } else { &self.delivery_failures }.fetch_add(1, Relaxed);
    }

    /// The node has every change event as of now (a notification, a heartbeat, a poll).
    pub fn heard(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heard_ms.store(ms, Relaxed);
    }

    /// Change events up to `seq` are applied.
    pub fn applied(&self, seq: i64) {
        self.event_seq.fetch_max(u64::try_from(seq).unwrap_or(0), Relaxed);
    }

    /// The cache was warmed with `n` recently used keys.
    pub fn warmed(&self, n: u64) {
        self.warmed.store(n, Relaxed);
    }

    /// The change listener (re)connected and caught up.
    pub fn listening(&self) {
        self.listener_connects.fetch_add(1, Relaxed);
    }

    /// How many times the change listener connected and caught up (0: not yet).
    pub fn listener_connects(&self) -> u64 {
        self.listener_connects.load(Relaxed)
    }

    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP keyward_verifications_total Verifications answered, by code.\n# TYPE keyward_verifications_total counter"
        );
        for c in VerifyCode::ALL {
            let n = self.total(|s| &s.verifications[c.index()]);
            let _ = writeln!(out, "keyward_verifications_total{{code=\"{}\"}} {n}", c.as_str());
        }
        let verify = Histogram {
            bounds: VERIFY_BOUNDS,
            buckets: (0..=VERIFY_BOUNDS.len()).map(|i| AtomicU64::new(self.total(|s| &s.duration[i]))).collect(),
            sum_ns: AtomicU64::new(self.total(|s| &s.duration_ns)),
        };
        verify.render(&mut out, "keyward_verify_duration_seconds", "Time to decide a verification.");
        let hits = self.total(|s| &s.cache_hits);
        let misses = self.total(|s| &s.cache_misses);
        let ratio = if hits + misses == 0 { 0.0 } else { hits as f64 / (hits + misses) as f64 };
        let _ = write!(
            out,
            "# HELP keyward_cache_entries Keys (and known misses) held by the verification cache.\n# TYPE keyward_cache_entries gauge\nkeyward_cache_entries {}\n\
             # HELP keyward_cache_hits_total Verifications answered from the cache.\n# TYPE keyward_cache_hits_total counter\nkeyward_cache_hits_total {hits}\n\
             # HELP keyward_cache_misses_total Verifications that looked in storage.\n# TYPE keyward_cache_misses_total counter\nkeyward_cache_misses_total {misses}\n\
             # HELP keyward_cache_hit_ratio Hits over lookups since start.\n# TYPE keyward_cache_hit_ratio gauge\nkeyward_cache_hit_ratio {ratio}\n",
            g.cache_entries
        );
        let _ = writeln!(
            out,
            "# HELP keyward_verify_storage_reads_total Storage reads made by verifications for credentials not cached, by credential.\n# TYPE keyward_verify_storage_reads_total counter"
        );
        for l in Lookup::ALL {
            let _ = writeln!(
                out,
                "keyward_verify_storage_reads_total{{credential=\"{}\"}} {}",
                l.as_str(),
                self.storage_reads[l as usize].load(Relaxed)
            );
        }
        let _ = write!(
            out,
            "# HELP keyward_known_credentials_loaded 1 once this node holds the set of existing secret keys, public keys and verify tokens, and the apps' token-signing keys (made-up ones are then answered from memory past a per-second lookup budget).\n# TYPE keyward_known_credentials_loaded gauge\nkeyward_known_credentials_loaded {}\n",
            u8::from(g.known_loaded)
        );
        let _ = write!(
            out,
            "# HELP keyward_cache_warmed_keys Recently used keys read into the cache at start, once that read is done.\n# TYPE keyward_cache_warmed_keys gauge\nkeyward_cache_warmed_keys {}\n",
            self.warmed.load(Relaxed)
        );
        let lag = (self.started.elapsed().as_millis() as f64 - self.heard_ms.load(Relaxed) as f64).max(0.0) / 1000.0;
        let _ = write!(
            out,
            "# HELP keyward_invalidation_lag_seconds Seconds since this node last knew it had every change event (how stale its cache can be).\n\
             # TYPE keyward_invalidation_lag_seconds gauge\nkeyward_invalidation_lag_seconds {lag}\n\
             # HELP keyward_change_event_seq The last change event applied to this node's cache.\n\
             # TYPE keyward_change_event_seq gauge\nkeyward_change_event_seq {}\n\
             # HELP keyward_change_listener_connects_total Times the change listener connected and caught up (PostgreSQL).\n\
             # TYPE keyward_change_listener_connects_total counter\nkeyward_change_listener_connects_total {}\n",
            self.event_seq.load(Relaxed),
            self.listener_connects.load(Relaxed)
        );
        if let Some(n) = g.redis_errors {
            let _ = write!(
                out,
                "# HELP keyward_redis_errors_total Limit, credit, replay and login checks answered without Redis (it did not answer in time).\n# TYPE keyward_redis_errors_total counter\nkeyward_redis_errors_total {n}\n"
            );
        }
        if let Some(r) = g.redis_limits {
            let _ = write!(
                out,
                "# HELP keyward_redis_limit_runs_total Redis script runs for keys' limits and credits: exact checks, fast limits' lease takes, and returns of unused leased tokens.\n\
                 # TYPE keyward_redis_limit_runs_total counter\n\
                 keyward_redis_limit_runs_total{{kind=\"exact\"}} {}\n\
                 keyward_redis_limit_runs_total{{kind=\"lease\"}} {}\n\
                 keyward_redis_limit_runs_total{{kind=\"return\"}} {}\n\
                 # HELP keyward_redis_exact_batches_total Redis script runs that carried exact checks (those of concurrent requests go together; rate limiting as a service's too).\n\
                 # TYPE keyward_redis_exact_batches_total counter\nkeyward_redis_exact_batches_total {}\n\
                 # HELP keyward_redis_lease_tokens_held Fast limits' tokens this node holds in leases, unused or waiting to be returned.\n\
                 # TYPE keyward_redis_lease_tokens_held gauge\nkeyward_redis_lease_tokens_held {}\n",
                r.exact_runs, r.lease_runs, r.return_runs, r.exact_batches, r.lease_tokens_held
            );
        }
        if let Some(p) = g.outbox_pending {
            let _ = write!(
                out,
                "# HELP keyward_webhook_outbox_pending Webhook deliveries not yet made.\n# TYPE keyward_webhook_outbox_pending gauge\nkeyward_webhook_outbox_pending {p}\n"
            );
        }
        let _ = write!(
            out,
            "# HELP keyward_webhook_deliveries_total Webhook attempts answered 2xx.\n# TYPE keyward_webhook_deliveries_total counter\nkeyward_webhook_deliveries_total {}\n\
             # HELP keyward_webhook_delivery_failures_total Webhook attempts that failed.\n# TYPE keyward_webhook_delivery_failures_total counter\nkeyward_webhook_delivery_failures_total {}\n",
            self.deliveries.load(Relaxed),
            self.delivery_failures.load(Relaxed)
        );
        self.flush_duration.render(
            &mut out,
            "keyward_usage_flush_duration_seconds",
            "Time to write one batch of counts and last-used marks.",
        );
        let _ = write!(
            out,
            "# HELP keyward_usage_flush_failures_total Flushes that failed (their counts are kept and retried).\n# TYPE keyward_usage_flush_failures_total counter\nkeyward_usage_flush_failures_total {}\n",
            self.flush_failures.load(Relaxed)
        );
        let _ = write!(
            out,
            "# HELP keyward_usage_rows_dropped_total Usage rows (counts, last-used marks, addresses) the database refused; left out so the rest of their flush is written.\n# TYPE keyward_usage_rows_dropped_total counter\nkeyward_usage_rows_dropped_total {}\n\
             # HELP keyward_usage_entries_dropped_total Verifications not counted because the usage buffer held its maximum of pending entries.\n# TYPE keyward_usage_entries_dropped_total counter\nkeyward_usage_entries_dropped_total {}\n\
             # HELP keyward_usage_tags_dropped_total Tag counts not kept because their key named too many distinct tags between two flushes.\n# TYPE keyward_usage_tags_dropped_total counter\nkeyward_usage_tags_dropped_total {}\n",
            g.usage_rows_dropped, g.usage_entries_dropped, g.usage_tags_dropped
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        Gauges {
            cache_entries: 0,
            known_loaded: false,
            usage_entries_dropped: 0,
            usage_rows_dropped: 0,
            usage_tags_dropped: 0,
            outbox_pending: None,
            redis_errors: None,
            redis_limits: None,
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.verified(VerifyCode::Valid, Instant::now());
        let earlier = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        m.verified(VerifyCode::Revoked, earlier);
        m.flush_duration.observe(Duration::from_secs(9));
        let text = m.render(&Gauges { cache_entries: 3, outbox_pending: Some(1), redis_errors: Some(2), ..gauges() });
        assert!(text.contains("keyward_verify_duration_seconds_bucket{le=\"0.001\"} 1\n"), "{text}");
        assert!(text.contains("keyward_verify_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("keyward_verify_duration_seconds_count 2\n"));
        assert!(text.contains("keyward_verifications_total{code=\"REVOKED\"} 1\n"));
        assert!(text.contains("keyward_usage_flush_duration_seconds_bucket{le=\"5\"} 0\n"));
        assert!(text.contains("keyward_usage_flush_duration_seconds_bucket{le=\"30\"} 1\n"));
        assert!(text.contains("keyward_cache_entries 3\n"));
    }

    /// Every metric the documented Grafana dashboard queries is one this server exposes.
    #[test]
    fn the_dashboard_queries_real_metrics() {
        let dashboard = include_str!("../../../docs/grafana-dashboard.json");
        let text = Metrics::default().render(&Gauges { outbox_pending: Some(0), ..gauges() });
        let mut n = 0;
        for (i, _) in dashboard.match_indices("keyward_") {
            let name: String = dashboard[i..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            assert!(text.contains(&format!("\n{name}")) || text.starts_with(&name), "{name} is not exposed");
            n += 1;
        }
        assert!(n >= 10);
    }
}
