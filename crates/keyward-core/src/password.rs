//! Member passwords: argon2id (the crate's defaults: 19 MiB, 2 passes) in PHC strings.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::sync::OnceLock;

use crate::error::CoreError;
use crate::random::Random;

pub const MIN_CHARS: usize = 12;
pub const MAX_CHARS: usize = 256;

pub fn check_rules(password: &str) -> Result<(), CoreError> {
    let n = password.chars().count();
    if n < MIN_CHARS {
        return Err(CoreError::invalid("password", format!("password must be at least {MIN_CHARS} characters")));
    }
    if n > MAX_CHARS {
        return Err(CoreError::invalid("password", format!("password must be at most {MAX_CHARS} characters")));
    }
    if let Some(why) = crate::text::refusal(password) {
        return Err(CoreError::invalid("password", format!("password {why}")));
    }
    Ok(())
}

pub fn hash(password: &str, rng: &dyn Random) -> Result<String, CoreError> {
    let mut salt = [0u8; 16];
    rng.fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|_| CoreError::invalid("password", "cannot salt"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| CoreError::invalid("password", "password cannot be hashed"))
}

pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Spends the same work as [`verify`] when there is no account, so timing does not tell
/// which emails exist.
pub fn verify_nothing(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("keyward-dummy-password", &crate::OsRandom).unwrap_or_default());
    let _ = verify(password, phc);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse battery", &crate::OsRandom).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterY", &h));
        assert!(!verify("x", "not a phc string"));
    }

    #[test]
    fn rules() {
        assert_eq!(check_rules("short").unwrap_err().field(), "password");
        assert!(check_rules("twelve chars").is_ok());
    }
}
