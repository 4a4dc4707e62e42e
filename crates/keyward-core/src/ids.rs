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

/// An id like [`new_id`]'s whose random part is derived from `seed` (SHA-256): for a record
/// made inside a storage transaction, where no randomness is at hand (an identity created
/// on the fly for a key naming an unknown `external_id`; the seed holds the workspace and the
/// external id, unique together).
pub fn derived_id(prefix: &str, now: DateTime<Utc>, seed: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(seed);
    let mut r = [0u8; 16];
    r.copy_from_slice(&digest[..16]);
    let random = u128::from_be_bytes(r) & ((1u128 << 80) - 1);
    let ms = now.timestamp_millis().max(0) as u64;
    format!("{prefix}_{}", ulid::Ulid::from_parts(ms, random))
}

/// Characters of a ULID as [`new_id`] writes them (Crockford's base 32, upper case).
const ULID_CHARS: usize = 26;

/// Is `s` shaped like an id [`new_id`] makes under `prefix`: the prefix, `_`, then 26
/// Crockford base-32 characters? Byte checks only: it runs on the verify path.
pub fn is_id(prefix: &str, s: &str) -> bool {
    let Some(ulid) = s.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')) else { return false };
    ulid.len() == ULID_CHARS
        && ulid
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'H' | b'J' | b'K' | b'M' | b'N' | b'P'..=b'T' | b'V'..=b'Z'))
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

    #[test]
    fn ids_are_recognised_by_shape() {
        let id = new_id("ws", DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(), &OsRandom);
        assert!(is_id("ws", &id), "{id}");
        assert!(!is_id("key", &id), "another prefix");
        for bad in ["", "ws", "ws_", "ws_other", "\0", &format!("{id}0"), &id[..id.len() - 1], &id.to_lowercase()] {
            assert!(!is_id("ws", bad), "{bad:?}");
        }
        let with_i = format!("ws_{}", "I".repeat(26));
        assert!(!is_id("ws", &with_i), "not Crockford");
        assert!(!is_id("ws", &"a".repeat(3000)));
    }
}
