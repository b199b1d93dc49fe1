//! Route classes: requests that cost alike share a concurrency limit and a row in
//! the metrics. Decided from the method and path alone, before any handler runs.

use http::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// `/health` and `/metrics`: must answer while everything else is busy.
    Health,
    /// Every other GET/HEAD (queries, narinfo, listings) and unknown routes.
    Read,
    /// `POST /v1/status`: anonymous, up to 4 MiB, one query per path.
    Status,
    /// `POST /v1/attestations`: authenticated, signature checks and a write.
    Submit,
    /// `/v1/admin/...`, and uploads of jobset evaluations (`PUT /v1/jobsets/...`,
    /// authenticated, up to 24 MiB and 250,000 paths in one transaction): few at once.
    Admin,
}

impl RouteClass {
    pub const ALL: [RouteClass; 5] =
        [RouteClass::Health, RouteClass::Read, RouteClass::Status, RouteClass::Submit, RouteClass::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Health => "health",
            RouteClass::Read => "read",
            RouteClass::Status => "status",
            RouteClass::Submit => "submit",
            RouteClass::Admin => "admin",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

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
}
