//! Secret and management key formats.
//!
//! Secret key:      `<prefix>_<env>_sk_<43 random base62><6 base62 CRC32 of the random part>`
//! Management key:  `<prefix>_mk_<43 random base62><6 base62 CRC32>`
//! Session token:   `<prefix>_st_<43 random base62><6 base62 CRC32>` (from a password login)
//! Verify token:    `<prefix>_vt_<43 random base62><6 base62 CRC32>` (binds verification to a workspace)
//! Operator token:  `kw_op_<43 random base62><6 base62 CRC32>` (the service's operator, above workspaces)
//! Refresh token:   `<prefix>_rt_<43 random base62><6 base62 CRC32>` (an app's, used once)
//!
//! The checksum lets the server (and secret scanners) reject a mistyped or made-up key before
//! any storage access.

use crate::random::{base62_string, base62_u32, Random, BASE62};

pub const RANDOM_LEN: usize = 43;
pub const CHECKSUM_LEN: usize = 6;
const BODY_LEN: usize = RANDOM_LEN + CHECKSUM_LEN;
/// Longest token we bother parsing; anything longer is malformed without further work.
const MAX_TOKEN_LEN: usize = 128;
/// Characters of the random part kept in the display hint.
const HINT_RANDOM_CHARS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Secret,
    Management,
    Session,
    Verify,
    /// The service's operator: provisions, suspends and deletes workspaces, and nothing else.
    Operator,
}

/// A syntactically valid key (checksum verified). Holds no more than the caller passed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedToken<'a> {
    pub kind: TokenKind,
    pub prefix: &'a str,
    /// `Some("live")` for secret keys.
    pub environment: Option<&'a str>,
    /// The display hint: everything up to and including the first 4 random characters.
    pub start: &'a str,
}

fn checksum(random: &str) -> String {
    base62_u32(crc32fast::hash(random.as_bytes()), CHECKSUM_LEN)
}

/// Checks a checksum without allocating: this runs on every verification.
fn checksum_matches(random: &str, sum: &str) -> bool {
    let mut v = crc32fast::hash(random.as_bytes());
    let mut ok = true;
    for &c in sum.as_bytes().iter().rev() {
        ok &= c == BASE62[(v % 62) as usize];
        v /= 62;
    }
    ok && sum.len() == CHECKSUM_LEN
}

fn body(rng: &dyn Random) -> String {
    let random = base62_string(rng, RANDOM_LEN);
    let sum = checksum(&random);
    random + &sum
}

pub fn generate_secret(prefix: &str, environment: &str, rng: &dyn Random) -> String {
    format!("{prefix}_{environment}_sk_{}", body(rng))
}

pub fn generate_management(prefix: &str, rng: &dyn Random) -> String {
    format!("{prefix}_mk_{}", body(rng))
}

pub fn generate_session(prefix: &str, rng: &dyn Random) -> String {
    format!("{prefix}_st_{}", body(rng))
}

pub fn generate_verify_token(prefix: &str, rng: &dyn Random) -> String {
    format!("{prefix}_vt_{}", body(rng))
}

/// The prefix of operator tokens: they belong to no workspace, so to no workspace's prefix.
pub const OPERATOR_PREFIX: &str = "kw";

pub fn generate_operator_token(rng: &dyn Random) -> String {
    format!("{OPERATOR_PREFIX}_op_{}", body(rng))
}

