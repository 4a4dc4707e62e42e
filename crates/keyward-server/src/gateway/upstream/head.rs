//! An upstream answer's head, parsed with `httparse` into the headers the gateway passes on
//! (hop-by-hop ones left out) and how its body is framed (RFC 9112 §6.3).

use bytes::{Buf, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::failure::{unreachable, Failure};
use super::framing::{Chunked, Framing};

/// An answer's head (status line and headers) larger than this is refused (502).
const MAX_HEAD: usize = 64 * 1024;
/// Headers in an answer's head, at most (hyper's default too).
pub(super) const MAX_HEADERS: usize = 100;

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1). `Host` and
/// `Content-Length` are hop-by-hop for the gateway too, but each is set anew rather than
/// removed.
pub(crate) fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// The comma-separated tokens of a header value, trimmed, empty ones left out.
pub(crate) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    value.split(|b| *b == b',').map(<[u8]>::trim_ascii).filter(|t| !t.is_empty())
}

/// What the read buffer's start holds.
pub(crate) enum Parsed {
    Partial,
    /// A 1xx answer, taken out of the buffer.
    Interim,
    Head(Head),
}

/// An answer's head, as the gateway passes it on.
pub(crate) struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: Framing,
}

/// The answer's head if `read` holds all of it (cut from it); an interim answer is dropped.
/// `reusable`: whether the upstream keeps the connection after this answer.
pub(crate) fn parse(read: &mut BytesMut, head_request: bool, reusable: &mut bool) -> Result<Parsed, Failure> {
    // Left uninitialised, as the lane's request parse does (`http/lane_loop/head.rs`).
    let mut slots = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut parsed, read, &mut slots)
    {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Partial) if read.len() <= MAX_HEAD => return Ok(Parsed::Partial),
        Ok(_) => return Err(unreachable("the upstream's answer head is too large")),
        Err(e) => return Err(unreachable(format!("the upstream's answer is not HTTP/1: {e}"))),
    };
    let code = parsed.code.unwrap_or(0);
    if (100..200).contains(&code) {
        if code == 101 {
            return Err(unreachable("the upstream switched protocols unasked"));
        }
        read.advance(len);
        return Ok(Parsed::Interim);
    }
    let status = StatusCode::from_u16(code).map_err(unreachable)?;

    // Framing first (RFC 9112 §6.3), and where each header's bytes are, so the values can
    // be cut from the head without a copy once it is frozen.
    let base = read.as_ptr() as usize;
    let (mut length, mut chunked, mut encoded, mut close, mut keep_alive, mut named) =
        (None::<u64>, false, false, false, false, false);
    let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
    let count = parsed.headers.len();
    for (h, span) in parsed.headers.iter().zip(spans.iter_mut()) {
        let at = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
        *span = (at(h.name.as_bytes()), h.name.len() as u32, at(h.value), h.value.len() as u32);
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| unreachable("the upstream's answer has an invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(unreachable("the upstream's answer has conflicting Content-Lengths"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            encoded = true;
            chunked = tokens(h.value).last().is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            for t in tokens(h.value) {
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                } else {
                    named = true;
                }
            }
        }
    }
    // HTTP/1.0 keeps a connection only when it says so.
    *reusable = !close && (parsed.version == Some(1) || keep_alive);
    let framing = if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        Framing::Length(0)
    } else if encoded && parsed.version == Some(0) {
        // HTTP/1.0 has no transfer codings: its framing is faulty (RFC 9112 §6.1), and a
        // `Connection: keep-alive` beside it must not keep the connection.
        return Err(unreachable("the upstream's HTTP/1.0 answer has a Transfer-Encoding"));
    } else if encoded && chunked {
        Framing::Chunked(Chunked::Size)
    } else if encoded {
        Framing::Close
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    // An answer with both a Transfer-Encoding and a length may have been framed one way by
    // the upstream and another by something on the way: after it, the connection is not
    // trusted with another answer (RFC 9112 §6.3).
    if matches!(framing, Framing::Close) || (encoded && length.is_some()) {
        *reusable = false;
    }

    let head = read.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(count);
    let connection_names: Vec<&[u8]> = if named {
        spans[..count]
            .iter()
            .filter(|s| head[s.0 as usize..][..s.1 as usize].eq_ignore_ascii_case(b"connection"))
            .flat_map(|s| tokens(&head[s.2 as usize..][..s.3 as usize]))
            .collect()
    } else {
        Vec::new()
    };
    for &(name_at, name_len, value_at, value_len) in &spans[..count] {
        let raw = &head[name_at as usize..][..name_len as usize];
        let name = HeaderName::from_bytes(raw).map_err(unreachable)?;
        if hop_by_hop(name.as_str())
            || (name == http::header::CONTENT_LENGTH && !matches!(framing, Framing::Length(_)))
            || connection_names.iter().any(|n| n.eq_ignore_ascii_case(raw))
        {
            continue;
        }
        let value = head.slice(value_at as usize..(value_at + value_len) as usize);
        let value = HeaderValue::from_maybe_shared(value).map_err(unreachable)?;
        if name == http::header::CONTENT_LENGTH {
            // Repeated with the same value: said once.
            headers.insert(name, value);
        } else {
            headers.append(name, value);
        }
    }
    Ok(Parsed::Head(Head { status, headers, framing }))
}
