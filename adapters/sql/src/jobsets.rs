//! The storage of jobsets and evaluations over any [`Executor`]: statements, their
//! parameters and the decoding of their rows. Lists travel as one JSON parameter (in
//! chunks under the executor's parameter limit, D1's 1.9 MB), so an upload of 250,000
//! paths is a few dozen statements in one transaction on every database.

use nhc_core::jobset::{JobsetName, Rev, Summary};
use nhc_core::{DrvPath, OutputName, ReproStatus, StorePath};
use nhc_storage::{
    EvaluationItemRow, EvaluationRecord, ItemQuery, JobsetRecord, JobsetTokenRecord, NewEvaluation, NewToken,
    PutOutcome, StoreError, StoreResult, VoteCounts,
};

use crate::batch::json_arrays;
use crate::exec::{Executor, Param, Row, Statement};
use crate::statements::{Dialect, POSTGRES};
use crate::SqlStorage;

const INSERT_JOBSET: &str = "INSERT INTO jobsets (id, name, description, created_at) VALUES ($1, $2, $3, $4)";

const LIST_JOBSETS: &str = "SELECT id, name, description, created_at FROM jobsets ORDER BY name";
const FIND_JOBSET: &str = "SELECT id, name, description, created_at FROM jobsets WHERE name = $1";
/// Deleting a jobset, children first; `$1` is its id.
const DELETE_JOBSET: [&str; 5] = [
    "DELETE FROM evaluation_edges WHERE evaluation_id IN (SELECT id FROM evaluations WHERE jobset_id = $1)",
    "DELETE FROM evaluation_items WHERE evaluation_id IN (SELECT id FROM evaluations WHERE jobset_id = $1)",
    "DELETE FROM evaluations WHERE jobset_id = $1",
    "DELETE FROM jobset_tokens WHERE jobset_id = $1",
    "DELETE FROM jobsets WHERE id = $1",
];
const INSERT_JOBSET_TOKEN: &str =
    "INSERT INTO jobset_tokens (id, secret_hash, jobset_id, created_at) VALUES ($1, $2, $3, $4)";
const FIND_JOBSET_TOKEN: &str = "SELECT j.name, t.secret_hash, t.revoked_at \
    FROM jobset_tokens t JOIN jobsets j ON j.id = t.jobset_id WHERE t.id = $1";
/// Replacing a rev: `$1` jobset id, `$2` rev. The last returns the id deleted.
const DELETE_REV: [&str; 3] = [
    "DELETE FROM evaluation_edges WHERE evaluation_id IN \
     (SELECT id FROM evaluations WHERE jobset_id = $1 AND rev = $2)",
    "DELETE FROM evaluation_items WHERE evaluation_id IN \
     (SELECT id FROM evaluations WHERE jobset_id = $1 AND rev = $2)",
    "DELETE FROM evaluations WHERE jobset_id = $1 AND rev = $2 RETURNING id",
];
const INSERT_EVALUATION: &str =
    "INSERT INTO evaluations (id, jobset_id, rev, created_at, paths) VALUES ($1, $2, $3, $4, $5)";
macro_rules! evaluation_columns {
    () => {
        "SELECT id, rev, created_at, paths, summary_reproduced, summary_partially_reproduced, \
         summary_not_reproduced, summary_one_builder, summary_no_builds, summary_at FROM evaluations "
    };
}
const EVALUATIONS: &str =
    concat!(evaluation_columns!(), "WHERE jobset_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2");
const FIND_EVALUATION: &str = concat!(evaluation_columns!(), "WHERE jobset_id = $1 AND rev = $2");
/// `$8`: the `summary_at` the computation started from; returns the id when stored.
const STORE_SUMMARY: &str = "UPDATE evaluations SET summary_reproduced = $2, summary_partially_reproduced = $3, \
    summary_not_reproduced = $4, summary_one_builder = $5, summary_no_builds = $6, summary_at = $7 \
    WHERE id = $1 AND summary_at = $8 RETURNING id";
