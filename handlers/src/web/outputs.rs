//! `/outputs/{basename}` and `/derivations/{drv}`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use maud::{html, Markup};
use nhc_core::{BuilderName, DrvPath, NarHash, PublicKey, StatusSummary, StorePath};
use nhc_storage::{AttestationRecord, PathCursor};
use serde::Deserialize;

use super::{bytes, json_link, layout, ok, qs, status_badge, thousands, time, PageResult, WebError};
use crate::api::page;
use crate::service;
use crate::state::AppState;

/// Attestations shown per page of an output.
pub(crate) const OUTPUT_PAGE: u32 = 50;
/// Diff reports listed on an output's page, newest first (all of them: `/v1/outputs/{b}/diffs`).
pub(crate) const DIFFS_SHOWN: u32 = 20;

#[derive(Deserialize, Default)]
pub(crate) struct CursorQuery {
    pub(crate) cursor: Option<String>,
}

pub(crate) fn path_param(p: Result<Path<String>, PathRejection>) -> Result<String, WebError> {
    p.map(|Path(s)| s).map_err(|e| WebError::BadRequest(format!("invalid path: {}", e.body_text())))
}

pub(crate) fn query<T: Default>(q: Result<Query<T>, QueryRejection>) -> Result<T, WebError> {
    q.map(|Query(t)| t).map_err(|e| WebError::BadRequest(format!("invalid query: {}", e.body_text())))
}

/// Where this deployment is reached, for commands a person copies: the `Host` the
/// browser used (only host characters; escaped on output anyway).
pub(crate) fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.len() <= 255)
        .filter(|h| h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)));
    let Some(host) = host else { return "https://COLLECTION".into() };
    let forwarded = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok());
    let local = host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]");
    let scheme = match forwarded {
        Some("http") => "http",
        Some("https") => "https",
        _ if local => "http",
        _ => "https",
    };
    format!("{scheme}://{host}")
}

pub(crate) fn output_link(p: &StorePath) -> Markup {
    html! { a.path href={ "/outputs/" (p.basename()) } { (p.basename()) } }
}

pub(crate) fn drv_link(d: &DrvPath) -> Markup {
    let s = d.as_store_path();
    html! { a.path href={ "/derivations/" (s.basename()) } { (s.basename()) } }
}

pub(crate) fn builder_link(b: &BuilderName) -> Markup {
    html! { a href={ "/builders/" (b.as_str()) } { (b.as_str()) } }
}

