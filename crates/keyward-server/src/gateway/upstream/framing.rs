//! How an upstream answer's body ends: after a length, chunked (decoded here, RFC 9112
//! §7.1), or when the upstream closes; and what a body that broke off says.

use bytes::{Buf, Bytes, BytesMut};

/// A chunk-size line or a trailer line longer than this is refused.
const MAX_LINE: usize = 4096;

/// The upstream stopped sending its answer's body, or sent a broken one.
#[derive(Debug, thiserror::Error)]
pub enum Broken {
    #[error("the upstream stopped sending")]
    Stalled,
    #[error("the upstream closed the connection before the answer's end")]
    Closed,
    #[error("{0}")]
    Failed(String),
}

/// How the answer's body ends.
pub(crate) enum Framing {
    /// After this many more bytes.
    Length(u64),
    Chunked(Chunked),
    /// When the upstream closes the connection.
    Close,
}

/// Where a chunked body's decoder is (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunked {
    /// Before a chunk-size line.
    Size,
    /// Within a chunk's data, this much left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines (checked, then dropped) up to an empty line.
    Trailers,
    Done,
}

/// What a chunked body's decoder took from the buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    Data(Bytes),
    End,
}

impl Chunked {
    /// The next piece of data, the end, or `None` when the buffer holds too little.
    pub(crate) fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Broken> {
        let bad = |what: &str| Broken::Failed(format!("the upstream's chunked answer has {what}"));
        loop {
            match *self {
                Chunked::Size => {
                    let Some(eol) = line_end(buf, MAX_LINE).map_err(|()| bad("a bad chunk-size line"))? else {
                        return Ok(None);
                    };
                    let line = &buf[..eol];
                    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
                    // After the size, only whitespace before an extension or the line's end.
                    let lws = line[digits..].iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
                    let rest = &line[digits + lws..];
                    if digits == 0 || digits > 15 || !matches!(rest.first(), None | Some(b';')) {
                        return Err(bad("a bad chunk size"));
                    }
                    let size = line[..digits]
                        .iter()
                        .fold(0u64, |n, b| n << 4 | u64::from((*b as char).to_digit(16).unwrap_or(0)));
                    buf.advance(eol + 2);
                    *self = if size == 0 { Chunked::Trailers } else { Chunked::Data(size) };
                }
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let data = buf.split_to(take).freeze();
                    let left = left - take as u64;
                    *self = if left == 0 { Chunked::DataEnd } else { Chunked::Data(left) };
                    return Ok(Some(Decoded::Data(data)));
                }
                Chunked::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(bad("a chunk longer than its size"));
                    }
                    buf.advance(2);
                    *self = Chunked::Size;
                }
                Chunked::Trailers => {
                    let Some(eol) = line_end(buf, MAX_LINE).map_err(|()| bad("a bad trailer"))? else {
                        return Ok(None);
                    };
                    if eol > 0 && !field_line(&buf[..eol]) {
                        return Err(bad("a bad trailer"));
                    }
                    buf.advance(eol + 2);
                    if eol == 0 {
                        *self = Chunked::Done;
                        return Ok(Some(Decoded::End));
                    }
                }
                Chunked::Done => return Ok(Some(Decoded::End)),
            }
        }
    }
}

/// A trailer line is a field line, `name: value`, as a head's would be (RFC 9112 §5): a
/// folded line or one without a name is refused, as `httparse` refuses them in the head.
fn field_line(line: &[u8]) -> bool {
    let name = line.iter().take_while(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b)).count();
    name > 0
        && line.get(name) == Some(&b':')
        && line[name + 1..].iter().all(|b| *b == b'\t' || (*b >= b' ' && *b != 0x7f))
}

/// Where the buffer's first line ends (at its CRLF); `Ok(None)` while it may still come,
/// an error for a bare LF, a bare CR (RFC 9112 §2.2) or a line longer than `max`.
fn line_end(buf: &[u8], max: usize) -> Result<Option<usize>, ()> {
    match buf.iter().take(max + 2).position(|b| *b == b'\n') {
        Some(0) => Err(()),
        Some(lf) if buf[lf - 1] == b'\r' && !buf[..lf - 1].contains(&b'\r') => Ok(Some(lf - 1)),
        Some(_) => Err(()),
        None if buf.len() >= max + 2 => Err(()),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(wire: &[u8], piece: usize) -> Result<Vec<u8>, Broken> {
        let mut state = Chunked::Size;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for part in wire.chunks(piece) {
            buf.extend_from_slice(part);
            while let Some(d) = state.next(&mut buf)? {
                match d {
                    Decoded::Data(b) => out.extend_from_slice(&b),
                    Decoded::End => {
                        assert!(buf.is_empty(), "nothing after the end");
                        return Ok(out);
                    }
                }
            }
        }
        Err(Broken::Failed("unfinished".into()))
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_pieces() {
        let wire = b"5\r\nhello\r\n1;ext=1\r\n \r\nA \r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n";
        for piece in 1..wire.len() {
            let out = decode_in_pieces(wire, piece).unwrap_or_else(|_| panic!("pieces of {piece}"));
            assert_eq!(out, b"hello 0123456789", "pieces of {piece}");
        }
        for broken in [
            &b"5\r\nhello!\r\n0\r\n\r\n"[..],
            b"x\r\n",
            b"5\nhello\r\n",
            b"1234567890123456\r\n",
            b"5x\r\nhello\r\n0\r\n\r\n",
            // Found by the differential test: text after the size that is no extension.
            b"5 junk\r\nhello\r\n0\r\n\r\n",
            b"0\t x\r\n\r\n",
            b"5;a\rb\r\nhello\r\n0\r\n\r\n",
            b"0\r\nx-folded: a\r\n b\r\n\r\n",
            b"0\r\nHTTP/1.1 200 OK\r\n\r\n",
            b"0\r\n: nameless\r\n\r\n",
        ] {
            let mut state = Chunked::Size;
            let mut buf = BytesMut::from(broken);
            let mut result = Ok(None);
            for _ in 0..4 {
                result = state.next(&mut buf);
                if !matches!(result, Ok(Some(Decoded::Data(_)))) {
                    break;
                }
            }
            assert!(result.is_err(), "{:?}", String::from_utf8_lossy(broken));
        }
        let long = [b'1'; MAX_LINE + 3];
        assert!(Chunked::Size.next(&mut BytesMut::from(&long[..])).is_err());
    }
}
