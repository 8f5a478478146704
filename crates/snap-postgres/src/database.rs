//! The pool, the schema the tables live in, the SQL built once for it, and migrations.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use snap_core::{BackendError, InvalidInput};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Executor, SqlStr};

use crate::error::{is_disconnect, pg_error};
use crate::{PostgresEventStore, PostgresSnapshotStore};

/// The schema, one embedded SQL file per version, applied in order by
/// [`PostgresDatabase::migrate`].
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (
        2,
        "lean snapshot indexes",
        include_str!("../migrations/0002_lean_snapshot_indexes.sql"),
    ),
    (
        3,
        "string ids and updated_at",
        include_str!("../migrations/0003_string_ids_and_updated_at.sql"),
    ),
];

/// The schema the tables go in when none is named.
pub const DEFAULT_SCHEMA: &str = "public";

/// Checks a schema name: 1 to 63 characters of lowercase ASCII letters, digits and `_`,
/// not starting with a digit, so it needs no quoting and cannot smuggle SQL.
pub fn validate_schema_name(name: &str) -> Result<(), InvalidInput> {
    let field = "schema";
    if name.is_empty() {
        return Err(InvalidInput::Empty { field });
    }
    if name.len() > 63 {
        return Err(InvalidInput::TooLong {
            field,
            len: name.len(),
            max: 63,
        });
    }
    let valid = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if valid {
        Ok(())
    } else {
        Err(InvalidInput::InvalidIdentifier {
            field,
            value: name.to_owned(),
        })
    }
}

/// Settings for connecting a [`PostgresDatabase`].
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    url: String,
    schema: String,
    max_connections: u32,
    acquire_timeout: Duration,
    application_name: String,
    migrate: bool,
}

impl PostgresOptions {
    /// Options for a `postgres://` URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: DEFAULT_SCHEMA.to_owned(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            application_name: "snap-es".to_owned(),
            migrate: true,
        }
    }

    /// The schema the tables live in (default `public`), created by [`migrate`](PostgresDatabase::migrate)
    /// if missing; checked by [`validate_schema_name`] when connecting.
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The most connections the pool opens (default 10).
    #[must_use]
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// How long a call waits for a free connection (default 10 s).
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The `application_name` the connections report (default `snap-es`).
    #[must_use]
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// Whether [`connect`](Self::connect) applies the migrations (default `true`).
    #[must_use]
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Connects the pool and, unless turned off, migrates the schema.
    ///
    /// The pool runs no health-check query before handing out a connection (that would double
    /// the cost of every call); a connection the server dropped is replaced when a call finds
    /// it dead, and the call is tried again on another connection.
    pub async fn connect(self) -> Result<PostgresDatabase, BackendError> {
        validate_schema_name(&self.schema)
            .map_err(|e| BackendError::new("postgres", e).context("schema name"))?;
        let options: PgConnectOptions = self
            .url
            .parse::<PgConnectOptions>()
            .map_err(|e| BackendError::new("postgres", e).context("parse the database URL"))?
            .application_name(&self.application_name);
        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|e| pg_error(e, "connect"))?;
        let database = PostgresDatabase::with_schema(pool, &self.schema)
            .map_err(|e| BackendError::new("postgres", e).context("schema name"))?;
        if self.migrate {
            database.migrate().await?;
        }
        Ok(database)
    }
}

/// Statements for one schema, built once.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) snapshots: SnapshotSql,
    pub(crate) events: EventSql,
    pub(crate) backend: crate::backend::BackendSql,
}

/// Statements of the snapshot store.
#[derive(Debug)]
pub(crate) struct SnapshotSql {
    pub(crate) get_latest: SqlStr,
    pub(crate) get_at: SqlStr,
    pub(crate) save_latest: SqlStr,
    pub(crate) upsert_latest: SqlStr,
    pub(crate) highest_version: SqlStr,
    pub(crate) drop_history_from: SqlStr,
    pub(crate) lock_aggregate: SqlStr,
    pub(crate) move_to_history: SqlStr,
    pub(crate) trim_history: SqlStr,
    pub(crate) delete: SqlStr,
    pub(crate) exists: SqlStr,
    pub(crate) delete_by_type: SqlStr,
    pub(crate) promote_history: SqlStr,
}

