//! Redis topologies a test starts for itself: a three-master Redis Cluster ([`OwnCluster`])
//! and a primary with a replica watched by one Sentinel ([`OwnSentinel`]), on free ports, in
//! a temporary folder, without persistence; every server is killed on drop. Both need
//! `redis-server` and `redis-cli` (a visible "skipped" line without them); with them, a
//! topology that does not form fails the test.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::skipped;

/// `N` different ports `p` free on loopback with `p + 10000` free too (a cluster node's bus
/// port).
fn free_ports<const N: usize>() -> Option<[u16; N]> {
    let mut out = [0u16; N];
    for i in 0..N {
        out[i] = loop {
            let p = free_port_pair()?;
            if !out[..i].contains(&p) {
                break p;
            }
        };
    }
    Some(out)
}

fn free_port_pair() -> Option<u16> {
    for _ in 0..200 {
        // Below the usual ephemeral range, so no connection of another test takes it meanwhile.
        let p = 20_000 + u16::try_from(rand_below(12_000)).ok()?;
        let a = std::net::TcpListener::bind(("127.0.0.1", p));
        let b = std::net::TcpListener::bind(("127.0.0.1", p + 10_000));
        if a.is_ok() && b.is_ok() {
            return Some(p);
        }
    }
    None
}

fn rand_below(n: u32) -> u32 {
    let mut b = [0u8; 4];
    keyward_core::Random::fill(&keyward_core::OsRandom, &mut b);
    u32::from_le_bytes(b) % n
}

fn tools_present() -> bool {
    ["redis-server", "redis-cli"].iter().all(|t| {
        Command::new(t).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    })
}

/// `redis-cli -p PORT ARGS…`'s output (empty when it could not run).
pub fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn spawn(args: &[String]) -> Option<Child> {
    Command::new("redis-server").args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().ok()
}

