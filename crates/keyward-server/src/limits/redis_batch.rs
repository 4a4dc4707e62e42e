//! Exact checks of concurrent requests in one script run. Redis spends most of a check on
//! the run itself (the call, its `KEYS`/`ARGV` tables, `TIME`, the reply) and the node on
//! redis-rs's request machinery (packing, the multiplexer's channel, the reply's parser), so
//! checks that arrive while a run is out wait for it and go together in the next: under load
//! a run carries tens of checks; alone, a check goes at once, as before. Each check stays
//! atomic and exact (the script runs them one after another, each against its own deadline).
//!
//! A task sends the runs, at most two out at once ([`IN_FLIGHT`]). On one server each serving
//! thread has its own such task and connection, on its runtime ([`PerThread`]); on a
//! Sentinel-named primary (and for checks made on another runtime) one task serves the node.
//! In a Redis Cluster a run's keys must share a slot, so there each check is a run of its
//! own, sent by the request that made it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use redis::{Arg, Cmd, RedisError, Value};
use tokio::sync::{mpsc, oneshot};

use crate::limits::redis_conn::{single, RedisConn};

/// Most checks in one run: bounds how long a run holds Redis (each check is a few
/// microseconds of its time) and how much one failed run takes with it.
const MOST: usize = 64;

/// One check's share of a run: its keys, then its arguments (see `redis.rs`'s `SCRIPT`).
pub(crate) struct Part {
    pub cmd: Cmd,
    keys: usize,
}

impl Part {
    /// A part whose first `keys` arguments will be its keys.
    pub fn new(keys: usize) -> Part {
        // Room for a key with an identity and two limits without growing.
        Part { cmd: Cmd::with_capacity(40, 384), keys }
    }

    fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.cmd.args_iter().take(self.keys).filter_map(simple)
    }

    fn args(&self) -> impl Iterator<Item = &[u8]> {
        self.cmd.args_iter().skip(self.keys).filter_map(simple)
    }
}

fn simple(a: Arg<&[u8]>) -> Option<&[u8]> {
    match a {
        Arg::Simple(b) => Some(b),
        _ => None,
    }
}

/// Why a check was not answered.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    Redis(Arc<RedisError>),
    /// Redis did not answer the run in time.
    TimedOut,
    /// An answer the script does not give.
    Malformed,
    /// The task that sends the runs is gone (the server is stopping).
    Gone,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Redis(e) => e.fmt(f),
            Failure::TimedOut => f.write_str("timed out"),
            Failure::Malformed => f.write_str("an answer the script does not give"),
            Failure::Gone => f.write_str("the server is stopping"),
        }
    }
}

impl From<RedisError> for Failure {
    fn from(e: RedisError) -> Failure {
        Failure::Redis(Arc::new(e))
    }
}

/// One check's answer: its status and the integers that follow it, in the run's answer.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    values: Arc<Vec<Value>>,
    /// Where the check's status is.
    at: usize,
    len: usize,
}

impl Answer {
    /// Redis's time (µs) when the run started.
    pub fn redis_time(&self) -> Option<i64> {
        int(self.values.first())
    }

    pub fn status(&self) -> Option<i64> {
        int(self.values.get(self.at))
    }

    /// The check's i-th integer, or 0 when it gave fewer.
    pub fn num(&self, i: usize) -> i64 {
        if i >= self.len {
            return 0;
        }
        int(self.values.get(self.at + 2 + i)).unwrap_or(0)
    }
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    }
}

/// The answers of a run of `checks` checks, in their order.
fn split(values: Vec<Value>, checks: usize) -> Result<Vec<Answer>, Failure> {
    let values = Arc::new(values);
    let mut answers = Vec::with_capacity(checks);
    let mut at = 1;
    for _ in 0..checks {
        int(values.get(at)).ok_or(Failure::Malformed)?;
        let len = int(values.get(at + 1)).and_then(|n| usize::try_from(n).ok()).ok_or(Failure::Malformed)?;
        if at + 2 + len > values.len() {
            return Err(Failure::Malformed);
        }
        answers.push(Answer { values: Arc::clone(&values), at, len });
        at += 2 + len;
    }
    Ok(answers)
}

