//! Operator queries: snapshot counts and sizes, aggregates behind their snapshots, and what a
//! prune would remove.

use rusqlite::params;
use snap_core::{
    BackendError, SnapshotAdmin, SnapshotLag, SnapshotTypeStats, async_trait, validate,
};
use uuid::Uuid;

use crate::SqliteDatabase;
use crate::codec::{schema_from_sql, timestamp_from_sql, version_from_sql};
use crate::error::sqlite_error;

fn decode_error(e: impl Into<snap_core::BoxError>) -> BackendError {
    BackendError::new("sqlite", e).context("decode an operator query row")
}

fn check_type(aggregate_type: Option<&str>) -> Result<(), BackendError> {
    if let Some(t) = aggregate_type {
        validate::aggregate_type(t)
            .map_err(|e| BackendError::new("sqlite", e).context("aggregate type"))?;
    }
    Ok(())
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
                            max(length(CAST(state AS BLOB))), min(created_at), max(created_at)
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
                .prepare_cached(
                    "SELECT e.aggregate_type, e.aggregate_id, max(e.version) AS head,
                            COALESCE((SELECT max(s.version) FROM snapshots s
                                      WHERE s.aggregate_type = e.aggregate_type
                                        AND s.aggregate_id = e.aggregate_id), 0) AS snapshot
                     FROM events e WHERE ?1 IS NULL OR e.aggregate_type = ?1
                     GROUP BY e.aggregate_type, e.aggregate_id
                     ORDER BY head - snapshot DESC, e.aggregate_type, e.aggregate_id LIMIT ?2",
                )
                .map_err(|e| sqlite_error(e, "prepare snapshot_lag"))?;
            let mut rows = statement
                .query(params![aggregate_type, limit])
                .map_err(|e| sqlite_error(e, "snapshot_lag"))?;
            let mut lag = Vec::new();
            while let Some(row) = rows.next().map_err(|e| sqlite_error(e, "snapshot_lag"))? {
                let id: String = row.get(1).map_err(decode_error)?;
                lag.push(SnapshotLag::new(
                    row.get(0).map_err(decode_error)?,
                    Uuid::try_parse(&id).map_err(decode_error)?,
                    version_from_sql(row.get_ref(2).map_err(decode_error)?)
                        .map_err(decode_error)?,
                    u64::try_from(row.get::<_, i64>(3).map_err(decode_error)?).unwrap_or(0),
                ));
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