/// Waits (10 s at most) until `ok` holds.
async fn until(mut ok: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Three masters, no replicas, every slot covered (`redis-cli --cluster create`).
pub struct OwnCluster {
    pub ports: [u16; 3],
    dir: tempfile::TempDir,
    children: [Option<Child>; 3],
}

impl OwnCluster {
    /// `None` (with a "skipped" line) without `redis-server`/`redis-cli`.
    pub async fn start(test: &str) -> Option<OwnCluster> {
        if !tools_present() {
            skipped(test, "redis-server or redis-cli is not installed");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = free_ports::<3>().expect("free ports");
        let mut c = OwnCluster { ports, dir, children: [None, None, None] };
        for i in 0..3 {
            assert!(c.restart(i).await, "redis-server --cluster-enabled yes starts");
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(created.is_ok_and(|s| s.success()) && c.ready().await, "redis-cli --cluster create makes a cluster");
        Some(c)
    }

    /// The masters' URLs, comma-separated (`--redis-url`).
    pub fn urls(&self) -> String {
        self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }

    /// Starts master `i` (again) on its port with its node config file (so it takes its slots
    /// back); true once it answers. Its data is gone (no persistence).
    pub async fn restart(&mut self, i: usize) -> bool {
        let port = self.ports[i];
        let conf = self.dir.path().join(format!("nodes-{port}.conf"));
        // Survivors keep serving their slots while a master is down (the default, `yes`,
        // refuses every slot once the master is marked failed): the test then sees both the
        // slots that answer and those that do not.
        let args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &conf.display().to_string(),
            "--cluster-require-full-coverage",
            "no",
            "--dir",
            &self.dir.path().display().to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let Some(child) = spawn(&args) else { return false };
        self.children[i] = Some(child);
        until(|| cli(port, &["PING"]) == "PONG").await
    }

    /// Kills master `i` (no goodbye to its clients).
    pub fn stop(&mut self, i: usize) {
        kill(&mut self.children[i]);
    }

    /// True once every running master says `cluster_state:ok`.
    pub async fn ready(&self) -> bool {
        let running: Vec<u16> =
            self.ports.iter().zip(&self.children).filter(|(_, c)| c.is_some()).map(|(p, _)| *p).collect();
        until(|| running.iter().all(|p| cli(*p, &["CLUSTER", "INFO"]).lines().any(|l| l.trim() == "cluster_state:ok")))
            .await
    }

    /// Which running master holds the Redis key `key`.
    pub fn holder_of(&self, key: &str) -> Option<usize> {
        (0..3).find(|i| self.children[*i].is_some() && cli(self.ports[*i], &["EXISTS", key]) == "1")
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            kill(c);
        }
    }
}

/// A primary, its replica and one Sentinel (quorum 1) watching them as service `kw`.
pub struct OwnSentinel {
    pub primary: u16,
    pub replica: u16,
    pub sentinel: u16,
    dir: tempfile::TempDir,
    children: Vec<Option<Child>>,
}

impl OwnSentinel {
    pub async fn start(test: &str) -> Option<OwnSentinel> {
        if !tools_present() {
            skipped(test, "redis-server or redis-cli is not installed");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let [primary, replica, sentinel] = free_ports::<3>().expect("free ports");
        let mut s = OwnSentinel { primary, replica, sentinel, dir, children: Vec::new() };
        // In the test's folder: the replica writes the primary's snapshot to disk on sync.
        let folder = s.dir.path().display().to_string();
        let server = |port: u16| -> Vec<String> {
            ["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir", &folder, "--save", "", "--appendonly", "no"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        };
        let mut replica_args = server(replica);
        replica_args.extend(["--replicaof".to_string(), "127.0.0.1".to_string(), primary.to_string()]);
        let conf = s.dir.path().join("sentinel.conf");
        let written = std::fs::write(
            &conf,
            format!(
                "port {sentinel}\nbind 127.0.0.1\ndir {}\nsentinel monitor kw 127.0.0.1 {primary} 1\n\
                 sentinel down-after-milliseconds kw 60000\nsentinel failover-timeout kw 5000\n",
                s.dir.path().display()
            ),
        );
        assert!(written.is_ok(), "sentinel.conf written");
        for args in [server(primary), replica_args, vec![conf.display().to_string(), "--sentinel".to_string()]] {
            s.children.push(Some(spawn(&args).expect("redis-server (or its --sentinel mode) starts")));
        }
        let linked = until(|| cli(replica, &["INFO", "replication"]).contains("master_link_status:up")).await;
        let watched =
            until(|| cli(sentinel, &["SENTINEL", "REPLICAS", "kw"]).lines().any(|l| l.trim() == replica.to_string()))
                .await;
        assert!(linked && watched, "the replica follows the primary and the sentinel sees it");
        Some(s)
    }

    pub fn url(&self) -> String {
        format!("redis+sentinel://127.0.0.1:{}/kw", self.sentinel)
    }

    /// Kills the primary, once the replica has applied everything written to it: the
    /// replica's offset has reached the primary's. (`WAIT` from a new `redis-cli` proved
    /// nothing: it waits for that client's own writes, and it had made none — CI runs twice
    /// killed the primary before the replica had the test's writes.)
    pub fn stop_primary(&mut self) {
        let offset = |port: u16, field: &str| {
            let info = cli(port, &["INFO", "replication"]);
            info.lines().find_map(|l| l.trim().strip_prefix(field)?.strip_prefix(':')?.parse::<u64>().ok())
        };
        let written = offset(self.primary, "master_repl_offset").expect("the primary's replication offset");
        let started = std::time::Instant::now();
        while offset(self.replica, "slave_repl_offset").is_none_or(|applied| applied < written) {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "the replica never caught up with the primary's writes"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(c) = self.children.first_mut() {
            kill(c);
        }
    }

    /// The port of the primary the sentinel names now.
    pub fn named_primary(&self) -> Option<u16> {
        let out = cli(self.sentinel, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "kw"]);
        out.lines().nth(1).and_then(|p| p.trim().parse().ok())
    }
}

impl Drop for OwnSentinel {
    fn drop(&mut self) {
        for c in &mut self.children {
            kill(c);
        }
    }
}
