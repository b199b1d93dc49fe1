//! Jobsets and evaluations (DESIGN.md, "Jobsets and evaluations"): what the jobset
//! routes and `nhc-server jobset ...` both do. Statuses are computed here from the
//! attestations with [`StatusSummary::from_votes`], the rule of `/v1/status`.

use std::collections::{BTreeSet, HashMap};

use nhc_core::api::TokenResponse;
use nhc_core::jobset::{
    CreateJobsetRequest, CreateJobsetResponse, EvaluationDiff, EvaluationPage, EvaluationPathStatus, EvaluationSummary,
    JobsetDetail, JobsetInfo, PutEvaluationResponse, SuggestItem, SuggestResponse, MAX_DESCRIPTION_BYTES,
};
use nhc_core::time::format_rfc3339;
use nhc_core::{BuilderName, JobsetName, ReproStatus, Rev, StatusSummary, StorePath, Summary};
use nhc_jobset::query::encode_cursor;
use nhc_jobset::{PageQuery, Upload};
use nhc_storage::{
    status_bit, status_mask, EvaluationItemRow, EvaluationRecord, ItemQuery, JobsetRecord, NewEvaluation,
    NewEvaluationItem, NewToken, PutOutcome, VoteCounts, ALL_STATUSES,
};
use sha2::{Digest, Sha256};

use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;

/// Paths whose statuses one history request recomputes at most; further invalid
/// summaries are shown as cached, with their older `summary_at`.
pub const REFRESH_BUDGET: u64 = 500_000;
/// Evaluations listed in a jobset's history at most (newest first).
pub const MAX_HISTORY: u32 = 1000;
/// Positions one statement covers when computing a summary or a diff (D1 bounds a
/// statement's time).
const CHUNK: u64 = 50_000;
/// Positions a filtered page looks at per request at most: a page may hold fewer
/// items than `limit` with a `next_cursor` to go on from.
pub const PAGE_SCAN_BUDGET: u64 = 50_000;
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

fn status_of(c: VoteCounts) -> StatusSummary {
    StatusSummary::from_counts(c.attestations, c.builders, c.distinct_hashes)
}

/// The live summary of an evaluation, computed in the database in chunks.
async fn compute_summary(state: &AppState, e: &EvaluationRecord) -> Result<Summary, ApiError> {
    let mut summary = Summary::default();
    let mut from = 0;
    while from < e.paths {
        let to = (from + CHUNK).min(e.paths);
        let part = state.store.evaluation_summary(e.id, from, to).await?;
        for s in ReproStatus::ALL {
            summary.add(s, part.count(s));
        }
        from = to;
    }
    Ok(summary)
}

/// The live summary, also stored as the cached one unless a submission invalidated
/// it meanwhile.
async fn refresh_summary(state: &AppState, e: &EvaluationRecord) -> Result<Summary, ApiError> {
    let at = state.now().max(1);
    let summary = compute_summary(state, e).await?;
    state.store.store_summary(e.id, &summary, at, e.summary_at).await?;
    Ok(summary)
}

/// The summary as of now: the cached one while valid (every submission of one of
/// the evaluation's paths invalidates it), else computed.
async fn live_summary(state: &AppState, e: &EvaluationRecord) -> Result<(Summary, i64), ApiError> {
    if e.summary_at > 0 {
        Ok((e.summary, e.summary_at))
    } else {
        Ok((refresh_summary(state, e).await?, state.now()))
    }
}

/// Recomputes invalid cached summaries, newest evaluations first, up to `budget`
/// paths; what nhc-server's background task runs. Returns the evaluations refreshed.
pub async fn refresh_stale(state: &AppState, budget: u64) -> Result<usize, ApiError> {
    let mut left = budget;
    let mut done = 0;
    for e in state.store.stale_evaluations(MAX_HISTORY).await? {
        if e.paths > left {
            continue;
        }
        left -= e.paths;
        refresh_summary(state, &e).await?;
        done += 1;
    }
    Ok(done)
}

