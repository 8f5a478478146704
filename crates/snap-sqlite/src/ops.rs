//! Operator queries: snapshot counts and sizes, aggregates behind their snapshots, and what a
//! prune would remove.

use rusqlite::params;
use snap_core::{
    BackendError, SnapshotAdmin, SnapshotLag, SnapshotTypeStats, async_trait, validate,
};

use crate::SqliteDatabase;
use crate::codec::{schema_from_sql, timestamp_from_sql, version_from_sql};
use crate::error::sqlite_error;

fn decode_error(e: impl Into<snap_core::BoxError>) -> BackendError {
    BackendError::new("sqlite", e).context("decode an operator query row")
}

fn check_type(aggregate_type: Option<&str>) -> Result<(), BackendError> {
    validate::admin_type("sqlite", aggregate_type)
}

/// The lag query: the types, then each type's streams, each found by one probe of the primary
/// key from the one before (a skip scan), each stream's head and latest snapshot by one probe
/// each. It reads a few index pages per stream, never a whole stream. `?1` is the limit; with
/// `typed`, `?2` is the type.
pub(crate) fn lag_sql(typed: bool) -> String {
    let type_rows = if typed {
        "SELECT ?2"
    } else {
        "SELECT (SELECT min(aggregate_type) FROM events)
         UNION ALL
         SELECT (SELECT aggregate_type FROM events WHERE aggregate_type > types.t
                 ORDER BY aggregate_type LIMIT 1)
         FROM types WHERE types.t IS NOT NULL"
    };
    format!(
        "WITH RECURSIVE
             types(t) AS ({type_rows}),
             streams(t, id) AS (
                 SELECT t, (SELECT aggregate_id FROM events WHERE aggregate_type = types.t
                            ORDER BY aggregate_id LIMIT 1)
                 FROM types WHERE t IS NOT NULL
                 UNION ALL
                 SELECT t, (SELECT aggregate_id FROM events
                            WHERE aggregate_type = streams.t AND aggregate_id > streams.id
                            ORDER BY aggregate_id LIMIT 1)
                 FROM streams WHERE id IS NOT NULL)
         SELECT t, id,
                (SELECT version FROM events WHERE aggregate_type = t AND aggregate_id = id
                 ORDER BY version DESC LIMIT 1) AS head,
                COALESCE((SELECT version FROM snapshots WHERE aggregate_type = t AND aggregate_id = id
                          ORDER BY version DESC LIMIT 1), 0) AS snapshot,
                (SELECT updated_at FROM snapshots WHERE aggregate_type = t AND aggregate_id = id
                 ORDER BY version DESC LIMIT 1) AS updated
         FROM streams WHERE id IS NOT NULL
         ORDER BY head - snapshot DESC, t, id LIMIT ?1"
    )
}

