//! A PostgreSQL test harness: every store gets a fresh schema on the server named by
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`), dropped when the
//! harness is dropped. With `SNAP_REQUIRE_POSTGRES=1` an unreachable server fails the test;
//! otherwise the test is skipped with a loud message.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses part of the support module"
)]

pub mod proxy;

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::Duration;

use snap_postgres::{PostgresDatabase, PostgresEventStore, PostgresOptions, PostgresSnapshotStore};
use snap_testkit::{EventStoreHarness, RepositoryHarness, SnapshotStoreHarness};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use tokio::sync::OnceCell;

pub const APPLICATION: &str = "snap-es-test";

pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn required() -> bool {
    std::env::var("SNAP_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// Whether something answers at the URL's host and port.
fn reachable(url: &str) -> Result<(), String> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| format!("bad DATABASE_URL {url:?}: {e}"))?;
    let address = (options.get_host(), options.get_port());
    let addresses = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {address:?}: {e}"))?;
    for addr in addresses {
        if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok() {
            return Ok(());
        }
    }
    Err(format!(
        "no PostgreSQL server answers at {}:{} (DATABASE_URL={url})",
        address.0, address.1
    ))
}

/// Opens stores in fresh schemas of one shared pool, and drops those schemas at the end.
pub struct PgHarness {
    url: String,
    unavailable: Option<String>,
    pool: OnceCell<PgPool>,
    schemas: Mutex<Vec<String>>,
}

impl PgHarness {
    pub fn new() -> Self {
        let url = database_url();
        let unavailable = reachable(&url).err();
        if let Some(reason) = &unavailable {
            assert!(
                !required(),
                "SNAP_REQUIRE_POSTGRES=1 but the server is unreachable: {reason}"
            );
        }
        Self {
            url,
            unavailable,
            pool: OnceCell::new(),
            schemas: Mutex::new(Vec::new()),
        }
    }

    #[allow(clippy::print_stderr, reason = "a skipped test says so loudly")]
    pub fn is_unavailable(&self) -> bool {
        if let Some(reason) = &self.unavailable {
            eprintln!("SKIPPED: {reason}");
            return true;
        }
        false
    }

    pub async fn pool(&self) -> PgPool {
        self.pool
            .get_or_init(|| async {
                let options: PgConnectOptions = self.url.parse().expect("DATABASE_URL");
                PgPoolOptions::new()
                    .max_connections(8)
                    .test_before_acquire(false)
                    .connect_with(options.application_name(APPLICATION))
                    .await
                    .expect("connect to the test database")
            })
            .await
            .clone()
    }

    /// A new, migrated schema on the shared pool.
    pub async fn database(&self) -> PostgresDatabase {
        let schema = format!("snap_test_{}", uuid::Uuid::new_v4().simple());
        self.schemas
            .lock()
            .expect("schema list")
            .push(schema.clone());
        let database =
            PostgresDatabase::with_schema(self.pool().await, &schema).expect("schema name");
        database.migrate().await.expect("migrate a test schema");
        database
    }

    /// Options for a separate pool on a new schema (dropped with the harness).
    pub fn options(&self) -> PostgresOptions {
        self.options_via(&self.url)
    }

    /// The server's address, for a proxy in front of it.
    pub fn server_address(&self) -> std::net::SocketAddr {
        let options: PgConnectOptions = self.url.parse().expect("DATABASE_URL");
        (options.get_host(), options.get_port())
            .to_socket_addrs()
            .expect("resolve the server")
            .next()
            .expect("an address")
    }

    /// Options for a separate pool on a new schema, connecting through `url` (a proxy).
    pub fn options_via(&self, url: &str) -> PostgresOptions {
        let schema = format!("snap_test_{}", uuid::Uuid::new_v4().simple());
        self.schemas
            .lock()
            .expect("schema list")
            .push(schema.clone());
        PostgresOptions::new(url)
            .schema(schema)
            .application_name(APPLICATION)
            .max_connections(4)
    }
}

impl Drop for PgHarness {
    fn drop(&mut self) {
        let schemas = std::mem::take(
            &mut *self
                .schemas
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if schemas.is_empty() {
            return;
        }
        let url = self.url.clone();
        // Drop runs inside the test's runtime, which cannot block on a future: clean up on a
        // thread of our own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let mut connection = PgConnection::connect(&url)
                    .await
                    .expect("connect for cleanup");
                for schema in schemas {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                    )))
                    .execute(&mut connection)
                    .await
                    .expect("drop a test schema");
                }
            });
        });
        let cleaned = cleanup.join().is_ok();
        assert!(
            cleaned || std::thread::panicking(),
            "dropping the test schemas failed"
        );
    }
}

impl SnapshotStoreHarness for PgHarness {
    type Store = PostgresSnapshotStore;

    async fn open(&self, keep_history: usize) -> PostgresSnapshotStore {
        self.database()
            .await
            .snapshot_store()
            .keep_history(keep_history)
    }

    fn unavailable(&self) -> Option<String> {
        self.unavailable.clone()
    }
}

impl EventStoreHarness for PgHarness {
    type Store = PostgresEventStore;

    async fn open(&self) -> PostgresEventStore {
        self.database().await.event_store()
    }

    fn unavailable(&self) -> Option<String> {
        self.unavailable.clone()
    }
}

impl RepositoryHarness for PgHarness {
    type Events = PostgresEventStore;
    type Snapshots = PostgresSnapshotStore;

    /// Both stores on one fresh schema, as an application would use them.
    async fn open(&self, keep_history: usize) -> (PostgresEventStore, PostgresSnapshotStore) {
        let database = self.database().await;
        (
            database.event_store(),
            database.snapshot_store().keep_history(keep_history),
        )
    }

    /// The database handle itself, on the same schema.
    fn native(
        &self,
        (events, _): &(PostgresEventStore, PostgresSnapshotStore),
        keep_history: usize,
    ) -> Option<std::sync::Arc<snap_core::DynBackend>> {
        Some(std::sync::Arc::new(
            events.database().clone().keep_history(keep_history),
        ))
    }

    fn unavailable(&self) -> Option<String> {
        self.unavailable.clone()
    }
}
