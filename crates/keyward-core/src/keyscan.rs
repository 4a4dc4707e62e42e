//! Finding Keyward keys in bulk text (`keyward scan`): a SIMD substring search (memchr's
//! `memmem`) for the kind markers every key carries (`_sk_`, `_mk_`, `_vt_`, `_st_`, `_op_`), then,
//! around each hit only, the shape and checksum through [`keyformat::parse`] — the one
//! definition of a key. A look-alike with a wrong checksum is not found.

use memchr::memmem::Finder;

use crate::keyformat::{self, ParsedToken, CHECKSUM_LEN, RANDOM_LEN};

const BODY_LEN: usize = RANDOM_LEN + CHECKSUM_LEN;
/// The longest head before a marker: a 16-character prefix, `_`, a 16-character environment.
const MAX_HEAD: usize = 16 + 1 + 16;
const MARKERS: [&[u8]; 5] = [b"_sk_", b"_mk_", b"_vt_", b"_st_", b"_op_"];

/// A key found in a buffer: where it starts, the whole key (for the caller to report, never
/// to print) and its parsed parts (`start` is what may be shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'a> {
    pub offset: usize,
    pub token: &'a str,
    pub parsed: ParsedToken<'a>,
}

/// The searchers, built once and shared by every buffer scanned.
pub struct Scanner {
    finders: Vec<Finder<'static>>,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner { finders: MARKERS.iter().map(|m| Finder::new(*m)).collect() }
    }
}

fn head_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
}

impl Scanner {
    /// Every key in `hay`, in order of offset.
    pub fn find<'a>(&self, hay: &'a [u8]) -> Vec<Found<'a>> {
        let mut out = Vec::new();
        for f in &self.finders {
            for at in f.find_iter(hay) {
                if let Some(found) = candidate(hay, at) {
                    out.push(found);
                }
            }
        }
        out.sort_by_key(|f| f.offset);
        out
    }
}

/// The key around a marker at `at`, if its shape and checksum hold.
fn candidate(hay: &[u8], at: usize) -> Option<Found<'_>> {
    let body_start = at + 4;
    let end = body_start + BODY_LEN;
    let body = hay.get(body_start..end)?;
    if !body.iter().all(u8::is_ascii_alphanumeric) || hay.get(end).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    // The head runs back over `[a-z0-9_]`; a key may start at the run's true start or just
    // after any `_` within reach (`MY_kw_live_sk_…`); a run cut at the reach is not a
    // start. The longest that parses wins.
    let floor = at.saturating_sub(MAX_HEAD);
    let mut run = at;
    while run > floor && head_byte(hay[run - 1]) {
        run -= 1;
    }
    let true_start = run == 0 || !head_byte(hay[run - 1]);
    for start in run..at {
        let boundary = (start == run && true_start) || (start > 0 && hay[start - 1] == b'_');
        if !boundary || hay[start] == b'_' {
            continue;
        }
        let Ok(token) = std::str::from_utf8(&hay[start..end]) else { continue };
        if let Some(parsed) = keyformat::parse(token) {
            return Some(Found { offset: start, token, parsed });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyformat::{generate_management, generate_secret, generate_verify_token, TokenKind};
    use crate::OsRandom;

    #[test]
    fn finds_each_kind_in_text_and_skips_look_alikes() {
        let sk = generate_secret("acme", "live", &OsRandom);
        let mk = generate_management("kw", &OsRandom);
        let vt = generate_verify_token("kw", &OsRandom);
        let mut bad = sk.clone().into_bytes();
        let last = bad.len() - 1;
        bad[last] = if bad[last] == b'a' { b'b' } else { b'a' };
        let bad = String::from_utf8(bad).unwrap();
        let text = format!("API_KEY={sk}\nx = \"{mk}\"\n{bad}\nMY_{vt} tail\nkw_live_sk_short\n{sk}X\n");
        let found = Scanner::default().find(text.as_bytes());
        let tokens: Vec<&str> = found.iter().map(|f| f.token).collect();
        assert_eq!(tokens, [sk.as_str(), mk.as_str(), vt.as_str()]);
        assert_eq!(found[0].parsed.kind, TokenKind::Secret);
        assert_eq!(found[0].offset, "API_KEY=".len());
        assert_eq!(found[2].parsed.kind, TokenKind::Verify);
    }

    #[test]
    fn a_word_before_the_prefix_is_not_part_of_it() {
        let sk = generate_secret("kw", "test", &OsRandom);
        let text = format!("my_var_{sk}");
        let found = Scanner::default().find(text.as_bytes());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].token, sk);
        // After a character no prefix holds (URL-encoded, `%3D`), the key is still found.
        let encoded = format!("token%3D{sk}");
        let f = Scanner::default().find(encoded.as_bytes());
        assert_eq!(f.iter().map(|f| f.token).collect::<Vec<_>>(), [sk.as_str()]);
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let s = Scanner::default();
        for hay in [&b"_sk_"[..], b"\xff\xfe_sk_", b"a_b_sk_\x00", &[b'_'; 100], b"_mk__mk__mk_"] {
            assert!(s.find(hay).is_empty());
        }
    }
}