const STALE_EVALUATIONS: &str =
    concat!(evaluation_columns!(), "WHERE summary_at <= 0 ORDER BY created_at DESC, id DESC LIMIT $1");
/// Invalidating cached summaries: a valid one is negated, an invalid one moves on
/// (so that a computation that started from its old value cannot store).
macro_rules! invalidate {
    ($where:literal) => {
        concat!(
            "UPDATE evaluations SET summary_at = CASE WHEN summary_at > 0 THEN -summary_at ELSE summary_at - 1 END ",
            $where
        )
    };
}
/// After a purge, every evaluation.
pub(crate) const INVALIDATE_ALL: &str = invalidate!("WHERE true");
/// The path ids of an evaluation (for collecting orphaned store paths).
const EVALUATION_PATH_IDS: &str = "SELECT path_id FROM evaluation_items WHERE evaluation_id = $1";
const REV_PATH_IDS: &str = "SELECT i.path_id AS path_id FROM evaluations e \
    JOIN evaluation_items i ON i.evaluation_id = e.id WHERE e.jobset_id = $1 AND e.rev = $2";
const JOBSET_EVALUATION_IDS: &str = "SELECT id FROM evaluations WHERE jobset_id = $1";

/// A path's live status code from its attestations `a` (grouped per path), the rule
/// of `StatusSummary::from_counts`: 0 reproduced, 1 partially reproduced, 2 not
/// reproduced, 3 one builder, 4 no builds (the bits of `nhc_storage::status_bit`).
macro_rules! status_code {
    () => {
        "(CASE WHEN count(DISTINCT a.builder) = 0 THEN 4 WHEN count(DISTINCT a.builder) = 1 THEN 3 \
         WHEN count(DISTINCT a.nar_hash) = 1 THEN 0 WHEN count(a.builder) > count(DISTINCT a.nar_hash) THEN 1 \
         ELSE 2 END)"
    };
}
/// An evaluation's items at positions `$2..$3` with their attestations.
macro_rules! items_with_votes {
    () => {
        "FROM evaluation_items i JOIN store_paths p ON p.id = i.path_id \
         LEFT JOIN attestations a ON a.hash_part = p.hash_part AND a.output_path = p.path \
         WHERE i.evaluation_id = $1 AND i.ord >= $2 AND i.ord < $3 "
    };
}
macro_rules! counts {
    () => {
        "count(a.builder) AS n_attestations, count(DISTINCT a.builder) AS n_builders, \
         count(DISTINCT a.nar_hash) AS n_hashes "
    };
}
/// `$4` status mask, `$5` text ('' = any), `$6` a builder who must not have attested
/// ('' = none), `$7` limit. Columns: ord, path, the upload's drv_path and
/// output_name, an attestation's, then the counts.
macro_rules! evaluation_items {
    ($contains:literal) => {
        concat!(
            "SELECT i.ord AS ord, p.path AS path, i.drv_path AS drv_path, i.output_name AS output_name, \
             min(a.drv_path) AS vote_drv_path, min(a.output_name) AS vote_output_name, ",
            counts!(),
            items_with_votes!(),
            "AND ($5 = '' OR ",
            $contains,
            ") GROUP BY i.ord, p.path, i.drv_path, i.output_name HAVING (($4 >> ",
            status_code!(),
            ") & 1) = 1 AND sum(CASE WHEN a.builder = $6 THEN 1 ELSE 0 END) = 0 ORDER BY i.ord LIMIT $7"
        )
    };
}
/// Columns: status code, paths.
const EVALUATION_SUMMARY: &str = concat!(
    "SELECT s.st AS st, count(*) AS n FROM (SELECT ",
    status_code!(),
    " AS st ",
    items_with_votes!(),
    "GROUP BY i.ord) AS s GROUP BY s.st"
);
/// `$4`: the other evaluation. Columns: path, counts.
const EVALUATION_ONLY_IN: &str = concat!(
    "SELECT p.path AS path, ",
    counts!(),
    items_with_votes!(),
    "AND NOT EXISTS (SELECT 1 FROM evaluation_items j WHERE j.path_id = i.path_id AND j.evaluation_id = $4) \
     GROUP BY i.ord, p.path ORDER BY i.ord"
);

