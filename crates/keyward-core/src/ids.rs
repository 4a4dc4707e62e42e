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

/// The 16 bytes of a key id's ULID, when `id` is exactly what [`new_id`] makes under `key`
/// (it renders back to the same text): what a cached key keeps instead of the id's text.
pub fn compact_key_id(id: &str) -> Option<[u8; 16]> {
    let ulid = id.strip_prefix("key_").filter(|_| is_id("key", id))?;
    let bytes = ulid::Ulid::from_string(ulid).ok()?.to_bytes();
    (KeyIdText::new(bytes).as_str() == id).then_some(bytes)
}

/// A compact key id's text (`key_` and its ULID), written on the stack.
#[derive(Clone, Copy)]
pub struct KeyIdText([u8; 4 + ULID_CHARS]);

impl KeyIdText {
    pub fn new(bytes: [u8; 16]) -> Self {
        let mut text = [0u8; 4 + ULID_CHARS];
        text[..4].copy_from_slice(b"key_");
        let mut ulid = [0u8; ULID_CHARS];
        ulid::Ulid::from_bytes(bytes).array_to_str(&mut ulid);
        text[4..].copy_from_slice(&ulid);
        KeyIdText(text)
    }

    pub fn as_str(&self) -> &str {
        // Always ASCII: the prefix and Crockford's alphabet.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// A cached key's id: rendered from its compact form, or the text it was kept as.
#[derive(Clone, Copy)]
pub enum KeyId<'a> {
    Compact(KeyIdText),
    Other(&'a str),
}

impl std::ops::Deref for KeyId<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            KeyId::Compact(t) => t.as_str(),
            KeyId::Other(s) => s,
        }
    }
}

impl std::fmt::Debug for KeyId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl std::fmt::Display for KeyId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

impl PartialEq<&str> for KeyId<'_> {
    fn eq(&self, other: &&str) -> bool {
        **self == **other
    }
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

    #[test]
    fn key_ids_in_16_bytes() {
        let id = new_id("key", DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(), &OsRandom);
        let bytes = compact_key_id(&id).unwrap();
        assert_eq!(KeyIdText::new(bytes).as_str(), id);
        let max = format!("key_7{}", "Z".repeat(25));
        assert_eq!(compact_key_id(&max).map(|b| KeyIdText::new(b).as_str().to_string()), Some(max));
        // Only ids that render back as they are: no other prefix, case or overflow.
        let other_prefix = id.replacen("key_", "inst_", 1);
        let too_big = format!("key_8{}", "0".repeat(25));
        for other in [other_prefix.as_str(), &id.to_lowercase(), &too_big, "key_1", "", &format!("{id}0")] {
            assert_eq!(compact_key_id(other), None, "{other}");
        }
    }
}
