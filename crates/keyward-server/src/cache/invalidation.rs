//! Keeps this node's verification cache in step with changes made by other nodes.
//! PostgreSQL: LISTEN/NOTIFY (push). SQLite: several processes may share one file, so the
//! `key_events` table is read every `poll_interval`.

use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::watch;

use keyward_store::{KeyEvent, Store, StoreError, Subscription};

use crate::state::SharedState;

pub async fn run(state: SharedState, stopped: watch::Receiver<bool>) {
    if state.store.pushes_changes() {
        listen(state, stopped).await
    } else {
        poll(state, stopped).await
    }
}

/// How long `key_events` rows are kept; a node cut off for longer cannot catch up from them.
pub const EVENT_RETENTION: chrono::Duration = chrono::Duration::minutes(10);
/// A quiet listener is asked a question after this long, and must answer within
/// `ANSWER_WITHIN`: a connection that died silently (no FIN, no RST) is found in seconds.
const HEARTBEAT: Duration = Duration::from_secs(1);
const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// How long connecting and catching up may take before the node tries again.
const CONNECT_WITHIN: Duration = Duration::from_secs(2);
const RETRY_AFTER: Duration = Duration::from_millis(250);
/// Sequence numbers are taken at insert and become visible at commit, so an event can appear
/// below one already applied; catching up re-reads this many before the last applied, and
/// applies only those of them not applied yet.
const SEQ_SLACK: i64 = 1_000;
/// Past this many events to replay, forgetting the whole cache is cheaper.
const CATCH_UP_LIMIT: i64 = 10_000;

/// The events this node has applied, by sequence number (never by wall clock).
struct Applied {
    last: i64,
    /// Those within `SEQ_SLACK` of `last`: a catch-up re-reads that window for late commits
    /// and skips these, so a reconnect drops only keys changed meanwhile (re-applying every
    /// event of the window emptied the cache after each database restart).
    recent: BTreeSet<i64>,
}

impl Applied {
    fn apply(&mut self, state: &SharedState, payload: &str) {
        let (seq, key) = keyward_store::parse_announcement(payload);
        crate::cache::changes::apply(state, key);
        if let Some(seq) = seq {
            self.record(seq);
            state.metrics.applied(self.last);
        }
    }

    /// Applies an event read from `key_events`, unless it was applied already.
    fn apply_event(&mut self, state: &SharedState, e: &KeyEvent) {
        if !self.recent.contains(&e.seq) {
            crate::cache::changes::apply(state, &e.cache_key);
            self.record(e.seq);
            state.metrics.applied(self.last);
        }
    }

    fn record(&mut self, seq: i64) {
        self.last = self.last.max(seq);
        if seq > self.last - SEQ_SLACK {
            self.recent.insert(seq);
        }
        // Only the window is kept: older events are never re-read.
        while self.recent.first().is_some_and(|s| *s <= self.last - SEQ_SLACK) {
            self.recent.pop_first();
        }
    }

    /// Where a node starts. Requests are served before this runs, so a key may have been
    /// cached before an event of the window committed: every event read here is applied (to
    /// a cache that is young, so little is dropped), including any committed between the two
    /// reads, rather than merely recorded.
    async fn at_start(state: &SharedState) -> Applied {
        let mut a = Applied { last: state.store.last_event_seq().await.unwrap_or(0), recent: BTreeSet::new() };
        if let Ok(events) = state.store.events_after((a.last - SEQ_SLACK).max(0)).await {
            for e in events {
                a.apply_event(state, &e);
            }
        }
        a
    }
}

async fn listen(state: SharedState, mut stopped: watch::Receiver<bool>) {
    let mut applied = Applied::at_start(&state).await;
    reload_standings(&state).await;
    warm_after_start(&state, &stopped);
    state.metrics.applied(applied.last);
    loop {
        tokio::select! {
            _ = listen_once(&state, &mut applied) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY_AFTER) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

/// One listening connection, from connect to its loss. Cached entries stay in use meanwhile,
/// so verification of known keys keeps working through a database outage.
async fn listen_once(state: &SharedState, applied: &mut Applied) {
    let mut sub = match tokio::time::timeout(CONNECT_WITHIN, state.store.subscribe()).await {
        Ok(Ok(Some(s))) => s,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot listen for key changes; retrying");
            return catch_up_through_pool(state, applied).await;
        }
        Err(_) => {
            tracing::warn!("listening for key changes timed out; retrying");
            return catch_up_through_pool(state, applied).await;
        }
    };
    // Listening now: changes from here on arrive as notifications; those made while deaf
    // are read from `key_events`, on this same fresh connection.
    match tokio::time::timeout(CONNECT_WITHIN, catch_up(state, &mut sub, applied)).await {
        Ok(Ok(())) => {
            state.metrics.applied(applied.last);
            state.metrics.heard();
            state.metrics.listening();
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot read missed key changes; retrying");
            return;
        }
        Err(_) => {
            tracing::warn!("reading missed key changes timed out; retrying");
            return;
        }
    }
    loop {
        match tokio::time::timeout(HEARTBEAT, sub.next()).await {
            Ok(Ok(Some(payload))) => {
                applied.apply(state, &payload);
                state.metrics.heard();
            }
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "lost the key-change listener; reconnecting");
                return;
            }
            // Quiet: is anyone there?
            Err(_) => match tokio::time::timeout(ANSWER_WITHIN, sub.ping()).await {
                Ok(Ok(())) => state.metrics.heard(),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "key-change listener failed its heartbeat; reconnecting");
                    return;
                }
                Err(_) => {
                    tracing::warn!("key-change listener did not answer its heartbeat; reconnecting");
                    return;
                }
            },
        }
    }
}

