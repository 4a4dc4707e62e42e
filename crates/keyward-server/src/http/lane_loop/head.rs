//! A request's head as the lane's own loop reads it: a request it answers itself, or one it
//! leaves to hyper. It takes only the plainest form — HTTP/1.1, a route the lane names, its
//! body framed by one Content-Length within the lane's limit, no `Expect`, no transfer coding,
//! no upgrade — so on everything it takes, hyper could not have decided otherwise.

use std::mem::MaybeUninit;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use crate::http::connections::{Lane, Reads};

/// Header lines one head may have before it goes to hyper (which takes up to 100).
const MAX_HEADERS: usize = 32;

/// What the bytes at the front of the buffer are.
// Returned once per request and taken apart at once: a box would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed {
    /// A head, not yet whole.
    Partial,
    /// A request for the lane.
    Taken(Taken),
    /// Anything else: hyper serves the connection from here, these bytes included.
    Other,
}

pub(crate) struct Taken {
    /// The method and target, read only for a lane that reads every header.
    pub request: Option<(Method, Uri)>,
    /// Where the head ends and the body begins.
    pub head_len: usize,
    pub body_len: usize,
    /// The caller asked to close after this answer (`Connection: close`).
    pub close: bool,
    /// The headers the lane reads ([`Lane::reads`]), the others left out.
    pub headers: HeaderMap,
}

/// Reads the head at the front of `bytes`.
pub(crate) fn read<L: Lane>(bytes: &[u8], lane: &L) -> Parsed {
    // Left uninitialised: the parse writes the slots it fills, and setting all of them
    // first cost more than the parse itself on a short head.
    let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(bytes, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        // Malformed, or more lines than `MAX_HEADERS`: hyper answers, as it would have.
        Err(_) => return Parsed::Other,
    };
    let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else { return Parsed::Other };
    if !lane.takes_whole(method, path) {
        return Parsed::Other;
    }
    let all = matches!(lane.reads(), Reads::All);
    let request = match all {
        // Parsed as hyper parses them; what does not parse is hyper's to refuse.
        true => match (Method::from_bytes(method.as_bytes()), Uri::try_from(path)) {
            (Ok(m), Ok(u)) => Some((m, u)),
            _ => return Parsed::Other,
        },
        false => None,
    };
    let mut taken = Taken { request, head_len, body_len: 0, close: false, headers: HeaderMap::new() };
    let mut length = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            match (length, digits(h.value)) {
                (None, Some(n)) => length = Some(n),
                // Said twice, or not plain digits: hyper's rules decide.
                _ => return Parsed::Other,
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    taken.close = true;
                } else if !token.is_empty() && !token.eq_ignore_ascii_case(b"keep-alive") {
                    return Parsed::Other;
                }
            }
        } else if ["transfer-encoding", "expect", "upgrade"].iter().any(|n| name.eq_ignore_ascii_case(n)) {
            return Parsed::Other;
        }
        let kept = match lane.reads() {
            Reads::All => match HeaderName::from_bytes(name.as_bytes()) {
                Ok(n) => Some(n),
                Err(_) => return Parsed::Other,
            },
            Reads::Only(names) => names.iter().find(|n| name.eq_ignore_ascii_case(n.as_str())).cloned(),
        };
        if let Some(kept) = kept {
            let Ok(value) = HeaderValue::from_bytes(h.value) else { return Parsed::Other };
            taken.headers.append(kept, value);
        }
    }
    taken.body_len = length.unwrap_or(0);
    // Past the limit hyper's way answers 413, as the lane's body read does.
    if taken.body_len > lane.body_limit() || head_len.saturating_add(taken.body_len) > super::MAX_HOLD {
        return Parsed::Other;
    }
    Parsed::Taken(taken)
}

/// A Content-Length value of plain digits that fits (leading zeros allowed, as hyper allows).
fn digits(value: &[u8]) -> Option<usize> {
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0usize, |n, d| n * 10 + usize::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_plain_digits() {
        assert_eq!(digits(b"0"), Some(0));
        assert_eq!(digits(b"0012"), Some(12));
        assert_eq!(digits(b"123456789012345678"), Some(123456789012345678));
        for odd in [&b""[..], b"+5", b"-1", b" 5", b"5 ", b"0x10", b"1,1", b"1234567890123456789"] {
            assert_eq!(digits(odd), None, "{:?}", String::from_utf8_lossy(odd));
        }
    }
}
