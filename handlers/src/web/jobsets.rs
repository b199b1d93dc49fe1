//! `/jobsets/{name}` and `/jobsets/{name}/{rev}`.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use maud::{html, Markup};
use nhc_core::{JobsetName, ReproStatus, Rev};
use nhc_jobset::query::MAX_QUERY_TEXT;
use serde::Deserialize;

use super::outputs::{drv_link, output_link, query};
use super::{charts, json_link, layout, ok, percent, qs, status_badge, status_label, thousands, PageResult, WebError};
use crate::service::jobsets::{self as service, PathOrder};
use crate::state::AppState;

/// Paths per page of an evaluation.
pub(crate) const EVAL_PAGE: usize = 100;
/// Evaluations in the trend chart and the table of a jobset.
pub(crate) const HISTORY_SHOWN: usize = 100;
/// Rows of each list of the diff shown.
pub(crate) const DIFF_SHOWN: usize = 50;
/// Highest page number accepted.
const MAX_PAGE: usize = 1_000_000;

fn jobset_name(s: &str) -> Result<JobsetName, WebError> {
    JobsetName::parse(s).map_err(|e| WebError::NotFound(e.to_string()))
}

fn jobset_param(p: Result<Path<String>, PathRejection>) -> Result<String, WebError> {
    super::outputs::path_param(p)
}

/// `GET /jobsets/{name}`
pub(crate) async fn jobset(State(state): State<AppState>, p: Result<Path<String>, PathRejection>) -> PageResult {
    let name = jobset_name(&jobset_param(p)?)?;
    let detail = service::detail(&state, &name).await?;
    let shown: Vec<_> = detail.evaluations.iter().take(HISTORY_SHOWN).collect();
    let points: Vec<(String, nhc_core::Summary)> =
        shown.iter().rev().map(|e| (e.rev.as_str().to_owned(), e.summary)).collect();
    let content = html! {
        p.crumbs { a href="/" { "Jobsets" } }
        h1 { (name.as_str()) }
        @if !detail.description.is_empty() { p.description { (detail.description) } }
        @if shown.is_empty() {
            p { "No evaluation was uploaded yet." }
        } @else {
            h2 { "Trend" }
            figure { (charts::trend(&points)) figcaption { (charts::legend(&shown[0].summary)) p.hint { "Legend counts: the latest evaluation." } } }
            h2 { "Evaluations" }
            div.scroll { table {
                thead { tr {
                    th scope="col" { "Revision" } th scope="col" { "Uploaded" } th scope="col" { "Paths" }
                    @for st in ReproStatus::ALL { th scope="col" { span class={ "st st-" (st.as_str()) } { (status_label(st)) } } }
                } }
                tbody { @for e in &shown {
                    tr {
                        th scope="row" { a.rev href={ "/jobsets/" (name.as_str()) "/" (e.rev.as_str()) } { (e.rev.as_str()) } }
                        td { time datetime=(e.created_at) { (e.created_at[..10]) " " (e.created_at[11..16]) " UTC" } }
                        td.num { (thousands(e.paths)) }
                        @for st in ReproStatus::ALL {
                            td.num { (thousands(e.summary.count(st))) " " span.pct { (percent(e.summary.count(st), e.summary.total())) } }
                        }
                    }
                } }
            } }
            @if detail.evaluations.len() > shown.len() {
                p.hint { "The newest " (shown.len()) " of " (detail.evaluations.len()) " evaluations are shown." }
            }
        }
        (json_link(&format!("/v1/jobsets/{name}")))
    };
    ok(layout(name.as_str(), content))
}

#[derive(Deserialize, Default)]
pub(crate) struct EvalQuery {
    status: Option<String>,
    q: Option<String>,
    sort: Option<String>,
    page: Option<String>,
}

/// The checked query of an evaluation page.
struct EvalParams {
    status: Option<ReproStatus>,
    q: Option<String>,
    sort: PathOrder,
    page: usize,
}

