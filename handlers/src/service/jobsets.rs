//! Jobsets and evaluations (DESIGN.md, "Jobsets and evaluations"): what the jobset
//! routes and `nhc-server jobset ...` both do. Statuses are computed here from the
//! attestations with [`StatusSummary::from_votes`], the rule of `/v1/status`.

use std::collections::BTreeSet;

use nhc_core::api::TokenResponse;
use nhc_core::jobset::{
    CreateJobsetRequest, CreateJobsetResponse, EvaluationDiff, EvaluationPage, EvaluationPathStatus, EvaluationSummary,
    JobsetDetail, JobsetInfo, PutEvaluationResponse, SuggestItem, SuggestResponse, MAX_DESCRIPTION_BYTES,
};
use nhc_core::time::format_rfc3339;
use nhc_core::{
    BuilderName, DrvPath, JobsetName, NarHash, OutputName, ReproStatus, Rev, StatusSummary, StorePath, Summary,
};
use nhc_jobset::query::encode_cursor;
use nhc_jobset::{PageQuery, Upload};
use nhc_storage::{EvaluationRecord, JobsetRecord, NewEvaluation, NewEvaluationItem, NewToken, PutOutcome};
use sha2::{Digest, Sha256};

use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;

/// A cached summary is used while at most this old (microseconds).
pub const SUMMARY_MAX_AGE: i64 = 60_000_000;
/// Paths whose statuses one history request recomputes at most; further stale
/// summaries are shown as cached, with their `summary_at`.
pub const REFRESH_BUDGET: u64 = 500_000;
/// Evaluations listed in a jobset's history at most (newest first).
pub const MAX_HISTORY: u32 = 1000;
/// Paths read per query while scanning an evaluation.
const CHUNK: u64 = 5000;
/// `suggest`'s page sizes.
pub const DEFAULT_SUGGEST_LIMIT: u32 = 100;
pub const MAX_SUGGEST_LIMIT: u32 = 1000;

/// A random id below 2^53 (D1's numbers are doubles), never 0.
fn random_id() -> Result<i64, ApiError> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    Ok(((u64::from_le_bytes(b) >> 11) | 1) as i64)
}

/// A store path's id in `store_paths`: the first 53 bits of SHA-256(path), the same
/// on every deployment so that uploads never need to read ids back.
pub fn path_id(path: &StorePath) -> i64 {
    let h = Sha256::digest(path.as_str().as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    (u64::from_be_bytes(b) >> 11) as i64
}

fn no_jobset(name: &JobsetName) -> ApiError {
    ApiError::NotFound(format!("no jobset named {name}"))
}

fn no_evaluation(name: &JobsetName, rev: &Rev) -> ApiError {
    ApiError::NotFound(format!("jobset {name} has no evaluation {rev}"))
}

pub async fn find(state: &AppState, name: &JobsetName) -> Result<JobsetRecord, ApiError> {
    state.store.find_jobset(name).await?.ok_or_else(|| no_jobset(name))
}

async fn find_evaluation(
    state: &AppState,
    name: &JobsetName,
    rev: &Rev,
) -> Result<(JobsetRecord, EvaluationRecord), ApiError> {
    let j = find(state, name).await?;
    let e = state.store.find_evaluation(j.id, rev).await?.ok_or_else(|| no_evaluation(name, rev))?;
    Ok((j, e))
}

/// Creates a jobset (`POST /v1/admin/jobsets`, `nhc-server jobset add`).
pub async fn create(state: &AppState, req: CreateJobsetRequest) -> Result<CreateJobsetResponse, ApiError> {
    if req.description.len() > MAX_DESCRIPTION_BYTES {
        return Err(ApiError::InvalidRequest(format!("description: at most {MAX_DESCRIPTION_BYTES} bytes")));
    }
    if req.description.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::InvalidRequest("description: no control characters but newlines".into()));
    }
    let record =
        JobsetRecord { id: random_id()?, name: req.name, description: req.description, created_at: state.now() };
    state.store.create_jobset(&record).await?;
    tracing::info!(jobset = %record.name, "jobset created");
    Ok(CreateJobsetResponse { name: record.name })
}

