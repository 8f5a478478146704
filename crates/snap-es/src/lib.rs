//! Snapshots for event-sourced aggregates.
//!
//! An event-sourced aggregate rebuilds its state by replaying every event, which gets slow
//! after thousands of events. A [`Snapshot`] stores the state at version N, so a load reads
//! the snapshot and replays only the events after N. Events stay the source of truth: a load
//! through a snapshot gives exactly the state of a full replay, and a missing or unusable
//! snapshot only costs time.
//!
//! This crate is the one dependency an application needs. It re-exports the core types and
//! traits, and the backends behind features:
//!
//! | feature | what it adds |
//! |---|---|
//! | `memory` (default) | [`memory::InMemorySnapshotStore`], [`memory::InMemoryEventStore`] |
//! | `sqlite` | [`sqlite::SqliteDatabase`], [`sqlite::SqliteSnapshotStore`], [`sqlite::SqliteEventStore`]: bundled SQLite, nothing to install |
//! | `postgres` | [`postgres::PostgresDatabase`], [`postgres::PostgresSnapshotStore`], [`postgres::PostgresEventStore`]: sqlx with rustls |
//! | `nats` | [`nats::NatsDatabase`], [`nats::NatsSnapshotStore`], [`nats::NatsEventStore`]: NATS JetStream with async-nats |
//!
//! # Example
//!
//! An [`AggregateRepository`] saves an aggregate's events, snapshots it every 100 events
//! ([`Threshold`]), and loads it from the latest snapshot plus the events after it:
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use snap_es::prelude::*;
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Counter { total: i64 }
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! enum CounterEvent { Added(i64) }
//!
//! impl Aggregate for Counter {
//!     const TYPE: &'static str = "Counter";
//!     type Event = CounterEvent;
//!     fn apply(&mut self, CounterEvent::Added(n): &CounterEvent) { self.total += n; }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let stores = StorePair::new(InMemoryEventStore::new(), InMemorySnapshotStore::new());
//! let repo = AggregateRepository::<Counter>::builder(stores)
//!     .strategy(Threshold(100))
//!     .mode(SnapshotMode::Sync)
//!     .build()?;
//!
//! let id = Uuid::new_v4();
//! let mut counter = repo.create_new(id);
//! for n in 1..=250 {
//!     counter.record(CounterEvent::Added(n));
//!     repo.save(&mut counter).await?; // snapshots at 100 and 200
//! }
//!
//! let loaded = repo.load(id).await?; // the snapshot at 200, then 50 events
//! assert_eq!((loaded.version(), loaded.state().total), (250, 250 * 251 / 2));
//! assert_eq!(repo.stats().events_replayed, 50);
//! # Ok(()) }
//! ```
//!
//! Backend authors: implement [`SnapshotStore`] and [`EventStore`], validate input with
//! [`validate`], and run the `snap-testkit` conformance suite.

#[doc(inline)]
pub use snap_core::*;
#[doc(inline)]
pub use snap_repo::*;
#[doc(inline)]
pub use snap_strategy::*;

/// In-memory stores: for tests, prototypes and single-process tools.
#[cfg(feature = "memory")]
pub mod memory {
    #[doc(inline)]
    pub use snap_memory::{InMemoryDatabase, InMemoryEventStore, InMemorySnapshotStore};
}

/// SQLite stores: one file, no server. Open a [`SqliteDatabase`](sqlite::SqliteDatabase) and
/// take its snapshot and event stores, which share one connection pool.
#[cfg(feature = "sqlite")]
pub mod sqlite {
    #[doc(inline)]
    pub use snap_sqlite::{
        Blocking, Durability, MIGRATIONS, SqliteDatabase, SqliteEventStore, SqliteOptions,
        SqliteSnapshotStore,
    };
}

/// PostgreSQL stores: many processes sharing one database. Connect a
/// [`PostgresDatabase`](postgres::PostgresDatabase) (optionally in its own schema) and take its
/// snapshot and event stores, which share one pool.
#[cfg(feature = "postgres")]
pub mod postgres {
    #[doc(inline)]
    pub use snap_postgres::{
        DEFAULT_SCHEMA, MIGRATIONS, PostgresDatabase, PostgresEventStore, PostgresOptions,
        PostgresSnapshotStore, validate_schema_name,
    };
}

