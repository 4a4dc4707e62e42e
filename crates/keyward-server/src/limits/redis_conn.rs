//! The connection behind `redis.rs`, chosen by the form of `--redis-url`:
//!
//! - one `redis://` URL: one server, through redis-rs's `ConnectionManager` (as before), unless
//!   that server says it is a Redis Cluster node (`INFO cluster`), which is then used as the
//!   cluster's entry point (a managed cluster's one configuration endpoint);
//! - several comma-separated `redis://` URLs: a Redis Cluster, through redis-rs's
//!   `ClusterConnection` (one multiplexed connection per master; MOVED and ASK followed, the
//!   slot map refreshed after a failover or a resharding);
//! - `redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]/SERVICE[/DB]`: the primary
//!   that Redis Sentinel names for SERVICE (the credentials and DB are the primary's; the
//!   sentinels' port defaults to 26379), asked again after an error that may mean a failover.
//!
//! Each is a cheap handle implementing `ConnectionLike`, so `Shared` runs the same commands
//! through any of them. Only the keys' names depend on the topology ([`RedisConn::names`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use keyward_core::verify::Limits;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// Longest wait for a connection to a server (at start, and on each reconnection).
const CONNECT: Duration = Duration::from_secs(2);
/// The same for a cluster's node, shorter: a reconnection there can hold every request while
/// the slot map is refreshed.
const CLUSTER_CONNECT: Duration = Duration::from_millis(500);
/// Retries of one cluster request (a MOVED/ASK redirection, a `TRYAGAIN` during a
/// resharding, a reconnection): a few, quickly, all within the check's deadline.
const CLUSTER_RETRIES: u32 = 3;
/// Least time between two questions to the sentinels.
const SENTINEL_ASK_EVERY: Duration = Duration::from_secs(1);
const SENTINEL_PORT: u16 = 26379;

/// A connection to Redis, whatever its topology.
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(SentinelConn),
}

impl RedisConn {
    /// Connects as the form of `url` says (see the module's text); `response` bounds each
    /// request.
    pub async fn connect(url: &str, response: Duration) -> RedisResult<RedisConn> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            return SentinelConn::connect(rest, response).await.map(RedisConn::Sentinel);
        }
        let urls: Vec<&str> = url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
        if urls.len() > 1 {
            return cluster(&urls, response).await.map(RedisConn::Cluster);
        }
        let mut single = single(url, response).await?;
        // A server that may not say (`INFO` refused by an ACL) is taken as one server.
        let info: Option<String> = redis::cmd("INFO").arg("cluster").query_async(&mut single).await.ok();
        if info.is_some_and(|i| i.lines().any(|l| l.trim() == "cluster_enabled:1")) {
            return cluster(&urls, response).await.map(RedisConn::Cluster);
        }
        Ok(RedisConn::Single(single))
    }

    /// What the connection is, for the log.
    pub fn topology(&self) -> &'static str {
        match self {
            RedisConn::Single(_) => "single server",
            RedisConn::Cluster(_) => "cluster",
            RedisConn::Sentinel(_) => "sentinel-discovered primary",
        }
    }

    /// The names of the hashes of a holder's limit counts and credits (`id`: a key's or an
    /// identity's) checked with those of `tag`'s holders in one script run. On one server:
    /// `kw:rl:<id>` and `kw:cr:<id>`, as always. In a cluster a script's keys must share a
    /// slot, so they carry a hash tag, the identity's id when the key has an identity with
    /// limits or credits (so its keys and it share a slot), else the key's: `kw:rl:{<tag>}`
    /// for the tag's own holder, `kw:rl:{<tag>}:<id>` for a key in its identity's slot.
    pub fn names<'a>(&self, tag: &'a str, id: &'a str) -> (HashName<'a>, HashName<'a>) {
        names(matches!(self, RedisConn::Cluster(_)), tag, id)
    }

    /// The first of [`RedisConn::names`] only: the hash of a holder's limit counts (what
    /// `lease.rs` takes leases from and returns them to).
    pub fn limits_name(&self, tag: &str, id: &str) -> String {
        self.names(tag, id).0.to_string()
    }
}

/// A connection to one server (`url`, a single `redis://` URL), reconnecting by itself; its
/// tasks run on the runtime it is made on (`redis_batch.rs` makes one per serving thread).
pub async fn single(url: &str, response: Duration) -> RedisResult<ConnectionManager> {
    let client = redis::Client::open(url.trim())?;
    let config =
        ConnectionManagerConfig::new().set_connection_timeout(Some(CONNECT)).set_response_timeout(Some(response));
    ConnectionManager::new_with_config(client, config).await
}

/// The hash tag of a key's holders (the key and, when it has one with limits or credits,
/// its identity): the identity's id, else the key's. Exact checks and leases both name a
/// holder's hashes by it ([`RedisConn::names`]), so they count in one place.
pub fn holders_tag<'a>(key_id: &'a str, limits: &'a Limits) -> &'a str {
    limits.identity.as_deref().map_or(key_id, |i| &*i.id)
}

