//! The aggregate repository of snap-es: loads through a snapshot
//! with exactly the state of a full replay, saves with optimistic concurrency and a snapshot
//! strategy.
//!
//! Applications use it through the `snap-es` facade.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use snap_core::Aggregate;
//! use snap_memory::{InMemoryEventStore, InMemorySnapshotStore};
//! use snap_repo::{AggregateRepository, StorePair};
//! use snap_strategy::{SnapshotMode, Threshold};
//! use uuid::Uuid;
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Counter { value: i64 }
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! enum CounterEvent { Added(i64) }
//!
//! impl Aggregate for Counter {
//!     const TYPE: &'static str = "Counter";
//!     type Event = CounterEvent;
//!     fn apply(&mut self, event: &CounterEvent) {
//!         match event { CounterEvent::Added(n) => self.value += n }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let stores = StorePair::new(InMemoryEventStore::new(), InMemorySnapshotStore::new());
//! let repo = AggregateRepository::<Counter>::builder(stores)
//!     .strategy(Threshold(10))
//!     .mode(SnapshotMode::Sync)
//!     .build()?;
//!
//! let id = Uuid::new_v4();
//! let mut counter = repo.create_new(id);
//! for n in 1..=25 {
//!     counter.record(CounterEvent::Added(n));
//!     repo.save(&mut counter).await?;
//! }
//! let loaded = repo.load(id).await?; // the snapshot at 20, then events 21..=25
//! assert_eq!((loaded.version(), loaded.state().value), (25, 325));
//! assert_eq!(repo.stats().snapshot_hits, 1);
//! # Ok(())
//! # }
//! ```

mod decider;
mod error;
mod load;
mod pair;
mod repository;
mod stats;

pub use decider::{DeciderError, DeciderRepository, DeciderRepositoryBuilder, Handled};
pub use error::{BuildError, RepositoryError};
pub use pair::StorePair;
pub use repository::{
    AggregateRepository, RebuildReport, Rebuilt, RepositoryBuilder, SnapshotCheck,
};
pub use stats::{FallbackReason, FallbackStats, RepositoryStats};
