//! `limit`, `cursor` and time bounds of list routes.

use crate::error::{ApiError, ApiResult};

/// 1-200, default 50.
pub fn limit(raw: Option<&str>) -> ApiResult<u32> {
    match raw {
        None => Ok(50),
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", "limit must be an integer from 1 to 200")),
    }
}

/// An optional RFC 3339 time parameter (`since`, `from`, …), refused naming `field`.
pub fn time(field: &str, raw: Option<&str>) -> ApiResult<Option<chrono::DateTime<chrono::Utc>>> {
    raw.map(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|_| ApiError::invalid(field, format!("{field} must be an RFC 3339 time")))
    })
    .transpose()
}

/// A cursor is an id from an earlier page: `<prefix>_` and ASCII letters and digits.
pub fn cursor<'a>(raw: Option<&'a str>, prefix: &str) -> ApiResult<Option<&'a str>> {
    match raw {
        None => Ok(None),
        Some(c)
            if c.starts_with(prefix) && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            Ok(Some(c))
        }
        Some(_) => Err(ApiError::invalid("cursor", "cursor must be a next_cursor from an earlier page")),
    }
}

/// One page from `limit + 1` rows: the rows to answer with and, when more follow, the
/// cursor of the next page (the last row's id).
pub fn page<T>(mut rows: Vec<T>, limit: u32, id: impl Fn(&T) -> &str) -> (Vec<T>, Option<String>) {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(|r| id(r).to_string()) } else { None };
    (rows, next)
}