/// Statements of the event store.
#[derive(Debug)]
pub(crate) struct EventSql {
    pub(crate) append: SqlStr,
    pub(crate) load: SqlStr,
    pub(crate) load_page: SqlStr,
    pub(crate) list_ids_first: SqlStr,
    pub(crate) list_ids_after: SqlStr,
    pub(crate) current_version: SqlStr,
    pub(crate) event_id_at: SqlStr,
}

pub(crate) fn sql(text: String) -> SqlStr {
    // Every statement is built from fixed text and a schema name checked by
    // validate_schema_name; values are always bound parameters.
    sqlx::SqlSafeStr::into_sql_str(AssertSqlSafe(Arc::<str>::from(text)))
}

const KEY: &str = "aggregate_type = $1 AND aggregate_id = $2";

impl Sql {
    fn new(schema: &str) -> Self {
        let s = format!("\"{schema}\"");
        Self {
            snapshots: SnapshotSql::new(&s),
            events: EventSql::new(&s),
            backend: crate::backend::BackendSql::new(&s, KEY),
        }
    }
}

impl SnapshotSql {
    fn new(s: &str) -> Self {
        let cols = "version, schema_version, state, created_at, updated_at";
        let key = KEY;
        Self {
            // The latest retained snapshot is always in `snapshots` (saves write it there and
            // delete_by_type promotes the newest history row when it removes the latest).
            get_latest: sql(format!("SELECT {cols} FROM {s}.snapshots WHERE {key}")),
            get_at: sql(format!(
                "SELECT {cols} FROM (
                    SELECT {cols} FROM {s}.snapshots WHERE {key} AND version <= $3
                    UNION ALL
                    (SELECT {cols} FROM {s}.snapshot_history WHERE {key} AND version <= $3
                     ORDER BY version DESC LIMIT 1)
                 ) AS found ORDER BY version DESC LIMIT 1"
            )),
            // A snapshot written on its own is a cache of the events: its commit does not wait
            // for the WAL flush (`synchronous_commit` off for this transaction only). A server
            // crash may lose it, never half of it, and never anything committed before it.
            save_latest: sql(format!(
                "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true)),
                 saved AS (
                     INSERT INTO {s}.snapshots (aggregate_type, aggregate_id, {cols})
                     SELECT $1, $2, $3, $4, $5, $6, $7 FROM relaxed
                     WHERE NOT EXISTS (SELECT 1 FROM {s}.snapshot_history WHERE {key} AND version > $3)
                     ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET
                         version = EXCLUDED.version,
                         schema_version = EXCLUDED.schema_version,
                         state = EXCLUDED.state,
                         updated_at = EXCLUDED.updated_at
                     WHERE snapshots.version <= EXCLUDED.version
                     RETURNING 1)
                 DELETE FROM {s}.snapshot_history WHERE {key} AND EXISTS (SELECT 1 FROM saved)"
            )),
            upsert_latest: sql(format!(
                "INSERT INTO {s}.snapshots (aggregate_type, aggregate_id, {cols})
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET
                     version = EXCLUDED.version,
                     schema_version = EXCLUDED.schema_version,
                     state = EXCLUDED.state,
                     updated_at = EXCLUDED.updated_at"
            )),
            highest_version: sql(format!(
                "SELECT GREATEST(
                     (SELECT max(version) FROM {s}.snapshots WHERE {key}),
                     (SELECT max(version) FROM {s}.snapshot_history WHERE {key}))"
            )),
            drop_history_from: sql(format!(
                "DELETE FROM {s}.snapshot_history WHERE {key} AND version >= $3"
            )),
            lock_aggregate: sql(
                "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2::text, 7))".to_owned(),
            ),
            move_to_history: sql(format!(
                "INSERT INTO {s}.snapshot_history (aggregate_type, aggregate_id, {cols})
                 SELECT aggregate_type, aggregate_id, {cols} FROM {s}.snapshots
                 WHERE {key} AND version < $3
                 ON CONFLICT (aggregate_type, aggregate_id, version) DO NOTHING"
            )),
            trim_history: sql(format!(
                "DELETE FROM {s}.snapshot_history
                 WHERE {key} AND version <= (
                     SELECT version FROM {s}.snapshot_history WHERE {key}
                     ORDER BY version DESC LIMIT 1 OFFSET $3)"
            )),
            delete: sql(format!(
                "WITH latest AS (DELETE FROM {s}.snapshots WHERE {key} RETURNING 1),
                      older AS (DELETE FROM {s}.snapshot_history WHERE {key} RETURNING 1)
                 SELECT (SELECT count(*) FROM latest) + (SELECT count(*) FROM older)"
            )),
            exists: sql(format!(
                "SELECT EXISTS (SELECT 1 FROM {s}.snapshots WHERE {key})
                     OR EXISTS (SELECT 1 FROM {s}.snapshot_history WHERE {key})"
            )),
            delete_by_type: sql(format!(
                "WITH latest AS (DELETE FROM {s}.snapshots
                                 WHERE aggregate_type = $1 AND ($2::bigint IS NULL OR schema_version < $2)
                                 RETURNING 1),
                      older AS (DELETE FROM {s}.snapshot_history
                                WHERE aggregate_type = $1 AND ($2::bigint IS NULL OR schema_version < $2)
                                RETURNING 1)
                 SELECT (SELECT count(*) FROM latest) + (SELECT count(*) FROM older)"
            )),
            promote_history: sql(format!(
                "WITH promoted AS (
                     DELETE FROM {s}.snapshot_history h
                     WHERE h.aggregate_type = $1
                       AND NOT EXISTS (SELECT 1 FROM {s}.snapshots l
                                       WHERE l.aggregate_type = h.aggregate_type
                                         AND l.aggregate_id = h.aggregate_id)
                       AND h.version = (SELECT max(m.version) FROM {s}.snapshot_history m
                                        WHERE m.aggregate_type = h.aggregate_type
                                          AND m.aggregate_id = h.aggregate_id)
                     RETURNING h.aggregate_type, h.aggregate_id, h.version, h.schema_version,
                               h.state, h.created_at, h.updated_at)
                 INSERT INTO {s}.snapshots (aggregate_type, aggregate_id, {cols})
                 SELECT aggregate_type, aggregate_id, {cols} FROM promoted
                 ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET
                     version = EXCLUDED.version,
                     schema_version = EXCLUDED.schema_version,
                     state = EXCLUDED.state,
                     created_at = EXCLUDED.created_at,
                     updated_at = EXCLUDED.updated_at
                 WHERE snapshots.version < EXCLUDED.version"
            )),
        }
    }
}