/// Deletes a jobset with its evaluations and tokens.
pub async fn delete(state: &AppState, name: &JobsetName) -> Result<(), ApiError> {
    if !state.store.delete_jobset(name).await? {
        return Err(no_jobset(name));
    }
    tracing::info!(jobset = %name, "jobset deleted");
    Ok(())
}

/// A token that may upload evaluations of this jobset only, shown once.
pub async fn issue_token(state: &AppState, name: &JobsetName) -> Result<TokenResponse, ApiError> {
    let t = auth::issue()?;
    let stored = NewToken { id: t.id, secret_hash: t.secret_hash };
    if !state.store.add_jobset_token(name, &stored, state.now()).await? {
        return Err(no_jobset(name));
    }
    tracing::info!(jobset = %name, "jobset token issued");
    Ok(TokenResponse { token: t.token })
}

/// Who may upload an evaluation of `jobset`: the admin token or that jobset's token.
pub async fn authorize_upload(state: &AppState, token: Option<&str>, jobset: &JobsetName) -> Result<(), ApiError> {
    let token = token.ok_or_else(|| {
        ApiError::Unauthorized("missing token (Authorization: Bearer <the jobset's token or the admin token>)".into())
    })?;
    if let Some(expected) = &state.admin_token_hash {
        if auth::admin_matches(token, expected) {
            return Ok(());
        }
    }
    let unknown = || ApiError::Unauthorized("unknown token: use the jobset's token or the admin token".into());
    let presented = auth::PresentedToken::parse(token).ok_or_else(unknown)?;
    let record = state.store.find_jobset_token(&presented.id).await?.ok_or_else(unknown)?;
    if !presented.matches(&record.secret_hash) {
        return Err(unknown());
    }
    if record.revoked {
        return Err(ApiError::Unauthorized("token revoked".into()));
    }
    if &record.jobset != jobset {
        return Err(ApiError::Forbidden(format!("this token uploads evaluations of jobset {} only", record.jobset)));
    }
    Ok(())
}

/// Stores an evaluation (replacing the rev's); `true` when it is new.
pub async fn put_evaluation(
    state: &AppState,
    name: &JobsetName,
    rev: &Rev,
    upload: Upload,
) -> Result<(bool, PutEvaluationResponse), ApiError> {
    let j = find(state, name).await?;
    let items: Vec<NewEvaluationItem> = upload
        .items
        .into_iter()
        .map(|i| NewEvaluationItem {
            path_id: path_id(&i.path),
            path: i.path,
            drv_path: i.drv_path,
            output_name: i.output_name,
        })
        .collect();
    // Two paths of one upload with the same id cannot both be stored.
    let distinct: BTreeSet<i64> = items.iter().map(|i| i.path_id).collect();
    if distinct.len() != items.len() {
        return Err(collision());
    }
    let evaluation = NewEvaluation {
        id: random_id()?,
        jobset_id: j.id,
        rev: rev.clone(),
        created_at: state.now(),
        items,
        edges: upload.edges,
    };
    let created = match state.store.put_evaluation(&evaluation).await? {
        PutOutcome::Created => true,
        PutOutcome::Replaced => false,
        PutOutcome::PathIdCollision => return Err(collision()),
    };
    let paths = evaluation.items.len() as u64;
    tracing::info!(jobset = %name, %rev, paths, created, "evaluation stored");
    // The history's summary, right away; the evaluation stands even if this fails.
    let stored = EvaluationRecord {
        id: evaluation.id,
        rev: rev.clone(),
        created_at: evaluation.created_at,
        paths,
        summary: Summary::default(),
        summary_at: 0,
    };
    if let Err(e) = refresh_summary(state, &stored).await {
        tracing::warn!(jobset = %name, %rev, error = %e, "could not compute the new evaluation's summary");
    }
    Ok((created, PutEvaluationResponse { jobset: name.clone(), rev: rev.clone(), paths }))
}

fn collision() -> ApiError {
    tracing::error!("two store paths share a 53-bit path id; the upload was refused");
    ApiError::Unavailable("two store paths share an internal id (a hash collision); nothing was stored".into())
}

