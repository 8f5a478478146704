//! Operator queries: snapshot counts and sizes, aggregates behind their snapshots, and what a
//! prune would remove.

use snap_core::{
    BackendError, SnapshotAdmin, SnapshotLag, SnapshotTypeStats, async_trait, validate,
};
use sqlx::{AssertSqlSafe, Row};
use time::OffsetDateTime;

use crate::PostgresDatabase;
use crate::error::pg_error;

fn check_type(aggregate_type: Option<&str>) -> Result<(), BackendError> {
    validate::admin_type("postgres", aggregate_type)
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The lag query: every stream found by one index probe from the one before (a skip scan over
/// the primary key), its head by one backward probe, its snapshot by its key. It reads a few
/// index pages per stream, never the events themselves. `$1` is the limit; with `typed`, `$2`
/// is the type (two statements, so neither plan hides an `OR` that no index can bound).
pub(crate) fn lag_sql(schema: &str, typed: bool) -> String {
    let s = format!("\"{schema}\"");
    let (first, next) = if typed {
        (
            "WHERE aggregate_type = $2 ORDER BY aggregate_id",
            "e.aggregate_type = $2 AND e.aggregate_id > st.aggregate_id",
        )
    } else {
        (
            "ORDER BY aggregate_type, aggregate_id",
            "(e.aggregate_type, e.aggregate_id) > (st.aggregate_type, st.aggregate_id)",
        )
    };
    format!(
        "WITH RECURSIVE streams(aggregate_type, aggregate_id) AS (
             (SELECT aggregate_type, aggregate_id FROM {s}.events {first} LIMIT 1)
             UNION ALL
             SELECT next.aggregate_type, next.aggregate_id FROM streams st CROSS JOIN LATERAL
                 (SELECT e.aggregate_type, e.aggregate_id FROM {s}.events e WHERE {next}
                  ORDER BY e.aggregate_type, e.aggregate_id LIMIT 1) AS next)
         SELECT st.aggregate_type, st.aggregate_id, head.version AS head,
                COALESCE(l.version, 0) AS snapshot, l.updated_at
         FROM streams st
         CROSS JOIN LATERAL
             (SELECT e.version FROM {s}.events e
              WHERE e.aggregate_type = st.aggregate_type AND e.aggregate_id = st.aggregate_id
              ORDER BY e.version DESC LIMIT 1) AS head
         LEFT JOIN {s}.snapshots l
             ON l.aggregate_type = st.aggregate_type AND l.aggregate_id = st.aggregate_id
         ORDER BY head.version - COALESCE(l.version, 0) DESC, 1, 2
         LIMIT $1"
    )
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
                    max(octet_length(state::text))::bigint, min(updated_at), max(updated_at)
             FROM (SELECT aggregate_type, schema_version, state, updated_at FROM {s}.snapshots
                   UNION ALL
                   SELECT aggregate_type, schema_version, state, updated_at FROM {s}.snapshot_history)
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
        let sql = lag_sql(self.schema(), aggregate_type.is_some());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let query = sqlx::query(AssertSqlSafe(sql));
        let query = match aggregate_type {
            Some(t) => query.bind(limit).bind(t),
            None => query.bind(limit),
        };
        let rows = query
            .fetch_all(self.pool())
            .await
            .map_err(|e| pg_error(e, "snapshot_lag"))?;
        rows.iter()
            .map(|row| {
                let field = |e| pg_error(e, "decode snapshot_lag");
                Ok(SnapshotLag::new(
                    row.try_get(0).map_err(field)?,
                    snap_core::AggregateId::parse_stored(
                        "postgres",
                        row.try_get(1).map_err(field)?,
                    )?,
                    count(row.try_get(2).map_err(field)?),
                    count(row.try_get(3).map_err(field)?),
                )
                .with_updated_at(row.try_get(4).map_err(field)?))
            })
            .collect()
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