/// Sends the script's runs: at once (a cluster), or through a task that gathers them.
pub(crate) struct Runs {
    how: How,
    /// Runs sent (`keyward_redis_exact_batches_total`).
    sent: Arc<AtomicU64>,
}

enum How {
    Each(RedisConn, redis::Script),
    Gathered {
        /// The node's gathering task, on the main runtime.
        shared: mpsc::UnboundedSender<Pending>,
        /// One server's: each serving thread's own lane (its connection and gathering task,
        /// on its runtime).
        per_thread: Option<PerThread>,
    },
}

struct Pending {
    part: Part,
    answer: oneshot::Sender<Result<Answer, Failure>>,
}

impl Runs {
    /// Chooses by the connection's topology; on one server (or a Sentinel's primary) starts
    /// the task that sends the gathered runs, which ends when this is dropped. On one server
    /// (`url`), each serving thread also gathers its own checks on a connection of its own
    /// once it has one ([`PerThread`]).
    pub fn new(conn: RedisConn, script: redis::Script, url: &str) -> Runs {
        let sent = Arc::new(AtomicU64::new(0));
        let per_thread = match &conn {
            RedisConn::Cluster(_) => return Runs { how: How::Each(conn, script), sent },
            RedisConn::Single(_) => Some(PerThread {
                id: NEXT_RUNS.fetch_add(1, Ordering::Relaxed),
                url: url.to_string(),
                script: script.clone(),
            }),
            RedisConn::Sentinel(_) => None,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(gather(rx, conn, script, Arc::clone(&sent)));
        Runs { how: How::Gathered { shared: tx, per_thread }, sent }
    }

    /// Runs sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// `part`'s answer (the caller bounds the wait).
    pub async fn run(&self, part: Part) -> Result<Answer, Failure> {
        match &self.how {
            How::Each(conn, script) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                let mut answers = run(&mut conn.clone(), script, std::slice::from_ref(&part)).await?;
                answers.pop().ok_or(Failure::Malformed)
            }
            How::Gathered { shared, per_thread } => {
                let (answer, answered) = oneshot::channel();
                let mut pending = Pending { part, answer };
                if let Some(lane) = per_thread.as_ref().and_then(|p| p.lane(&self.sent)) {
                    match lane.send(pending) {
                        Ok(()) => return answered.await.map_err(|_| Failure::Gone)?,
                        // The lane's task ended (its runtime stopped): the next check makes
                        // a new one.
                        Err(mpsc::error::SendError(p)) => pending = p,
                    }
                }
                shared.send(pending).map_err(|_| Failure::Gone)?;
                answered.await.map_err(|_| Failure::Gone)?
            }
        }
    }
}

/// Numbers [`Runs`], to tell their lanes apart on a thread (a process may run several
/// servers: the tests do).
static NEXT_RUNS: AtomicU64 = AtomicU64::new(0);
/// How long a lane that could not connect waits before trying again (meanwhile its thread's
/// checks go through the node's shared task).
const LANE_RETRY: Duration = Duration::from_secs(5);
/// Longest a lane's connection may take (redis-rs would otherwise retry a refused one for
/// about 6 s, past [`LANE_RETRY`], and a second attempt would start beside it).
const LANE_CONNECT: Duration = Duration::from_secs(2);

/// Each serving thread's own gathering, on one server. A serving thread runs a runtime of its
/// own (`http/workers.rs`); a check that went through the node's task woke that task's
/// thread, which woke the connection's, whose answer woke the serving thread again: on two
/// cores most of the exact path's time was the kernel's, switching between them. A lane's
/// connection and task live on the serving thread, so a check's way to Redis and back wakes
/// no other thread. A thread's first check makes its lane (connecting in the background) and
/// goes through the node's task meanwhile, as do checks on any other runtime.
struct PerThread {
    id: u64,
    url: String,
    script: redis::Script,
}

