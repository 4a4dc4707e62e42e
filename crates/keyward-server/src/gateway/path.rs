//! The request path in one spelling: the one gateway rules are matched on and the upstream
//! receives. Frameworks decode `%61` to `a` before routing, so rules matched on the raw
//! string could be walked around by spelling; instead the path is brought to RFC 3986's
//! normal form once (percent-encoded unreserved characters decoded, the hex digits of the
//! remaining escapes uppercased, any other character outside `pchar` encoded), and what
//! readers could still take for different paths is refused: encoded `/`, `\`, `.`, `;` or NUL,
//! a backslash, `.` and `..` segments, empty segments, and — unless the upstream is said
//! not to treat it specially — `;` (servlet containers drop `;params` before routing).

use std::borrow::Cow;
use std::fmt;

/// Why a path has no one reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not in origin form (`/…`), e.g. `*`.
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// An encoded `/`, `\`, `.`, `;` or NUL (the byte named).
    Encoded(u8),
    Backslash,
    DotSegment,
    EmptySegment,
    /// A `;`, which servlet containers take as the start of path parameters.
    Parameter,
    /// `%25` followed by two hex digits: a reader that decodes twice sees another path.
    DoubleEncoded,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            PathError::NotAbsolute => "the request path must start with /",
            PathError::BadEscape => "the request path has a % not followed by two hex digits",
            PathError::Encoded(b'/') => "the request path holds an encoded / (%2F), which is ambiguous",
            PathError::Encoded(b'\\') => "the request path holds an encoded \\ (%5C), which is ambiguous",
            PathError::Encoded(b'.') => "the request path holds an encoded . (%2E), which is ambiguous",
            PathError::Encoded(b';') => "the request path holds an encoded ; (%3B), which is ambiguous",
            PathError::Encoded(_) => "the request path holds an encoded NUL (%00)",
            PathError::Backslash => "the request path holds a backslash, which is ambiguous",
            PathError::DotSegment => "the request path holds a . or .. segment, which is ambiguous",
            PathError::EmptySegment => "the request path holds an empty segment (//), which is ambiguous",
            PathError::DoubleEncoded => {
                "the request path holds an encoded % before two hex digits (%25XX), which a second decoding \
                 would read as another path"
            }
            PathError::Parameter => {
                "the request path holds a ; (path parameters are refused unless the gateway runs with \
                 allow_path_parameters)"
            }
        };
        f.write_str(what)
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Written as it is in a normal path: RFC 3986's `pchar` besides escapes.
fn literal(b: u8) -> bool {
    unreserved(b)
        || matches!(b, b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@')
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_escape(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 15)]));
}

/// The normal form of `raw` (a request's path, without its query), or why it has none.
/// Borrowed when `raw` is already normal, as nearly every request's path is: nothing is
/// allocated then.
pub fn normalise(raw: &str, allow_parameters: bool) -> Result<Cow<'_, str>, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // One pass checks everything and finds whether anything must be rewritten.
    let mut rewrite = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let (hi, lo) = match (bytes.get(i + 1), bytes.get(i + 2)) {
                    (Some(&hi), Some(&lo)) => (hi, lo),
                    _ => return Err(PathError::BadEscape),
                };
                let (Some(h), Some(l)) = (hex_value(hi), hex_value(lo)) else {
                    return Err(PathError::BadEscape);
                };
                let v = h << 4 | l;
                if matches!(v, b'/' | b'\\' | b'.' | b';' | 0) {
                    return Err(PathError::Encoded(v));
                }
                rewrite |= unreserved(v) || hi.is_ascii_lowercase() || lo.is_ascii_lowercase();
                i += 3;
                continue;
            }
            b'\\' => return Err(PathError::Backslash),
            b';' if !allow_parameters => return Err(PathError::Parameter),
            b'/' => {}
            _ => rewrite |= !literal(b),
        }
        i += 1;
    }
    // Decoding yields neither `/` nor `.` (both refused encoded), so the raw segments are the
    // normal form's. The last may be empty: a trailing slash.
    let mut segments = raw[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        if segment == "." || segment == ".." {
            return Err(PathError::DotSegment);
        }
        if segment.is_empty() && segments.peek().is_some() {
            return Err(PathError::EmptySegment);
        }
    }
    if !rewrite {
        return refuse_double_encoding(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len() + 8);
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            // Checked above: two hex digits follow.
            let v = match (bytes.get(i + 1).copied().and_then(hex_value), bytes.get(i + 2).copied().and_then(hex_value))
            {
                (Some(h), Some(l)) => h << 4 | l,
                _ => return Err(PathError::BadEscape),
            };
            if unreserved(v) {
                out.push(char::from(v));
            } else {
                push_escape(&mut out, v);
            }
            i += 3;
            continue;
        }
        if b == b'/' || literal(b) {
            out.push(char::from(b));
        } else {
            push_escape(&mut out, b);
        }
        i += 1;
    }
    refuse_double_encoding(Cow::Owned(out))
}