/// The ids of a type's streams in order, `$2` at most, each found by one index probe from the
/// one before (a skip scan), so a page costs `$2` probes however long the streams are. `after`
/// bounds the first probe (`AND aggregate_id > $3`) or is empty: two statements, so neither
/// plan hides an `OR` that no index can bound.
fn list_ids(s: &str, after: &str) -> String {
    format!(
        "WITH RECURSIVE ids(aggregate_id, n) AS (
             (SELECT aggregate_id, 1 FROM {s}.events WHERE aggregate_type = $1 {after}
              ORDER BY aggregate_id LIMIT 1)
             UNION ALL
             SELECT next.aggregate_id, ids.n + 1 FROM ids CROSS JOIN LATERAL
                 (SELECT e.aggregate_id FROM {s}.events e
                  WHERE e.aggregate_type = $1 AND e.aggregate_id > ids.aggregate_id
                  ORDER BY e.aggregate_id LIMIT 1) AS next
             WHERE ids.n < $2)
         SELECT aggregate_id FROM ids ORDER BY n"
    )
}

/// The head of the stream `$1`/`$2` by a backward probe of the primary key. Not
/// `MAX(version)`: a plan cached while the stream was short may compute that by reading every
/// row of the stream.
pub(crate) fn head(s: &str) -> String {
    format!("SELECT version FROM {s}.events WHERE {KEY} ORDER BY version DESC LIMIT 1")
}