impl EvalParams {
    fn parse(q: EvalQuery) -> Result<Self, WebError> {
        let status = match q.status.as_deref() {
            None | Some("") | Some("all") => None,
            Some(s) => Some(ReproStatus::parse(s).map_err(|e| WebError::BadRequest(e.to_string()))?),
        };
        let text = match q.q.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(t) if t.len() <= MAX_QUERY_TEXT && !t.chars().any(char::is_control) => Some(t.to_owned()),
            Some(_) => {
                return Err(WebError::BadRequest(format!(
                    "search: at most {MAX_QUERY_TEXT} bytes, no control characters"
                )))
            }
        };
        let sort = match q.sort.as_deref() {
            None | Some("") | Some("evaluation") => PathOrder::Evaluation,
            Some("name") => PathOrder::Name,
            Some("status") => PathOrder::Status,
            Some(_) => return Err(WebError::BadRequest("sort: one of evaluation, name, status".into())),
        };
        let page = match q.page.as_deref() {
            None | Some("") => 1,
            Some(p) => p
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| WebError::BadRequest(format!("page: a number from 1 to {MAX_PAGE}")))?,
        };
        Ok(EvalParams { status, q: text, sort, page })
    }

    fn sort_str(&self) -> &'static str {
        match self.sort {
            PathOrder::Evaluation => "evaluation",
            PathOrder::Name => "name",
            PathOrder::Status => "status",
        }
    }

    /// This query on another page.
    fn href(&self, base: &str, page: usize) -> String {
        let mut s = format!("{base}?");
        if let Some(st) = self.status {
            s.push_str(&format!("status={}&", st.as_str()));
        }
        if let Some(t) = &self.q {
            s.push_str(&format!("q={}&", qs(t)));
        }
        if self.sort != PathOrder::Evaluation {
            s.push_str(&format!("sort={}&", self.sort_str()));
        }
        s.push_str(&format!("page={page}"));
        s
    }
}

