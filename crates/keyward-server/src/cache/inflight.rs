//! One storage read per credential at a time. Without it, N concurrent requests for a key the
//! cache does not hold make N reads of the same row: a node restarted under load would hand
//! the database one read per request until its cache is warm.
//!
//! The first miss for a credential leads: it registers a channel under the credential, reads
//! (and fills the cache), then publishes the outcome — the entry, or the error every follower
//! answers with too. Later misses for it follow: they wait on the channel, no storage read.
//! The registration leaves the map when the leader is done, and also when its future is
//! dropped (its client went away) or unwinds: followers then see the channel closed without an
//! outcome and try again, one of them leading. The leader's read is bounded
//! (`verify::bounded`), so no follower waits longer than one read.
//!
//! Change events: a fill that raced an event to its stripe is not kept (`KeyCache::fill`), and
//! a miss that comes after such an event does not follow a read begun before it (the read may
//! have seen the old row): it compares the stripe's epoch with the leader's and, when they
//! differ, reads for itself. Only misses take the map's lock; a cache hit never gets here.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;

use crate::error::ApiResult;

/// A read's outcome, once published.
type Outcome<V> = Option<ApiResult<V>>;

struct Flight<V, E> {
    /// The epoch the leader read under.
    epoch: E,
    /// Tells this flight from a later one under the same credential.
    id: u64,
    outcome: watch::Receiver<Outcome<V>>,
}

/// The reads in flight, by credential.
pub struct Inflight<K, V, E, S = std::hash::RandomState> {
    flights: Mutex<HashMap<K, Flight<V, E>, S>>,
    next_id: AtomicU64,
}

impl<K, V, E, S: Default> Default for Inflight<K, V, E, S> {
    fn default() -> Self {
        Inflight { flights: Mutex::new(HashMap::default()), next_id: AtomicU64::new(0) }
    }
}

/// What a miss does.
enum Role<'a, K: Hash + Eq + Clone, V, E, S: BuildHasher> {
    Lead(Lead<'a, K, V, E, S>),
    Follow(watch::Receiver<Outcome<V>>),
    /// A read in flight began under another epoch: read alone.
    Alone,
}

/// The leader's registration: publishes the outcome, and leaves the map when dropped
/// (finished, cancelled or unwinding alike).
struct Lead<'a, K: Hash + Eq + Clone, V, E, S: BuildHasher> {
    inflight: &'a Inflight<K, V, E, S>,
    key: K,
    id: u64,
    publish: watch::Sender<Outcome<V>>,
}

impl<K: Hash + Eq + Clone, V, E, S: BuildHasher> Drop for Lead<'_, K, V, E, S> {
    fn drop(&mut self) {
        let mut flights = self.inflight.lock();
        if flights.get(&self.key).is_some_and(|f| f.id == self.id) {
            flights.remove(&self.key);
        }
    }
}

impl<K, V, E, S> Inflight<K, V, E, S> {
    fn lock(&self) -> MutexGuard<'_, HashMap<K, Flight<V, E>, S>> {
        // A panic while holding this lock leaves the map whole (no step of ours can panic
        // half-way), so a poisoned lock is still usable.
        self.flights.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<K, V, E, S> Inflight<K, V, E, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    E: Copy + PartialEq,
    S: BuildHasher,
{
    fn join(&self, key: &K, epoch: E) -> Role<'_, K, V, E, S> {
        let mut flights = self.lock();
        if let Some(f) = flights.get(key) {
            return if f.epoch == epoch { Role::Follow(f.outcome.clone()) } else { Role::Alone };
        }
        let (publish, outcome) = watch::channel(None);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        flights.insert(key.clone(), Flight { epoch, id, outcome });
        Role::Lead(Lead { inflight: self, key: key.clone(), id, publish })
    }

    /// The outcome of `read` for `key`, read once for all concurrent callers: `epoch` gives
    /// the key's epoch now, and `read` reads (and fills the cache) under the epoch it is
    /// given. A leader that goes away without an outcome is replaced by one of its followers.
    pub async fn get<F, Fut>(&self, key: &K, epoch: impl Fn() -> E, read: F) -> ApiResult<V>
    where
        F: Fn(E) -> Fut,
        Fut: Future<Output = ApiResult<V>>,
    {
        loop {
            let e = epoch();
            match self.join(key, e) {
                Role::Lead(lead) => {
                    let out = read(e).await;
                    lead.publish.send_replace(Some(out.clone()));
                    return out;
                }
                Role::Follow(mut rx) => {
                    if let Ok(published) = rx.wait_for(Option::is_some).await {
                        if let Some(out) = &*published {
                            return out.clone();
                        }
                    }
                    // The leader went away without an outcome: try again.
                }
                Role::Alone => return read(e).await,
            }
        }
    }

