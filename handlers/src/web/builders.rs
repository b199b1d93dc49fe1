//! `/builders` and `/builders/{name}`. (`/builders/{name}/{hash}.narinfo` and
//! `/builders/{name}/nix-cache-info` stay the binary-cache view.)

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use maud::html;
use nhc_core::time::format_rfc3339;
use nhc_core::{BuilderName, NarHash, StorePath};
use nhc_storage::Cursor;

use super::outputs::{output_link, path_param, query, CursorQuery};
use super::{charts, json_link, layout, ok, percent, qs, thousands, time, PageResult, WebError};
use crate::api::page;
use crate::state::AppState;

/// Attestations shown per page of a builder.
pub(crate) const BUILDER_PAGE: u32 = 100;

/// `GET /builders`
pub(crate) async fn list(State(state): State<AppState>) -> PageResult {
    let builders = state.store.list_builders().await?;
    let now = state.now();
    let content = html! {
        h1 { "Builders" }
        p.hint { "Each builder signs the NAR hashes of what it built with its own keys. "
                 "Builders that were deleted are not listed; their attestations stay." }
        @if builders.is_empty() {
            p { "No builder is registered yet." }
        } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Public keys" } th scope="col" { "Registered" } } }
                tbody { @for b in &builders {
                    tr {
                        th scope="row" { a href={ "/builders/" (b.name.as_str()) } { (b.name.as_str()) } }
                        td { ul.plain { @for k in &b.public_keys { li { code.key { (k.to_string()) } } } } }
                        td { (time(b.created_at, now)) }
                    }
                } }
            } }
        }
        (json_link("/v1/builders"))
    };
    ok(layout("Builders", content))
}

/// Whether the other builders got the same hash as this one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Agreement {
    Agrees,
    Differs,
    Alone,
}

/// `GET /builders/{name}`
pub(crate) async fn builder(
    State(state): State<AppState>,
    p: Result<Path<String>, PathRejection>,
    q: Result<Query<CursorQuery>, QueryRejection>,
) -> PageResult {
    let raw = path_param(p)?;
    let q: CursorQuery = query(q)?;
    let name = BuilderName::parse(&raw).map_err(|e| WebError::NotFound(e.to_string()))?;
    let cursor = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            page::decode_cursor(c, |s| StorePath::from_basename(s).ok())
                .map(|(submitted_at, output_path, nar_hash)| Cursor { submitted_at, output_path, nar_hash })
                .ok_or_else(|| WebError::BadRequest("invalid cursor".into()))?,
        ),
    };
    if !state.store.builder_known(&name).await? {
        return Err(WebError::NotFound(format!("No builder is named {name}.")));
    }
    let record = state.store.list_builders().await?.into_iter().find(|b| b.name == name);
    let mut rows = state.store.builder_attestations(&name, cursor.as_ref(), BUILDER_PAGE + 1).await?;
    let next = page::cut(&mut rows, BUILDER_PAGE, |r| {
        page::encode_cursor(r.submitted_at, r.output_path.basename(), &r.nar_hash)
    });
    // What the other builders reported for the paths of this page.
    let paths: Vec<StorePath> =
        rows.iter().map(|r| r.output_path.clone()).collect::<HashSet<_>>().into_iter().collect();
    let mut others: HashMap<StorePath, HashSet<NarHash>> = HashMap::new();
    for v in state.store.votes_of_paths(&paths).await? {
        if v.builder != name {
            others.entry(v.output_path).or_default().insert(v.nar_hash);
        }
    }
    let agreement = |path: &StorePath, hash: &NarHash| match others.get(path) {
        None => Agreement::Alone,
        Some(hs) if hs.contains(hash) => Agreement::Agrees,
        Some(_) => Agreement::Differs,
    };
    let (mut agrees, mut differs, mut alone) = (0u64, 0u64, 0u64);
    let mut days: BTreeMap<String, u64> = BTreeMap::new();
    for r in &rows {
        match agreement(&r.output_path, &r.nar_hash) {
            Agreement::Agrees => agrees += 1,
            Agreement::Differs => differs += 1,
            Agreement::Alone => alone += 1,
        }
        *days.entry(format_rfc3339(r.submitted_at)[..10].to_owned()).or_default() += 1;
    }
    let compared = agrees + differs;
    let days: Vec<(String, u64)> = days.into_iter().collect();
    let now = state.now();
    let content = html! {
        p.crumbs { a href="/builders" { "Builders" } }
        h1 { (name.as_str()) }
        @match &record {
            Some(b) => {
                p { "Registered " (time(b.created_at, now)) "." }
                h2 { "Public keys" }
                ul.plain { @for k in &b.public_keys { li { code.key { (k.to_string()) } } } }
                p.hint { "Its binary-cache view (narinfo with its own signatures): " code { "/builders/" (name.as_str()) } }
            }
            None => { p.message { "This builder was deleted; its attestations stay." } }
        }
        h2 { "Agreement with the other builders" }
        @if rows.is_empty() {
            p { "No attestations." }
        } @else {
            p { "Of the " (thousands(rows.len() as u64)) " attestations on this page, "
                strong { (thousands(compared)) } " are of paths another builder built too: "
                span class="st st-reproduced" { "same hash" } " " (thousands(agrees)) " (" (percent(agrees, compared)) "), "
                span class="st st-not_reproduced" { "other hash" } " " (thousands(differs)) " (" (percent(differs, compared)) "); "
                (thousands(alone)) " nobody else built." }
            h2 { "Activity" }
            p.hint { "Attestations per day on this page." }
            (charts::activity(&days))
        }
        h2 { "Attestations" }
        p.hint { "Newest first." }
        div.scroll { table {
            thead { tr { th scope="col" { "Output" } th scope="col" { "NAR hash" } th scope="col" { "Others" }
                         th scope="col" { "Submitted" } } }
            tbody { @for r in &rows {
                tr {
                    td { (output_link(&r.output_path)) }
                    td { code.hash { (r.nar_hash.to_sri()) } }
                    td { @match agreement(&r.output_path, &r.nar_hash) {
                        Agreement::Agrees => span class="st st-reproduced" { "same hash" },
                        Agreement::Differs => span class="st st-not_reproduced" { "other hash" },
                        Agreement::Alone => span class="st st-one_builder" { "nobody else" },
                    } }
                    td { (time(r.submitted_at, now)) }
                }
            } }
        } }
        nav.pager aria-label="Pages" {
            @if q.cursor.is_some() { a href={ "/builders/" (name.as_str()) } { "← Newest" } }
            @if let Some(c) = &next { a rel="next" href={ "/builders/" (name.as_str()) "?cursor=" (qs(c)) } { "Older →" } }
        }
        (json_link(&format!("/v1/builders/{name}/attestations")))
    };
    ok(layout(name.as_str(), content))
}