fn names<'a>(cluster: bool, tag: &'a str, id: &'a str) -> (HashName<'a>, HashName<'a>) {
    let name = |prefix| match cluster {
        true if tag == id => HashName([prefix, "{", tag, "}", ""]),
        true => HashName([prefix, "{", tag, "}:", id]),
        false => HashName([prefix, id, "", "", ""]),
    };
    (name("kw:rl:"), name("kw:cr:"))
}

/// A hash's name in the pieces it is made of, written straight into a command (a check
/// makes no string of it).
#[derive(Debug, Clone, Copy)]
pub struct HashName<'a>([&'a str; 5]);

impl redis::ToRedisArgs for HashName<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + redis::RedisWrite,
    {
        use std::io::Write;
        let mut w = out.writer_for_next_arg();
        for piece in self.0 {
            // Writing into the command's own buffer cannot fail.
            let _ = w.write_all(piece.as_bytes());
        }
    }
}

impl std::fmt::Display for HashName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|piece| f.write_str(piece))
    }
}

async fn cluster(urls: &[&str], response: Duration) -> RedisResult<ClusterConnection> {
    redis::cluster::ClusterClientBuilder::new(urls.iter().copied())
        .connection_timeout(CLUSTER_CONNECT)
        .response_timeout(response)
        .retries(CLUSTER_RETRIES)
        .min_retry_wait(5)
        .max_retry_wait(60)
        .build()?
        .get_async_connection()
        .await
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
            RedisConn::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
            RedisConn::Sentinel(c) => c.get_db(),
        }
    }
}

/// The primary Sentinel names, through a `ConnectionManager` to it (which reconnects to the
/// same address by itself); after an error that may mean a failover the sentinels are asked
/// again (in the background, at most every [`SENTINEL_ASK_EVERY`]) and a new primary
/// replaces the old one.
#[derive(Clone)]
pub struct SentinelConn(Arc<SentinelState>);

struct SentinelState {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    primary: RwLock<(String, ConnectionManager)>,
    asking: AtomicBool,
    asked: Mutex<Option<Instant>>,
    config: ConnectionManagerConfig,
    /// The runtime that asks the sentinels (the one that connected, which lives as long as
    /// the server), whichever serving thread saw the error.
    runtime: tokio::runtime::Handle,
}

impl SentinelConn {
    async fn connect(rest: &str, response: Duration) -> RedisResult<SentinelConn> {
        let (sentinels, service, primary) = sentinel_url(rest)?;
        let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(primary);
        let mut client = SentinelClient::build(sentinels, service, Some(node), SentinelServerType::Master)?;
        let config =
            ConnectionManagerConfig::new().set_connection_timeout(Some(CONNECT)).set_response_timeout(Some(response));
        let (addr, conn) = primary_of(&mut client, config.clone()).await?;
        Ok(SentinelConn(Arc::new(SentinelState {
            sentinels: tokio::sync::Mutex::new(client),
            primary: RwLock::new((addr, conn)),
            asking: AtomicBool::new(false),
            asked: Mutex::new(None),
            config,
            runtime: tokio::runtime::Handle::current(),
        })))
    }

    fn current(&self) -> ConnectionManager {
        match self.0.primary.read() {
            Ok(p) => p.1.clone(),
            Err(poisoned) => poisoned.into_inner().1.clone(),
        }
    }

    /// After `e`: asks the sentinels again when it may mean the primary moved (its address
    /// refuses or drops connections, or it answers as a replica now).
    fn after(&self, e: &RedisError) {
        let moved = e.is_io_error()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || e.is_timeout()
            || e.kind() == ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
        if !moved {
            return;
        }
        if let Ok(mut asked) = self.0.asked.lock() {
            if asked.is_some_and(|t| t.elapsed() < SENTINEL_ASK_EVERY) {
                return;
            }
            *asked = Some(Instant::now());
        }
        if self.0.asking.swap(true, Ordering::AcqRel) {
            return;
        }
        let state = self.0.clone();
        self.0.runtime.spawn(async move {
            let found = {
                let mut client = state.sentinels.lock().await;
                tokio::time::timeout(CONNECT * 2, primary_of(&mut client, state.config.clone())).await
            };
            match found {
                Ok(Ok((addr, conn))) => {
                    if let Ok(mut p) = state.primary.write() {
                        if p.0 != addr {
                            tracing::warn!(primary = %addr, "Redis Sentinel names a new primary; using it");
                            *p = (addr, conn);
                        }
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "Redis Sentinel: no primary found"),
                Err(_) => tracing::warn!("Redis Sentinel: no answer from the sentinels"),
            }
            state.asking.store(false, Ordering::Release);
        });
    }
}

/// What follows `redis+sentinel://`: the sentinels' URLs, the service's name, and the
/// primary's credentials and DB.
fn sentinel_url(rest: &str) -> RedisResult<(Vec<String>, String, redis::RedisConnectionInfo)> {
    let bad = |why: &str| RedisError::from((ErrorKind::InvalidClientConfig, "redis+sentinel://", why.to_string()));
    let (authority, path) = rest.split_once('/').ok_or_else(|| bad("no /SERVICE after the sentinels"))?;
    let (creds, hosts) = match authority.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, authority),
    };
    let (service, db) = match path.split_once('/') {
        Some((s, d)) => (s, Some(d)),
        None => (path, None),
    };
    if service.is_empty() {
        return Err(bad("the service name is missing"));
    }
    // The primary's credentials and DB, decoded by redis-rs's own URL parser.
    let primary =
        format!("redis://{}127.0.0.1/{}", creds.map(|c| format!("{c}@")).unwrap_or_default(), db.unwrap_or("0"))
            .into_connection_info()?;
    let mut sentinels = Vec::new();
    for h in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        let with_port = if h.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
            h.to_string()
        } else {
            format!("{h}:{SENTINEL_PORT}")
        };
        sentinels.push(format!("redis://{with_port}"));
    }
    if sentinels.is_empty() {
        return Err(bad("no sentinel address"));
    }
    Ok((sentinels, service.to_string(), primary.redis_settings().clone()))
}