/// An evaluation as the history shows it: its cached summary, recomputed when
/// invalid and `budget` (paths) allows.
async fn history_entry(state: &AppState, e: EvaluationRecord, budget: &mut u64) -> Result<EvaluationSummary, ApiError> {
    let (summary, at) = if e.summary_at > 0 || *budget < e.paths {
        (e.summary, e.summary_at.saturating_abs())
    } else {
        *budget -= e.paths;
        live_summary(state, &e).await?
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

fn path_status(r: EvaluationItemRow) -> EvaluationPathStatus {
    let status = status_of(r.counts);
    let drv_path = r.drv_path.or(r.voted_drv_path);
    let output_name = match r.output_name {
        Some(o) => Some(o),
        None if drv_path.is_some() => r.voted_output_name,
        None => None,
    };
    EvaluationPathStatus {
        path: r.path,
        drv_path,
        output_name,
        status: status.status,
        builders: status.builders as u64,
        distinct_hashes: status.distinct_hashes as u64,
    }
}

/// The items of `e` after position `after` that `query` selects, in order: up to
/// `limit` of them, looking at no more than `scan` positions. Returns them with the
/// position after which to go on (None: the evaluation's end was reached).
#[allow(clippy::too_many_arguments)]
async fn select_items(
    state: &AppState,
    e: &EvaluationRecord,
    after: Option<u64>,
    statuses: u8,
    text: Option<&str>,
    not_by: Option<&BuilderName>,
    limit: u32,
    scan: u64,
) -> Result<(Vec<EvaluationItemRow>, Option<u64>), ApiError> {
    let start = after.map_or(0, |a| a.saturating_add(1));
    let end = start.saturating_add(scan).min(e.paths);
    let filtered = statuses != ALL_STATUSES || text.is_some() || not_by.is_some();
    // Unfiltered, the first `limit + 1` positions are the page and the next one's
    // first item; filtered, windows grow until the page is full.
    let mut window = if filtered { 2_000 } else { u64::from(limit) + 1 };
    let mut rows: Vec<EvaluationItemRow> = Vec::new();
    let mut from = start;
    while from < end && rows.len() <= limit as usize {
        let to = from.saturating_add(window).min(end);
        let query =
            ItemQuery { evaluation_id: e.id, from, to, statuses, text, not_by, limit: limit + 1 - rows.len() as u32 };
        rows.extend(state.store.evaluation_items(&query).await?);
        from = to;
        window = window.saturating_mul(4).min(CHUNK);
    }
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.ord)
    } else if from < e.paths {
        // The scan budget ran out: go on after the last position looked at.
        Some(from - 1).filter(|_| from > start).or(after)
    } else {
        None
    };
    Ok((rows, next))
}

