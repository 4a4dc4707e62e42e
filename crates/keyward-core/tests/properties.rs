//! Property tests of the parsers an attacker feeds directly: key tokens, permission queries,
//! scopes, IP allowlists and the signed string. Each runs a few hundred generated cases per
//! `cargo test` (bounded, so CI time is too); `PROPTEST_CASES=100000` runs more.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyward_core::keyformat::{self, TokenKind};
use keyward_core::permissions::{permission_covers, Query};
use keyward_core::signing::SignedParts;
use keyward_core::{ip, scopes, OsRandom};
use proptest::prelude::*;

proptest! {
    /// Any input: parsing never panics, and whatever parses has a valid shape.
    #[test]
    fn key_parser_takes_anything(s in ".{0,160}") {
        if let Some(p) = keyformat::parse(&s) {
            prop_assert!(keyformat::valid_prefix(p.prefix));
            prop_assert!(s.starts_with(p.start));
        }
    }

    /// Generated tokens parse as their kind; changing one character of the random part or
    /// the checksum is caught (CRC32 catches every single-character change).
    #[test]
    fn tokens_round_trip_and_typos_are_caught(prefix in "[a-z][a-z0-9]{0,15}", env in "(test|live)", pos in 0usize..49, c in "[A-Za-z0-9]") {
        let t = keyformat::generate_secret(&prefix, &env, &OsRandom);
        let p = keyformat::parse(&t).unwrap();
        prop_assert_eq!(p.kind, TokenKind::Secret);
        prop_assert_eq!(p.environment, Some(env.as_str()));
        for (tok, kind) in [
            (keyformat::generate_management(&prefix, &OsRandom), TokenKind::Management),
            (keyformat::generate_session(&prefix, &OsRandom), TokenKind::Session),
            (keyformat::generate_verify_token(&prefix, &OsRandom), TokenKind::Verify),
        ] {
            prop_assert_eq!(keyformat::parse(&tok).map(|p| p.kind), Some(kind));
        }
        let body_start = t.len() - 49;
        let mut bytes = t.clone().into_bytes();
        let new = c.as_bytes()[0];
        if bytes[body_start + pos] != new {
            bytes[body_start + pos] = new;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(keyformat::parse(&changed).is_none(), "a typo passed the checksum: {}", changed);
        }
    }

    /// Permission queries: never a panic; a parsed query is decided without one either.
    #[test]
    fn permission_queries_take_anything(q in ".{0,80}", granted in proptest::collection::vec("[a-z.*]{1,12}", 0..4)) {
        if let Ok(query) = Query::parse(&q) {
            let _ = query.allows(&granted);
        }
    }

    /// A granted name covers itself, and `*` covers every valid name.
    #[test]
    fn coverage_basics(name in "[a-z][a-z0-9_]{0,8}(\\\\.[a-z][a-z0-9_]{0,8}){0,3}") {
        prop_assert!(permission_covers(&name, &name));
        prop_assert!(permission_covers("*", &name));
        let scope = name.replace('.', ":");
        prop_assert!(scopes::scope_covers(&scope, &scope));
        let top = scope.split(':').next().unwrap();
        let (all, one, other) = (format!("{}:*", top), format!("{}:x", top), format!("{}x:*", top));
        prop_assert!(scopes::scope_covers(&all, &one));
        prop_assert!(!scopes::scope_covers(&other, &one), "a prefix that is not a segment");
    }

    /// IP allowlists: any text is refused or accepted without a panic, and normalising is
    /// idempotent.
    #[test]
    fn allowlists_take_anything(entries in proptest::collection::vec(".{0,45}", 0..5)) {
        for e in &entries {
            let _ = ip::parse_entry(e);
        }
        if let Ok(n) = ip::normalise(&entries) {
            prop_assert_eq!(ip::normalise(&n).unwrap(), n);
        }
    }

    /// The signed string is the fields joined by `|`: without a `|` in the query (Keyward
    /// refuses one), no two distinct (query, body) pairs give the same string.
    #[test]
    fn signed_strings_do_not_collide(q1 in "[a-z=&%0-9]{0,12}", b1 in ".{0,12}", q2 in "[a-z=&%0-9]{0,12}", b2 in ".{0,12}") {
        let s = |q: &str, b: &str| SignedParts { method: "post", path: "/v2/x", nonce: "1", params: q, body: b.as_bytes() }.string_to_sign();
        if (q1.as_str(), b1.as_str()) != (q2.as_str(), b2.as_str()) {
            prop_assert_ne!(s(&q1, &b1), s(&q2, &b2));
        }
        prop_assert!(s(&q1, &b1).starts_with(b"POST|/v2/x|1|"));
    }
}