/// `GET /jobsets/{name}/{rev}?status=&q=&sort=&page=`
pub(crate) async fn evaluation(
    State(state): State<AppState>,
    p: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<EvalQuery>, QueryRejection>,
) -> PageResult {
    let (raw_name, raw_rev) =
        p.map(|Path(t)| t).map_err(|e| WebError::BadRequest(format!("invalid path: {}", e.body_text())))?;
    let name = jobset_name(&raw_name)?;
    let rev = Rev::parse(&raw_rev).map_err(|e| WebError::NotFound(e.to_string()))?;
    let params = EvalParams::parse(query(q)?)?;
    let offset = (params.page - 1) * EVAL_PAGE;
    let view =
        service::view(&state, &name, &rev, params.status, params.q.as_deref(), params.sort, offset, EVAL_PAGE).await?;
    let detail_desc = &view.description;
    let diff = match &view.previous {
        Some(prev) => Some((prev.clone(), service::diff(&state, &name, &rev, prev).await?)),
        None => None,
    };
    let base = format!("/jobsets/{}/{}", name.as_str(), rev.as_str());
    let pages = (view.matching as usize).div_ceil(EVAL_PAGE).max(1);
    let first = offset + 1;
    let last = offset + view.items.len();
    let content = html! {
        p.crumbs { a href="/" { "Jobsets" } " / " a href={ "/jobsets/" (name.as_str()) } { (name.as_str()) } }
        h1 { (name.as_str()) " " span.rev { (rev.as_str()) } }
        @if !detail_desc.is_empty() { p.description { (detail_desc) } }
        p { (thousands(view.evaluation.paths)) " paths, uploaded " (super::time(view.evaluation.created_at, state.now())) "." }
        (charts::summary_bar(&view.summary))
        h2 id="paths" { "Paths" }
        form.filter method="get" action=(base) {
            div {
                label for="f-status" { "Status" }
                select id="f-status" name="status" {
                    option value="" selected[params.status.is_none()] { "all" }
                    @for st in ReproStatus::ALL {
                        option value=(st.as_str()) selected[params.status == Some(st)] { (status_label(st)) " (" (thousands(view.summary.count(st))) ")" }
                    }
                }
            }
            div {
                label for="f-q" { "Name contains" }
                input id="f-q" type="search" name="q" maxlength=(MAX_QUERY_TEXT) value=[params.q.as_deref()];
            }
            div {
                label for="f-sort" { "Sort by" }
                select id="f-sort" name="sort" {
                    option value="evaluation" selected[params.sort == PathOrder::Evaluation] { "evaluation order" }
                    option value="name" selected[params.sort == PathOrder::Name] { "name" }
                    option value="status" selected[params.sort == PathOrder::Status] { "status, worst first" }
                }
            }
            button type="submit" { "Apply" }
        }
        p.count {
            @if view.matching == 0 { "No path matches." }
            @else if view.items.is_empty() { "No path on this page; " a href=(params.href(&base, 1)) { "go to the first page" } "." }
            @else { "Paths " (thousands(first as u64)) "–" (thousands(last as u64)) " of " (thousands(view.matching)) " matching." }
        }
        @if !view.items.is_empty() {
            div.scroll { table.paths {
                thead { tr { th scope="col" { "Path" } th scope="col" { "Status" } th scope="col" { "Builders" }
                             th scope="col" { "Hashes" } th scope="col" { "Derivation" } } }
                tbody { @for i in &view.items {
                    tr {
                        td { (output_link(&i.path)) @if let Some(o) = &i.output_name { " " span.out { (o.as_str()) } } }
                        td { (status_badge(i.status)) }
                        td.num { (i.builders) }
                        td.num { (i.distinct_hashes) }
                        td { @if let Some(d) = &i.drv_path { (drv_link(d)) } }
                    }
                } }
            } }
        }
        nav.pager aria-label="Pages" {
            @if params.page > 1 { a rel="prev" href=(params.href(&base, params.page - 1)) { "← Previous" } }
            span { "Page " (params.page) " of " (pages) }
            @if params.page < pages { a rel="next" href=(params.href(&base, params.page + 1)) { "Next →" } }
        }
        @if let Some((prev, d)) = &diff {
            h2 id="diff" { "Since " a.rev href={ "/jobsets/" (name.as_str()) "/" (prev.as_str()) } { (prev.as_str()) } }
            p { (thousands(d.changed.len() as u64)) " paths changed status, "
                (thousands(d.added.len() as u64)) " were added, " (thousands(d.removed.len() as u64)) " removed." }
            @if !d.changed.is_empty() {
                (diff_block("Changed status", d.changed.len(), html! {
                    div.scroll { table {
                        thead { tr { th scope="col" { "Name" } th scope="col" { "Before" } th scope="col" { "Now" } } }
                        tbody { @for c in d.changed.iter().take(DIFF_SHOWN) {
                            tr { td { (output_link(&c.to_path)) } td { (status_badge(c.from)) } td { (status_badge(c.to)) } }
                        } }
                    } }
                }))
            }
            @if !d.added.is_empty() {
                (diff_block("Added", d.added.len(), html! { ul.refs { @for p in d.added.iter().take(DIFF_SHOWN) { li { (output_link(p)) } } } }))
            }
            @if !d.removed.is_empty() {
                (diff_block("Removed", d.removed.len(), html! { ul.refs { @for p in d.removed.iter().take(DIFF_SHOWN) { li { (output_link(p)) } } } }))
            }
            p.json { "The whole diff: " a href={ "/v1/jobsets/" (name.as_str()) "/evaluations/" (rev.as_str()) "/diff/" (prev.as_str()) } { "as JSON" } }
        }
        (json_link(&format!("/v1/jobsets/{}/evaluations/{}", name.as_str(), rev.as_str())))
    };
    ok(layout(&format!("{} {}", name.as_str(), rev.as_str()), content))
}

fn diff_block(title: &str, n: usize, body: Markup) -> Markup {
    html! {
        details.diff open[n <= 10] {
            summary { (title) " (" (thousands(n as u64)) ")" @if n > DIFF_SHOWN { ", the first " (DIFF_SHOWN) " shown" } }
            (body)
        }
    }
}