/// `GET /v1/jobsets/{name}/evaluations/{rev}`: the summary (live) and one page of
/// paths, selected and paged in the database.
pub async fn page(state: &AppState, name: &JobsetName, rev: &Rev, q: PageQuery) -> Result<EvaluationPage, ApiError> {
    let (_, e) = find_evaluation(state, name, rev).await?;
    let (summary, _) = live_summary(state, &e).await?;
    let mask = status_mask(&q.statuses);
    let (rows, next) = select_items(state, &e, q.after, mask, q.q.as_deref(), None, q.limit, PAGE_SCAN_BUDGET).await?;
    Ok(EvaluationPage {
        jobset: name.clone(),
        rev: e.rev,
        created_at: format_rfc3339(e.created_at),
        paths: e.paths,
        summary,
        items: rows.into_iter().map(path_status).collect(),
        next_cursor: next.map(encode_cursor),
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

/// Calls `f` with every item of `e` that `statuses` and `text` select, in upload
/// order, reading the evaluation in windows of [`CHUNK`] positions.
async fn for_each_item(
    state: &AppState,
    e: &EvaluationRecord,
    statuses: u8,
    text: Option<&str>,
    mut f: impl FnMut(EvaluationItemRow),
) -> Result<(), ApiError> {
    let mut from = 0;
    while from < e.paths {
        let to = (from + CHUNK).min(e.paths);
        let limit = u32::try_from(to - from).unwrap_or(u32::MAX);
        let query = ItemQuery { evaluation_id: e.id, from, to, statuses, text, not_by: None, limit };
        for row in state.store.evaluation_items(&query).await? {
            f(row);
        }
        from = to;
    }
    Ok(())
}

/// The paths of an evaluation filtered by `status` and `q` (a substring of the path),
/// sorted by `order`, `limit` of them from `offset`. Unfiltered in upload order it
/// reads only the window; otherwise one filtered scan of the evaluation (the matching
/// paths are held while sorting, bounded by the evaluation's size).
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
    let (summary, _) = live_summary(state, &e).await?;
    let mask = status.map_or(ALL_STATUSES, status_bit);
    let q = q.filter(|t| !t.is_empty());
    let mut matching: Vec<EvaluationPathStatus> = Vec::new();
    let mut count = 0u64;
    if order == PathOrder::Evaluation && mask == ALL_STATUSES && q.is_none() {
        count = e.paths;
        let from = offset as u64;
        let to = from.saturating_add(limit as u64).min(e.paths);
        if from < to {
            let query = ItemQuery {
                evaluation_id: e.id,
                from,
                to,
                statuses: ALL_STATUSES,
                text: None,
                not_by: None,
                limit: u32::try_from(limit).unwrap_or(u32::MAX),
            };
            matching = state.store.evaluation_items(&query).await?.into_iter().map(path_status).collect();
        }
    } else {
        let keep_all = order != PathOrder::Evaluation;
        for_each_item(state, &e, mask, q, |row| {
            count += 1;
            // In upload order only the window is kept.
            if keep_all || (count as usize > offset && matching.len() < limit) {
                matching.push(path_status(row));
            }
        })
        .await?;
    }
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

/// The paths of `e` that `other` does not hold, with their live statuses.
async fn only_in(
    state: &AppState,
    e: &EvaluationRecord,
    other: &EvaluationRecord,
) -> Result<Vec<(StorePath, ReproStatus)>, ApiError> {
    let mut out = Vec::new();
    let mut from = 0;
    while from < e.paths {
        let to = (from + CHUNK).min(e.paths);
        let rows = state.store.evaluation_only_in(e.id, other.id, from, to).await?;
        out.extend(rows.into_iter().map(|(p, c)| (p, status_of(c).status)));
        from = to;
    }
    Ok(out)
}

/// `GET .../evaluations/{rev}/diff/{other_rev}`: what changed from `other` to `rev`.
/// A path both hold has one live status, so only the paths one side holds are read
/// (an anti-join in the database) and paired by name here.
pub async fn diff(state: &AppState, name: &JobsetName, rev: &Rev, other: &Rev) -> Result<EvaluationDiff, ApiError> {
    let (j, to) = find_evaluation(state, name, rev).await?;
    let from = state.store.find_evaluation(j.id, other).await?.ok_or_else(|| no_evaluation(name, other))?;
    if from.id == to.id {
        return Ok(EvaluationDiff::default());
    }
    let (removed, added) = (only_in(state, &from, &to).await?, only_in(state, &to, &from).await?);
    Ok(nhc_jobset::diff(&removed, &added))
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

/// The statuses `suggest` offers, most useful first: builders disagree (more builds
/// tell which output is the usual one), then some of them agree, then one builder
/// built it (a second build decides it), then nobody did (two builds are needed).
/// `reproduced` paths are never offered: another build decides nothing.
pub const SUGGEST_STATUSES: [ReproStatus; 4] =
    [ReproStatus::NotReproduced, ReproStatus::PartiallyReproduced, ReproStatus::OneBuilder, ReproStatus::NoBuilds];
/// Paths of one status that `suggest` ranks at most: the first ones in upload order
/// the builder has not attested. So one request holds at most four times this many
/// rows, whatever the evaluation's size.
pub const SUGGEST_CANDIDATES: usize = 5_000;

/// A suggestion candidate's place in [`SUGGEST_STATUSES`].
fn suggest_rank(s: ReproStatus) -> Option<usize> {
    SUGGEST_STATUSES.iter().position(|x| *x == s)
}

/// The statuses whose candidates are still worth reading: not full yet, and not
/// behind statuses that fill `limit` already (those come first whatever follows).
fn suggest_mask(buckets: &[Vec<EvaluationItemRow>; 4], limit: usize) -> (u8, usize) {
    let (mut mask, mut room, mut before) = (0u8, 0usize, 0usize);
    for (status, bucket) in SUGGEST_STATUSES.iter().zip(buckets) {
        if before >= limit {
            break;
        }
        if bucket.len() < SUGGEST_CANDIDATES {
            mask |= status_bit(*status);
            room += SUGGEST_CANDIDATES - bucket.len();
        }
        before += bucket.len();
    }
    (mask, room)
}

/// The candidates of `suggest`: per status of [`SUGGEST_STATUSES`], the first
/// [`SUGGEST_CANDIDATES`] paths `builder` has not attested, for the statuses that can
/// be among the first `limit`. One pass over the evaluation in windows (growing to
/// [`CHUNK`] positions a statement) that ends early once those statuses are full; a
/// statement returns at most the room left, and one that returns that many fills a
/// status, so there are at most four more statements than windows.
async fn suggest_candidates(
    state: &AppState,
    e: &EvaluationRecord,
    builder: &BuilderName,
    limit: usize,
) -> Result<Vec<EvaluationItemRow>, ApiError> {
    let mut buckets: [Vec<EvaluationItemRow>; 4] = Default::default();
    let (mut from, mut window) = (0u64, 2_000u64);
    while from < e.paths {
        let (mask, room) = suggest_mask(&buckets, limit);
        if mask == 0 {
            break;
        }
        let to = from.saturating_add(window).min(e.paths);
        let room = u32::try_from(room).unwrap_or(u32::MAX);
        let query =
            ItemQuery { evaluation_id: e.id, from, to, statuses: mask, text: None, not_by: Some(builder), limit: room };
        let rows = state.store.evaluation_items(&query).await?;
        // The limit was reached before `to`: go on after the last row returned.
        let next = match rows.last() {
            Some(last) if rows.len() as u64 >= u64::from(room) => last.ord.saturating_add(1),
            _ => to,
        };
        for row in rows {
            if let Some(i) = suggest_rank(status_of(row.counts).status) {
                if buckets[i].len() < SUGGEST_CANDIDATES {
                    buckets[i].push(row);
                }
            }
        }
        from = next;
        window = window.saturating_mul(4).min(CHUNK);
    }
    // Only the statuses that can be among the first `limit`.
    let mut out = Vec::new();
    for bucket in buckets {
        if out.len() >= limit {
            break;
        }
        out.extend(bucket);
    }
    Ok(out)
}

/// How many paths of the upload depend directly on each of `ords` (its dependency
/// edges), reading the edges in ranges of [`CHUNK`] positions.
async fn dependents(state: &AppState, e: &EvaluationRecord, ords: &[u64]) -> Result<HashMap<u64, u64>, ApiError> {
    let mut counts = HashMap::new();
    if ords.is_empty() {
        return Ok(counts);
    }
    let mut from = 0;
    while from < e.paths {
        let to = (from + CHUNK).min(e.paths);
        for (ord, n) in state.store.evaluation_dependents(e.id, ords, from, to).await? {
            *counts.entry(ord).or_insert(0u64) += n;
        }
        from = to;
    }
    Ok(counts)
}

/// The order of `suggest`: by status ([`SUGGEST_STATUSES`]), then fewest builders,
/// then most dependents (paths of the upload that depend on it), then upload order;
/// the first `limit`.
fn rank_suggestions(
    candidates: Vec<EvaluationItemRow>,
    dependents: &HashMap<u64, u64>,
    limit: usize,
) -> Vec<EvaluationPathStatus> {
    let mut ranked: Vec<(usize, u64, std::cmp::Reverse<u64>, u64, EvaluationItemRow)> = candidates
        .into_iter()
        .filter_map(|row| {
            let status = status_of(row.counts);
            let rank = suggest_rank(status.status)?;
            let deps = dependents.get(&row.ord).copied().unwrap_or(0);
            Some((rank, status.builders as u64, std::cmp::Reverse(deps), row.ord, row))
        })
        .collect();
    ranked.sort_unstable_by_key(|(rank, builders, deps, ord, _)| (*rank, *builders, *deps, *ord));
    ranked.into_iter().take(limit).map(|(.., row)| path_status(row)).collect()
}

/// `GET .../evaluations/{rev}/suggest?builder=&limit=`: what `builder` could build to
/// help most, never a path it attested already nor a reproduced one. Ordered by
/// [`rank_suggestions`] over at most [`SUGGEST_CANDIDATES`] paths per status (the
/// first in upload order): one pass over the evaluation, then one over its edges,
/// each in bounded statements.
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
    let candidates = suggest_candidates(state, &e, builder, limit).await?;
    let ords: Vec<u64> = candidates.iter().map(|r| r.ord).collect();
    let dependents = dependents(state, &e, &ords).await?;
    let items = rank_suggestions(candidates, &dependents, limit)
        .into_iter()
        .map(|p| SuggestItem { path: p.path, drv_path: p.drv_path, output_name: p.output_name, status: p.status })
        .collect();
    Ok(SuggestResponse { items })
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

    fn row(ord: u64, attestations: usize, builders: usize, distinct_hashes: usize) -> EvaluationItemRow {
        EvaluationItemRow {
            ord,
            path: StorePath::parse(&format!("/nix/store/{}-p{ord}", "a".repeat(32))).unwrap(),
            drv_path: None,
            output_name: None,
            voted_drv_path: None,
            voted_output_name: None,
            counts: VoteCounts { attestations, builders, distinct_hashes },
        }
    }

    fn order(candidates: Vec<EvaluationItemRow>, deps: &[(u64, u64)], limit: usize) -> Vec<String> {
        let deps: HashMap<u64, u64> = deps.iter().copied().collect();
        rank_suggestions(candidates, &deps, limit).into_iter().map(|p| p.path.name().to_owned()).collect()
    }

    /// Status first, then fewest builders, then most dependents, then upload order;
    /// reproduced paths never.
    #[test]
    fn suggestions_are_ranked_most_useful_first() {
        let candidates = vec![
            row(0, 0, 0, 0), // no builds
            row(1, 1, 1, 1), // one builder
            row(2, 3, 3, 2), // partially reproduced, 3 builders
            row(3, 2, 2, 2), // not reproduced, 2 builders
            row(4, 3, 3, 3), // not reproduced, 3 builders
            row(5, 2, 2, 1), // reproduced
            row(6, 1, 1, 1), // one builder, many dependents
            row(7, 0, 0, 0), // no builds, one dependent
            row(8, 2, 2, 2), // not reproduced, 2 builders, a dependent
        ];
        let deps = [(6, 5), (7, 1), (8, 1), (4, 9)];
        assert_eq!(order(candidates.clone(), &deps, 100), ["p8", "p3", "p4", "p2", "p6", "p1", "p7", "p0"]);
        assert_eq!(order(candidates.clone(), &deps, 3), ["p8", "p3", "p4"]);
        // Without edges: upload order within equal statuses and builders.
        assert_eq!(order(candidates, &[], 100), ["p3", "p8", "p4", "p2", "p1", "p6", "p0", "p7"]);
    }

    /// Reading stops for statuses behind ones that fill the limit, and for full ones.
    #[test]
    fn candidates_are_read_only_for_statuses_that_can_be_suggested() {
        let mut buckets: [Vec<EvaluationItemRow>; 4] = Default::default();
        let all = status_mask(&SUGGEST_STATUSES);
        assert_eq!(suggest_mask(&buckets, 10), (all, 4 * SUGGEST_CANDIDATES));
        buckets[0] = (0..10).map(|i| row(i, 2, 2, 2)).collect();
        // Ten not reproduced paths fill a limit of 10: only more of them may matter.
        assert_eq!(suggest_mask(&buckets, 10), (status_bit(ReproStatus::NotReproduced), SUGGEST_CANDIDATES - 10));
        assert_eq!(suggest_mask(&buckets, 11).0, all);
        buckets[1] = (10..15).map(|i| row(i, 3, 3, 2)).collect();
        let first_two = status_mask(&[ReproStatus::NotReproduced, ReproStatus::PartiallyReproduced]);
        assert_eq!(suggest_mask(&buckets, 15).0, first_two);
        buckets[0] = (0..SUGGEST_CANDIDATES as u64).map(|i| row(i, 2, 2, 2)).collect();
        assert_eq!(suggest_mask(&buckets, 1000), (0, 0));
    }
}