/// The statements with JSON list parameters, per dialect.
struct JobsetDialect {
    /// `$1`: `[[id, path], ..]`. Columns: id, path of the stored paths with one of
    /// these ids but another path.
    path_collisions: &'static str,
    /// `$1`: `[[id, hash_part, path], ..]`.
    insert_paths: &'static str,
    /// `$1`: evaluation id; `$2`: `[[ord, path_id, drv_path, output_name], ..]`.
    insert_items: &'static str,
    /// `$1`: evaluation id; `$2`: `[[from_ord, to_ord], ..]`.
    insert_edges: &'static str,
    /// See `evaluation_items!`.
    evaluation_items: &'static str,
    /// `$1` evaluation id, `$2..$3` the positions the edges leave from, `$4`: `[ord, ..]`.
    /// Columns: to_ord, the edges leading to it.
    evaluation_dependents: &'static str,
    /// `$1`: `[path, ..]`. One row when some of these paths is in an evaluation.
    any_path_listed: &'static str,
    /// `$1`: `[path, ..]`: invalidates the summaries of the evaluations holding them.
    invalidate_paths: &'static str,
    /// `$1`: `[path id, ..]`: deletes those no evaluation holds any more.
    delete_orphans: &'static str,
}

const SQLITE_JOBSETS: JobsetDialect = JobsetDialect {
    path_collisions: "SELECT s.id, s.path FROM json_each($1) AS j \
        CROSS JOIN store_paths AS s WHERE s.id = j.value ->> 0 AND s.path <> j.value ->> 1",
    insert_paths: "INSERT INTO store_paths (id, hash_part, path) \
        SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each($1) WHERE true ON CONFLICT DO NOTHING",
    insert_items: "INSERT INTO evaluation_items (evaluation_id, ord, path_id, drv_path, output_name) \
        SELECT $1, value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each($2)",
    insert_edges: "INSERT INTO evaluation_edges (evaluation_id, from_ord, to_ord) \
        SELECT $1, value ->> 0, value ->> 1 FROM json_each($2)",
    evaluation_items: evaluation_items!("instr(p.path, $5) > 0"),
    evaluation_dependents: "SELECT e.to_ord AS ord, count(*) AS n FROM evaluation_edges e \
        WHERE e.evaluation_id = $1 AND e.from_ord >= $2 AND e.from_ord < $3 \
        AND e.to_ord IN (SELECT value FROM json_each($4)) GROUP BY e.to_ord",
    any_path_listed: "SELECT 1 AS listed FROM json_each($1) AS j JOIN store_paths p ON p.path = j.value LIMIT 1",
    invalidate_paths: invalidate!(
        "WHERE id IN (SELECT i.evaluation_id FROM json_each($1) AS j \
         JOIN store_paths p ON p.path = j.value JOIN evaluation_items i ON i.path_id = p.id)"
    ),
    delete_orphans: "DELETE FROM store_paths WHERE id IN (SELECT value FROM json_each($1)) \
        AND NOT EXISTS (SELECT 1 FROM evaluation_items i WHERE i.path_id = store_paths.id)",
};