    /// Reads in flight now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    use super::*;
    use crate::error::ApiError;

    type Reads = Inflight<u32, u32, u64>;

    /// Spawns `n` gets of key 7 under epoch 1 whose read counts itself in `reads`, then waits
    /// for `open` before answering `answer`.
    fn spawn_gets(
        inflight: &Arc<Reads>,
        reads: &Arc<AtomicUsize>,
        open: &watch::Receiver<bool>,
        n: usize,
        answer: ApiResult<u32>,
    ) -> Vec<tokio::task::JoinHandle<ApiResult<u32>>> {
        (0..n)
            .map(|_| {
                let (inflight, reads, open, answer) =
                    (Arc::clone(inflight), Arc::clone(reads), open.clone(), answer.clone());
                tokio::spawn(async move {
                    inflight
                        .get(
                            &7,
                            || 1,
                            |_| {
                                let (reads, mut open, answer) = (Arc::clone(&reads), open.clone(), answer.clone());
                                async move {
                                    reads.fetch_add(1, Ordering::SeqCst);
                                    let _ = open.wait_for(|o| *o).await;
                                    answer
                                }
                            },
                        )
                        .await
                })
            })
            .collect()
    }

    /// Lets every spawned task run up to its first wait (one thread: they all run in turn).
    async fn settle() {
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_misses_make_one_read() {
        let (inflight, reads) = (Arc::new(Reads::default()), Arc::new(AtomicUsize::new(0)));
        let (open, gate) = watch::channel(false);
        let tasks = spawn_gets(&inflight, &reads, &gate, 50, Ok(42));
        settle().await;
        assert_eq!(reads.load(Ordering::SeqCst), 1, "one read while it is in flight");
        open.send_replace(true);
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 42);
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        assert_eq!(inflight.len(), 0, "a finished read leaves the map");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn every_follower_gets_the_leaders_error() {
        let (inflight, reads) = (Arc::new(Reads::default()), Arc::new(AtomicUsize::new(0)));
        let (open, gate) = watch::channel(false);
        let tasks = spawn_gets(&inflight, &reads, &gate, 50, Err(ApiError::Unavailable));
        settle().await;
        open.send_replace(true);
        for t in tasks {
            assert!(matches!(t.await.unwrap(), Err(ApiError::Unavailable)));
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1, "followers do not read again after an error");
        assert_eq!(inflight.len(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_cancelled_leader_hands_over_to_a_follower() {
        let (inflight, reads) = (Arc::new(Reads::default()), Arc::new(AtomicUsize::new(0)));
        let (open, gate) = watch::channel(false);
        let mut tasks = spawn_gets(&inflight, &reads, &gate, 20, Ok(5));
        settle().await;
        // The first task spawned ran first: it leads. Its client goes away.
        let leader = tasks.remove(0);
        leader.abort();
        settle().await;
        assert_eq!(reads.load(Ordering::SeqCst), 2, "one follower took over and read");
        assert_eq!(inflight.len(), 1);
        open.send_replace(true);
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 5, "no follower hangs or fails");
        }
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        assert_eq!(inflight.len(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_miss_after_a_change_does_not_follow_an_older_read() {
        let inflight = Arc::new(Reads::default());
        let (open, gate) = watch::channel(false);
        let first = {
            let (inflight, gate) = (Arc::clone(&inflight), gate.clone());
            tokio::spawn(async move {
                inflight
                    .get(
                        &7,
                        || 1,
                        |_| {
                            let mut gate = gate.clone();
                            async move {
                                let _ = gate.wait_for(|o| *o).await;
                                Ok(1)
                            }
                        },
                    )
                    .await
            })
        };
        settle().await;
        // The key's stripe changed (epoch 2): this miss reads for itself, and sees the change.
        let second = inflight.get(&7, || 2, |e| async move { Ok(u32::try_from(e).unwrap() * 10) }).await;
        assert_eq!(second.unwrap(), 20);
        open.send_replace(true);
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(inflight.len(), 0);
    }
}