enum Lane {
    Connecting(Instant),
    Ready(mpsc::UnboundedSender<Pending>),
    Failed(Instant),
}

thread_local! {
    /// This thread's lanes, by [`PerThread::id`].
    static LANES: RefCell<Vec<(u64, Lane)>> = const { RefCell::new(Vec::new()) };
}

impl PerThread {
    /// This serving thread's lane, when it has one ready; else starts making it (unless it is
    /// being made, or failed a moment ago) and answers `None`.
    fn lane(&self, sent: &Arc<AtomicU64>) -> Option<mpsc::UnboundedSender<Pending>> {
        LANES.with_borrow_mut(|lanes| {
            let at = lanes.iter().position(|(id, _)| *id == self.id);
            if let Some(i) = at {
                match &lanes[i].1 {
                    Lane::Ready(tx) if !tx.is_closed() => return Some(tx.clone()),
                    // A runtime stopped while connecting (a test's) leaves this behind.
                    Lane::Connecting(since) if since.elapsed() < LANE_RETRY => return None,
                    Lane::Failed(until) if Instant::now() < *until => return None,
                    _ => {}
                }
            }
            // Only a serving thread's own (single-threaded) runtime keeps a lane on its
            // thread; asked only here, so a ready lane costs no handle.
            let handle = tokio::runtime::Handle::try_current().ok()?;
            if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread {
                return None;
            }
            let connecting = Lane::Connecting(Instant::now());
            match at {
                Some(i) => lanes[i].1 = connecting,
                None => lanes.push((self.id, connecting)),
            }
            let (id, url, script, sent) = (self.id, self.url.clone(), self.script.clone(), Arc::clone(sent));
            // Spawned on this thread's own runtime: the connection's tasks, and the lane's,
            // run here.
            handle.spawn(async move {
                let connecting = single(&url, super::redis::DEADLINE);
                let failed = |why: &dyn std::fmt::Display| {
                    tracing::debug!(error = %why, "a serving thread's Redis connection failed; trying again later");
                    Lane::Failed(Instant::now() + LANE_RETRY)
                };
                let lane = match tokio::time::timeout(LANE_CONNECT, connecting).await {
                    Ok(Ok(conn)) => {
                        let (tx, rx) = mpsc::unbounded_channel();
                        tokio::spawn(gather(rx, RedisConn::Single(conn), script, sent));
                        Lane::Ready(tx)
                    }
                    Ok(Err(e)) => failed(&e),
                    Err(_) => failed(&"timed out"),
                };
                LANES.with_borrow_mut(|lanes| {
                    if let Some((_, l)) = lanes.iter_mut().find(|(i, _)| *i == id) {
                        *l = lane;
                    }
                });
            });
            None
        })
    }
}

/// Runs one connection has out at once. With one out, a serving thread that had gathered
/// its next checks sat idle until Redis answered, and Redis until the next run came: on two
/// cores a third of the machine was idle under an exact-limit load (docs/BENCHMARKS.md,
/// "Issue 34, seventh stop"). With two, one run is gathered and sent while the other is at
/// Redis; the connection keeps them in order.
const IN_FLIGHT: usize = 2;