/// The `head` and `inserted` parts of an append's `WITH` clause: the events `$4..$7` inserted
/// after the head only if the stream is at `$3`. The append selects from them; the backend's
/// commit adds its snapshot upsert to them.
pub(crate) fn append_ctes(s: &str) -> String {
    let head = head(s);
    format!(
        "WITH head AS (SELECT COALESCE(({head}), 0) AS version),
              inserted AS (
                  INSERT INTO {s}.events
                      (aggregate_type, aggregate_id, version, event_id, event_type, payload, metadata)
                  SELECT $1, $2, head.version + e.ord, e.event_id, e.event_type, e.payload, e.metadata
                  FROM head,
                       UNNEST($4::uuid[], $5::text[], $6::jsonb[], $7::jsonb[])
                           WITH ORDINALITY AS e(event_id, event_type, payload, metadata, ord)
                  WHERE head.version = $3
                  RETURNING 1)"
    )
}

impl EventSql {
    fn new(s: &str) -> Self {
        let key = KEY;
        let head = head(s);
        Self {
            append: sql(format!(
                "{}
                 SELECT head.version, (SELECT count(*) FROM inserted) FROM head",
                append_ctes(s)
            )),
            load: sql(format!(
                "SELECT version, event_id, event_type, payload, metadata, recorded_at FROM {s}.events
                 WHERE {key} AND version > $3 AND version <= $4 ORDER BY version"
            )),
            list_ids_first: sql(list_ids(s, "")),
            list_ids_after: sql(list_ids(s, "AND aggregate_id > $3")),
            load_page: sql(format!(
                "SELECT version, event_id, event_type, payload, metadata, recorded_at FROM {s}.events
                 WHERE {key} AND version > $3 AND version <= $4 ORDER BY version LIMIT $5"
            )),
            current_version: sql(format!("SELECT COALESCE(({head}), 0)")),
            event_id_at: sql(format!(
                "SELECT event_id FROM {s}.events WHERE {key} AND version = $3"
            )),
        }
    }
}

struct Inner {
    pool: PgPool,
    schema: String,
    sql: Sql,
}

/// A PostgreSQL database: a connection pool and the schema the snap-es tables live in,
/// shared by the snapshot and event stores made from it. Cheap to clone.
#[derive(Clone)]
pub struct PostgresDatabase {
    inner: Arc<Inner>,
    /// Snapshot versions kept per aggregate by the stores and the backend of this handle.
    pub(crate) keep: usize,
}

impl fmt::Debug for PostgresDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresDatabase")
            .field("schema", &self.inner.schema)
            .field("connections", &self.inner.pool.size())
            .field("idle", &self.inner.pool.num_idle())
            .field("keep_history", &self.keep)
            .finish_non_exhaustive()
    }
}

