//! A secret key's HMAC under the pepper, raw, and the cheap hasher that indexes by it.

/// A key's HMAC under the pepper, raw.
pub type KeyHash = [u8; 32];

/// Hashes a [`KeyHash`] by taking 8 of its bytes. Safe because the bytes are HMAC outputs
/// that nobody without the pepper can steer, and it spares SipHash on every verification.
#[derive(Default, Clone)]
pub struct PrefixHasher(u64);

impl std::hash::Hasher for PrefixHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8).take(1) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }

    fn write_usize(&mut self, _len: usize) {}

    fn finish(&self) -> u64 {
        self.0
    }
}

pub type Hasher = std::hash::BuildHasherDefault<PrefixHasher>;

/// The raw form of a hex hash as stored and sent in change events.
pub fn key_hash(hex: &str) -> Option<KeyHash> {
    keyward_core::pepper::hex_decode(hex)?.try_into().ok()
}