/// The task behind a gathering [`Runs`]: takes every check waiting (at most [`MOST`]) and
/// sends them as one run, while fewer than [`IN_FLIGHT`] runs are out; answers each check
/// when its run comes back. Meanwhile the next ones wait.
async fn gather(
    mut rx: mpsc::UnboundedReceiver<Pending>,
    conn: RedisConn,
    script: redis::Script,
    sent: Arc<AtomicU64>,
) {
    let mut out = FuturesUnordered::new();
    loop {
        let first = tokio::select! {
            // Answers first: they free a place for the checks that waited.
            biased;
            Some(()) = out.next(), if !out.is_empty() => continue,
            first = rx.recv(), if out.len() < IN_FLIGHT => first,
        };
        let Some(first) = first else { break };
        let (mut parts, mut answers) = (Vec::with_capacity(MOST), Vec::with_capacity(MOST));
        let mut next = Some(first);
        while let Some(p) = next.take() {
            // A check whose request stopped waiting (Redis was slow) is not sent: Redis
            // would refuse it as stale anyway.
            if !p.answer.is_closed() {
                parts.push(p.part);
                answers.push(p.answer);
            }
            if parts.len() < MOST {
                next = rx.try_recv().ok();
            }
        }
        if parts.is_empty() {
            continue;
        }
        sent.fetch_add(1, Ordering::Relaxed);
        out.push(send(conn.clone(), &script, parts, answers));
    }
    // The sender is gone (the server is stopping): the runs out are still answered.
    while out.next().await.is_some() {}
}

/// Sends one gathered run and answers each of its checks.
async fn send(
    mut conn: RedisConn,
    script: &redis::Script,
    parts: Vec<Part>,
    answers: Vec<oneshot::Sender<Result<Answer, Failure>>>,
) {
    let ran = tokio::time::timeout(super::redis::DEADLINE, run(&mut conn, script, &parts)).await;
    match ran.unwrap_or(Err(Failure::TimedOut)) {
        Ok(got) => {
            for (answer, got) in answers.into_iter().zip(got) {
                let _ = answer.send(Ok(got));
            }
        }
        Err(e) => {
            for answer in answers {
                let _ = answer.send(Err(e.clone()));
            }
        }
    }
}

