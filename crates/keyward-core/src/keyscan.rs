//! Finding Keyward keys in bulk text (`keyward scan`): one pass of memchr's SIMD search for
//! the `_` every kind marker (`_sk_`, `_mk_`, `_vt_`, `_st_`, `_op_`) starts with, the marker checked
//! at each hit, then, around each marker only, the shape and checksum through
//! [`keyformat::parse`] — the one definition of a key. A look-alike with a wrong checksum is
//! not found. A stream is searched through a window of bounded size
//! ([`Scanner::find_streamed`]), so a file of any size costs the window's memory.

use crate::keyformat::{self, ParsedToken, CHECKSUM_LEN, RANDOM_LEN};

const BODY_LEN: usize = RANDOM_LEN + CHECKSUM_LEN;
/// The longest head before a marker: a 16-character prefix, `_`, a 16-character environment.
const MAX_HEAD: usize = 16 + 1 + 16;
const MARKER_LEN: usize = 4;
/// What a marker needs to be judged: the head and the byte before it (is the head's start a
/// true one?) …
const CONTEXT_BEFORE: usize = MAX_HEAD + 1;
/// … and the marker, the body and the byte after it (does the body end there?).
const CONTEXT_AFTER: usize = MARKER_LEN + BODY_LEN + 1;
/// The smallest window [`Scanner::find_streamed`] takes: it must hold more than one
/// marker's context, or it could not move on.
pub const MIN_WINDOW: usize = 2 * (CONTEXT_BEFORE + CONTEXT_AFTER);

/// A key found in a buffer: where it starts, the whole key (for the caller to report, never
/// to print) and its parsed parts (`start` is what may be shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'a> {
    pub offset: usize,
    pub token: &'a str,
    pub parsed: ParsedToken<'a>,
}

/// The search, shared by every buffer scanned.
#[derive(Debug, Default, Clone, Copy)]
pub struct Scanner;

fn head_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
}

impl Scanner {
    /// Every key in `hay`, in order of offset.
    pub fn find<'a>(&self, hay: &'a [u8]) -> Vec<Found<'a>> {
        let mut out = Vec::new();
        self.find_between(hay, 0, hay.len(), |f| out.push(f));
        out
    }

    /// The keys whose marker starts in `hay[from..to]`, in order, judged with all of `hay`
    /// around them.
    fn find_between<'a>(&self, hay: &'a [u8], from: usize, to: usize, mut each: impl FnMut(Found<'a>)) {
        let Some(part) = hay.get(from..to) else { return };
        for at in memchr::memchr_iter(b'_', part).map(|i| from + i) {
            if is_marker(hay, at) {
                if let Some(found) = candidate(hay, at) {
                    each(found);
                }
            }
        }
    }

    /// Every key in a stream, read with `read` (as `std::io::Read::read`: the bytes read,
    /// 0 at the end) into `buf`, a window of `window` bytes (at least [`MIN_WINDOW`]), kept
    /// by the caller so that many streams reuse one. Each key goes to `each` with its
    /// 1-based line, in order. A key across two reads is found once; a stream of any size
    /// costs the window.
    pub fn find_streamed<E>(
        &self,
        buf: &mut Vec<u8>,
        window: usize,
        mut read: impl FnMut(&mut [u8]) -> Result<usize, E>,
        mut each: impl FnMut(usize, Found<'_>),
    ) -> Result<(), E> {
        let window = window.max(MIN_WINDOW);
        if buf.len() != window {
            buf.resize(window, 0);
        }
        // `filled`: bytes held; markers before `from` were judged; newlines before `counted`
        // are in `line`.
        let (mut filled, mut from, mut counted, mut line) = (0usize, 0usize, 0usize, 1usize);
        loop {
            let mut end = false;
            while filled < window {
                match read(&mut buf[filled..])? {
                    0 => {
                        end = true;
                        break;
                    }
                    n => filled += n.min(window - filled),
                }
            }
            let hay = &buf[..filled];
            // A marker is judged once its context is all here (at the end, all of it is).
            let to = if end { filled } else { filled - CONTEXT_AFTER };
            self.find_between(hay, from, to, |f| {
                if f.offset > counted {
                    line += memchr::memchr_iter(b'\n', &hay[counted..f.offset]).count();
                    counted = f.offset;
                }
                each(line, f);
            });
            if end {
                return Ok(());
            }
            // Keep what the markers not judged yet need before them; the rest goes.
            let keep = to - CONTEXT_BEFORE;
            if counted < keep {
                line += memchr::memchr_iter(b'\n', &hay[counted..keep]).count();
                counted = keep;
            }
            buf.copy_within(keep..filled, 0);
            filled -= keep;
            counted -= keep;
            from = to - keep;
        }
    }
}

/// Is the `_` at `at` a kind marker's (`_sk_`, `_mk_`, `_vt_`, `_st_`, `_op_`)?
fn is_marker(hay: &[u8], at: usize) -> bool {
    match hay.get(at + 1..at + MARKER_LEN) {
        Some([a, b, b'_']) => {
            matches!((a, b), (b's', b'k') | (b'm', b'k') | (b'v', b't') | (b's', b't') | (b'o', b'p'))
        }
        _ => false,
    }
}