const POSTGRES_JOBSETS: JobsetDialect = JobsetDialect {
    path_collisions: "SELECT s.id, s.path FROM json_array_elements($1::json) AS v \
        JOIN store_paths AS s ON s.id = (v ->> 0)::bigint WHERE s.path <> v ->> 1",
    insert_paths: "INSERT INTO store_paths (id, hash_part, path) \
        SELECT (v ->> 0)::bigint, v ->> 1, v ->> 2 FROM json_array_elements($1::json) AS v ON CONFLICT DO NOTHING",
    insert_items: "INSERT INTO evaluation_items (evaluation_id, ord, path_id, drv_path, output_name) \
        SELECT $1, (v ->> 0)::bigint, (v ->> 1)::bigint, v ->> 2, v ->> 3 FROM json_array_elements($2::json) AS v",
    insert_edges: "INSERT INTO evaluation_edges (evaluation_id, from_ord, to_ord) \
        SELECT $1, (v ->> 0)::bigint, (v ->> 1)::bigint FROM json_array_elements($2::json) AS v",
    evaluation_items: evaluation_items!("strpos(p.path, $5) > 0"),
    evaluation_dependents: "SELECT e.to_ord AS ord, count(*) AS n FROM evaluation_edges e \
        WHERE e.evaluation_id = $1 AND e.from_ord >= $2 AND e.from_ord < $3 \
        AND e.to_ord IN (SELECT j.v::bigint FROM json_array_elements_text($4::json) AS j (v)) GROUP BY e.to_ord",
    any_path_listed: "SELECT 1 AS listed FROM json_array_elements_text($1::json) AS j (path) \
        JOIN store_paths p ON p.path = j.path LIMIT 1",
    invalidate_paths: invalidate!(
        "WHERE id IN (SELECT i.evaluation_id FROM json_array_elements_text($1::json) AS j (path) \
         JOIN store_paths p ON p.path = j.path JOIN evaluation_items i ON i.path_id = p.id)"
    ),
    delete_orphans: "DELETE FROM store_paths WHERE id IN \
        (SELECT j.id::bigint FROM json_array_elements_text($1::json) AS j (id)) \
        AND NOT EXISTS (SELECT 1 FROM evaluation_items i WHERE i.path_id = store_paths.id)",
};

fn jobset_dialect(d: &Dialect) -> &'static JobsetDialect {
    // The executors hand out one of the two dialects; they differ in this text.
    if d.insert_attestations == POSTGRES.insert_attestations {
        &POSTGRES_JOBSETS
    } else {
        &SQLITE_JOBSETS
    }
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("corrupt row in the database: {what}"))
}

fn parse<T, E: std::fmt::Display>(s: &str, f: impl FnOnce(&str) -> Result<T, E>) -> StoreResult<T> {
    f(s).map_err(corrupt)
}

fn count(n: i64) -> StoreResult<u64> {
    u64::try_from(n).map_err(corrupt)
}

fn jobset(mut r: Row) -> StoreResult<JobsetRecord> {
    Ok(JobsetRecord {
        id: r.int(0)?,
        name: parse(&r.text(1)?, JobsetName::parse)?,
        description: r.text(2)?,
        created_at: r.int(3)?,
    })
}

fn evaluation(mut r: Row) -> StoreResult<EvaluationRecord> {
    Ok(EvaluationRecord {
        id: r.int(0)?,
        rev: parse(&r.text(1)?, Rev::parse)?,
        created_at: r.int(2)?,
        paths: count(r.int(3)?)?,
        summary: Summary {
            reproduced: count(r.int(4)?)?,
            partially_reproduced: count(r.int(5)?)?,
            not_reproduced: count(r.int(6)?)?,
            one_builder: count(r.int(7)?)?,
            no_builds: count(r.int(8)?)?,
        },
        summary_at: r.int(9)?,
    })
}

fn counts(r: &mut Row, from: usize) -> StoreResult<VoteCounts> {
    let n = |r: &mut Row, i| -> StoreResult<usize> { usize::try_from(r.int(i)?).map_err(corrupt) };
    Ok(VoteCounts { attestations: n(r, from)?, builders: n(r, from + 1)?, distinct_hashes: n(r, from + 2)? })
}

fn item_row(mut r: Row) -> StoreResult<EvaluationItemRow> {
    let drv = |s: Option<String>| s.map(|s| parse(&s, DrvPath::parse)).transpose();
    let out = |s: Option<String>| s.map(|s| parse(&s, OutputName::parse)).transpose();
    Ok(EvaluationItemRow {
        ord: count(r.int(0)?)?,
        path: parse(&r.text(1)?, StorePath::parse)?,
        drv_path: drv(r.opt_text(2)?)?,
        output_name: out(r.opt_text(3)?)?,
        voted_drv_path: drv(r.opt_text(4)?)?,
        voted_output_name: out(r.opt_text(5)?)?,
        counts: counts(&mut r, 6)?,
    })
}