/// A path of an evaluation with its live status.
struct Scanned {
    ord: u64,
    path: StorePath,
    drv_path: Option<DrvPath>,
    output_name: Option<OutputName>,
    status: StatusSummary,
    builders: BTreeSet<BuilderName>,
}

/// Calls `f` with every path of the evaluation in order, with its live status; stops
/// early when `f` returns false.
async fn scan(state: &AppState, e: &EvaluationRecord, mut f: impl FnMut(Scanned) -> bool) -> Result<(), ApiError> {
    let mut from = 0;
    while from < e.paths {
        let to = (from + CHUNK).min(e.paths);
        let rows = state.store.evaluation_rows(e.id, from, to).await?;
        let mut rows = rows.into_iter().peekable();
        while let Some(first) = rows.next() {
            let ord = first.ord;
            let (mut drv_path, mut output_name) = (first.drv_path, first.output_name);
            let mut votes: Vec<(BuilderName, NarHash)> = Vec::new();
            let mut next = Some(first.vote);
            while let Some(vote) = next.take() {
                if let Some(v) = vote {
                    if drv_path.is_none() {
                        drv_path = v.drv_path;
                    }
                    if output_name.is_none() && drv_path.is_some() {
                        output_name = v.output_name;
                    }
                    votes.push((v.builder, v.nar_hash));
                }
                if rows.peek().is_some_and(|r| r.ord == ord) {
                    next = rows.next().map(|r| r.vote);
                }
            }
            let builders = votes.iter().map(|(b, _)| b.clone()).collect();
            let status = StatusSummary::from_votes(votes);
            if !f(Scanned { ord, path: first.path, drv_path, output_name, status, builders }) {
                return Ok(());
            }
        }
        from = to;
    }
    Ok(())
}

/// The live summary of an evaluation, also stored as its cached summary.
async fn refresh_summary(state: &AppState, e: &EvaluationRecord) -> Result<Summary, ApiError> {
    let at = state.now();
    let mut summary = Summary::default();
    scan(state, e, |s| {
        summary.add(s.status.status, 1);
        true
    })
    .await?;
    state.store.store_summary(e.id, &summary, at).await?;
    Ok(summary)
}

/// An evaluation as the history shows it; its summary recomputed when older than a
/// minute and `budget` (paths) allows.
async fn history_entry(state: &AppState, e: EvaluationRecord, budget: &mut u64) -> Result<EvaluationSummary, ApiError> {
    let now = state.now();
    let (summary, at) = if now.saturating_sub(e.summary_at) <= SUMMARY_MAX_AGE || *budget < e.paths {
        (e.summary, e.summary_at)
    } else {
        *budget -= e.paths;
        (refresh_summary(state, &e).await?, now)
    };
    Ok(EvaluationSummary {
        rev: e.rev,
        created_at: format_rfc3339(e.created_at),
        paths: e.paths,
        summary,
        summary_at: (at > 0).then(|| format_rfc3339(at)),
    })
}

/// `GET /v1/jobsets`: every jobset with its latest evaluation.
pub async fn list(state: &AppState) -> Result<Vec<JobsetInfo>, ApiError> {
    let mut budget = REFRESH_BUDGET;
    let mut out = Vec::new();
    for j in state.store.list_jobsets().await? {
        let latest = match state.store.evaluations(j.id, 1).await?.into_iter().next() {
            Some(e) => Some(history_entry(state, e, &mut budget).await?),
            None => None,
        };
        out.push(JobsetInfo { name: j.name, description: j.description, latest });
    }
    Ok(out)
}

/// `GET /v1/jobsets/{name}`: the history, newest first.
pub async fn detail(state: &AppState, name: &JobsetName) -> Result<JobsetDetail, ApiError> {
    let j = find(state, name).await?;
    let mut budget = REFRESH_BUDGET;
    let mut evaluations = Vec::new();
    for e in state.store.evaluations(j.id, MAX_HISTORY).await? {
        evaluations.push(history_entry(state, e, &mut budget).await?);
    }
    Ok(JobsetDetail { name: j.name, description: j.description, evaluations })
}

