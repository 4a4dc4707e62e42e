//! A change event as nodes see it: a `key_events` row (its sequence number and the cache
//! key it names) and the announcement that carries both over `NOTIFY`.

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyEvent {
    pub seq: i64,
    #[sqlx(rename = "key_hash")]
    pub cache_key: String,
}

/// A change announcement names the event's sequence number and the cache key, so a node
/// knows exactly which events it has applied and catches up from there.
pub(crate) fn announcement(seq: i64, cache_key: &str) -> String {
    format!("{seq} {cache_key}")
}

/// The (sequence, cache key) of an announcement; an announcement without a number (from a
/// node of an earlier version) is only a cache key.
pub fn parse_announcement(payload: &str) -> (Option<i64>, &str) {
    match payload.split_once(' ') {
        Some((n, key)) => match n.parse() {
            Ok(seq) => (Some(seq), key),
            Err(_) => (None, payload),
        },
        None => (None, payload),
    }
}
