//! What a database driver supplies: run one statement and get its rows, or run
//! several statements in one transaction. Rows come back as positional values, so
//! the decoding into records is written once (in [`crate::rows`]).

use async_trait::async_trait;
use nhc_core::StorePath;
use nhc_storage::{InsertCounts, StoreError, StoreResult, Submission, VoteCounts};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::Dialect;

/// A bound parameter: the schema has only text and 64-bit integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param<'a> {
    Text(&'a str),
    Int(i64),
}

/// One statement of a transaction, with its parameters.
#[derive(Debug, Clone)]
pub struct Statement<'a> {
    pub sql: &'static str,
    pub params: Vec<Param<'a>>,
}

impl<'a> Statement<'a> {
    pub fn new(sql: &'static str, params: Vec<Param<'a>>) -> Self {
        Statement { sql, params }
    }
}

/// One column's value in a row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Value {
    #[default]
    Null,
    Int(i64),
    Text(String),
}

/// A row: its columns in the order of the statement's `SELECT` (or `RETURNING`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn take(&mut self, i: usize) -> StoreResult<Value> {
        self.0.get_mut(i).map(std::mem::take).ok_or_else(|| StoreError::Internal(format!("a row has no column {i}")))
    }

    pub fn text(&mut self, i: usize) -> StoreResult<String> {
        self.opt_text(i)?.ok_or_else(|| StoreError::Internal(format!("column {i} is NULL")))
    }

    pub fn opt_text(&mut self, i: usize) -> StoreResult<Option<String>> {
        match self.take(i)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s)),
            Value::Int(n) => Err(StoreError::Internal(format!("column {i}: a number ({n}) where text was expected"))),
        }
    }

    pub fn int(&mut self, i: usize) -> StoreResult<i64> {
        self.opt_int(i)?.ok_or_else(|| StoreError::Internal(format!("column {i} is NULL")))
    }

    pub fn opt_int(&mut self, i: usize) -> StoreResult<Option<i64>> {
        match self.take(i)? {
            Value::Null => Ok(None),
            Value::Int(n) => Ok(Some(n)),
            Value::Text(_) => Err(StoreError::Internal(format!("column {i}: text where a number was expected"))),
        }
    }
}

/// A database that runs statements. Implemented by sqlx (SQLite, PostgreSQL) and by
/// D1; [`crate::SqlStorage`] implements the storage once on top of it.
#[async_trait]
pub trait Executor: Send + Sync + 'static {
    /// The statements whose text differs between databases.
    fn dialect(&self) -> &'static Dialect;

    /// The largest parameter the database accepts, in bytes: longer lists are sent in
    /// several statements ([`crate::batch::UNLIMITED`] when there is no limit).
    fn max_param_bytes(&self) -> usize {
        crate::batch::UNLIMITED
    }

    /// Runs one statement and returns its rows.
    async fn query(&self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<Vec<Row>>;

    /// Runs the statements in order in one transaction (all or nothing) and returns
    /// the rows of each.
    async fn transaction(&self, statements: &[Statement<'_>]) -> StoreResult<Vec<Vec<Row>>>;

    /// Why attestations cannot be stored now, when the executor knows it without
    /// trying (its writer lost its connection and is reconnecting): `/health` then
    /// reports the store unavailable. The default knows nothing.
    fn write_fault(&self) -> Option<String> {
        None
    }

    /// The vote counts of `paths` (distinct; one entry per path, in order) when the
    /// executor has a faster way than [`Dialect::votes_of_paths`] (the sqlx executor on
    /// SQLite: one prepared statement per path on the raw handle, off the async
    /// threads); `None`, the default, runs the statement.
    async fn native_vote_counts(&self, _paths: &[&StorePath]) -> Option<StoreResult<Vec<VoteCounts>>> {
        None
    }

    /// A read of many rows (hundreds: a log entry bundle, a page of paths). The same
    /// rows as [`Executor::query`]; an executor may have a cheaper way for many rows
    /// (the sqlx executor on SQLite reads them from the raw handle off the async
    /// threads, where sqlx sends every row through a channel). The default is `query`.
    async fn query_many(&self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<Vec<Row>> {
        self.query(sql, params).await
    }

    /// Stores a verified submission. The default is one transaction per submission;
    /// the sqlx executor hands it to its group-commit writer instead, which calls
    /// [`crate::insert_submissions`] for many at once.
    async fn insert_submission(&self, submission: Submission) -> StoreResult<InsertCounts> {
        let mut counts = crate::insert_submissions(self, &[&submission]).await?;
        counts.pop().ok_or_else(|| StoreError::Internal("no counts for a submission".into()))
    }
}

/// Rows from D1 arrive as JavaScript objects (or arrays with `raw()`): both
/// deserialize into positional values, in column order.
impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = Row;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a row (an object or an array of columns)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
                let mut values = Vec::new();
                while let Some((_, v)) = map.next_entry::<serde::de::IgnoredAny, Value>()? {
                    values.push(v);
                }
                Ok(Row(values))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Row, A::Error> {
                let mut values = Vec::new();
                while let Some(v) = seq.next_element::<Value>()? {
                    values.push(v);
                }
                Ok(Row(values))
            }
        }
        d.deserialize_any(RowVisitor)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl Visitor<'_> for ValueVisitor {
            type Value = Value;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("NULL, an integer or text")
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
                i64::try_from(v).map(Value::Int).map_err(E::custom)
            }
            // D1 numbers are doubles; every integer stored fits in 2^53.
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
                if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
                    Ok(Value::Int(v as i64))
                } else {
                    Err(E::custom(format!("{v} is not an integer")))
                }
            }
            fn visit_str<E>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Text(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Value, E> {
                Ok(Value::Text(v))
            }
        }
        d.deserialize_any(ValueVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_deserialize_from_objects_and_arrays_in_column_order() {
        let r: Row = serde_json::from_str(r#"{"z": "a", "a": 2, "m": null, "f": 3.0}"#).unwrap();
        assert_eq!(r, Row(vec![Value::Text("a".into()), Value::Int(2), Value::Null, Value::Int(3)]));
        let mut r: Row = serde_json::from_str(r#"["x", 5, null]"#).unwrap();
        assert_eq!(r.text(0).unwrap(), "x");
        assert_eq!(r.int(1).unwrap(), 5);
        assert_eq!(r.opt_int(2).unwrap(), None);
        assert!(r.int(7).is_err());
        assert!(serde_json::from_str::<Row>(r#"[1.5]"#).is_err());
    }
}
