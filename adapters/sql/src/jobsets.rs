//! The storage of jobsets and evaluations over any [`Executor`]: statements, their
//! parameters and the decoding of their rows. Lists travel as one JSON parameter (in
//! chunks under the executor's parameter limit, D1's 1.9 MB), so an upload of 250,000
//! paths is a few dozen statements in one transaction on every database.

use nhc_core::jobset::{JobsetName, Rev, Summary};
use nhc_core::{BuilderName, DrvPath, NarHash, OutputName, StorePath};
use nhc_storage::{
    EvaluationRecord, EvaluationRow, EvaluationVote, JobsetRecord, JobsetTokenRecord, NewEvaluation, NewToken,
    PutOutcome, StoreError, StoreResult,
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
const STORE_SUMMARY: &str = "UPDATE evaluations SET summary_reproduced = $2, summary_partially_reproduced = $3, \
    summary_not_reproduced = $4, summary_one_builder = $5, summary_no_builds = $6, summary_at = $7 WHERE id = $1";
/// Columns: ord, path, drv_path, output_name (of the upload), then one attestation's
/// builder, nar_hash, drv_path, output_name (NULL when nobody attested the path).
const EVALUATION_ROWS: &str = "SELECT i.ord, p.path, i.drv_path, i.output_name, \
    a.builder, a.nar_hash, a.drv_path AS vote_drv_path, a.output_name AS vote_output_name \
    FROM evaluation_items i JOIN store_paths p ON p.id = i.path_id \
    LEFT JOIN attestations a ON a.hash_part = p.hash_part AND a.output_path = p.path \
    WHERE i.evaluation_id = $1 AND i.ord >= $2 AND i.ord < $3 \
    ORDER BY i.ord, a.builder, a.nar_hash";

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

fn evaluation_row(mut r: Row) -> StoreResult<EvaluationRow> {
    let drv = |s: Option<String>| s.map(|s| parse(&s, DrvPath::parse)).transpose();
    let out = |s: Option<String>| s.map(|s| parse(&s, OutputName::parse)).transpose();
    let ord = count(r.int(0)?)?;
    let path = parse(&r.text(1)?, StorePath::parse)?;
    let (drv_path, output_name) = (drv(r.opt_text(2)?)?, out(r.opt_text(3)?)?);
    let vote = match (r.opt_text(4)?, r.opt_text(5)?) {
        (Some(b), Some(h)) => Some(EvaluationVote {
            builder: parse(&b, BuilderName::parse)?,
            nar_hash: parse(&h, NarHash::parse)?,
            drv_path: drv(r.opt_text(6)?)?,
            output_name: out(r.opt_text(7)?)?,
        }),
        _ => None,
    };
    Ok(EvaluationRow { ord, path, drv_path, output_name, vote })
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
        let statements: Vec<Statement> =
            DELETE_JOBSET.iter().map(|s| Statement::new(s, vec![Param::Int(j.id)])).collect();
        self.executor().transaction(&statements).await?;
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
        let results = exec.transaction(&statements).await?;
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

    pub(crate) async fn evaluation_rows_in(&self, id: i64, from: u64, to: u64) -> StoreResult<Vec<EvaluationRow>> {
        let params = [Param::Int(id), Param::Int(int(from)?), Param::Int(int(to)?)];
        self.executor().query(EVALUATION_ROWS, &params).await?.into_iter().map(evaluation_row).collect()
    }

    pub(crate) async fn evaluation_store_summary(&self, id: i64, s: &Summary, at: i64) -> StoreResult<()> {
        let params = [
            Param::Int(id),
            Param::Int(int(s.reproduced)?),
            Param::Int(int(s.partially_reproduced)?),
            Param::Int(int(s.not_reproduced)?),
            Param::Int(int(s.one_builder)?),
            Param::Int(int(s.no_builds)?),
            Param::Int(at),
        ];
        self.executor().query(STORE_SUMMARY, &params).await.map(|_| ())
    }
}