/// `GET /v1/jobsets/{name}/evaluations/{rev}`: live summary and one page of paths.
pub async fn page(state: &AppState, name: &JobsetName, rev: &Rev, q: PageQuery) -> Result<EvaluationPage, ApiError> {
    let (_, e) = find_evaluation(state, name, rev).await?;
    let at = state.now();
    let mut summary = Summary::default();
    let mut items: Vec<(u64, EvaluationPathStatus)> = Vec::new();
    let limit = q.limit as usize;
    scan(state, &e, |s| {
        summary.add(s.status.status, 1);
        let wanted = q.after.is_none_or(|a| s.ord > a)
            && items.len() <= limit
            && (q.statuses.is_empty() || q.statuses.contains(&s.status.status))
            && q.q.as_deref().is_none_or(|t| s.path.as_str().contains(t));
        if wanted {
            items.push((
                s.ord,
                EvaluationPathStatus {
                    path: s.path,
                    drv_path: s.drv_path,
                    output_name: s.output_name,
                    status: s.status.status,
                    builders: s.status.builders as u64,
                    distinct_hashes: s.status.distinct_hashes as u64,
                },
            ));
        }
        true
    })
    .await?;
    // The scan saw every path: the cache may as well have it.
    if at.saturating_sub(e.summary_at) > SUMMARY_MAX_AGE {
        state.store.store_summary(e.id, &summary, at).await?;
    }
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = if more { items.last().map(|(ord, _)| encode_cursor(*ord)) } else { None };
    Ok(EvaluationPage {
        jobset: name.clone(),
        rev: e.rev,
        created_at: format_rfc3339(e.created_at),
        paths: e.paths,
        summary,
        items: items.into_iter().map(|(_, i)| i).collect(),
        next_cursor,
    })
}

/// How the web page of an evaluation orders its paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathOrder {
    /// As uploaded.
    Evaluation,
    /// By name (what follows the hash), then path.
    Name,
    /// Worst first: not reproduced, partially, one builder, no builds, reproduced.
    Status,
}

/// One filtered, sorted window of an evaluation's paths (the web page's view).
pub struct EvaluationView {
    /// The jobset's description.
    pub description: String,
    pub evaluation: EvaluationRecord,
    /// The live summary of every path.
    pub summary: Summary,
    /// Paths that pass the filter.
    pub matching: u64,
    /// Up to `limit` of them from `offset`, in the order asked.
    pub items: Vec<EvaluationPathStatus>,
    /// The evaluation before this one, if any.
    pub previous: Option<Rev>,
}

fn status_rank(s: ReproStatus) -> u8 {
    match s {
        ReproStatus::NotReproduced => 0,
        ReproStatus::PartiallyReproduced => 1,
        ReproStatus::OneBuilder => 2,
        ReproStatus::NoBuilds => 3,
        ReproStatus::Reproduced => 4,
    }
}

/// The paths of an evaluation filtered by `status` and `q` (a substring of the path),
/// sorted by `order`, `limit` of them from `offset`. One scan of the evaluation; the
/// matching paths are held while sorting (bounded by the evaluation's size).
#[allow(clippy::too_many_arguments)]
pub async fn view(
    state: &AppState,
    name: &JobsetName,
    rev: &Rev,
    status: Option<ReproStatus>,
    q: Option<&str>,
    order: PathOrder,
    offset: usize,
    limit: usize,
) -> Result<EvaluationView, ApiError> {
    let (j, e) = find_evaluation(state, name, rev).await?;
    let mut summary = Summary::default();
    let mut matching: Vec<EvaluationPathStatus> = Vec::new();
    let mut count = 0u64;
    let keep_all = order != PathOrder::Evaluation;
    scan(state, &e, |s| {
        summary.add(s.status.status, 1);
        let wanted = status.is_none_or(|st| st == s.status.status) && q.is_none_or(|t| s.path.as_str().contains(t));
        if wanted {
            count += 1;
            // In upload order only the window is kept.
            if keep_all || (count as usize > offset && matching.len() < limit) {
                matching.push(EvaluationPathStatus {
                    path: s.path,
                    drv_path: s.drv_path,
                    output_name: s.output_name,
                    status: s.status.status,
                    builders: s.status.builders as u64,
                    distinct_hashes: s.status.distinct_hashes as u64,
                });
            }
        }
        true
    })
    .await?;
    let items = match order {
        PathOrder::Evaluation => matching,
        PathOrder::Name | PathOrder::Status => {
            if order == PathOrder::Name {
                matching.sort_by(|a, b| (a.path.name(), &a.path).cmp(&(b.path.name(), &b.path)));
            } else {
                // Stable: upload order within a status.
                matching.sort_by_key(|i| status_rank(i.status));
            }
            matching.into_iter().skip(offset).take(limit).collect()
        }
    };
    // The history is newest first: the evaluation after this one in it is the previous.
    let history = state.store.evaluations(j.id, MAX_HISTORY).await?;
    let previous = history.iter().position(|h| h.id == e.id).and_then(|i| history.get(i + 1)).map(|h| h.rev.clone());
    Ok(EvaluationView { description: j.description, evaluation: e, summary, matching: count, items, previous })
}