#[async_trait]
impl SnapshotAdmin for SqliteDatabase {
    async fn snapshot_stats(
        &self,
        aggregate_type: Option<&str>,
    ) -> Result<Vec<SnapshotTypeStats>, BackendError> {
        check_type(aggregate_type)?;
        let aggregate_type = aggregate_type.map(str::to_owned);
        self.run(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT aggregate_type, schema_version, count(*), sum(length(CAST(state AS BLOB))),
                            max(length(CAST(state AS BLOB))), min(updated_at), max(updated_at)
                     FROM snapshots WHERE ?1 IS NULL OR aggregate_type = ?1
                     GROUP BY aggregate_type, schema_version
                     ORDER BY aggregate_type, schema_version",
                )
                .map_err(|e| sqlite_error(e, "prepare snapshot_stats"))?;
            let mut rows = statement
                .query(params![aggregate_type])
                .map_err(|e| sqlite_error(e, "snapshot_stats"))?;
            let mut stats = Vec::new();
            while let Some(row) = rows.next().map_err(|e| sqlite_error(e, "snapshot_stats"))? {
                let count = |i| row.get::<_, i64>(i).map(|n| u64::try_from(n).unwrap_or(0));
                stats.push(SnapshotTypeStats::new(
                    row.get(0).map_err(decode_error)?,
                    schema_from_sql(row.get_ref(1).map_err(decode_error)?).map_err(decode_error)?,
                    count(2).map_err(decode_error)?,
                    count(3).map_err(decode_error)?,
                    count(4).map_err(decode_error)?,
                    timestamp_from_sql(row.get_ref(5).map_err(decode_error)?).map_err(decode_error)?,
                    timestamp_from_sql(row.get_ref(6).map_err(decode_error)?).map_err(decode_error)?,
                ));
            }
            Ok(stats)
        })
        .await?
    }

    async fn snapshot_lag(
        &self,
        aggregate_type: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SnapshotLag>, BackendError> {
        check_type(aggregate_type)?;
        let aggregate_type = aggregate_type.map(str::to_owned);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |connection| {
            let mut statement = connection
                .prepare_cached(&lag_sql(aggregate_type.is_some()))
                .map_err(|e| sqlite_error(e, "prepare snapshot_lag"))?;
            let rows = match &aggregate_type {
                Some(t) => statement.query(params![limit, t]),
                None => statement.query(params![limit]),
            };
            let mut rows = rows.map_err(|e| sqlite_error(e, "snapshot_lag"))?;
            let mut lag = Vec::new();
            while let Some(row) = rows.next().map_err(|e| sqlite_error(e, "snapshot_lag"))? {
                let id: String = row.get(1).map_err(decode_error)?;
                lag.push(
                    SnapshotLag::new(
                        row.get(0).map_err(decode_error)?,
                        snap_core::AggregateId::parse_stored("sqlite", id)?,
                        version_from_sql(row.get_ref(2).map_err(decode_error)?)
                            .map_err(decode_error)?,
                        u64::try_from(row.get::<_, i64>(3).map_err(decode_error)?).unwrap_or(0),
                    )
                    .with_updated_at(
                        match row.get_ref(4).map_err(decode_error)? {
                            rusqlite::types::ValueRef::Null => None,
                            value => Some(timestamp_from_sql(value).map_err(decode_error)?),
                        },
                    ),
                );
            }
            Ok(lag)
        })
        .await?
    }

    async fn count_snapshots_by_type(
        &self,
        aggregate_type: &str,
        schema_version_below: Option<u32>,
    ) -> Result<u64, BackendError> {
        check_type(Some(aggregate_type))?;
        let aggregate_type = aggregate_type.to_owned();
        let below = schema_version_below.map(i64::from);
        self.run(move |connection| {
            connection
                .prepare_cached(
                    "SELECT count(*) FROM snapshots
                     WHERE aggregate_type = ?1 AND (?2 IS NULL OR schema_version < ?2)",
                )
                .and_then(|mut s| {
                    s.query_row(params![aggregate_type, below], |row| row.get::<_, i64>(0))
                })
                .map(|n| u64::try_from(n).unwrap_or(0))
                .map_err(|e| sqlite_error(e, "count_snapshots_by_type"))
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    /// `EXPLAIN QUERY PLAN` of the lag query, with and without a type: every read of the
    /// events is a search of the primary key (one probe per stream), never a scan of the table.
    #[test]
    fn the_lag_query_searches_the_primary_key_and_never_scans_the_events() {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        for (_, sql) in crate::database::MIGRATIONS {
            connection.execute_batch(sql).unwrap();
        }
        for typed in [false, true] {
            let sql = super::lag_sql(typed);
            let mut statement = connection
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let params: Vec<&dyn rusqlite::ToSql> = if typed {
                vec![&5, &"Account"]
            } else {
                vec![&5]
            };
            let plan: Vec<String> = statement
                .query_map(params.as_slice(), |row| row.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let on_events: Vec<&String> = plan
                .iter()
                .filter(|line| line.contains(" events"))
                .collect();
            assert!(!on_events.is_empty(), "{plan:#?}");
            assert!(
                on_events
                    .iter()
                    .all(|line| line.starts_with("SEARCH events USING PRIMARY KEY")),
                "typed {typed}: {plan:#?}"
            );
        }
    }
}
