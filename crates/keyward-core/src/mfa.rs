//! TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps) and recovery codes.
//!
//! A code is accepted in its own step or one step either side (clock drift); the caller
//! records the step a code was used in and refuses any step not newer than the last, so a
//! code cannot be used twice.

use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

use crate::random::Random;

pub const STEP_SECONDS: u64 = 30;
pub const DIGITS: usize = 6;
pub const SECRET_BYTES: usize = 20;
pub const RECOVERY_CODES: usize = 10;

fn totp(secret: &[u8], issuer: &str, account: &str) -> Option<TOTP> {
    // The otpauth label cannot hold ':'.
    let clean = |s: &str| s.replace(':', "_");
    TOTP::new(Algorithm::SHA1, DIGITS, 1, STEP_SECONDS, secret.to_vec(), Some(clean(issuer)), clean(account)).ok()
}

pub fn new_secret(rng: &dyn Random) -> Vec<u8> {
    let mut s = vec![0u8; SECRET_BYTES];
    rng.fill(&mut s);
    s
}

/// `(base32 secret, otpauth:// URI)` for an authenticator app.
pub fn enrolment(secret: &[u8], issuer: &str, account: &str) -> Option<(String, String)> {
    let t = totp(secret, issuer, account)?;
    Some((t.get_secret_base32(), t.get_url()))
}

fn unix(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp()).unwrap_or(0)
}

/// The code of the step containing `now`.
pub fn code_at(secret: &[u8], now: DateTime<Utc>) -> Option<String> {
    Some(totp(secret, "keyward", "member")?.generate(unix(now)))
}

/// The time step `code` belongs to, if it is valid at `now` (one step of drift either way).
pub fn matching_step(secret: &[u8], code: &str, now: DateTime<Utc>) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret, "keyward", "member")?;
    let step = unix(now) / STEP_SECONDS;
    let mut found = None;
    // Every candidate is computed and compared in constant time, whichever matches.
    for s in [step.saturating_sub(1), step, step + 1] {
        let expected = t.generate(s * STEP_SECONDS);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(s);
        }
    }
    found.and_then(|s| i64::try_from(s).ok())
}

/// Ten single-use recovery codes like `k3f9q-2mz7x`.
pub fn recovery_codes(rng: &dyn Random) -> Vec<String> {
    // 32 symbols, so a byte maps without bias; no 0/o, 1/l.
    const ALPHABET: &[u8; 32] = b"23456789abcdefghijkmnpqrstuvwxyz";
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut buf = [0u8; 10];
            rng.fill(&mut buf);
            let chars: String = buf.iter().map(|b| ALPHABET[usize::from(*b) % 32] as char).collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect()
}

/// A recovery code as typed: case, spaces and dashes do not matter.
pub fn normalise_recovery(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

/// Is this input shaped like a recovery code (rather than a TOTP code)?
pub fn is_recovery_shape(code: &str) -> bool {
    normalise_recovery(code).len() == 10
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    // RFC 6238 appendix B, SHA-1, truncated to 6 digits.
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_vectors() {
        for (t, code) in
            [(59, "287082"), (1_111_111_109, "081804"), (1_234_567_890, "005924"), (2_000_000_000, "279037")]
        {
            assert_eq!(code_at(RFC_SECRET, at(t)).unwrap(), code, "t={t}");
            assert_eq!(matching_step(RFC_SECRET, code, at(t)), Some(t / 30));
        }
    }

    #[test]
    fn drift_of_one_step_only() {
        let c = code_at(RFC_SECRET, at(1_000_000)).unwrap();
        assert!(matching_step(RFC_SECRET, &c, at(1_000_000 + 30)).is_some());
        assert!(matching_step(RFC_SECRET, &c, at(1_000_000 - 30)).is_some());
        assert!(matching_step(RFC_SECRET, &c, at(1_000_000 + 90)).is_none());
        assert!(matching_step(RFC_SECRET, "12345", at(1_000_000)).is_none());
        assert!(matching_step(RFC_SECRET, "abcdef", at(1_000_000)).is_none());
    }

    #[test]
    fn enrolment_uri_carries_the_secret() {
        let (b32, uri) = enrolment(RFC_SECRET, "Keyward", "a@example.com").unwrap();
        assert!(uri.starts_with("otpauth://totp/"));
        assert!(uri.contains(&b32));
    }

    #[test]
    fn recovery_codes_are_distinct_and_normalise() {
        let codes = recovery_codes(&crate::OsRandom);
        assert_eq!(codes.len(), 10);
        assert!(is_recovery_shape(&codes[0].to_uppercase()));
        assert_eq!(normalise_recovery(" AbCde-fGh2k "), "abcdefgh2k");
        let mut d = codes.clone();
        d.dedup();
        assert_eq!(d.len(), 10);
    }
}