fn int(n: u64) -> StoreResult<i64> {
    i64::try_from(n).map_err(|_| StoreError::Internal(format!("{n} does not fit a database integer")))
}

impl<E: Executor> SqlStorage<E> {
    pub(crate) async fn jobset_create(&self, j: &JobsetRecord) -> StoreResult<()> {
        let exec = self.executor();
        if !exec.query(FIND_JOBSET, &[Param::Text(j.name.as_str())]).await?.is_empty() {
            return Err(StoreError::Conflict(format!("a jobset named {} exists", j.name)));
        }
        let params =
            [Param::Int(j.id), Param::Text(j.name.as_str()), Param::Text(&j.description), Param::Int(j.created_at)];
        exec.query(INSERT_JOBSET, &params).await.map(|_| ())
    }

    pub(crate) async fn jobset_list(&self) -> StoreResult<Vec<JobsetRecord>> {
        self.executor().query(LIST_JOBSETS, &[]).await?.into_iter().map(jobset).collect()
    }

    pub(crate) async fn jobset_find(&self, name: &JobsetName) -> StoreResult<Option<JobsetRecord>> {
        self.executor()
            .query(FIND_JOBSET, &[Param::Text(name.as_str())])
            .await?
            .into_iter()
            .next()
            .map(jobset)
            .transpose()
    }

    pub(crate) async fn jobset_delete(&self, name: &JobsetName) -> StoreResult<bool> {
        let Some(j) = self.jobset_find(name).await? else { return Ok(false) };
        // The paths its evaluations hold, one evaluation at a time (bounded answers).
        let mut ids = std::collections::BTreeSet::new();
        for e in self.path_ids(JOBSET_EVALUATION_IDS, &[Param::Int(j.id)]).await? {
            ids.extend(self.path_ids(EVALUATION_PATH_IDS, &[Param::Int(e)]).await?);
        }
        let statements: Vec<Statement> =
            DELETE_JOBSET.iter().map(|s| Statement::new(s, vec![Param::Int(j.id)])).collect();
        self.executor().transaction(&statements).await?;
        self.collect_orphans(&ids.into_iter().collect::<Vec<_>>()).await;
        Ok(true)
    }

    pub(crate) async fn jobset_add_token(&self, name: &JobsetName, t: &NewToken, at: i64) -> StoreResult<bool> {
        let Some(j) = self.jobset_find(name).await? else { return Ok(false) };
        let params = [Param::Text(&t.id), Param::Text(&t.secret_hash), Param::Int(j.id), Param::Int(at)];
        self.executor().query(INSERT_JOBSET_TOKEN, &params).await?;
        Ok(true)
    }

    pub(crate) async fn jobset_find_token(&self, id: &str) -> StoreResult<Option<JobsetTokenRecord>> {
        let Some(mut r) = self.executor().query(FIND_JOBSET_TOKEN, &[Param::Text(id)]).await?.into_iter().next() else {
            return Ok(None);
        };
        Ok(Some(JobsetTokenRecord {
            jobset: parse(&r.text(0)?, JobsetName::parse)?,
            secret_hash: r.text(1)?,
            revoked: r.opt_int(2)?.is_some(),
        }))
    }