/// NATS JetStream stores: events and snapshots replicated across a cluster. Connect a
/// [`NatsDatabase`](nats::NatsDatabase) with [`NatsOptions`](nats::NatsOptions) and take its
/// snapshot and event stores; a repository takes them as a
/// [`StorePair`].
#[cfg(feature = "nats")]
pub mod nats {
    #[doc(inline)]
    pub use snap_nats::{
        MAX_HISTORY, NatsDatabase, NatsEventStore, NatsOptions, NatsSnapshotStore,
    };
}

/// The operator commands in an application's own binary (feature `cli`): register the
/// aggregate types and deciders with an [`Admin`](admin::Admin), then run it as `main` or
/// mount its clap command tree under a subcommand. It adds `rebuild` (bounded concurrency,
/// a resumable cursor, a rate limit, a clean stop on Ctrl-C, progress bars), `verify`,
/// `inspect` with the diff against a replay, and `health` with thresholds as exit codes, to
/// the standalone tool's `migrate`, `schema`, `stats` and `prune`. See `docs/operations.md`.
///
/// ```no_run
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Default, Serialize, Deserialize)]
/// # struct Account { balance: i64 }
/// # #[derive(Clone, Serialize, Deserialize)]
/// # enum Moved { Deposited(i64) }
/// # impl snap_es::Aggregate for Account {
/// #     const TYPE: &'static str = "Account";
/// #     type Event = Moved;
/// #     fn apply(&mut self, event: &Moved) {
/// #         match event { Moved::Deposited(n) => self.balance += n }
/// #     }
/// # }
/// use snap_es::admin::Admin;
///
/// fn main() -> std::process::ExitCode {
///     Admin::new("bank-ops").aggregate::<Account>().main()
/// }
/// ```
#[cfg(feature = "cli")]
pub mod admin {
    /// The clap version the command tree is built with, to mount it.
    pub use snap_cli::clap;
    #[doc(inline)]
    pub use snap_cli::{Admin, hide_passwords};
}

/// The names most applications need: `use snap_es::prelude::*;`.
pub mod prelude {
    #[doc(no_inline)]
    pub use snap_core::{
        Aggregate, AggregateId, AggregateRoot, Backend, Decided, Decider, EventStore,
        EventStoreError, MigrationChain, NewEvent, RecordedEvent, Snapshot, SnapshotError,
        SnapshotMigration, SnapshotStore,
    };
    #[cfg(feature = "memory")]
    #[doc(no_inline)]
    pub use snap_memory::{InMemoryDatabase, InMemoryEventStore, InMemorySnapshotStore};
    #[cfg(feature = "postgres")]
    #[doc(no_inline)]
    pub use snap_postgres::{PostgresDatabase, PostgresEventStore, PostgresSnapshotStore};
    #[doc(no_inline)]
    pub use snap_repo::{
        AggregateRepository, DeciderError, DeciderRepository, RepositoryError, RepositoryStats,
        StorePair,
    };
    #[cfg(feature = "sqlite")]
    #[doc(no_inline)]
    pub use snap_sqlite::{SqliteDatabase, SqliteEventStore, SqliteSnapshotStore};
    #[doc(no_inline)]
    pub use snap_strategy::{
        EventCount, Hybrid, Never, ReplayBudget, SnapshotMode, SnapshotStrategy, Threshold,
        create_snapshot_strategy,
    };
    #[doc(no_inline)]
    pub use uuid::Uuid;
}

pub use serde_json;
pub use time;
pub use uuid;

#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

/// The migration guides' programs, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/migrating-from-waku.md")]
struct WakuGuide;

#[cfg(doctest)]
#[doc = include_str!("../../../docs/migrating-from-eventsourcing.md")]
struct EventsourcingGuide;

#[cfg(doctest)]
#[doc = include_str!("../../../docs/migrating-from-aether.md")]
struct AetherGuide;
