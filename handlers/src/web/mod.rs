//! The web pages (DESIGN.md, "Web pages"; docs/web.md): server-rendered HTML from
//! compiled maud templates, one stylesheet and a few lines of optional script served
//! from here, charts as inline SVG made on the server. The pages read through the
//! service layer and the storage trait like the `/v1` routes, and each shows the
//! `/v1` call that gives its data as JSON.
//!
//! These routes are not part of the API document (`/openapi.json` describes the
//! JSON and binary-cache API): they are merged beside the documented routes in
//! [`crate::api::router`], so the OpenAPI test keeps comparing the document with
//! exactly the documented router, and axum's merge refuses any web route that would
//! shadow an API route.
//!
//! Everything shown is escaped by maud (`(expr)` in a template), including what came
//! from submitters and uploaders (jobset descriptions, search text, store-path
//! names). The Content-Security-Policy forbids inline scripts and other origins.

mod builders;
mod charts;
mod home;
mod jobsets;
mod outputs;
mod search;

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use nhc_core::time::format_rfc3339;
use nhc_core::ReproStatus;

use crate::error::ApiError;
use crate::state::AppState;

pub(crate) const STYLE: &str = include_str!("style.css");
pub(crate) const SCRIPT: &str = include_str!("app.js");
/// The tab icon: two equal halves (a reproduced build).
const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
<rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#1a7f37\"/><path d=\"M4 8h8M8 4v8\" stroke=\"#fff\" stroke-width=\"2\"/></svg>";

/// What every HTML answer carries: no inline script, nothing from another origin.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
                   form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The pages. Static paths win over the binary cache's `/{file}` in axum's router.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home::page))
        .route("/static/style.css", get(style))
        .route("/static/app.js", get(script))
        .route("/static/icon.svg", get(icon))
        .route("/search", get(search::page))
        .route("/outputs/{basename}", get(outputs::output))
        .route("/derivations/{drv}", get(outputs::derivation))
        .route("/builders", get(builders::list))
        .route("/builders/{name}", get(builders::builder))
        .route("/jobsets/{name}", get(jobsets::jobset))
        .route("/jobsets/{name}/{rev}", get(jobsets::evaluation))
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

async fn icon() -> Response {
    asset("image/svg+xml", ICON)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        body,
    )
        .into_response()
}

/// A page's answer: `text/html`, the CSP, not cached by shared caches for long.
pub(crate) fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut res = (status, markup.into_string()).into_response();
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(axum::http::header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    res
}

/// Why a page cannot be shown, as an HTML page with the matching status.
#[derive(Debug)]
pub(crate) enum WebError {
    NotFound(String),
    BadRequest(String),
    /// The cause is logged, not shown.
    Unavailable,
}

impl From<ApiError> for WebError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotFound(m) => WebError::NotFound(m),
            ApiError::InvalidRequest(m) | ApiError::InvalidJson(m) => WebError::BadRequest(m),
            other => {
                tracing::warn!(error = %other, "a page could not be shown");
                WebError::Unavailable
            }
        }
    }
}

impl From<nhc_storage::StoreError> for WebError {
    fn from(e: nhc_storage::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            WebError::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m.as_str()),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", m.as_str()),
            WebError::Unavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "The database cannot be reached; try again later.")
            }
        };
        html_response(
            status,
            layout(
                title,
                html! {
                    h1 { (title) }
                    p.message { (message) }
                    p { "Try the search box above, or start from " a href="/" { "the overview" } "." }
                },
            ),
        )
    }
}

/// The HTML 404 page of an unknown page.
pub(crate) fn not_found_page() -> Response {
    WebError::NotFound("There is no page here.".into()).into_response()
}

pub(crate) type PageResult = Result<Response, WebError>;

pub(crate) fn ok(markup: Markup) -> PageResult {
    Ok(html_response(StatusCode::OK, markup))
}

/// The frame of every page: header with the search box, the content, the footer.
pub(crate) fn layout(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · nix-hash-collection" }
                link rel="stylesheet" href="/static/style.css";
                link rel="icon" href="/static/icon.svg" type="image/svg+xml";
                script src="/static/app.js" defer {}
            }
            body {
                header.site {
                    a.brand href="/" { "nix-hash-collection" }
                    nav aria-label="Main" {
                        a href="/" { "Jobsets" }
                        a href="/builders" { "Builders" }
                    }
                    form.search role="search" action="/search" method="get" {
                        label for="site-search" class="visually-hidden" { "Search" }
                        input id="site-search" type="search" name="q" maxlength="300"
                            placeholder="store path, .drv or package name";
                        button type="submit" { "Search" }
                    }
                }
                main { (content) }
                footer.site {
                    "Signed NAR-hash attestations of Nix builds, compared. "
                    a href="/openapi.json" { "API" }
                }
            }
        }
    }
}

/// A status as a coloured badge with its word (never colour alone).
pub(crate) fn status_badge(s: ReproStatus) -> Markup {
    html! { span class={ "st st-" (s.as_str()) } { (status_label(s)) } }
}

pub(crate) fn status_label(s: ReproStatus) -> &'static str {
    match s {
        ReproStatus::Reproduced => "reproduced",
        ReproStatus::PartiallyReproduced => "partially reproduced",
        ReproStatus::NotReproduced => "not reproduced",
        ReproStatus::OneBuilder => "one builder",
        ReproStatus::NoBuilds => "no builds",
    }
}

/// `1234567` → `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A share in percent with one decimal, `—` of nothing.
pub(crate) fn percent(part: u64, total: u64) -> String {
    if total == 0 {
        return "—".into();
    }
    let tenths = (part.min(total) as u128 * 1000 / total as u128) as u64;
    format!("{}.{}%", tenths / 10, tenths % 10)
}

/// "3 hours ago" from microseconds.
pub(crate) fn relative(at: i64, now: i64) -> String {
    let secs = now.saturating_sub(at) / 1_000_000;
    if secs < 0 {
        return "in the future".into();
    }
    let (n, unit) = match secs {
        0..=59 => return "just now".into(),
        60..=3599 => (secs / 60, "minute"),
        3600..=86_399 => (secs / 3600, "hour"),
        86_400..=2_591_999 => (secs / 86_400, "day"),
        2_592_000..=31_535_999 => (secs / 2_592_000, "month"),
        _ => (secs / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// A time in UTC with a relative hint, machine-readable in `datetime`.
pub(crate) fn time(at: i64, now: i64) -> Markup {
    let full = format_rfc3339(at);
    // `YYYY-MM-DDTHH:MM` of `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    let shown = format!("{} {} UTC", &full[..10], &full[11..16]);
    html! { time datetime=(full) title=(full) { (shown) } " " span.ago { "(" (relative(at, now)) ")" } }
}

/// A count of bytes, readable.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {} ({} bytes)", UNITS[u], thousands(n))
    }
}

/// Percent-encodes a query-string value.
pub(crate) fn qs(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `/v1` call that gives a page's data.
pub(crate) fn json_link(href: &str) -> Markup {
    html! { p.json { "This page's data as JSON: " a href=(href) { code { (href) } } } }
}

#[cfg(test)]
mod tests;