    pub(crate) async fn evaluation_put(&self, e: &NewEvaluation) -> StoreResult<PutOutcome> {
        let exec = self.executor();
        let d = jobset_dialect(exec.dialect());
        let max = exec.max_param_bytes();
        // A path id taken by another path: refuse before writing anything.
        let ids: Vec<(i64, &str)> = e.items.iter().map(|i| (i.path_id, i.path.as_str())).collect();
        for list in json_arrays(&ids, max)? {
            if !exec.query(d.path_collisions, &[Param::Text(&list)]).await?.is_empty() {
                return Ok(PutOutcome::PathIdCollision);
            }
        }
        let paths: Vec<(i64, &str, &str)> =
            e.items.iter().map(|i| (i.path_id, i.path.hash_part(), i.path.as_str())).collect();
        let paths = json_arrays(&paths, max)?;
        let items: Vec<(u64, i64, Option<&str>, Option<&str>)> = e
            .items
            .iter()
            .enumerate()
            .map(|(ord, i)| {
                (
                    ord as u64,
                    i.path_id,
                    i.drv_path.as_ref().map(|d| d.as_str()),
                    i.output_name.as_ref().map(|o| o.as_str()),
                )
            })
            .collect();
        let items = json_arrays(&items, max)?;
        let edges: Vec<(u32, u32)> = e.edges.iter().map(|x| (x.from, x.to)).collect();
        let edges = json_arrays(&edges, max)?;
        let (jobset_id, rev) = (Param::Int(e.jobset_id), Param::Text(e.rev.as_str()));
        let mut statements: Vec<Statement> =
            DELETE_REV.iter().map(|s| Statement::new(s, vec![jobset_id, rev])).collect();
        statements.push(Statement::new(
            INSERT_EVALUATION,
            vec![Param::Int(e.id), jobset_id, rev, Param::Int(e.created_at), Param::Int(int(e.items.len() as u64)?)],
        ));
        statements.extend(paths.iter().map(|l| Statement::new(d.insert_paths, vec![Param::Text(l)])));
        statements.extend(items.iter().map(|l| Statement::new(d.insert_items, vec![Param::Int(e.id), Param::Text(l)])));
        statements.extend(edges.iter().map(|l| Statement::new(d.insert_edges, vec![Param::Int(e.id), Param::Text(l)])));
        // The paths of the evaluation this one replaces that it does not hold: orphans
        // to collect once it is stored, unless another evaluation holds them.
        let kept: std::collections::HashSet<i64> = e.items.iter().map(|i| i.path_id).collect();
        let mut dropped = self.path_ids(REV_PATH_IDS, &[jobset_id, rev]).await?;
        dropped.retain(|id| !kept.contains(id));
        let results = exec.transaction(&statements).await?;
        self.collect_orphans(&dropped).await;
        let replaced = results.get(DELETE_REV.len() - 1).is_some_and(|rows| !rows.is_empty());
        Ok(if replaced { PutOutcome::Replaced } else { PutOutcome::Created })
    }

    pub(crate) async fn evaluation_list(&self, jobset_id: i64, limit: u32) -> StoreResult<Vec<EvaluationRecord>> {
        let params = [Param::Int(jobset_id), Param::Int(i64::from(limit))];
        self.executor().query(EVALUATIONS, &params).await?.into_iter().map(evaluation).collect()
    }

    pub(crate) async fn evaluation_find(&self, jobset_id: i64, rev: &Rev) -> StoreResult<Option<EvaluationRecord>> {
        let params = [Param::Int(jobset_id), Param::Text(rev.as_str())];
        self.executor().query(FIND_EVALUATION, &params).await?.into_iter().next().map(evaluation).transpose()
    }

    pub(crate) async fn evaluation_items_in(&self, q: &ItemQuery<'_>) -> StoreResult<Vec<EvaluationItemRow>> {
        let exec = self.executor();
        let d = jobset_dialect(exec.dialect());
        let params = [
            Param::Int(q.evaluation_id),
            Param::Int(int(q.from)?),
            Param::Int(int(q.to)?),
            Param::Int(i64::from(q.statuses)),
            Param::Text(q.text.unwrap_or("")),
            Param::Text(q.not_by.map_or("", |b| b.as_str())),
            Param::Int(i64::from(q.limit)),
        ];
        exec.query(d.evaluation_items, &params).await?.into_iter().map(item_row).collect()
    }

    pub(crate) async fn evaluation_summary_in(&self, id: i64, from: u64, to: u64) -> StoreResult<Summary> {
        let params = [Param::Int(id), Param::Int(int(from)?), Param::Int(int(to)?)];
        let mut summary = Summary::default();
        for mut r in self.executor().query(EVALUATION_SUMMARY, &params).await? {
            let status = match r.int(0)? {
                0 => ReproStatus::Reproduced,
                1 => ReproStatus::PartiallyReproduced,
                2 => ReproStatus::NotReproduced,
                3 => ReproStatus::OneBuilder,
                4 => ReproStatus::NoBuilds,
                other => return Err(corrupt(format!("status code {other}"))),
            };
            summary.add(status, count(r.int(1)?)?);
        }
        Ok(summary)
    }