/// Refuses a normal form holding `%25` then two hex digits (checked on the result, since
/// `%25%36%31` becomes `%2561` once its unreserved escapes are decoded).
fn refuse_double_encoding(normal: Cow<'_, str>) -> Result<Cow<'_, str>, PathError> {
    let b = normal.as_bytes();
    let twice = b.windows(5).any(|w| w[..3] == *b"%25" && hex_value(w[3]).is_some() && hex_value(w[4]).is_some());
    if twice {
        return Err(PathError::DoubleEncoded);
    }
    Ok(normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<Cow<'_, str>, PathError> {
        normalise(p, false)
    }

    #[test]
    fn normal_paths_are_borrowed_as_they_are() {
        for p in ["/", "/v2/admin/x", "/v2/admin/", "/V2/Admin", "/a%20b", "/a%C3%A9", "/a:b@c!$&'()*+,=", "/a%25b"] {
            assert!(matches!(norm(p), Ok(Cow::Borrowed(q)) if q == p), "{p}");
        }
    }

    #[test]
    fn spellings_meet_in_one_form() {
        for (raw, normal) in [
            ("/v2/%61dmin/x", "/v2/admin/x"),
            ("/v2/%61%64%6D%69%6e/x", "/v2/admin/x"),
            ("/%7Euser/%2D%5F", "/~user/-_"),
            ("/a%c3%a9", "/a%C3%A9"),
            ("/a%3f%23", "/a%3F%23"),
            ("/caf\u{e9}", "/caf%C3%A9"),
            ("/a\"b<c>{d}|e^`", "/a%22b%3Cc%3E%7Bd%7D%7Ce%5E%60"),
            ("/a b", "/a%20b"),
        ] {
            assert_eq!(norm(raw).as_deref(), Ok(normal), "{raw}");
            // The normal form is a fixed point.
            assert!(matches!(norm(normal), Ok(Cow::Borrowed(_))), "{normal}");
        }
        // Case is kept: rules compare it (ASCII) case-insensitively unless told otherwise.
        assert_eq!(norm("/V2/admin").as_deref(), Ok("/V2/admin"));
    }

    #[test]
    fn what_stays_ambiguous_is_refused() {
        use PathError::*;
        for (raw, why) in [
            ("", NotAbsolute),
            ("*", NotAbsolute),
            ("v2/admin", NotAbsolute),
            ("/a%2fb", Encoded(b'/')),
            ("/a%2Fb", Encoded(b'/')),
            ("/%2e%2E/x", Encoded(b'.')),
            ("/a%2e", Encoded(b'.')),
            ("/a%5Cb", Encoded(b'\\')),
            ("/a%5cb", Encoded(b'\\')),
            ("/a%00", Encoded(0)),
            ("/v2%3Badmin", Encoded(b';')),
            ("/v2%3badmin", Encoded(b';')),
            ("/a%2", BadEscape),
            ("/a%", BadEscape),
            ("/a%zz", BadEscape),
            ("/a%%41", BadEscape),
            ("/v2\\admin", Backslash),
            ("/v2/./admin", DotSegment),
            ("/a/../v2/admin", DotSegment),
            ("/v2/..", DotSegment),
            ("/.", DotSegment),
            ("//v2/admin", EmptySegment),
            ("/v2//admin", EmptySegment),
            ("/v2;a=b/admin/x", Parameter),
            ("/v2/admin;p=1/x", Parameter),
            ("/v2/admin;", Parameter),
            ("/v2/%2561dmin", DoubleEncoded),
            ("/v2/%25%36%31dmin", DoubleEncoded),
            ("/v2/%2561", DoubleEncoded),
        ] {
            assert_eq!(norm(raw), Err(why), "{raw}");
            assert!(!why.to_string().is_empty());
        }
    }

    #[test]
    fn parameters_pass_when_allowed_but_never_encoded() {
        assert_eq!(normalise("/v2/admin;p=1/x", true).as_deref(), Ok("/v2/admin;p=1/x"));
        assert_eq!(normalise("/v2/%61dmin;p=1", true).as_deref(), Ok("/v2/admin;p=1"));
        assert_eq!(normalise("/v2%3Badmin", true), Err(PathError::Encoded(b';')));
        assert_eq!(normalise("/v2/./x;a", true), Err(PathError::DotSegment));
    }
}
