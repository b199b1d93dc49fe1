//! Request ids: the client's `x-request-id` when it is short and plain, else a new
//! one. Unique within a process: a random prefix chosen at start and a counter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub const HEADER: &str = "x-request-id";
const MAX_LEN: usize = 64;

/// The id of the request being served, in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// A client's id is kept only if it cannot break a log line or a header.
pub fn valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

pub fn from_header(value: Option<&http::HeaderValue>) -> RequestId {
    match value.and_then(|v| v.to_str().ok()) {
        Some(id) if valid(id) => RequestId(id.to_owned()),
        _ => generate(),
    }
}

pub fn generate() -> RequestId {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut b = [0u8; 4];
        // Without randomness ids are still unique within this process.
        let _ = getrandom::fill(&mut b);
        u32::from_le_bytes(b)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    RequestId(format!("{prefix:08x}{n:012x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_plain_ids_and_replaces_others() {
        let h = http::HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(from_header(Some(&h)).0, "abc-123_x.y:z");
        for bad in ["", "has space", "semi;colon", &"x".repeat(65)] {
            let h = http::HeaderValue::from_str(bad).unwrap();
            let id = from_header(Some(&h)).0;
            assert_ne!(id, bad);
            assert!(valid(&id));
        }
        assert_ne!(generate(), generate());
        assert_eq!(generate().0.len(), 20);
    }
}