/// One run of `script` for `parts`; when Redis does not have the script (a restart,
/// `SCRIPT FLUSH`, a new cluster node) it is loaded and run again, as redis-rs's
/// `Script::invoke_async` does.
async fn run(conn: &mut RedisConn, script: &redis::Script, parts: &[Part]) -> Result<Vec<Answer>, Failure> {
    let keys: usize = parts.iter().map(|p| p.keys).sum();
    // Each part's own room (see `Part::new`), and the count before each part's arguments.
    let mut cmd = Cmd::with_capacity(4 + parts.len() * 41, 64 + parts.len() * 390);
    cmd.arg("EVALSHA").arg(script.get_hash()).arg(keys);
    for p in parts {
        for k in p.keys() {
            cmd.arg(k);
        }
    }
    cmd.arg(parts.len());
    for p in parts {
        cmd.arg(p.cmd.args_iter().len() - p.keys);
        for a in p.args() {
            cmd.arg(a);
        }
    }
    let values: Vec<Value> = match cmd.query_async(conn).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            script.load_async(conn).await?;
            cmd.query_async(conn).await?
        }
        answer => answer?,
    };
    split(values, parts.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_answer_is_split_by_each_checks_count() {
        let v = |n: i64| Value::Int(n);
        // Redis's time; a done check with 4 integers; a stale one; a done one with 8.
        let mut values = vec![v(77), v(0), v(4), v(1), v(9), v(1000), v(0), v(1), v(0)];
        values.extend([v(0), v(8)]);
        values.extend((1..=8).map(v));
        let answers = split(values, 3).expect("well formed");
        assert_eq!(answers.len(), 3);
        assert_eq!(answers[0].redis_time(), Some(77));
        assert_eq!((answers[0].status(), answers[0].num(1), answers[0].num(4)), (Some(0), 9, 0));
        assert_eq!((answers[1].status(), answers[1].num(0)), (Some(1), 0));
        assert_eq!((answers[2].status(), answers[2].num(0), answers[2].num(7)), (Some(0), 1, 8));
    }

    #[test]
    fn an_answer_shorter_than_its_counts_is_refused() {
        let v = |n: i64| Value::Int(n);
        assert!(matches!(split(vec![v(1), v(0), v(4), v(1)], 1), Err(Failure::Malformed)));
        assert!(matches!(split(vec![v(1), v(0), v(0)], 2), Err(Failure::Malformed)));
        assert!(matches!(split(vec![v(1), Value::Nil, v(0)], 1), Err(Failure::Malformed)));
    }

    /// A script that sets each part's one key and answers each part done with nothing.
    const SET_EACH: &str = "local out = {0}
        for i = 1, #KEYS do redis.call('SET', KEYS[i], 1); out[#out + 1] = 0; out[#out + 1] = 0 end
        return out";

    fn on_db(url: &str, db: u8) -> String {
        format!("{}/{db}", url.trim_end_matches('/'))
    }

    fn setting(key: &str) -> Part {
        let mut p = Part::new(1);
        p.cmd.arg(key);
        p
    }

    /// Whether one of this thread's lanes comes to be as `is` says within 5 s.
    async fn a_lane_becomes(is: impl Fn(&Lane) -> bool) -> bool {
        for _ in 0..100 {
            if LANES.with_borrow(|l| l.iter().any(|(_, lane)| is(lane))) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    #[test]
    fn a_serving_threads_checks_go_through_its_own_connection() {
        let Ok(url) = std::env::var("KEYWARD_TEST_REDIS_URL") else {
            eprintln!("SKIPPED redis_batch::a_serving_threads_checks_go_through_its_own_connection: KEYWARD_TEST_REDIS_URL is not set");
            return;
        };
        // A serving thread's runtime. The node's connection is to DB 14, the lane's to DB 15
        // (a server gives both the same URL): the DB a key lands in tells the way it went.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let node = RedisConn::Single(single(&on_db(&url, 14), super::super::redis::DEADLINE).await.unwrap());
            let runs = Runs::new(node, redis::Script::new(SET_EACH), &on_db(&url, 15));
            let tag = format!("kw:test:lane:{}", std::process::id());
            let (first, later) = (format!("{tag}:first"), format!("{tag}:later"));
            // The thread's first check makes its lane and goes the node's way meanwhile.
            runs.run(setting(&first)).await.unwrap();
            let ready = |lane: &Lane| matches!(lane, Lane::Ready(tx) if !tx.is_closed());
            assert!(a_lane_becomes(ready).await, "the lane connected");
            runs.run(setting(&later)).await.unwrap();
            let deadline = super::super::redis::DEADLINE;
            let (mut db14, mut db15) =
                (single(&on_db(&url, 14), deadline).await.unwrap(), single(&on_db(&url, 15), deadline).await.unwrap());
            let both = || redis::pipe().cmd("EXISTS").arg(&first).cmd("EXISTS").arg(&later).to_owned();
            let on_node: (bool, bool) = both().query_async(&mut db14).await.unwrap();
            let on_lane: (bool, bool) = both().query_async(&mut db15).await.unwrap();
            for db in [&mut db14, &mut db15] {
                let _: () = redis::cmd("DEL").arg(&first).arg(&later).query_async(db).await.unwrap();
            }
            assert_eq!((on_node, on_lane), ((true, false), (false, true)));
            assert_eq!(runs.sent(), 2);
        });
    }

    #[test]
    fn a_thread_whose_connection_fails_goes_the_nodes_way() {
        let Ok(url) = std::env::var("KEYWARD_TEST_REDIS_URL") else {
            eprintln!("SKIPPED redis_batch::a_thread_whose_connection_fails_goes_the_nodes_way: KEYWARD_TEST_REDIS_URL is not set");
            return;
        };
        // The lane's server is gone (a port nothing listens on): every check is still
        // answered, through the node's connection (DB 14), and the lane waits to try again.
        let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let deadline = super::super::redis::DEADLINE;
            let node = RedisConn::Single(single(&on_db(&url, 14), deadline).await.unwrap());
            let runs = Runs::new(node, redis::Script::new(SET_EACH), &format!("redis://{gone}"));
            let key = format!("kw:test:lane-gone:{}", std::process::id());
            runs.run(setting(&key)).await.unwrap();
            assert!(a_lane_becomes(|lane| matches!(lane, Lane::Failed(_))).await, "the lane's connection failed");
            runs.run(setting(&key)).await.unwrap();
            let mut db14 = single(&on_db(&url, 14), deadline).await.unwrap();
            let there: bool = redis::cmd("EXISTS").arg(&key).query_async(&mut db14).await.unwrap();
            let _: () = redis::cmd("DEL").arg(&key).query_async(&mut db14).await.unwrap();
            assert!(there);
            assert_eq!(runs.sent(), 2, "both checks went the node's way");
        });
    }

    /// The first element of the RESP array (a command) at the start of `b`, and its length
    /// in bytes; `None` until the whole command is there.
    fn command(b: &[u8]) -> Option<(Vec<u8>, usize)> {
        let number = |at: usize| -> Option<(usize, usize)> {
            let end = b.get(at..)?.windows(2).position(|w| w == b"\r\n")? + at;
            Some((std::str::from_utf8(b.get(at + 1..end)?).ok()?.parse().ok()?, end + 2))
        };
        if b.first() != Some(&b'*') {
            return None;
        }
        let (n, mut at) = number(0)?;
        let mut first = None;
        for _ in 0..n {
            let (len, start) = number(at)?;
            first.get_or_insert_with(|| b.get(start..start + len).map(<[u8]>::to_vec));
            at = start + len + 2;
            if b.len() < at {
                return None;
            }
        }
        Some((first.flatten().unwrap_or_default(), at))
    }

    /// A stand-in for Redis that answers every command but `EVALSHA` with `+OK`, and each
    /// `EVALSHA` (a run: Redis's time, then one check done with no integers) only once a
    /// second one has come: a connection that sends a run only after the last one's answer
    /// waits for it in vain.
    async fn answering_in_pairs(listener: tokio::net::TcpListener) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut sock, _) = listener.accept().await.unwrap();
        let (mut buf, mut held) = (Vec::new(), 0);
        loop {
            while let Some((name, used)) = command(&buf) {
                buf.drain(..used);
                if name.eq_ignore_ascii_case(b"EVALSHA") {
                    held += 1;
                    if held == 2 {
                        sock.write_all(b"*3\r\n:1\r\n:0\r\n:0\r\n*3\r\n:1\r\n:0\r\n:0\r\n").await.unwrap();
                        held = 0;
                    }
                } else {
                    sock.write_all(b"+OK\r\n").await.unwrap();
                }
            }
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    #[tokio::test]
    async fn a_run_is_sent_while_another_is_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        tokio::spawn(answering_in_pairs(listener));
        let conn = RedisConn::Single(single(&url, Duration::from_secs(5)).await.unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        let sent = Arc::new(AtomicU64::new(0));
        tokio::spawn(gather(rx, conn, redis::Script::new(SET_EACH), Arc::clone(&sent)));
        let check = |key: &str| {
            let (answer, answered) = oneshot::channel();
            tx.send(Pending { part: setting(key), answer }).unwrap();
            answered
        };
        let first = check("kw:test:first");
        // The first run is out, its answer held, before the second check comes.
        while sent.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = check("kw:test:second");
        let (first, second) = (first.await.unwrap(), second.await.unwrap());
        assert!(first.is_ok() && second.is_ok(), "{first:?} / {second:?}");
        assert_eq!(sent.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_part_keeps_its_keys_apart_from_its_arguments() {
        let mut p = Part::new(2);
        p.cmd.arg("kw:rl:a").arg("kw:cr:a").arg(5).arg("x");
        assert_eq!(p.keys().collect::<Vec<_>>(), [&b"kw:rl:a"[..], b"kw:cr:a"]);
        assert_eq!(p.args().collect::<Vec<_>>(), [&b"5"[..], b"x"]);
    }
}