/// While the listener cannot connect, the pool may still reach the database (e.g. no
/// connection slot was left for the listener): read the changes from `key_events` meanwhile.
async fn catch_up_through_pool(state: &SharedState, applied: &mut Applied) {
    let mut store = &state.store;
    if let Ok(Err(e)) = tokio::time::timeout(CONNECT_WITHIN, catch_up(state, &mut store, applied)).await {
        tracing::debug!(error = %e, "cannot read key events yet");
    }
}

/// Where missed events are read from: the fresh listening connection, or the pool.
trait EventSource {
    /// The oldest event kept (0 when none).
    async fn first(&mut self) -> Result<i64, StoreError>;
    /// Up to 1,000 events after `seq`, oldest first.
    async fn after(&mut self, seq: i64) -> Result<Vec<KeyEvent>, StoreError>;
}

impl EventSource for Subscription {
    async fn first(&mut self) -> Result<i64, StoreError> {
        self.first_event_seq().await
    }
    async fn after(&mut self, seq: i64) -> Result<Vec<KeyEvent>, StoreError> {
        self.events_after(seq, 1_000).await
    }
}

impl EventSource for &Store {
    async fn first(&mut self) -> Result<i64, StoreError> {
        self.first_event_seq().await
    }
    async fn after(&mut self, seq: i64) -> Result<Vec<KeyEvent>, StoreError> {
        self.events_after(seq).await
    }
}

/// Applies the events after the last one applied (less a slack for late commits), or
/// forgets the whole cache when some may already be pruned or there are too many.
async fn catch_up(state: &SharedState, sub: &mut impl EventSource, applied: &mut Applied) -> Result<(), StoreError> {
    let from = (applied.last - SEQ_SLACK).max(0);
    let first = sub.first().await?;
    if first > applied.last + 1 && applied.last > 0 {
        // Events after `from` may have been pruned while this node was away.
        tracing::info!(from, first, "missed key changes are no longer all kept; clearing the cache");
        state.cache.clear();
        state.app_tokens.clear();
        crate::cache::backstop::refill_imported(state);
        applied.last = applied.last.max(first - 1);
    }
    let mut after = from;
    let mut read = 0;
    loop {
        let events = sub.after(after).await?;
        let n = events.len() as i64;
        for e in events {
            applied.apply_event(state, &e);
            after = e.seq;
        }
        read += n;
        if n < 1_000 {
            return Ok(());
        }
        if read >= CATCH_UP_LIMIT {
            state.cache.clear();
            state.app_tokens.clear();
            // The skipped events may have named imported hashes.
            crate::cache::backstop::refill_imported(state);
            // Skip the rest: the cache is empty, and new events arrive as notifications.
            let last = state.store.last_event_seq().await?;
            applied.last = applied.last.max(last);
            return Ok(());
        }
    }
}

/// Warms the cache (`warm.rs`) once the events before start are applied and the standings
/// read: an event of that window or a standing read after the warm read would drop or
/// change what it cached.
fn warm_after_start(state: &SharedState, stopped: &watch::Receiver<bool>) {
    tokio::spawn(crate::cache::warm::run(SharedState::clone(state), stopped.clone()));
}

async fn poll(state: SharedState, mut stopped: watch::Receiver<bool>) {
    let mut seen = state.store.last_event_seq().await.unwrap_or(0);
    reload_standings(&state).await;
    warm_after_start(&state, &stopped);
    let mut tick = tokio::time::interval(state.config.poll_interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        match state.store.events_after(seen).await {
            Ok(events) => {
                for e in events {
                    crate::cache::changes::apply(&state, &e.cache_key);
                    seen = seen.max(e.seq);
                }
                state.metrics.applied(seen);
                state.metrics.heard();
            }
            Err(e) => tracing::debug!(error = %e, "cannot read key events"),
        }
    }
}

/// The workspaces' standings read again once the node's place in the change stream is
/// fixed: a suspension committed between the load before serving and that place is in
/// storage by now, and every later one arrives as an event.
async fn reload_standings(state: &SharedState) {
    if let Err(e) = state.reload_standings().await {
        tracing::warn!(error = %e, "cannot read the workspaces' standings; the backstop compares again soon");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_window_of_applied_events_is_kept() {
        let mut a = Applied { last: 0, recent: BTreeSet::new() };
        for seq in [5, 3, 4] {
            a.record(seq);
        }
        assert_eq!((a.last, a.recent.iter().copied().collect::<Vec<_>>()), (5, vec![3, 4, 5]));
        a.record(SEQ_SLACK + 4);
        assert_eq!(a.recent.iter().copied().collect::<Vec<_>>(), vec![5, SEQ_SLACK + 4], "3 and 4 left the window");
        a.record(2);
        assert!(!a.recent.contains(&2), "an event below the window is never re-read");
    }
}
