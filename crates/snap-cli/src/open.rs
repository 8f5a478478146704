//! Opening the database a URL names, with the backends this build has.

use std::fmt::Write as _;
#[cfg(feature = "sqlite")]
use std::path::PathBuf;
use std::sync::Arc;

use snap_core::{DynBackend, SnapshotAdmin, SnapshotStore, share_backend};

use crate::args::Target;
use crate::redact::{is_nats, redact_url};

/// A failure reported as one line, with exit status 2.
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) String);

impl<E: std::error::Error> From<E> for Failure {
    fn from(error: E) -> Self {
        let mut line = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            let _ = write!(line, ": {cause}");
            source = cause.source();
        }
        Self(line)
    }
}

pub(crate) fn fail(message: impl Into<String>) -> Failure {
    Failure(message.into())
}

/// An open database of one of the backends.
#[derive(Debug, Clone)]
pub(crate) enum Database {
    #[cfg(feature = "sqlite")]
    Sqlite(snap_sqlite::SqliteDatabase),
    #[cfg(feature = "postgres")]
    Postgres(snap_postgres::PostgresDatabase),
    #[cfg(feature = "nats")]
    Nats(snap_nats::NatsDatabase),
}

impl Database {
    /// The schema version of a SQL database; `None` on NATS, whose streams have none.
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres")),
        expect(clippy::unused_async, reason = "NATS has no schema version to read")
    )]
    pub(crate) async fn schema_version(&self) -> Result<Option<i64>, Failure> {
        Ok(match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(db) => Some(i64::from(db.schema_version().await?)),
            #[cfg(feature = "postgres")]
            Self::Postgres(db) => Some(db.schema_version().await?),
            #[cfg(feature = "nats")]
            Self::Nats(_) => None,
        })
    }

    pub(crate) fn admin(&self) -> &dyn SnapshotAdmin {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(db) => db,
            #[cfg(feature = "postgres")]
            Self::Postgres(db) => db,
            #[cfg(feature = "nats")]
            Self::Nats(db) => db,
        }
    }

    pub(crate) fn snapshots(&self) -> Box<dyn SnapshotStore> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(db) => Box::new(db.snapshot_store()),
            #[cfg(feature = "postgres")]
            Self::Postgres(db) => Box::new(db.snapshot_store()),
            #[cfg(feature = "nats")]
            Self::Nats(db) => Box::new(db.snapshot_store()),
        }
    }

    /// The database as the backend of a repository.
    pub(crate) fn backend(&self) -> Arc<DynBackend> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(db) => share_backend(db.clone()),
            #[cfg(feature = "postgres")]
            Self::Postgres(db) => share_backend(db.clone()),
            #[cfg(feature = "nats")]
            Self::Nats(db) => share_backend(db.clone()),
        }
    }
}

/// The most PostgreSQL connections a job opens, whatever its concurrency (the server's
/// default limit is 100 for everyone).
#[cfg(feature = "postgres")]
const MAX_CONNECTIONS: u32 = 32;

/// The sentence saying this build lacks a URL's backend.
#[cfg_attr(
    all(feature = "sqlite", feature = "postgres", feature = "nats"),
    expect(dead_code, reason = "every backend is built in")
)]
fn without(backend: &str, feature: &str) -> Failure {
    fail(format!(
        "this binary was built without the {backend} backend (feature `{feature}`)"
    ))
}

/// Opens an existing, migrated database (or, to migrate, any reachable one).
pub(crate) async fn open(target: &Target, migrate: bool) -> Result<Database, Failure> {
    open_for(target, migrate, 2).await
}

/// [`open`] for `connections` aggregates worked on at once (the size of a PostgreSQL pool).
pub(crate) async fn open_for(
    target: &Target,
    migrate: bool,
    connections: u32,
) -> Result<Database, Failure> {
    #[cfg(not(feature = "postgres"))]
    let _ = connections;
    let url = target.database_url.as_str();
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(fail(format!(
                "bad database URL {url:?}: no file path after sqlite://"
            )));
        }
        #[cfg(feature = "sqlite")]
        return open_sqlite(PathBuf::from(path), migrate).await;
        #[cfg(not(feature = "sqlite"))]
        return Err(without("SQLite", "sqlite"));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return open_postgres(target, migrate, connections).await;
        #[cfg(not(feature = "postgres"))]
        return Err(without("PostgreSQL", "postgres"));
    }
    if is_nats(url) {
        #[cfg(feature = "nats")]
        return open_nats(target, migrate).await;
        #[cfg(not(feature = "nats"))]
        return Err(without("NATS", "nats"));
    }
    // Text that is no URL (key=value settings, say) may hold a password anywhere: not shown.
    let shown = if url.contains("://") {
        format!(" {:?}", redact_url(url))
    } else {
        String::new()
    };
    Err(fail(format!(
        "bad database URL{shown}: expected sqlite://PATH, postgres://... or nats://HOST:PORT"
    )))
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(path: PathBuf, migrate: bool) -> Result<Database, Failure> {
    use snap_sqlite::SqliteOptions;
    if !migrate && !path.exists() {
        return Err(fail(format!("no database file at {}", path.display())));
    }
    let database = SqliteOptions::file(&path)
        .migrate(migrate)
        .open()
        .await
        .map_err(|e| {
            fail(format!(
                "cannot open {}: {}",
                path.display(),
                Failure::from(e).0
            ))
        })?;
    if !migrate && database.schema_version().await? == 0 {
        return Err(fail(format!(
            "{} has no snap-es schema; run `snap-es migrate` first",
            path.display()
        )));
    }
    Ok(Database::Sqlite(database))
}

#[cfg(feature = "postgres")]
async fn open_postgres(
    target: &Target,
    migrate: bool,
    connections: u32,
) -> Result<Database, Failure> {
    use snap_postgres::PostgresOptions;
    let database = PostgresOptions::new(&target.database_url)
        .schema(target.schema.clone())
        .application_name("snap-es-cli")
        .max_connections(connections.clamp(2, MAX_CONNECTIONS))
        .acquire_timeout(std::time::Duration::from_secs(5))
        .migrate(migrate)
        .connect()
        .await
        .map_err(|e| {
            fail(format!(
                "cannot connect to the database: {}",
                Failure::from(e).0
            ))
        })?;
    if !migrate {
        // A failed read is reported as it is, not taken for a schema without tables.
        let version = database.schema_version().await.map_err(|e| {
            fail(format!(
                "cannot read the snap-es schema version in schema {:?}: {}",
                target.schema,
                Failure::from(e).0
            ))
        })?;
        if version == 0 {
            return Err(fail(format!(
                "schema {:?} has no snap-es tables; run `snap-es migrate` first",
                target.schema
            )));
        }
    }
    Ok(Database::Postgres(database))
}

#[cfg(feature = "nats")]
async fn open_nats(target: &Target, migrate: bool) -> Result<Database, Failure> {
    use snap_nats::NatsOptions;
    // Without `migrate`, the streams must exist: nothing is created by a look.
    let database = NatsOptions::new(&target.database_url)
        .prefix(target.prefix.clone())
        .migrate(migrate)
        .connect()
        .await
        .map_err(|e| {
            fail(format!(
                "cannot open the JetStream streams of prefix {:?}: {}",
                target.prefix,
                Failure::from(e).0
            ))
        })?;
    Ok(Database::Nats(database))
}