/// `GET /outputs/{basename}`
pub(crate) async fn output(
    State(state): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<String>, PathRejection>,
    q: Result<Query<CursorQuery>, QueryRejection>,
) -> PageResult {
    let basename = path_param(p)?;
    let q = query(q)?;
    let path = StorePath::from_basename(&basename).map_err(|e| WebError::NotFound(e.to_string()))?;
    let cursor = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            page::decode_cursor(c, |s| BuilderName::parse(s).ok())
                .map(|(submitted_at, builder, nar_hash)| PathCursor { submitted_at, builder, nar_hash })
                .ok_or_else(|| WebError::BadRequest("invalid cursor".into()))?,
        ),
    };
    let votes = state.store.votes_of_paths(std::slice::from_ref(&path)).await?;
    if votes.is_empty() {
        return Err(WebError::NotFound(format!("Nobody attested {path}.")));
    }
    let summary = StatusSummary::from_votes(votes.iter().map(|v| (&v.builder, &v.nar_hash)));
    // Each distinct hash with its builders, the most builders first.
    let mut by_hash: BTreeMap<NarHash, BTreeSet<BuilderName>> = BTreeMap::new();
    for v in &votes {
        by_hash.entry(v.nar_hash).or_default().insert(v.builder.clone());
    }
    let mut groups: Vec<(NarHash, BTreeSet<BuilderName>)> = by_hash.into_iter().collect();
    groups.sort_by_key(|g| std::cmp::Reverse(g.1.len()));
    let mut rows = state.store.attestations_of_path(&path, cursor.as_ref(), OUTPUT_PAGE + 1).await?;
    let next =
        page::cut(&mut rows, OUTPUT_PAGE, |r| page::encode_cursor(r.submitted_at, r.builder.as_str(), &r.nar_hash));
    let keys: HashMap<BuilderName, Vec<PublicKey>> =
        state.store.list_builders().await?.into_iter().map(|b| (b.name, b.public_keys)).collect();
    let diffs = state.store.diffs_of_path(&path, DIFFS_SHOWN).await?;
    let now = state.now();
    let drv = rows.iter().find_map(|r| r.drv_path.clone());
    let first_of = |h: &NarHash| rows.iter().find(|r| &r.nar_hash == h);
    let majority: Vec<&BuilderName> = groups.first().map(|g| g.1.iter().collect()).unwrap_or_default();
    let trusted: Vec<String> = majority.iter().filter_map(|b| keys.get(*b)).flatten().map(|k| k.to_string()).collect();
    let origin = origin(&headers);
    let content = html! {
        p.crumbs { "Output" }
        h1.path-title { (path.name()) }
        p { code.full { (path.as_str()) } }
        p.status-line {
            (status_badge(summary.status)) " "
            (thousands(summary.builders as u64)) " builders, "
            (thousands(summary.distinct_hashes as u64)) " distinct NAR hashes, "
            (thousands(votes.len() as u64)) " attestations"
            @if let Some(d) = &drv { " · derivation " (drv_link(d)) }
        }
        h2 { "NAR hashes" }
        p.hint { "Each distinct NAR hash with the builders that reported it, the most builders first." }
        @for (i, (hash, builders)) in groups.iter().enumerate() {
            section.hash-group {
                h3 {
                    @if i == 0 && groups.len() > 1 { span.tag { "majority" } " " }
                    code.full { (hash.to_sri()) }
                }
                p { (thousands(builders.len() as u64)) " builder" @if builders.len() != 1 { "s" } ": "
                    @for (j, b) in builders.iter().enumerate() { @if j > 0 { ", " } (builder_link(b)) } }
                @if let Some(r) = first_of(hash) {
                    p { "NAR size " (bytes(r.nar_size)) }
                    @if r.references.is_empty() {
                        p { "No references." }
                    } @else {
                        details {
                            summary { (thousands(r.references.len() as u64)) " references" }
                            ul.refs { @for p in r.references.as_slice() { li { (output_link(p)) } } }
                        }
                    }
                }
            }
        }
        @if !diffs.is_empty() {
            h2 { "Diff reports" }
            p.hint { "How rebuilds differed, as the builders who rebuilt it reported it (signed by them; gzip text)." }
            div.scroll { table {
                thead { tr { th scope="col" { "Builder" } th scope="col" { "From" } th scope="col" { "To" }
                             th scope="col" { "Kind" } th scope="col" { "Size" } th scope="col" { "Reported" } th scope="col" { "Report" } } }
                tbody {
                    @for d in &diffs {
                        tr {
                            td { (builder_link(&d.builder)) }
                            td { code.hash { (d.nar_hash_a.to_sri()) } }
                            td { code.hash { (d.nar_hash_b.to_sri()) } }
                            td { (d.format.as_str()) }
                            td.num { (bytes(d.size)) }
                            td { (time(d.created_at, now)) }
                            td { a href={ "/v1/outputs/" (path.basename()) "/diffs/" (d.id) } { "download" } }
                        }
                    }
                }
            } }
            @if diffs.len() as u32 >= DIFFS_SHOWN {
                p.hint { "The newest " (DIFFS_SHOWN) " are shown; " a href={ "/v1/outputs/" (path.basename()) "/diffs" } { "all of them" } "." }
            }
        }
        h2 { "Check it yourself" }
        p.hint { "The builders' own signatures, checked by Nix against their public keys (no need to trust this server):" }
        pre.cmd { code {
            "nix store verify --store '" (origin) "' \\\n  --trusted-public-keys '" (trusted.join(" ")) "' \\\n  --no-contents " (path.as_str())
        } }
        @if let Some(d) = &drv {
            p.hint { "Rebuild it and compare with what you have:" }
            pre.cmd { code { "nix-build --check " (d.as_str()) } }
        }
        p.hint { "Its status from the command line:" }
        pre.cmd { code { "nhc status " (path.as_str()) } }
        h2 { "Attestations" }
        (attestation_table(&rows, now))
        nav.pager aria-label="Pages" {
            @if q.cursor.is_some() { a href={ "/outputs/" (path.basename()) } { "← First page" } }
            @if let Some(c) = &next { a rel="next" href={ "/outputs/" (path.basename()) "?cursor=" (qs(c)) } { "Next page →" } }
        }
        (json_link(&format!("/v1/outputs/{}", path.basename())))
    };
    ok(layout(path.name(), content))
}

