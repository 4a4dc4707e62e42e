//! The threads that serve connections. Each runs a single-threaded tokio runtime of its own,
//! and a connection lives on one of them from its first byte to its last: a request is parsed,
//! verified and answered on one thread, with no wake-up of another thread in between (the
//! multi-threaded runtime woke a sibling to steal work on most requests, and those wake-ups
//! were a fifth of the verify path's CPU; see docs/BENCHMARKS.md). New connections are handed
//! out in turn. The runtimes stop when the [`Workers`] are dropped, after the server's last
//! flush: storage connections a request opened are registered with its thread's runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// What each serving thread calls once a second, when the binary sets it
/// ([`set_housekeeping`]).
static HOUSEKEEPING: OnceLock<fn()> = OnceLock::new();
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);

/// Sets what each serving thread calls once a second, on its own thread, between its tasks:
/// the binary's allocator hands back what a thread freed only when that thread calls it
/// (`keyward-cli`'s `main.rs`). The first call wins.
pub fn set_housekeeping(work: fn()) {
    let _ = HOUSEKEEPING.set(work);
}

/// Work for a serving thread: called inside its runtime, it returns the task to run there.
pub type Job = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

struct Lanes {
    lanes: Vec<mpsc::UnboundedSender<Job>>,
    next: AtomicUsize,
}

/// Hands jobs to the serving threads, in turn.
#[derive(Clone)]
pub struct Dispatcher(Arc<Lanes>);

impl Dispatcher {
    /// Runs `job` on the next serving thread. A thread gone (its runtime failed to start
    /// or stopped) passes the job to the next one; `false` when none is left.
    pub fn run(&self, mut job: Job) -> bool {
        let lanes = &self.0.lanes;
        for _ in 0..lanes.len() {
            let i = self.0.next.fetch_add(1, Ordering::Relaxed) % lanes.len();
            match lanes[i].send(job) {
                Ok(()) => return true,
                Err(mpsc::error::SendError(j)) => job = j,
            }
        }
        false
    }
}

/// The serving threads; dropping this stops them (and the connections still on them).
pub struct Workers {
    dispatcher: Dispatcher,
    release: watch::Sender<bool>,
}

impl Workers {
    /// Starts `threads` serving threads (at least one).
    pub fn start(threads: usize) -> std::io::Result<Workers> {
        let (release, released) = watch::channel(false);
        let mut lanes = Vec::new();
        for i in 0..threads.max(1) {
            let (tx, rx) = mpsc::unbounded_channel();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let released = released.clone();
            std::thread::Builder::new()
                .name(format!("keyward-http-{i}"))
                .spawn(move || runtime.block_on(serve_jobs(rx, released)))?;
            lanes.push(tx);
        }
        Ok(Workers { dispatcher: Dispatcher(Arc::new(Lanes { lanes, next: AtomicUsize::new(0) })), release })
    }

    /// The number of serving threads a server starts by default: one per core.
    pub fn default_threads() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }

    pub fn dispatcher(&self) -> Dispatcher {
        self.dispatcher.clone()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        let _ = self.release.send(true);
    }
}

/// A serving thread's loop: spawns each job's task until released. Its runtime is dropped
/// when this returns, which ends the tasks still running.
async fn serve_jobs(mut jobs: mpsc::UnboundedReceiver<Job>, mut released: watch::Receiver<bool>) {
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING_EVERY);
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = housekeeping.tick() => if let Some(work) = HOUSEKEEPING.get() { work() },
            job = jobs.recv() => match job {
                Some(job) => { tokio::spawn(job()); }
                None => break,
            },
            _ = released.wait_for(|r| *r) => return,
        }
    }
    // Every sender is gone but the server is not released yet: keep the tasks running.
    let _ = released.wait_for(|r| *r).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_on_the_serving_threads_in_turn_until_dropped() {
        let workers = Workers::start(2).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..4 {
            let tx = tx.clone();
            assert!(workers.dispatcher().run(Box::new(move || {
                Box::pin(async move {
                    let name = std::thread::current().name().map(str::to_string);
                    tx.send(name).unwrap();
                })
            })));
        }
        let mut names: Vec<_> = (0..4).map(|_| rx.recv().unwrap().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["keyward-http-0", "keyward-http-0", "keyward-http-1", "keyward-http-1"]);
        let dispatcher = workers.dispatcher();
        drop(workers);
        // Released threads stop taking jobs.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!dispatcher.run(Box::new(|| Box::pin(async {}))));
    }

    static HOUSEKEPT_ON: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

    fn note_thread() {
        let name = std::thread::current().name().unwrap_or_default().to_string();
        HOUSEKEPT_ON.lock().unwrap().push(name);
    }

    #[test]
    fn each_serving_thread_does_its_housekeeping_while_idle() {
        set_housekeeping(note_thread);
        let workers = Workers::start(2).unwrap();
        // The first tick is at once, the next a second later: both threads, twice, idle.
        std::thread::sleep(Duration::from_millis(1_500));
        drop(workers);
        let seen = HOUSEKEPT_ON.lock().unwrap().clone();
        for thread in ["keyward-http-0", "keyward-http-1"] {
            assert!(seen.iter().filter(|t| *t == thread).count() >= 2, "{thread}: {seen:?}");
        }
    }
}
