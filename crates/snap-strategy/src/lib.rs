//! Snapshot strategies of snap-es: **when** to snapshot
//! ([`SnapshotStrategy`]: [`Threshold`], [`Hybrid`], [`ReplayBudget`], [`Never`]) and **how**
//! ([`SnapshotMode`]: sync, background, manual), kept apart so that any strategy runs in any
//! mode. [`BackgroundSnapshotter`] is the writer behind the background mode.
//!
//! Applications use these through the `snap-es` facade and its repository.
//!
//! ```
//! use snap_core::AggregateId;
//! use snap_strategy::{SnapshotContext, SnapshotStrategy, Threshold};
//!
//! let every_100 = Threshold(100);
//! // A save from version 95 to 215 crosses 100 and 200: one snapshot, at 215.
//! let id = AggregateId::parse("acc-1").unwrap();
//! let save = SnapshotContext::new(&id, "Account", 95, 215);
//! assert!(every_100.should_snapshot(&save));
//! ```

mod background;
mod mode;
mod strategy;

pub use background::{BackgroundConfig, BackgroundSnapshotter, BackgroundStats, Scheduled};
pub use mode::{IntoSnapshotMode, SnapshotMode, SnapshotPolicy, create_snapshot_strategy};
pub use strategy::{
    EventCount, Hybrid, Never, ReplayBudget, ReplayCost, SnapshotContext, SnapshotStrategy,
    StrategyError, Threshold,
};