fn attestation_table(rows: &[AttestationRecord], now: i64) -> Markup {
    html! {
        div.scroll { table {
            thead { tr { th scope="col" { "Builder" } th scope="col" { "NAR hash" } th scope="col" { "Size" }
                         th scope="col" { "Submitted" } th scope="col" { "Log" } th scope="col" { "Signature" } } }
            tbody {
                @for r in rows {
                    tr {
                        td { (builder_link(&r.builder)) }
                        td { code.hash { (r.nar_hash.to_sri()) } }
                        td.num { (thousands(r.nar_size)) }
                        td { (time(r.submitted_at, now)) }
                        td.num title="Index in the transparency log (/log/)" {
                            @if let Some(i) = r.log_index { (i) } @else { "–" }
                        }
                        td { code.sig { (r.signature.to_string()) } }
                    }
                }
            }
        } }
    }
}

/// `GET /derivations/{drv}`
pub(crate) async fn derivation(State(state): State<AppState>, p: Result<Path<String>, PathRejection>) -> PageResult {
    let raw = path_param(p)?;
    let drv = DrvPath::from_basename_lenient(&raw).map_err(|e| WebError::NotFound(e.to_string()))?;
    let report = service::derivations::report(&state, drv).await?;
    let name = report.drv_path.as_store_path().name().to_owned();
    let content = html! {
        p.crumbs { "Derivation" }
        h1.path-title { (name) }
        p { code.full { (report.drv_path.as_str()) } }
        h2 { "Outputs" }
        div.scroll { table {
            thead { tr { th scope="col" { "Output" } th scope="col" { "Path" } th scope="col" { "Status" } th scope="col" { "NAR hashes and builders" } } }
            tbody {
                @for (out, o) in &report.outputs {
                    tr {
                        th scope="row" { (out.as_str()) }
                        td { (output_link(&o.output_path)) }
                        td { (status_badge(o.status)) }
                        td { ul.plain { @for r in &o.results {
                            li { code.hash { (r.nar_hash.to_sri()) } " — "
                                 @for (j, b) in r.builders.iter().enumerate() { @if j > 0 { ", " } (builder_link(b)) } }
                        } } }
                    }
                }
            }
        } }
        @if !report.disputed.is_empty() {
            h2 { "Disputed outputs" }
            p.hint { "Output names only a minority of this derivation's builders named; no status is given for them." }
            ul { @for (out, d) in &report.disputed {
                li { strong { (out.as_str()) } " → " (output_link(&d.output_path)) ", named by "
                     @for (j, b) in d.claimed_by.iter().enumerate() { @if j > 0 { ", " } (builder_link(b)) } }
            } }
        }
        (json_link(&format!("/v1/derivations/{}", report.drv_path.as_store_path().basename())))
    };
    ok(layout(&name, content))
}
