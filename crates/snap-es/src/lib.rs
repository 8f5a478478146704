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
//!
//! # Example
//!
//! Append events, snapshot the aggregate, and load it back from the snapshot plus the events
//! after it:
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use snap_es::memory::{InMemoryEventStore, InMemorySnapshotStore};
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
//! let events = InMemoryEventStore::new();
//! let snapshots = InMemorySnapshotStore::new();
//! let id = Uuid::new_v4();
//!
//! // Record 150 events and commit them in one append.
//! let mut counter = AggregateRoot::<Counter>::new(id);
//! for n in 1..=150 { counter.record(CounterEvent::Added(n)); }
//! events.append(id, Counter::TYPE, 0, counter.uncommitted_as_new_events()?).await?;
//! counter.mark_committed();
//! snapshots.save_snapshot(&counter.to_snapshot()?).await?;
//!
//! // Load: the snapshot, then only the events after it (none yet).
//! let snapshot = snapshots.get_snapshot(id, Counter::TYPE).await?.expect("saved above");
//! let mut loaded = AggregateRoot::<Counter>::from_snapshot(&snapshot)?;
//! for event in events.load(id, Counter::TYPE, loaded.version(), None).await? {
//!     loaded.apply_recorded(&event)?;
//! }
//! assert_eq!((loaded.version(), loaded.state().total), (150, 150 * 151 / 2));
//! # Ok(()) }
//! ```
//!
//! Backend authors: implement [`SnapshotStore`] and [`EventStore`], validate input with
//! [`validate`], and run the `snap-testkit` conformance suite.

#[doc(inline)]
pub use snap_core::*;

/// In-memory stores: for tests, prototypes and single-process tools.
#[cfg(feature = "memory")]
pub mod memory {
    #[doc(inline)]
    pub use snap_memory::{InMemoryEventStore, InMemorySnapshotStore};
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

/// The names most applications need: `use snap_es::prelude::*;`.
pub mod prelude {
    #[doc(no_inline)]
    pub use snap_core::{
        Aggregate, AggregateRoot, EventStore, EventStoreError, NewEvent, RecordedEvent, Snapshot,
        SnapshotError, SnapshotStore,
    };
    #[cfg(feature = "memory")]
    #[doc(no_inline)]
    pub use snap_memory::{InMemoryEventStore, InMemorySnapshotStore};
    #[cfg(feature = "postgres")]
    #[doc(no_inline)]
    pub use snap_postgres::{PostgresDatabase, PostgresEventStore, PostgresSnapshotStore};
    #[cfg(feature = "sqlite")]
    #[doc(no_inline)]
    pub use snap_sqlite::{SqliteDatabase, SqliteEventStore, SqliteSnapshotStore};
    #[doc(no_inline)]
    pub use uuid::Uuid;
}

pub use serde_json;
pub use time;
pub use uuid;

#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