/// The key around a marker at `at`, if its shape and checksum hold.
fn candidate(hay: &[u8], at: usize) -> Option<Found<'_>> {
    let body_start = at + MARKER_LEN;
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
    use crate::keyformat::{generate_management, generate_secret, generate_session, generate_verify_token, TokenKind};
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
        let found = Scanner.find(text.as_bytes());
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
        let found = Scanner.find(text.as_bytes());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].token, sk);
        // After a character no prefix holds (URL-encoded, `%3D`), the key is still found.
        let encoded = format!("token%3D{sk}");
        let f = Scanner.find(encoded.as_bytes());
        assert_eq!(f.iter().map(|f| f.token).collect::<Vec<_>>(), [sk.as_str()]);
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let s = Scanner;
        for hay in [&b"_sk_"[..], b"\xff\xfe_sk_", b"a_b_sk_\x00", &[b'_'; 100], b"_mk__mk__mk_"] {
            assert!(s.find(hay).is_empty());
        }
    }

    /// Text of every kind of key (several prefixes and environments) among look-alikes,
    /// underscored words, bare markers and lines, with the keys it holds in order.
    fn interleaved(n: usize) -> (String, Vec<String>) {
        let mut text = String::new();
        let mut keys = Vec::new();
        let mut seed = 0x2545_f491_u64;
        let mut next = |m: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % m
        };
        let noise = ["user_id", "tmp_sk_value", "_mk_", "a_vt_b", "live_st_", "x", "\n", "__", "kw_live_sk_short", "é"];
        for i in 0..n {
            for _ in 0..next(6) {
                text.push_str(noise[next(noise.len() as u64) as usize]);
                text.push(if next(3) == 0 { '\n' } else { ' ' });
            }
            let key = match i % 4 {
                0 => generate_secret(
                    ["kw", "acme", "a1234567890bcdef"][i % 3],
                    ["live", "test", "eu1"][i % 3],
                    &OsRandom,
                ),
                1 => generate_management(["kw", "z"][i % 2], &OsRandom),
                2 => generate_verify_token("vtprefix", &OsRandom),
                _ => generate_session("kw", &OsRandom),
            };
            if next(5) == 0 {
                // A look-alike: one character of the checksum changed.
                let mut b = key.clone().into_bytes();
                let last = b.len() - 1;
                b[last] = if b[last] == b'a' { b'b' } else { b'a' };
                text.push_str(&String::from_utf8(b).unwrap());
            } else {
                text.push_str(["", "KEY=", "\"", "MY_", "token%3D"][i % 5]);
                text.push_str(&key);
                keys.push(key);
            }
            text.push_str(["\n", " ", "\"\n", ",", ""][i % 5]);
            if i % 5 == 4 {
                text.push(' ');
            }
        }
        (text, keys)
    }

    fn lines_of(text: &str, found: &[Found<'_>]) -> Vec<usize> {
        found.iter().map(|f| 1 + text.as_bytes()[..f.offset].iter().filter(|b| **b == b'\n').count()).collect()
    }

    #[test]
    fn finds_every_kind_interleaved_in_one_pass() {
        let (text, keys) = interleaved(400);
        let found = Scanner.find(text.as_bytes());
        let tokens: Vec<&str> = found.iter().map(|f| f.token).collect();
        assert_eq!(tokens, keys.iter().map(String::as_str).collect::<Vec<_>>());
        for kind in [TokenKind::Secret, TokenKind::Management, TokenKind::Verify, TokenKind::Session] {
            assert!(found.iter().any(|f| f.parsed.kind == kind), "{kind:?} not found");
        }
        assert!(found.iter().all(|f| text[f.offset..].starts_with(f.token)));
    }

    #[test]
    fn a_stream_finds_what_one_buffer_finds_whatever_its_window_and_reads() {
        let (text, keys) = interleaved(60);
        let whole = Scanner.find(text.as_bytes());
        let want: Vec<(usize, String)> =
            lines_of(&text, &whole).into_iter().zip(whole.iter().map(|f| f.token.to_string())).collect();
        assert_eq!(want.len(), keys.len());
        let mut buf = Vec::new();
        // Every window from the smallest up (so a key meets a window's edge at each of its
        // bytes), and reads of odd sizes, one byte among them.
        for window in (MIN_WINDOW..MIN_WINDOW + 200).chain([4096, 1 << 20]) {
            for read_size in [1, 7, 64, 1000] {
                let mut at = 0;
                let mut got = Vec::new();
                let read = |out: &mut [u8]| -> Result<usize, ()> {
                    let n = read_size.min(out.len()).min(text.len() - at);
                    out[..n].copy_from_slice(&text.as_bytes()[at..at + n]);
                    at += n;
                    Ok(n)
                };
                Scanner.find_streamed(&mut buf, window, read, |line, f| got.push((line, f.token.to_string()))).unwrap();
                assert_eq!(got, want, "window {window}, reads of {read_size}");
            }
        }
        // A read error ends the search with it.
        let r: Result<(), &str> = Scanner.find_streamed(&mut buf, 4096, |_| Err("gone"), |_, _| {});
        assert_eq!(r, Err("gone"));
    }
}
