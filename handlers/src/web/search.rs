//! `/search?q=`: a store path, a basename, a `.drv`, a hash part, a builder or jobset
//! name go straight to their page; other text is looked for among the paths of each
//! jobset's latest evaluation.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use maud::html;
use nhc_core::{BuilderName, DrvPath, JobsetName, StorePath};
use nhc_jobset::query::MAX_QUERY_TEXT;
use serde::Deserialize;

use super::outputs::{output_link, query};
use super::{layout, ok, status_badge, PageResult, WebError};
use crate::service::jobsets::{self as jobsets, PathOrder};
use crate::state::AppState;

/// Jobsets whose latest evaluation is searched, and results shown from each.
const SEARCHED_JOBSETS: usize = 20;
const RESULTS_PER_JOBSET: usize = 20;

#[derive(Deserialize, Default)]
pub(crate) struct SearchQuery {
    q: Option<String>,
}

fn see_other(location: String) -> PageResult {
    let value = HeaderValue::from_str(&location).map_err(|_| WebError::BadRequest("not a valid location".into()))?;
    let mut res = StatusCode::SEE_OTHER.into_response();
    res.headers_mut().insert(LOCATION, value);
    Ok(res)
}

/// Where a typed text leads directly, if anywhere.
async fn direct(state: &AppState, text: &str) -> Result<Option<String>, WebError> {
    let base = text.strip_prefix("/nix/store/").map(|rest| rest.split('/').next().unwrap_or(rest)).unwrap_or(text);
    if base.ends_with(".drv") {
        if let Ok(d) = DrvPath::from_basename_lenient(base) {
            return Ok(Some(format!("/derivations/{}", d.as_store_path().basename())));
        }
    }
    if let Ok(p) = StorePath::from_basename(base) {
        return Ok(Some(format!("/outputs/{}", p.basename())));
    }
    if nhc_core::store_path::is_hash_part(base) {
        let rows = state.store.attestations_by_hash_part(base, None).await?;
        if let Some(r) = rows.first() {
            return Ok(Some(format!("/outputs/{}", r.output_path.basename())));
        }
    }
    if let Ok(b) = BuilderName::parse(text) {
        if state.store.builder_known(&b).await? {
            return Ok(Some(format!("/builders/{}", b.as_str())));
        }
    }
    if let Ok(j) = JobsetName::parse(text) {
        if state.store.find_jobset(&j).await?.is_some() {
            return Ok(Some(format!("/jobsets/{}", j.as_str())));
        }
    }
    Ok(None)
}

/// `GET /search?q=`
pub(crate) async fn page(State(state): State<AppState>, q: Result<Query<SearchQuery>, QueryRejection>) -> PageResult {
    let q: SearchQuery = query(q)?;
    let text = q.q.as_deref().map(str::trim).unwrap_or("");
    if text.len() > MAX_QUERY_TEXT || text.chars().any(char::is_control) {
        return Err(WebError::BadRequest(format!("search: at most {MAX_QUERY_TEXT} bytes, no control characters")));
    }
    if !text.is_empty() {
        if let Some(to) = direct(&state, text).await? {
            return see_other(to);
        }
    }
    // A package name: the paths of each jobset's latest evaluation that contain it.
    let mut found = Vec::new();
    if !text.is_empty() {
        for j in state.store.list_jobsets().await?.into_iter().take(SEARCHED_JOBSETS) {
            let Some(e) = state.store.evaluations(j.id, 1).await?.into_iter().next() else { continue };
            let v = jobsets::view(&state, &j.name, &e.rev, None, Some(text), PathOrder::Name, 0, RESULTS_PER_JOBSET)
                .await?;
            if v.matching > 0 {
                found.push((j.name, e.rev, v));
            }
        }
    }
    let content = html! {
        h1 { "Search" }
        form.filter role="search" method="get" action="/search" {
            div {
                label for="s-q" { "Store path, .drv, hash, builder, jobset or package name" }
                input id="s-q" type="search" name="q" maxlength=(MAX_QUERY_TEXT) value=(text);
            }
            button type="submit" { "Search" }
        }
        @if text.is_empty() {
            p.hint { "A store path or its basename opens the output, a .drv its derivation; a name is looked for among "
                     "the paths of every jobset's latest evaluation." }
        } @else if found.is_empty() {
            p.message { "Nothing matches " q { (text) } "." }
        } @else {
            @for (name, rev, v) in &found {
                h2 { a href={ "/jobsets/" (name.as_str()) "/" (rev.as_str()) "?q=" (super::qs(text)) } { (name.as_str()) " " span.rev { (rev.as_str()) } } }
                p.hint { (v.matching) " paths contain " q { (text) } @if v.matching as usize > v.items.len() { "; the first " (v.items.len()) " by name" } "." }
                ul.refs { @for i in &v.items { li { (output_link(&i.path)) " " (status_badge(i.status)) } } }
            }
        }
    };
    ok(layout("Search", content))
}
