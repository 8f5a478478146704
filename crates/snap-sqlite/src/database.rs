//! The connection pool, the way blocking SQLite calls leave the async executor, and the
//! schema migrations.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::{self, Metrics, Pool, RecycleError, RecycleResult};
use rusqlite::{Connection, OpenFlags};
use rusqlite_migration::{M, Migrations};
use snap_core::BackendError;
use tokio::runtime::{Handle, RuntimeFlavor};

use crate::error::sqlite_error;
use crate::{SqliteEventStore, SqliteSnapshotStore};

/// The schema, one embedded SQL file per version, applied in order by [`SqliteDatabase::migrate`].
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_initial.sql",
        include_str!("../migrations/0001_initial.sql"),
    ),
    (
        "0002_lean_snapshot_indexes.sql",
        include_str!("../migrations/0002_lean_snapshot_indexes.sql"),
    ),
    (
        "0003_string_ids_and_updated_at.sql",
        include_str!("../migrations/0003_string_ids_and_updated_at.sql"),
    ),
];

/// How durable a commit is: SQLite's `synchronous` setting in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous=FULL`: a commit is on disk before it returns, so a committed append
    /// survives a power cut or an operating-system crash. The default: events are the source
    /// of truth.
    #[default]
    Full,
    /// `synchronous=NORMAL`: a commit survives the process being killed but may be lost,
    /// never half-applied, if the machine loses power before the next checkpoint. Faster
    /// writes where that trade is acceptable.
    Normal,
}

/// How a store runs its blocking SQLite calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Blocking {
    /// On a multi-thread tokio runtime, `tokio::task::block_in_place`: the calling worker hands
    /// its other tasks to another thread and runs the query itself, with no thread hop (a few
    /// microseconds instead of 10 to 40). On a current-thread runtime, where `block_in_place`
    /// is not allowed, `spawn_blocking`. Outside a tokio runtime, on the calling thread.
    #[default]
    Auto,
    /// Always `tokio::task::spawn_blocking` (outside a tokio runtime, on the calling thread).
    /// Use it when the caller polls several futures in one task (`join!`, `select!`) and they
    /// must keep making progress while a query runs.
    SpawnBlocking,
}

#[derive(Debug, Clone)]
enum Location {
    File(PathBuf),
    Memory(String),
}

/// Settings for opening a [`SqliteDatabase`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    location: Location,
    pool_size: usize,
    busy_timeout: Duration,
    durability: Durability,
    blocking: Blocking,
    migrate: bool,
}

impl SqliteOptions {
    /// A database file, created if missing.
    ///
    /// `":memory:"`, SQLite's name for an in-memory database, gives the same database as
    /// [`in_memory`](Self::in_memory): one private in-memory database shared by every pooled
    /// connection of the handle (a plain `":memory:"` would give each connection its own). An
    /// empty path, which SQLite would turn into a private temporary file per connection, is
    /// refused by [`open`](Self::open).
    pub fn file(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        if path.as_os_str() == ":memory:" {
            return Self::in_memory();
        }
        Self::new(Location::File(path.to_path_buf()))
    }

    /// A private in-memory database that every pooled connection of this handle shares; it
    /// lives until the last handle is dropped.
    pub fn in_memory() -> Self {
        let name = format!("/snap-es-{}", uuid::Uuid::new_v4().simple());
        Self::new(Location::Memory(name))
    }

    fn new(location: Location) -> Self {
        Self {
            location,
            pool_size: 4,
            busy_timeout: Duration::from_secs(5),
            durability: Durability::default(),
            blocking: Blocking::default(),
            migrate: true,
        }
    }

    /// The most connections open at once (default 4; at least 1).
    #[must_use]
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long a connection waits for another writer's lock before failing with a
    /// retryable error (default 5 s).
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How durable a commit is (default [`Durability::Full`]).
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How blocking calls leave the executor (default [`Blocking::Auto`]).
    #[must_use]
    pub fn blocking(mut self, blocking: Blocking) -> Self {
        self.blocking = blocking;
        self
    }

    /// Whether [`open`](Self::open) applies the schema migrations (default `true`).
    #[must_use]
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Opens the database, applying the migrations unless turned off.
    pub async fn open(self) -> Result<SqliteDatabase, BackendError> {
        if let Location::File(path) = &self.location
            && path.as_os_str().is_empty()
        {
            return Err(BackendError::new(
                "sqlite",
                snap_core::InvalidInput::Empty {
                    field: "database path",
                },
            )
            .context("an empty path would give every pooled connection its own temporary database; name a file or use SqliteOptions::in_memory"));
        }
        let keeper = match &self.location {
            // An in-memory database lives as long as one connection to it is open; the pool
            // may drop its connections, so the handle keeps one of its own.
            Location::Memory(_) => {
                let manager = ConnectionManager::new(&self);
                Some(Arc::new(Mutex::new(
                    run_blocking(self.blocking, move || manager.connect())
                        .await?
                        .map_err(|e| sqlite_error(e, "open"))?,
                )))
            }
            Location::File(_) => None,
        };
        let pool = Pool::builder(ConnectionManager::new(&self))
            .max_size(self.pool_size)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| BackendError::new("sqlite", e).context("build connection pool"))?;
        let database = SqliteDatabase {
            inner: Arc::new(Inner {
                pool,
                blocking: self.blocking,
                busy_timeout: self.busy_timeout,
                location: self.location,
                _keeper: keeper,
            }),
            keep: 1,
        };
        if self.migrate {
            database.migrate().await?;
        }
        Ok(database)
    }
}

