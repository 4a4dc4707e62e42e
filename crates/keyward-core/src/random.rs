use rand::RngCore;

pub use keyward_proto::random::Random;

/// The operating system's CSPRNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        rand::rngs::OsRng.fill_bytes(buf);
    }
}

pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` characters drawn uniformly from the base62 alphabet (rejection sampling, no modulo bias).
pub fn base62_string(rng: &dyn Random, n: usize) -> String {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        rng.fill(&mut buf);
        for &b in buf.iter() {
            // 248 = 4 * 62: bytes at or above it would bias the draw.
            if b < 248 && out.len() < n {
                out.push(BASE62[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// Fixed-width base62 encoding of a `u32` (most significant digit first).
pub fn base62_u32(mut v: u32, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(v % 62) as usize];
        v /= 62;
    }
    String::from_utf8(digits).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_string_has_requested_length_and_alphabet() {
        let s = base62_string(&OsRandom, 43);
        assert_eq!(s.len(), 43);
        assert!(s.bytes().all(|b| BASE62.contains(&b)));
    }

    #[test]
    fn base62_u32_round_numbers() {
        assert_eq!(base62_u32(0, 6), "000000");
        assert_eq!(base62_u32(61, 6), "00000z");
        assert_eq!(base62_u32(62, 6), "000010");
        assert_eq!(base62_u32(u32::MAX, 6), "4gfFC3");
    }
}