impl PostgresDatabase {
    /// Connects to a `postgres://` URL with the default options and migrates the `public`
    /// schema.
    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        PostgresOptions::new(url).connect().await
    }

    /// Uses an existing pool, with the tables in the `public` schema. Does not migrate: call
    /// [`migrate`](Self::migrate).
    pub fn new(pool: PgPool) -> Self {
        Self::build(pool, DEFAULT_SCHEMA)
    }

    /// Uses an existing pool, with the tables in `schema` (checked by
    /// [`validate_schema_name`]). Does not migrate: call [`migrate`](Self::migrate).
    pub fn with_schema(pool: PgPool, schema: &str) -> Result<Self, InvalidInput> {
        validate_schema_name(schema)?;
        Ok(Self::build(pool, schema))
    }

    fn build(pool: PgPool, schema: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                schema: schema.to_owned(),
                sql: Sql::new(schema),
            }),
            keep: 1,
        }
    }

    /// This handle keeping the `k` highest snapshot versions per aggregate (the latest is
    /// always kept, so `0` counts as `1`), as a [`Backend`](snap_core::Backend) and in the
    /// snapshot stores it makes. Handles share the pool.
    #[must_use]
    pub fn keep_history(mut self, k: usize) -> Self {
        self.keep = k.max(1);
        self
    }

    /// A snapshot store on this database, keeping the snapshot versions this handle keeps
    /// (by default the latest per aggregate).
    pub fn snapshot_store(&self) -> PostgresSnapshotStore {
        PostgresSnapshotStore::from_database(self.clone()).keep_history(self.keep)
    }

    /// An event store on this database.
    pub fn event_store(&self) -> PostgresEventStore {
        PostgresEventStore::from_database(self.clone())
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The schema the tables live in.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    pub(crate) fn sql(&self) -> &Sql {
        &self.inner.sql
    }

    /// Creates the schema if missing and applies the migrations not applied yet. Safe to call
    /// again, and from several processes at once: sqlx's migrator holds an advisory lock
    /// while it works. The migration history is kept per schema.
    pub async fn migrate(&self) -> Result<(), BackendError> {
        self.migrate_to(MIGRATIONS.last().map_or(0, |(version, ..)| *version))
            .await
    }

    /// Applies the schema migrations up to `version` (1 is the first of [`MIGRATIONS`]), for
    /// an operator who moves a database one step at a time. A schema already past `version`
    /// is left as it is (migrations only go forward); a `version` beyond the last is an error.
    pub async fn migrate_to(&self, version: i64) -> Result<(), BackendError> {
        if !MIGRATIONS.iter().any(|(v, ..)| *v == version) {
            return Err(BackendError::new(
                "postgres",
                format!(
                    "no schema version {version}: the versions are 1 to {}",
                    MIGRATIONS.len()
                ),
            )
            .context("migrate"));
        }
        let schema = self.inner.schema.clone();
        let mut migrator = Migrator::with_migrations(
            MIGRATIONS
                .iter()
                .map(|(version, description, text)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        SqlStr::from_static(text),
                        false,
                    )
                })
                .collect(),
        );
        migrator.dangerous_set_table_name(format!("\"{schema}\"._sqlx_migrations"));
        migrator.create_schema(schema.clone());
        // The SQL names its tables without a schema, so it runs with the store's schema first
        // on the search path (allowed before the migrator creates the schema), on a connection
        // that then closes instead of going back to the pool with that setting.
        let mut connection = self
            .inner
            .pool
            .acquire()
            .await
            .map_err(|e| pg_error(e, "migrate: acquire"))?
            .detach();
        connection
            .execute(sql(format!("SET search_path TO \"{schema}\"")))
            .await
            .map_err(|e| pg_error(e, "migrate: set search_path"))?;
        // `run_direct` is what `Migrator::run` calls; calling it straight avoids the
        // "Acquire is not general enough" error that `run` gives inside a `Send` future.
        let outcome = migrator
            .run_direct(Some(version), &mut connection, false)
            .await
            .map_err(|e| BackendError::new("postgres", e).context("migrate"));
        let _ = connection.close().await;
        outcome
    }

    /// The highest migration applied to this schema (0 before any).
    pub async fn schema_version(&self) -> Result<i64, BackendError> {
        let schema = &self.inner.schema;
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables
                            WHERE table_schema = $1 AND table_name = '_sqlx_migrations')",
        )
        .bind(schema)
        .fetch_one(&self.inner.pool)
        .await
        .map_err(|e| pg_error(e, "schema_version"))?;
        if !exists {
            return Ok(0);
        }
        sqlx::query_scalar(sql(format!(
            "SELECT COALESCE(MAX(version), 0) FROM \"{schema}\"._sqlx_migrations WHERE success"
        )))
        .fetch_one(&self.inner.pool)
        .await
        .map_err(|e| pg_error(e, "schema_version"))
    }

    /// Closes the pool, waiting for checked-out connections to come back.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    /// How many times a call may meet a dropped connection: every idle connection may be dead,
    /// so one try per connection plus a fresh one.
    pub(crate) fn attempts(&self) -> u32 {
        self.inner.pool.options().get_max_connections() + 1
    }

    /// Runs `call` with the pool, trying again on another connection when the connection
    /// itself failed (a server restart or `pg_terminate_backend` kills idle pooled
    /// connections, and the pool runs no health check). Callers only pass statements that
    /// are safe to repeat, or that detect their own earlier success.
    pub(crate) async fn retry<T, F, Fut>(&self, call: F) -> Result<T, sqlx::Error>
    where
        F: Fn(PgPool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let attempts = self.attempts();
        let mut attempt = 1;
        loop {
            match call(self.inner.pool.clone()).await {
                Err(e) if attempt < attempts && is_disconnect(&e) => attempt += 1,
                result => return result,
            }
        }
    }
}