/// Opens and configures connections. Recycling runs no query: a connection to a local
/// database does not go stale, and a health-check query would cost a thread hop on every
/// checkout. A connection returned inside an open transaction is discarded.
#[derive(Debug)]
pub(crate) struct ConnectionManager {
    location: Location,
    busy_timeout: Duration,
    durability: Durability,
    blocking: Blocking,
}

impl ConnectionManager {
    fn new(options: &SqliteOptions) -> Self {
        Self {
            location: options.location.clone(),
            busy_timeout: options.busy_timeout,
            durability: options.durability,
            blocking: options.blocking,
        }
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let connection = match &self.location {
            Location::File(path) => Connection::open_with_flags(path, flags)?,
            Location::Memory(name) => {
                Connection::open_with_flags(format!("file:{name}?vfs=memdb"), flags)?
            }
        };
        connection.busy_timeout(self.busy_timeout)?;
        connection.set_prepared_statement_cache_capacity(32);
        if matches!(self.location, Location::File(_)) {
            let mode: String =
                connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some(format!(
                        "the database stays in journal mode {mode:?}; snap-es needs WAL"
                    )),
                ));
            }
        }
        let synchronous = match self.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        connection.pragma_update(None, "synchronous", synchronous)?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        Ok(connection)
    }
}

impl managed::Manager for ConnectionManager {
    type Type = Connection;
    type Error = BackendError;

    async fn create(&self) -> Result<Connection, BackendError> {
        let manager = Self {
            location: self.location.clone(),
            ..*self
        };
        run_blocking(self.blocking, move || manager.connect())
            .await?
            .map_err(|e| sqlite_error(e, "open a connection"))
    }

    async fn recycle(
        &self,
        connection: &mut Connection,
        _: &Metrics,
    ) -> RecycleResult<BackendError> {
        if connection.is_autocommit() {
            Ok(())
        } else {
            Err(RecycleError::message(
                "connection was left inside a transaction",
            ))
        }
    }
}

/// Whether calls on `handle` run inside `block_in_place`, where no timer can interrupt them.
fn in_place(blocking: Blocking, handle: &Handle) -> bool {
    blocking == Blocking::Auto && handle.runtime_flavor() == RuntimeFlavor::MultiThread
}

/// Runs a blocking closure off the async executor, as [`Blocking`] says.
async fn run_blocking<R, F>(blocking: Blocking, f: F) -> Result<R, BackendError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let Ok(handle) = Handle::try_current() else {
        return Ok(f());
    };
    if in_place(blocking, &handle) {
        return Ok(tokio::task::block_in_place(f));
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError::new("sqlite", e).context("blocking task failed"))
}

struct Inner {
    pool: Pool<ConnectionManager>,
    blocking: Blocking,
    busy_timeout: Duration,
    location: Location,
    _keeper: Option<Arc<Mutex<Connection>>>,
}

/// An open SQLite database: a pool of connections shared by the snapshot and event stores
/// made from it. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct SqliteDatabase {
    inner: Arc<Inner>,
    /// Snapshot versions kept per aggregate by the stores and the backend of this handle.
    pub(crate) keep: usize,
}

impl fmt::Debug for SqliteDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.inner.pool.status();
        f.debug_struct("SqliteDatabase")
            .field("location", &self.inner.location)
            .field("blocking", &self.inner.blocking)
            .field("connections", &status.size)
            .field("max_connections", &status.max_size)
            .field("keep_history", &self.keep)
            .finish_non_exhaustive()
    }
}