    pub(crate) async fn evaluation_only_in_range(
        &self,
        id: i64,
        other: i64,
        from: u64,
        to: u64,
    ) -> StoreResult<Vec<(StorePath, VoteCounts)>> {
        let params = [Param::Int(id), Param::Int(int(from)?), Param::Int(int(to)?), Param::Int(other)];
        let rows = self.executor().query(EVALUATION_ONLY_IN, &params).await?;
        rows.into_iter().map(|mut r| Ok((parse(&r.text(0)?, StorePath::parse)?, counts(&mut r, 1)?))).collect()
    }

    pub(crate) async fn evaluation_store_summary(
        &self,
        id: i64,
        s: &Summary,
        at: i64,
        if_at: i64,
    ) -> StoreResult<bool> {
        let params = [
            Param::Int(id),
            Param::Int(int(s.reproduced)?),
            Param::Int(int(s.partially_reproduced)?),
            Param::Int(int(s.not_reproduced)?),
            Param::Int(int(s.one_builder)?),
            Param::Int(int(s.no_builds)?),
            Param::Int(at),
            Param::Int(if_at),
        ];
        Ok(!self.executor().query(STORE_SUMMARY, &params).await?.is_empty())
    }

    pub(crate) async fn evaluation_stale(&self, limit: u32) -> StoreResult<Vec<EvaluationRecord>> {
        let params = [Param::Int(i64::from(limit))];
        self.executor().query(STALE_EVALUATIONS, &params).await?.into_iter().map(evaluation).collect()
    }

    pub(crate) async fn evaluation_dependents_in(
        &self,
        id: i64,
        ords: &[u64],
        from: u64,
        to: u64,
    ) -> StoreResult<Vec<(u64, u64)>> {
        let exec = self.executor();
        let d = jobset_dialect(exec.dialect());
        let mut out = Vec::new();
        // The list in pieces under the parameter limit; a position is in one piece only.
        for list in json_arrays(ords, exec.max_param_bytes())? {
            let params = [Param::Int(id), Param::Int(int(from)?), Param::Int(int(to)?), Param::Text(&list)];
            for mut r in exec.query(d.evaluation_dependents, &params).await? {
                out.push((count(r.int(0)?)?, count(r.int(1)?)?));
            }
        }
        Ok(out)
    }

    /// Invalidates the cached summaries of the evaluations holding any of these
    /// paths (after their attestations were stored). Reads first, so that
    /// submissions of paths no evaluation holds never write.
    pub(crate) async fn invalidate_summaries_of(&self, paths: &[&str]) -> StoreResult<()> {
        let exec = self.executor();
        let d = jobset_dialect(exec.dialect());
        for list in json_arrays(paths, exec.max_param_bytes())? {
            if !exec.query(d.any_path_listed, &[Param::Text(&list)]).await?.is_empty() {
                exec.query(d.invalidate_paths, &[Param::Text(&list)]).await?;
            }
        }
        Ok(())
    }

    /// Deletes the store paths among `ids` that no evaluation holds any more. A
    /// failure leaves orphans (harmless rows), so it is logged, not returned.
    async fn collect_orphans(&self, ids: &[i64]) {
        let exec = self.executor();
        let d = jobset_dialect(exec.dialect());
        let lists = match json_arrays(ids, exec.max_param_bytes()) {
            Ok(l) => l,
            Err(e) => return tracing::warn!(error = %e, "could not collect orphaned store paths"),
        };
        for list in lists {
            if let Err(e) = exec.query(d.delete_orphans, &[Param::Text(&list)]).await {
                tracing::warn!(error = %e, "could not collect orphaned store paths");
            }
        }
    }

    async fn path_ids(&self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<Vec<i64>> {
        self.executor().query(sql, params).await?.into_iter().map(|mut r| r.int(0)).collect()
    }
}
