//! Operator queries: snapshot counts and sizes, aggregates behind their snapshots, and what a
//! prune would remove.

use snap_core::{
    BackendError, SnapshotAdmin, SnapshotLag, SnapshotTypeStats, async_trait, validate,
};
use sqlx::{AssertSqlSafe, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PostgresDatabase;
use crate::error::pg_error;

fn check_type(aggregate_type: Option<&str>) -> Result<(), BackendError> {
    if let Some(t) = aggregate_type {
        validate::aggregate_type(t)
            .map_err(|e| BackendError::new("postgres", e).context("aggregate type"))?;
    }
    Ok(())
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait]
impl SnapshotAdmin for PostgresDatabase {
    async fn snapshot_stats(
        &self,
        aggregate_type: Option<&str>,
    ) -> Result<Vec<SnapshotTypeStats>, BackendError> {
        check_type(aggregate_type)?;
        let s = format!("\"{}\"", self.schema());
        let sql = format!(
            "SELECT aggregate_type, schema_version, count(*), sum(octet_length(state::text))::bigint,
                    max(octet_length(state::text))::bigint, min(created_at), max(created_at)
             FROM (SELECT aggregate_type, schema_version, state, created_at FROM {s}.snapshots
                   UNION ALL
                   SELECT aggregate_type, schema_version, state, created_at FROM {s}.snapshot_history)
                  AS all_snapshots
             WHERE $1::text IS NULL OR aggregate_type = $1
             GROUP BY aggregate_type, schema_version ORDER BY aggregate_type, schema_version"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(aggregate_type)
            .fetch_all(self.pool())
            .await
            .map_err(|e| pg_error(e, "snapshot_stats"))?;
        rows.iter()
            .map(|row| {
                Ok(SnapshotTypeStats::new(
                    row.try_get(0)?,
                    u32::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0),
                    count(row.try_get(2)?),
                    count(row.try_get(3)?),
                    count(row.try_get(4)?),
                    row.try_get::<OffsetDateTime, _>(5)?,
                    row.try_get::<OffsetDateTime, _>(6)?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| pg_error(e, "decode snapshot_stats"))
    }

    async fn snapshot_lag(
        &self,
        aggregate_type: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SnapshotLag>, BackendError> {
        check_type(aggregate_type)?;
        let s = format!("\"{}\"", self.schema());
        let sql = format!(
            "SELECT e.aggregate_type, e.aggregate_id, max(e.version) AS head,
                    COALESCE(max(l.version), 0) AS snapshot
             FROM {s}.events e
             LEFT JOIN {s}.snapshots l
               ON l.aggregate_type = e.aggregate_type AND l.aggregate_id = e.aggregate_id
             WHERE $1::text IS NULL OR e.aggregate_type = $1
             GROUP BY e.aggregate_type, e.aggregate_id
             ORDER BY max(e.version) - COALESCE(max(l.version), 0) DESC, 1, 2
             LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(aggregate_type)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.pool())
            .await
            .map_err(|e| pg_error(e, "snapshot_lag"))?;
        rows.iter()
            .map(|row| {
                Ok(SnapshotLag::new(
                    row.try_get(0)?,
                    row.try_get::<Uuid, _>(1)?,
                    count(row.try_get(2)?),
                    count(row.try_get(3)?),
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| pg_error(e, "decode snapshot_lag"))
    }

    async fn count_snapshots_by_type(
        &self,
        aggregate_type: &str,
        schema_version_below: Option<u32>,
    ) -> Result<u64, BackendError> {
        check_type(Some(aggregate_type))?;
        let s = format!("\"{}\"", self.schema());
        let sql = format!(
            "SELECT (SELECT count(*) FROM {s}.snapshots
                     WHERE aggregate_type = $1 AND ($2::bigint IS NULL OR schema_version < $2))
                  + (SELECT count(*) FROM {s}.snapshot_history
                     WHERE aggregate_type = $1 AND ($2::bigint IS NULL OR schema_version < $2))"
        );
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(aggregate_type)
            .bind(schema_version_below.map(i64::from))
            .fetch_one(self.pool())
            .await
            .map_err(|e| pg_error(e, "count_snapshots_by_type"))?;
        Ok(count(n))
    }
}
