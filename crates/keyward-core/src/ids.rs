use crate::random::Random;
use chrono::{DateTime, Utc};

/// Time-ordered identifiers (`key_01J…`): a ULID under a short type prefix, so ids sort by
/// creation time and serve directly as pagination cursors.
pub fn new_id(prefix: &str, now: DateTime<Utc>, rng: &dyn Random) -> String {
    let mut r = [0u8; 16];
    rng.fill(&mut r);
    let random = u128::from_be_bytes(r) & ((1u128 << 80) - 1);
    let ms = now.timestamp_millis().max(0) as u64;
    let ulid = ulid::Ulid::from_parts(ms, random);
    format!("{prefix}_{ulid}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OsRandom;

    #[test]
    fn ids_sort_by_time() {
        let a = new_id("key", DateTime::from_timestamp_millis(1_000).unwrap(), &OsRandom);
        let b = new_id("key", DateTime::from_timestamp_millis(2_000).unwrap(), &OsRandom);
        assert!(a < b);
        assert!(a.starts_with("key_"));
        assert_eq!(a.len(), 4 + 26);
    }
}
