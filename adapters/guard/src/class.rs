//! Route classes: requests that cost alike share a concurrency limit and a row in
//! the metrics. Decided from the method and path alone, before any handler runs.

use http::{HeaderMap, Method};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// `/health` and `/metrics`: must answer while everything else is busy.
    Health,
    /// Every other GET/HEAD (queries, narinfo, listings) and unknown routes.
    Read,
    /// `POST /v1/status` with a declared body of at most the small-status size
    /// ([`crate::ShedConfig::status_small_bytes`]): a few hundred paths, quick.
    Status,
    /// `POST /v1/status` with a larger or undeclared body (up to 4 MiB and 10,000
    /// paths): its own slots, so big or slow requests cannot take the small ones'.
    StatusBulk,
    /// `POST /v1/attestations`: authenticated, signature checks and a write.
    Submit,
    /// `/v1/admin/...`, and uploads of jobset evaluations (`PUT /v1/jobsets/...`,
    /// authenticated, up to 24 MiB and 250,000 paths in one transaction): few at once.
    Admin,
}

impl RouteClass {
    pub const COUNT: usize = 6;
    pub const ALL: [RouteClass; RouteClass::COUNT] = [
        RouteClass::Health,
        RouteClass::Read,
        RouteClass::Status,
        RouteClass::StatusBulk,
        RouteClass::Submit,
        RouteClass::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Health => "health",
            RouteClass::Read => "read",
            RouteClass::Status => "status",
            RouteClass::StatusBulk => "status_bulk",
            RouteClass::Submit => "submit",
            RouteClass::Admin => "admin",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The class of a request: [`classify`], with `POST /v1/status` split by its declared
/// body size: at most `small_status_bytes` is [`RouteClass::Status`], anything larger
/// or undeclared (chunked, HTTP/2 without a length) is [`RouteClass::StatusBulk`].
pub fn classify_request(method: &Method, path: &str, headers: &HeaderMap, small_status_bytes: u64) -> RouteClass {
    match classify(method, path) {
        RouteClass::Status if declared_length(headers).is_none_or(|n| n > small_status_bytes) => RouteClass::StatusBulk,
        class => class,
    }
}

/// The `Content-Length` of a request, when it has one that parses.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// The class from the method and path alone (`POST /v1/status` is [`RouteClass::Status`]).
pub fn classify(method: &Method, path: &str) -> RouteClass {
    if path == "/health" || path == "/metrics" {
        RouteClass::Health
    } else if path.starts_with("/v1/admin/")
        || path == "/v1/admin"
        || (*method == Method::PUT && path.starts_with("/v1/jobsets/"))
    {
        RouteClass::Admin
    } else if *method == Method::POST && path == "/v1/status" {
        RouteClass::Status
    } else if *method == Method::POST && path == "/v1/attestations" {
        RouteClass::Submit
    } else {
        RouteClass::Read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify(&Method::GET, "/health"), RouteClass::Health);
        assert_eq!(classify(&Method::GET, "/metrics"), RouteClass::Health);
        assert_eq!(classify(&Method::POST, "/v1/status"), RouteClass::Status);
        assert_eq!(classify(&Method::GET, "/v1/status"), RouteClass::Read);
        assert_eq!(classify(&Method::POST, "/v1/attestations"), RouteClass::Submit);
        assert_eq!(classify(&Method::DELETE, "/v1/admin/builders/x"), RouteClass::Admin);
        assert_eq!(classify(&Method::GET, "/abc.narinfo"), RouteClass::Read);
        assert_eq!(classify(&Method::POST, "/v1/administrator"), RouteClass::Read);
        assert_eq!(classify(&Method::PUT, "/v1/jobsets/iso/evaluations/r1"), RouteClass::Admin);
        assert_eq!(classify(&Method::GET, "/v1/jobsets/iso/evaluations/r1"), RouteClass::Read);
    }

    #[test]
    fn status_by_declared_size() {
        let mut h = HeaderMap::new();
        let class = |h: &HeaderMap| classify_request(&Method::POST, "/v1/status", h, 1000);
        // Undeclared (chunked): the most it could be.
        assert_eq!(class(&h), RouteClass::StatusBulk);
        h.insert(http::header::CONTENT_LENGTH, "1000".parse().unwrap());
        assert_eq!(class(&h), RouteClass::Status);
        h.insert(http::header::CONTENT_LENGTH, "1001".parse().unwrap());
        assert_eq!(class(&h), RouteClass::StatusBulk);
        h.insert(http::header::CONTENT_LENGTH, "-1".parse().unwrap());
        assert_eq!(class(&h), RouteClass::StatusBulk);
        // Other routes are not split.
        assert_eq!(classify_request(&Method::POST, "/v1/attestations", &h, 1000), RouteClass::Submit);
    }
}
