//! An answer written as hyper's HTTP/1 server writes it, byte for byte: the status line, the
//! headers in their order and lower case, `connection: close` when the connection ends with
//! it, then `content-length` (or, for a streamed body of unknown length,
//! `transfer-encoding: chunked`) and `date` unless the answer has them. A whole answer goes
//! out in one write; a streamed one (the gateway's, from its upstream) piece by piece as it
//! comes. The differential tests hold the two servers to the same bytes.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::header::{CONTENT_LENGTH, DATE};
use axum::http::{response, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// How the body is framed.
#[derive(Clone, Copy)]
enum Framing {
    /// `content-length` written here (unless the answer has one).
    Length(u64),
    /// `transfer-encoding: chunked`.
    Chunked,
}

/// Writes `resp` to `io` (through `out`); false if its body or the connection failed (the
/// connection must then be closed: the answer may be cut short).
pub(crate) async fn send<IO: AsyncWrite + Unpin>(
    resp: Response<Body>,
    close: bool,
    out: &mut Vec<u8>,
    io: &mut IO,
) -> bool {
    out.clear();
    let (parts, mut body) = resp.into_parts();
    if body.is_end_stream() {
        head(&parts, Framing::Length(0), close, out);
        return io.write_all(out).await.is_ok() && io.flush().await.is_ok();
    }
    // A length the answer says itself stands (as hyper trusts it), else the body's own.
    let framing = match body.size_hint().exact() {
        Some(n) => Framing::Length(n),
        None if parts.headers.contains_key(CONTENT_LENGTH) => Framing::Length(0),
        None => Framing::Chunked,
    };
    head(&parts, framing, close, out);
    let bodied = has_body(parts.status);
    loop {
        let data = match body.frame().await {
            None => Bytes::new(),
            Some(Err(_)) => return false,
            // Trailers: the lane's answers have none (the gateway's client drops them).
            Some(Ok(frame)) => frame.into_data().unwrap_or_default(),
        };
        let last = body.is_end_stream();
        if bodied && !data.is_empty() {
            match framing {
                Framing::Length(_) => out.extend_from_slice(&data),
                Framing::Chunked => {
                    let mut size = itoa_hex(data.len());
                    size.extend_from_slice(b"\r\n");
                    out.extend_from_slice(&size);
                    out.extend_from_slice(&data);
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        if last {
            if bodied && matches!(framing, Framing::Chunked) {
                out.extend_from_slice(b"0\r\n\r\n");
            }
            return io.write_all(out).await.is_ok() && io.flush().await.is_ok();
        }
        // More to come: what is here goes out first.
        if !out.is_empty() && (io.write_all(out).await.is_err() || io.flush().await.is_err()) {
            return false;
        }
        out.clear();
    }
}

/// A chunk's size as hyper writes it: upper-case hex.
fn itoa_hex(n: usize) -> Vec<u8> {
    format!("{n:X}").into_bytes()
}

fn head(parts: &response::Parts, framing: Framing, close: bool, out: &mut Vec<u8>) {
    if parts.status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(parts.status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(parts.status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let (mut wrote_len, mut wrote_date) = (false, false);
    // The lane's answers carry no `connection`, `transfer-encoding` or `trailer` header (hyper
    // would merge or act on those); every other header is written as it is.
    for (name, value) in &parts.headers {
        wrote_len |= name == CONTENT_LENGTH;
        wrote_date |= name == DATE;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !wrote_len && has_body(parts.status) {
        match framing {
            Framing::Length(len) => {
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
    }
    if !wrote_date {
        out.extend_from_slice(b"date: ");
        date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// 1xx, 204 and 304 answers have no body and no length.
fn has_body(status: StatusCode) -> bool {
    !status.is_informational() && status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED
}

thread_local! {
    /// The `date` value of the current second, as hyper caches it per thread.
    static TODAY: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
}

// The `date` header tells the wire's time, read from the system as hyper reads it, not the
// product's clock (which tests move).
#[allow(clippy::disallowed_methods)]
fn date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    TODAY.with_borrow_mut(|(at, text)| {
        if *at != second || text.is_empty() {
            *at = second;
            *text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(text.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn written(resp: Response<Body>, close: bool) -> String {
        let mut out = Vec::new();
        let mut wire = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert!(rt.block_on(send(resp, close, &mut out, &mut wire)));
        let text = String::from_utf8(wire).unwrap();
        // The date is checked for its form, then left out.
        let start = text.find("date: ").unwrap();
        let end = start + text[start..].find("\r\n").unwrap();
        assert!(httpdate::parse_http_date(&text[start + 6..end]).is_ok(), "{text}");
        format!("{}{}", &text[..start], &text[end + 2..])
    }

    #[test]
    fn heads_are_written_as_hyper_writes_them() {
        let mut ok = Response::new(Body::from("{}"));
        ok.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
        ok.headers_mut().append("x-a", HeaderValue::from_static("1"));
        ok.headers_mut().append("x-a", HeaderValue::from_static("2"));
        assert_eq!(
            written(ok, false),
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 2\r\n\r\n{}"
        );
        let mut refused = Response::new(Body::from("no"));
        *refused.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        assert_eq!(
            written(refused, true),
            "HTTP/1.1 429 Too Many Requests\r\nconnection: close\r\ncontent-length: 2\r\n\r\nno"
        );
        let mut odd = Response::new(Body::empty());
        *odd.status_mut() = StatusCode::from_u16(599).unwrap();
        assert_eq!(written(odd, false), "HTTP/1.1 599 <none>\r\ncontent-length: 0\r\n\r\n");
        let mut none = Response::new(Body::from("dropped"));
        *none.status_mut() = StatusCode::NO_CONTENT;
        assert_eq!(written(none, false), "HTTP/1.1 204 No Content\r\n\r\n");
    }
}