/// The primary the sentinels name now, its address and a connection to it.
async fn primary_of(
    client: &mut SentinelClient,
    config: ConnectionManagerConfig,
) -> RedisResult<(String, ConnectionManager)> {
    let primary = client.async_get_client().await?;
    let addr = primary.get_connection_info().addr().to_string();
    Ok((addr, ConnectionManager::new_with_config(primary, config).await?))
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let mut conn = self.current();
        Box::pin(async move {
            let r = conn.req_packed_command(cmd).await;
            if let Err(e) = &r {
                self.after(e);
            }
            r
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let mut conn = self.current();
        Box::pin(async move {
            let r = conn.req_packed_commands(pipeline, offset, count).await;
            if let Err(e) = &r {
                self.after(e);
            }
            r
        })
    }

    fn get_db(&self) -> i64 {
        self.current().get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_tags_a_key_and_its_identity_alike() {
        let names = |cluster, tag, id| {
            let (rl, cr) = names(cluster, tag, id);
            (rl.to_string(), cr.to_string())
        };
        assert_eq!(names(false, "id_1", "key_1"), ("kw:rl:key_1".into(), "kw:cr:key_1".into()), "as before");
        assert_eq!(names(true, "key_1", "key_1"), ("kw:rl:{key_1}".into(), "kw:cr:{key_1}".into()));
        assert_eq!(names(true, "id_1", "id_1"), ("kw:rl:{id_1}".into(), "kw:cr:{id_1}".into()));
        assert_eq!(names(true, "id_1", "key_1"), ("kw:rl:{id_1}:key_1".into(), "kw:cr:{id_1}:key_1".into()));
    }

    #[test]
    fn a_keys_holders_are_tagged_with_its_identity_when_it_shares_limits() {
        let own = Limits::new(Vec::new(), None);
        assert_eq!(holders_tag("key_1", &own), "key_1");
        let shared = own.clone().with_identity("id_1", Limits::new(Vec::new(), None));
        assert_eq!(holders_tag("key_1", &shared), "id_1");
        // The key's and the identity's hashes, exact or leased, then share the identity's slot.
        let tag = holders_tag("key_1", &shared);
        assert_eq!(names(true, tag, "key_1").0.to_string(), "kw:rl:{id_1}:key_1");
        assert_eq!(names(true, tag, "id_1").0.to_string(), "kw:rl:{id_1}");
    }

    #[test]
    fn a_name_is_written_into_a_command_as_it_reads() {
        let (rl, cr) = names(true, "id_1", "key_1");
        let packed = redis::cmd("EXISTS").arg(rl).arg(cr).get_packed_command();
        assert_eq!(packed, b"*3\r\n$6\r\nEXISTS\r\n$18\r\nkw:rl:{id_1}:key_1\r\n$18\r\nkw:cr:{id_1}:key_1\r\n");
    }

    #[test]
    fn sentinel_urls() {
        let (sentinels, service, primary) = sentinel_url(":s%40cret@10.0.0.1,10.0.0.2:5000/main/3").unwrap();
        assert_eq!(sentinels, ["redis://10.0.0.1:26379", "redis://10.0.0.2:5000"]);
        assert_eq!(service, "main");
        assert_eq!((primary.password(), primary.db()), (Some("s@cret"), 3));
        let (_, _, primary) = sentinel_url("h/kw").unwrap();
        assert_eq!((primary.password(), primary.db()), (None, 0));
        for bad in ["h", "h/", "/kw"] {
            assert!(sentinel_url(bad).is_err(), "{bad}");
        }
    }
}
