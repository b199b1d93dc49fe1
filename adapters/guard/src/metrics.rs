//! A small metrics registry rendered in the Prometheus text format (version 0.0.4).
//! Fixed metrics with fixed label sets: a hostile request cannot add series, since
//! status codes and error codes come from the server, not the client.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::class::RouteClass;

/// Latency buckets in seconds.
pub const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];
/// Distinct error codes kept per class (codes come from the server; a bound anyway).
const MAX_LABELS: usize = 64;

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(d.as_micros().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(usize, u16), u64>>,
    errors: Mutex<BTreeMap<(usize, String), u64>>,
    latency: [Histogram; RouteClass::COUNT],
    in_flight: [AtomicI64; RouteClass::COUNT],
    shed: Mutex<BTreeMap<(usize, &'static str), u64>>,
    rate_limited: AtomicU64,
    stored: AtomicU64,
    duplicates: AtomicU64,
    rejected: Mutex<BTreeMap<String, u64>>,
    connections_open: AtomicI64,
    connections: Mutex<BTreeMap<&'static str, u64>>,
    anonymous_body_bytes: AtomicU64,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    pub fn request_started(&self, class: RouteClass) {
        self.in_flight[class.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn request_finished(&self, class: RouteClass, status: u16, latency: Duration) {
        self.in_flight[class.index()].fetch_sub(1, Ordering::Relaxed);
        *lock(&self.requests).entry((class.index(), status)).or_default() += 1;
        self.latency[class.index()].observe(latency);
    }

    /// The `error` code of a JSON error body.
    pub fn error_code(&self, class: RouteClass, code: &str) {
        let mut errors = lock(&self.errors);
        let key = (class.index(), code.to_owned());
        if errors.contains_key(&key) || errors.len() < MAX_LABELS * RouteClass::COUNT {
            *errors.entry(key).or_default() += 1;
        }
        drop(errors);
        if class == RouteClass::Submit {
            let mut rejected = lock(&self.rejected);
            if rejected.contains_key(code) || rejected.len() < MAX_LABELS {
                *rejected.entry(code.to_owned()).or_default() += 1;
            }
        }
    }

    pub fn shed(&self, class: RouteClass, reason: &'static str) {
        *lock(&self.shed).entry((class.index(), reason)).or_default() += 1;
    }

    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub fn submitted(&self, stored: u64, duplicates: u64) {
        self.stored.fetch_add(stored, Ordering::Relaxed);
        self.duplicates.fetch_add(duplicates, Ordering::Relaxed);
    }

    pub fn set_anonymous_body_bytes(&self, n: u64) {
        self.anonymous_body_bytes.store(n, Ordering::Relaxed);
    }

    /// For the listener: a connection opened (+1) or closed (-1).
    pub fn connection_open(&self, delta: i64) {
        self.connections_open.fetch_add(delta, Ordering::Relaxed);
    }

    /// For the listener: a connection event (`accepted`, `refused`, `evicted`, `first_byte_timeout`, ...).
    pub fn connection_event(&self, event: &'static str) {
        *lock(&self.connections).entry(event).or_default() += 1;
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let class = |i: usize| RouteClass::ALL[i].as_str();

        header(
            &mut out,
            "nhc_http_requests_total",
            "counter",
            "HTTP requests answered, by route class and status code.",
        );
        for ((c, code), n) in lock(&self.requests).iter() {
            let _ = writeln!(out, "nhc_http_requests_total{{class=\"{}\",code=\"{code}\"}} {n}", class(*c));
        }
        header(&mut out, "nhc_http_errors_total", "counter", "Error responses, by route class and API error code.");
        for ((c, code), n) in lock(&self.errors).iter() {
            let _ = writeln!(out, "nhc_http_errors_total{{class=\"{}\",error=\"{}\"}} {n}", class(*c), escape(code));
        }
        header(
            &mut out,
            "nhc_http_request_duration_seconds",
            "histogram",
            "Time to the response head, by route class.",
        );
        for (i, h) in self.latency.iter().enumerate() {
            let c = class(i);
            for (b, le) in BUCKETS.iter().enumerate() {
                let n = h.buckets[b].load(Ordering::Relaxed);
                let _ = writeln!(out, "nhc_http_request_duration_seconds_bucket{{class=\"{c}\",le=\"{le}\"}} {n}");
            }
            let count = h.count.load(Ordering::Relaxed);
            let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "nhc_http_request_duration_seconds_bucket{{class=\"{c}\",le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "nhc_http_request_duration_seconds_sum{{class=\"{c}\"}} {sum}");
            let _ = writeln!(out, "nhc_http_request_duration_seconds_count{{class=\"{c}\"}} {count}");
        }
        header(&mut out, "nhc_http_requests_in_flight", "gauge", "Requests being handled, by route class.");
        for (i, g) in self.in_flight.iter().enumerate() {
            let _ =
                writeln!(out, "nhc_http_requests_in_flight{{class=\"{}\"}} {}", class(i), g.load(Ordering::Relaxed));
        }
        header(
            &mut out,
            "nhc_http_shed_total",
            "counter",
            "Requests answered 503 by load shedding, by class and reason.",
        );
        for ((c, reason), n) in lock(&self.shed).iter() {
            let _ = writeln!(out, "nhc_http_shed_total{{class=\"{}\",reason=\"{reason}\"}} {n}", class(*c));
        }
        header(&mut out, "nhc_http_rate_limited_total", "counter", "Requests answered 429: a builder over its rate.");
        let _ = writeln!(out, "nhc_http_rate_limited_total {}", self.rate_limited.load(Ordering::Relaxed));
        header(
            &mut out,
            "nhc_anonymous_body_bytes_in_flight",
            "gauge",
            "Body bytes reserved by requests without a builder token.",
        );
        let _ =
            writeln!(out, "nhc_anonymous_body_bytes_in_flight {}", self.anonymous_body_bytes.load(Ordering::Relaxed));
        header(
            &mut out,
            "nhc_submissions_total",
            "counter",
            "Attestations in accepted submissions: stored or duplicate.",
        );
        let _ = writeln!(out, "nhc_submissions_total{{outcome=\"stored\"}} {}", self.stored.load(Ordering::Relaxed));
        let _ =
            writeln!(out, "nhc_submissions_total{{outcome=\"duplicate\"}} {}", self.duplicates.load(Ordering::Relaxed));
        header(&mut out, "nhc_submissions_rejected_total", "counter", "Submissions refused, by API error code.");
        for (reason, n) in lock(&self.rejected).iter() {
            let _ = writeln!(out, "nhc_submissions_rejected_total{{reason=\"{}\"}} {n}", escape(reason));
        }
        header(&mut out, "nhc_connections_open", "gauge", "Client connections open now.");
        let _ = writeln!(out, "nhc_connections_open {}", self.connections_open.load(Ordering::Relaxed));
        header(
            &mut out,
            "nhc_connections_total",
            "counter",
            "Client connection events: accepted, refused, closed by a limit.",
        );
        for (event, n) in lock(&self.connections).iter() {
            let _ = writeln!(out, "nhc_connections_total{{event=\"{event}\"}} {n}");
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn escape(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| match c {
            '\\' => vec!['\\', '\\'],
            '"' => vec!['\\', '"'],
            c => vec![c],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_histograms() {
        let m = Metrics::new();
        m.request_started(RouteClass::Read);
        m.request_finished(RouteClass::Read, 200, Duration::from_millis(3));
        m.request_started(RouteClass::Submit);
        m.request_finished(RouteClass::Submit, 400, Duration::from_millis(30));
        m.error_code(RouteClass::Submit, "bad_signature");
        m.submitted(3, 1);
        let text = m.render();
        assert!(text.contains("nhc_http_requests_total{class=\"read\",code=\"200\"} 1\n"), "{text}");
        assert!(text.contains("nhc_http_request_duration_seconds_bucket{class=\"read\",le=\"0.0025\"} 0\n"));
        assert!(text.contains("nhc_http_request_duration_seconds_bucket{class=\"read\",le=\"0.005\"} 1\n"));
        assert!(text.contains("nhc_http_request_duration_seconds_count{class=\"submit\"} 1\n"));
        assert!(text.contains("nhc_submissions_rejected_total{reason=\"bad_signature\"} 1\n"));
        assert!(text.contains("nhc_submissions_total{outcome=\"stored\"} 3\n"));
        assert!(text.contains("nhc_http_requests_in_flight{class=\"read\"} 0\n"));
        assert_eq!(escape("a\"b\\c\n"), "a\\\"b\\\\c");
    }
}
