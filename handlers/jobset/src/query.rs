//! The query string of `GET /v1/jobsets/{name}/evaluations/{rev}`
//! (`status=a,b&q=text&limit=&cursor=`), checked once for every deployment, and its
//! opaque cursor.

use nhc_core::jobset::{parse_status_filter, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};
use nhc_core::ReproStatus;

/// Longest `q` (a substring of the path to look for).
pub const MAX_QUERY_TEXT: usize = 200;

/// A checked page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    /// Only these statuses; all when empty.
    pub statuses: Vec<ReproStatus>,
    /// Only paths containing this text.
    pub q: Option<String>,
    pub limit: u32,
    /// Items after this position in the evaluation.
    pub after: Option<u64>,
}

/// Why a page request is refused: always 400, with code `bad_request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Status(String),
    #[error("limit must be an integer from 1 to {MAX_PAGE_LIMIT}")]
    Limit,
    #[error("q must be at most {MAX_QUERY_TEXT} bytes without control characters")]
    Text,
    #[error("invalid cursor (pass next_cursor as it was received)")]
    Cursor,
}

impl QueryError {
    pub fn code(&self) -> &'static str {
        "bad_request"
    }

    pub fn http_status(&self) -> u16 {
        400
    }
}

/// The cursor after the item at position `ord`: opaque to clients (`o` + base 10).
pub fn encode_cursor(ord: u64) -> String {
    format!("o{ord}")
}

fn decode_cursor(c: &str) -> Option<u64> {
    let digits = c.strip_prefix('o')?;
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Checks the (already percent-decoded) query parameters; absent ones take defaults.
pub fn parse_page_query(
    status: Option<&str>,
    q: Option<&str>,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<PageQuery, QueryError> {
    let statuses = match status {
        Some(s) => parse_status_filter(s).map_err(|e| QueryError::Status(e.to_string()))?,
        None => Vec::new(),
    };
    let limit = match limit {
        None => DEFAULT_PAGE_LIMIT,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => n,
            _ => return Err(QueryError::Limit),
        },
    };
    let q = match q {
        None | Some("") => None,
        Some(t) if t.len() <= MAX_QUERY_TEXT && !t.chars().any(char::is_control) => Some(t.to_owned()),
        Some(_) => return Err(QueryError::Text),
    };
    let after = match cursor {
        None | Some("") => None,
        Some(c) => Some(decode_cursor(c).ok_or(QueryError::Cursor)?),
    };
    Ok(PageQuery { statuses, q, limit, after })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReproStatus::*;

    #[test]
    fn defaults_and_values() {
        assert_eq!(
            parse_page_query(None, None, None, None).unwrap(),
            PageQuery { statuses: vec![], q: None, limit: 100, after: None }
        );
        let c = encode_cursor(41);
        let p = parse_page_query(Some("not_reproduced,no_builds"), Some("glibc"), Some("1000"), Some(&c)).unwrap();
        assert_eq!(
            p,
            PageQuery {
                statuses: vec![NotReproduced, NoBuilds],
                q: Some("glibc".into()),
                limit: 1000,
                after: Some(41)
            }
        );
    }

    #[test]
    fn bad_values_are_400() {
        for (st, q, l, c) in [
            (Some("reproduced,nope"), None, None, None),
            (None, None, Some("0"), None),
            (None, None, Some("1001"), None),
            (None, None, Some("-1"), None),
            (None, None, Some("ten"), None),
            (None, Some("a\nb"), None, None),
            (None, Some(&*"x".repeat(201)), None, None),
            (None, None, None, Some("41")),
            (None, None, None, Some("o")),
            (None, None, None, Some("o-1")),
            (None, None, None, Some("o99999999999999999999")),
        ] {
            let e = parse_page_query(st, q, l, c).unwrap_err();
            assert_eq!((e.code(), e.http_status()), ("bad_request", 400), "{st:?} {q:?} {l:?} {c:?}");
        }
        assert!(parse_page_query(Some("Reproduced"), None, None, None)
            .unwrap_err()
            .to_string()
            .contains("must be one of"));
    }
}