async fn statuses(state: &AppState, e: &EvaluationRecord) -> Result<Vec<(StorePath, ReproStatus)>, ApiError> {
    let mut out = Vec::with_capacity(e.paths as usize);
    scan(state, e, |s| {
        out.push((s.path, s.status.status));
        true
    })
    .await?;
    Ok(out)
}

/// `GET .../evaluations/{rev}/diff/{other_rev}`: what changed from `other` to `rev`.
pub async fn diff(state: &AppState, name: &JobsetName, rev: &Rev, other: &Rev) -> Result<EvaluationDiff, ApiError> {
    let (j, to) = find_evaluation(state, name, rev).await?;
    let from = state.store.find_evaluation(j.id, other).await?.ok_or_else(|| no_evaluation(name, other))?;
    let (from, to) = (statuses(state, &from).await?, statuses(state, &to).await?);
    Ok(nhc_jobset::diff(&from, &to))
}

/// `GET /v1/jobsets/{name}/badge.svg`: the latest evaluation's reproduced share.
pub async fn badge(state: &AppState, name: &JobsetName) -> Result<String, ApiError> {
    let j = find(state, name).await?;
    let mut budget = REFRESH_BUDGET;
    let summary = match state.store.evaluations(j.id, 1).await?.into_iter().next() {
        Some(e) => Some(history_entry(state, e, &mut budget).await?.summary),
        None => None,
    };
    Ok(nhc_jobset::badge_svg(summary.as_ref()))
}

/// `GET .../evaluations/{rev}/suggest?builder=&limit=`: what `builder` could build to
/// help most, in the evaluation's order: paths only one other builder built (a second
/// build decides them), then paths nobody built; never one it attested already.
pub async fn suggest(
    state: &AppState,
    name: &JobsetName,
    rev: &Rev,
    builder: &BuilderName,
    limit: u32,
) -> Result<SuggestResponse, ApiError> {
    if !state.store.builder_known(builder).await? {
        return Err(ApiError::NotFound(format!("no builder named {builder}")));
    }
    let (_, e) = find_evaluation(state, name, rev).await?;
    let limit = limit as usize;
    let (mut one, mut none) = (Vec::new(), Vec::new());
    scan(state, &e, |s| {
        let list = match s.status.status {
            ReproStatus::OneBuilder if !s.builders.contains(builder) => &mut one,
            ReproStatus::NoBuilds => &mut none,
            _ => return true,
        };
        if list.len() < limit {
            list.push(SuggestItem {
                path: s.path,
                drv_path: s.drv_path,
                output_name: s.output_name,
                status: s.status.status,
            });
        }
        one.len() < limit
    })
    .await?;
    one.extend(none);
    one.truncate(limit);
    Ok(SuggestResponse { items: one })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_fit_d1_numbers() {
        let p = StorePath::parse("/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello").unwrap();
        let q = StorePath::parse("/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hellp").unwrap();
        assert_eq!(path_id(&p), path_id(&p.clone()));
        assert_ne!(path_id(&p), path_id(&q));
        for id in [path_id(&p), path_id(&q), random_id().unwrap(), random_id().unwrap()] {
            assert!((0..1 << 53).contains(&id), "{id}");
        }
        assert_ne!(random_id().unwrap(), random_id().unwrap());
    }
}
