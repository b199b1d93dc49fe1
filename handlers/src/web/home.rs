//! `/`: what the collection holds and every jobset with its latest share.

use axum::extract::State;
use maud::html;
use nhc_core::ReproStatus;

use super::{charts, json_link, layout, ok, percent, thousands, time, PageResult};
use crate::service;
use crate::state::AppState;

/// Jobsets listed on the overview (the rest are still reachable by URL and `/v1/jobsets`).
pub(crate) const MAX_JOBSETS: usize = 200;
/// Evaluations in each jobset's trend line.
const TREND: u32 = 20;

/// `GET /`
pub(crate) async fn page(State(state): State<AppState>) -> PageResult {
    let builders = state.store.list_builders().await?;
    let mut jobsets = service::jobsets::list(&state).await?;
    let more = jobsets.len().saturating_sub(MAX_JOBSETS);
    jobsets.truncate(MAX_JOBSETS);
    let records = state.store.list_jobsets().await?;
    let mut rows = Vec::with_capacity(jobsets.len());
    for j in jobsets {
        // The cached summaries, oldest first, for the trend line.
        let shares: Vec<f64> = match records.iter().find(|r| r.name == j.name) {
            Some(r) => {
                let mut evs = state.store.evaluations(r.id, TREND).await?;
                evs.reverse();
                evs.iter()
                    .filter(|e| e.summary.total() > 0)
                    .map(|e| e.summary.reproduced as f64 / e.summary.total() as f64)
                    .collect()
            }
            None => Vec::new(),
        };
        rows.push((j, shares));
    }
    let now = state.now();
    let content = html! {
        h1 { "Reproducibility of Nix builds" }
        p.lead { "Builders sign the NAR hash of every output they build; this collection compares them. "
                 "A path is " span class="st st-reproduced" { "reproduced" } " when two or more builders got the same bytes." }
        section.stats aria-label="The collection" {
            div.stat { span.n { (thousands(builders.len() as u64)) } " " a href="/builders" { "builders" } }
            div.stat { span.n { (thousands(rows.len() as u64 + more as u64)) } " jobsets" }
        }
        h2 { "Jobsets" }
        @if rows.is_empty() {
            p { "No jobset yet. An administrator adds one with " code { "nhc-server jobset add" } "." }
        } @else {
            div.scroll { table.jobsets {
                thead { tr {
                    th scope="col" { "Jobset" } th scope="col" { "Latest evaluation" } th scope="col" { "Paths" }
                    th scope="col" { "Reproduced" } th scope="col" { "Disagreements" } th scope="col" { "Trend" }
                } }
                tbody { @for (j, shares) in &rows {
                    tr {
                        th scope="row" {
                            a href={ "/jobsets/" (j.name.as_str()) } { (j.name.as_str()) }
                            @if !j.description.is_empty() { div.desc { (j.description) } }
                        }
                        @match &j.latest {
                            Some(e) => {
                                @let total = e.summary.total();
                                @let differ = e.summary.not_reproduced + e.summary.partially_reproduced;
                                td { a.rev href={ "/jobsets/" (j.name.as_str()) "/" (e.rev.as_str()) } { (e.rev.as_str()) } }
                                td.num { (thousands(e.paths)) }
                                td.num { strong { (percent(e.summary.reproduced, total)) } }
                                td.num {
                                    @if differ > 0 {
                                        a href={ "/jobsets/" (j.name.as_str()) "/" (e.rev.as_str()) "?status=" (ReproStatus::NotReproduced.as_str()) } {
                                            span class="st st-not_reproduced" { (thousands(differ)) " differ" } }
                                    } @else { "none" }
                                }
                            }
                            None => { td colspan="4" { "no evaluation yet" } }
                        }
                        td { (charts::sparkline(shares)) }
                    }
                } }
            } }
            @if more > 0 { p.hint { (thousands(more as u64)) " more jobsets are not listed here; see " a href="/v1/jobsets" { "/v1/jobsets" } "." } }
        }
        p.hint { "As of " (time(now, now)) "." }
        (json_link("/v1/jobsets"))
    };
    ok(layout("Overview", content))
}