/// A workspace key prefix: 1–16 lowercase letters or digits, starting with a letter.
pub fn valid_prefix(p: &str) -> bool {
    (1..=16).contains(&p.len())
        && p.as_bytes()[0].is_ascii_lowercase()
        && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn valid_env(e: &str) -> bool {
    (1..=16).contains(&e.len()) && e.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

pub fn generate_refresh_token(prefix: &str, rng: &dyn Random) -> String {
    format!("{prefix}_rt_{}", body(rng))
}

/// Is `token` shaped like a refresh token, its checksum right? (Not a [`TokenKind`]: it is
/// never a credential of the management or verify APIs, only of the token endpoint.)
pub fn is_refresh_token(token: &str) -> bool {
    if token.len() > MAX_TOKEN_LEN || token.len() <= BODY_LEN || !token.is_ascii() {
        return false;
    }
    let (head, body) = token.split_at(token.len() - BODY_LEN);
    let Some(prefix) = head.strip_suffix("_rt_") else { return false };
    let (random, sum) = body.split_at(RANDOM_LEN);
    valid_prefix(prefix) && body.bytes().all(|b| b.is_ascii_alphanumeric()) && checksum_matches(random, sum)
}

/// Parses and checksums a token. `None` means malformed.
pub fn parse(token: &str) -> Option<ParsedToken<'_>> {
    if token.len() > MAX_TOKEN_LEN || token.len() <= BODY_LEN || !token.is_ascii() {
        return None;
    }
    let (head, body) = token.split_at(token.len() - BODY_LEN);
    let head = head.strip_suffix('_')?;
    // Base62 is exactly the ASCII letters and digits.
    if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (random, sum) = body.split_at(RANDOM_LEN);
    if !checksum_matches(random, sum) {
        return None;
    }
    let start = &token[..head.len() + 1 + HINT_RANDOM_CHARS];
    let mut parts = head.rsplitn(3, '_');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("sk"), Some(env), Some(prefix)) if valid_env(env) && valid_prefix(prefix) => {
            Some(ParsedToken { kind: TokenKind::Secret, prefix, environment: Some(env), start })
        }
        (Some("mk"), Some(prefix), None) if valid_prefix(prefix) => {
            Some(ParsedToken { kind: TokenKind::Management, prefix, environment: None, start })
        }
        (Some("st"), Some(prefix), None) if valid_prefix(prefix) => {
            Some(ParsedToken { kind: TokenKind::Session, prefix, environment: None, start })
        }
        (Some("vt"), Some(prefix), None) if valid_prefix(prefix) => {
            Some(ParsedToken { kind: TokenKind::Verify, prefix, environment: None, start })
        }
        (Some("op"), Some(OPERATOR_PREFIX), None) => {
            Some(ParsedToken { kind: TokenKind::Operator, prefix: OPERATOR_PREFIX, environment: None, start })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OsRandom;

    #[test]
    fn generated_secret_parses_with_its_parts() {
        let k = generate_secret("caibo", "live", &OsRandom);
        assert!(k.starts_with("caibo_live_sk_"));
        assert_eq!(k.len(), "caibo_live_sk_".len() + 49);
        let p = parse(&k).expect("parses");
        assert_eq!(p.kind, TokenKind::Secret);
        assert_eq!(p.prefix, "caibo");
        assert_eq!(p.environment, Some("live"));
        assert_eq!(p.start, &k[.."caibo_live_sk_".len() + 4]);
    }

    #[test]
    fn refresh_tokens_are_told_by_shape_and_checksum() {
        let t = generate_refresh_token("kw", &OsRandom);
        assert!(t.starts_with("kw_rt_") && is_refresh_token(&t), "{t}");
        assert!(parse(&t).is_none(), "never a credential of the other APIs");
        let mut typo = t.clone().into_bytes();
        let last = typo.len() - 8;
        typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
        assert!(!is_refresh_token(&String::from_utf8(typo).unwrap()));
        assert!(!is_refresh_token(&generate_management("kw", &OsRandom)));
    }

    #[test]
    fn management_key_parses() {
        let k = generate_management("kw", &OsRandom);
        let p = parse(&k).expect("parses");
        assert_eq!(p.kind, TokenKind::Management);
        assert_eq!(p.environment, None);
        let s = generate_session("kw", &OsRandom);
        assert_eq!(parse(&s).expect("parses").kind, TokenKind::Session);
    }

    #[test]
    fn operator_token_parses_only_under_its_prefix() {
        let t = generate_operator_token(&OsRandom);
        assert!(t.starts_with("kw_op_"));
        let p = parse(&t).expect("parses");
        assert_eq!((p.kind, p.prefix, p.environment), (TokenKind::Operator, "kw", None));
        assert_eq!(p.start, &t[.."kw_op_".len() + 4]);
        // Another prefix's `_op_` is nothing: no workspace has operator tokens.
        assert!(parse(&t.replacen("kw_", "acme_", 1)).is_none());
        // A secret key of an environment named `op` stays a secret key.
        let sk = generate_secret("kw", "op", &OsRandom);
        assert_eq!(parse(&sk).expect("parses").kind, TokenKind::Secret);
    }

    #[test]
    fn any_single_character_change_is_caught() {
        let k = generate_secret("kw", "test", &OsRandom);
        let body_start = "kw_test_sk_".len();
        for i in body_start..k.len() {
            let mut bytes = k.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(bytes).unwrap();
            assert!(parse(&changed).is_none(), "change at {i} not caught");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "kw_test_sk_", "hello", "kw_test_xx_0000000000000000000000000000000000000000000000000", "ü"] {
            assert!(parse(bad).is_none(), "{bad}");
        }
        let k = generate_secret("kw", "test", &OsRandom);
        assert!(parse(&format!("{k}x")).is_none());
        assert!(parse(&k.replace("kw_", "KW_")).is_none());
    }

    #[test]
    fn prefixes() {
        assert!(valid_prefix("kw"));
        assert!(valid_prefix("caibo2"));
        assert!(!valid_prefix("2kw"));
        assert!(!valid_prefix("k_w"));
        assert!(!valid_prefix(""));
        assert!(!valid_prefix("abcdefghijklmnopq"));
    }
}