impl SqliteDatabase {
    /// Opens (creating if missing) a database file with the default options and migrates it.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, BackendError> {
        SqliteOptions::file(path).open().await
    }

    /// A private in-memory database with the default options, migrated.
    pub async fn open_in_memory() -> Result<Self, BackendError> {
        SqliteOptions::in_memory().open().await
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
    pub fn snapshot_store(&self) -> SqliteSnapshotStore {
        SqliteSnapshotStore::new(self.clone()).keep_history(self.keep)
    }

    /// An event store on this database.
    pub fn event_store(&self) -> SqliteEventStore {
        SqliteEventStore::new(self.clone())
    }

    /// Applies the schema migrations that are not applied yet; safe to call again.
    pub async fn migrate(&self) -> Result<(), BackendError> {
        self.migrate_to(u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX))
            .await
    }

    /// Applies the schema migrations up to `version` (1 is the first of [`MIGRATIONS`]), for
    /// an operator who moves a database one step at a time. A database already past `version`
    /// is left as it is (migrations only go forward); a `version` beyond the last is an error.
    pub async fn migrate_to(&self, version: u32) -> Result<(), BackendError> {
        if version as usize > MIGRATIONS.len() {
            return Err(BackendError::new(
                "sqlite",
                format!(
                    "no schema version {version}: the latest is {}",
                    MIGRATIONS.len()
                ),
            )
            .context("migrate"));
        }
        if self.schema_version().await? >= version {
            return Ok(());
        }
        self.run(move |connection| {
            let migrations =
                Migrations::new(MIGRATIONS.iter().map(|(_, sql)| M::up(sql)).collect());
            migrations.to_version(connection, version as usize)
        })
        .await?
        .map_err(|e| BackendError::new("sqlite", e).context("migrate"))
    }

    /// The schema version applied to this database (0 before any migration).
    pub async fn schema_version(&self) -> Result<u32, BackendError> {
        self.run(|connection| connection.pragma_query_value(None, "user_version", |row| row.get(0)))
            .await?
            .map_err(|e| sqlite_error(e, "schema_version"))
    }

    /// Closes the pool: later calls fail, open connections close when returned.
    pub fn close(&self) {
        self.inner.pool.close();
    }

    /// A pooled connection, for work that outlives one closure (a streamed read).
    pub(crate) async fn connection(
        &self,
    ) -> Result<deadpool::managed::Object<ConnectionManager>, BackendError> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| BackendError::new("sqlite", e).context("get a pooled connection"))
    }

    /// Runs a write that may have to wait for another writer's lock, so that the caller can
    /// stop waiting (a `tokio::time::timeout` around it fires on time). Where calls run
    /// inside `block_in_place`, which no timer can interrupt, the write first runs there
    /// without waiting for the lock (busy timeout 0); only if the lock is taken does it run
    /// again on a blocking thread, with the configured busy timeout, while the caller's task
    /// stays free. Elsewhere it runs as [`run`](Self::run) does. `f` returns the rusqlite
    /// error (tried again only on `SQLITE_BUSY`) with what it was doing.
    pub(crate) async fn run_write<R, F>(
        &self,
        f: F,
    ) -> Result<Result<R, (rusqlite::Error, &'static str)>, BackendError>
    where
        F: Fn(&mut Connection) -> Result<R, (rusqlite::Error, &'static str)>
            + Send
            + Sync
            + 'static,
        R: Send + 'static,
    {
        let f = Arc::new(f);
        let inline =
            Handle::try_current().is_ok_and(|handle| in_place(self.inner.blocking, &handle));
        if inline {
            let first = Arc::clone(&f);
            let wait = self.inner.busy_timeout;
            let tried = self
                .run(move |connection| {
                    connection
                        .busy_timeout(Duration::ZERO)
                        .map_err(|e| (e, "set busy timeout"))?;
                    let result = first(connection);
                    connection
                        .busy_timeout(wait)
                        .map_err(|e| (e, "set busy timeout"))?;
                    result
                })
                .await?;
            match tried {
                Err((e, _)) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
                }
                done => return Ok(done),
            }
        }
        let mut connection = self.connection().await?;
        tokio::task::spawn_blocking(move || f(&mut connection))
            .await
            .map_err(|e| BackendError::new("sqlite", e).context("blocking task failed"))
    }

    /// Runs `f` on a pooled connection where it may borrow from the caller: inside
    /// `block_in_place` where calls run in place, inline without a tokio runtime. `None` where
    /// calls go to a blocking thread (`f` would have to own what it uses).
    pub(crate) async fn borrowing<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> R,
    ) -> Result<Option<R>, BackendError> {
        let handle = Handle::try_current().ok();
        if handle
            .as_ref()
            .is_some_and(|handle| !in_place(self.inner.blocking, handle))
        {
            return Ok(None);
        }
        let mut connection = self.connection().await?;
        Ok(Some(match handle {
            Some(_) => tokio::task::block_in_place(|| f(&mut connection)),
            None => f(&mut connection),
        }))
    }

    /// Runs `f` on a pooled connection, off the async executor.
    pub(crate) async fn run<R, F>(&self, f: F) -> Result<R, BackendError>
    where
        F: FnOnce(&mut Connection) -> R + Send + 'static,
        R: Send + 'static,
    {
        let mut connection = self.connection().await?;
        run_blocking(self.inner.blocking, move || f(&mut connection)).await
    }
}
