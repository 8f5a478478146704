//! What the repository counts: loads by outcome, fallbacks by reason, snapshot writes.

use std::sync::atomic::{AtomicU64, Ordering};

use snap_strategy::BackgroundStats;

/// Why a load did not use a snapshot and replayed the whole stream instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FallbackReason {
    /// No snapshot store, or no snapshot at or below the requested version.
    NoSnapshot,
    /// The snapshot's schema is newer than the code, or older without a migration path.
    SchemaMismatch,
    /// The snapshot store failed (outage, timeout).
    StoreError,
    /// The store could not decode the snapshot row (corrupt JSON, wrong shape).
    CorruptSnapshot,
    /// The state did not deserialise into the aggregate, or a migration step failed.
    RestoreFailure,
    /// The snapshot is ahead of the event stream (events lost or the stream was reset).
    SnapshotAhead,
}

impl FallbackReason {
    /// A stable name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoSnapshot => "no_snapshot",
            Self::SchemaMismatch => "schema_mismatch",
            Self::StoreError => "store_error",
            Self::CorruptSnapshot => "corrupt_snapshot",
            Self::RestoreFailure => "restore_failure",
            Self::SnapshotAhead => "snapshot_ahead",
        }
    }
}

/// Full replays by [`FallbackReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FallbackStats {
    /// [`FallbackReason::NoSnapshot`].
    pub no_snapshot: u64,
    /// [`FallbackReason::SchemaMismatch`].
    pub schema_mismatch: u64,
    /// [`FallbackReason::StoreError`].
    pub store_error: u64,
    /// [`FallbackReason::CorruptSnapshot`].
    pub corrupt_snapshot: u64,
    /// [`FallbackReason::RestoreFailure`].
    pub restore_failure: u64,
    /// [`FallbackReason::SnapshotAhead`].
    pub snapshot_ahead: u64,
}

impl FallbackStats {
    /// The count for one reason.
    pub fn get(&self, reason: FallbackReason) -> u64 {
        match reason {
            FallbackReason::NoSnapshot => self.no_snapshot,
            FallbackReason::SchemaMismatch => self.schema_mismatch,
            FallbackReason::StoreError => self.store_error,
            FallbackReason::CorruptSnapshot => self.corrupt_snapshot,
            FallbackReason::RestoreFailure => self.restore_failure,
            FallbackReason::SnapshotAhead => self.snapshot_ahead,
        }
    }
}

/// Counters of an `AggregateRepository` since it was built (clones share them).
///
/// Every successful load is exactly one of `snapshot_hits` or `full_replays`; a load that
/// found a snapshot but could not use it is a full replay, counted under its reason in
/// `fallbacks`. Snapshot writes count every mode: sync, background and `create_snapshot`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepositoryStats {
    /// Successful loads.
    pub loads: u64,
    /// Loads that started from a snapshot.
    pub snapshot_hits: u64,
    /// Loads that replayed the whole stream.
    pub full_replays: u64,
    /// Why loads replayed the whole stream.
    pub fallbacks: FallbackStats,
    /// Events applied by loads, snapshot hits and full replays together.
    pub events_replayed: u64,
    /// Loads of the state at a version (`load_at`, `capture_state`), also counted in `loads`.
    pub historical_loads: u64,
    /// Historical loads that found no snapshot at or below their version and replayed from
    /// the first event: a store that keeps only the latest snapshot (the default) has none
    /// below it; `keep_history(k)` keeps the `k` latest.
    pub historical_without_snapshot: u64,
    /// Snapshots migrated to the current schema during loads.
    pub snapshots_migrated: u64,
    /// Saves that appended events.
    pub saves: u64,
    /// Saves refused with a version conflict.
    pub conflicts: u64,
    /// Snapshots written (sync, background, manual).
    pub snapshots_written: u64,
    /// Snapshot writes or captures that failed; the saves they belonged to succeeded and
    /// their events are committed.
    pub snapshot_failures: u64,
    /// Background requests merged into a queued one.
    pub snapshots_coalesced: u64,
    /// Background requests dropped (queue full, shut down).
    pub snapshots_dropped: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    loads: AtomicU64,
    snapshot_hits: AtomicU64,
    full_replays: AtomicU64,
    fallbacks: [AtomicU64; 6],
    events_replayed: AtomicU64,
    historical_loads: AtomicU64,
    historical_without_snapshot: AtomicU64,
    snapshots_migrated: AtomicU64,
    saves: AtomicU64,
    conflicts: AtomicU64,
    snapshots_written: AtomicU64,
    snapshot_failures: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

const REASONS: [FallbackReason; 6] = [
    FallbackReason::NoSnapshot,
    FallbackReason::SchemaMismatch,
    FallbackReason::StoreError,
    FallbackReason::CorruptSnapshot,
    FallbackReason::RestoreFailure,
    FallbackReason::SnapshotAhead,
];

impl Counters {
    pub(crate) fn load(
        &self,
        aggregate_type: &'static str,
        fallback: Option<FallbackReason>,
        events: u64,
    ) {
        bump(&self.loads, 1);
        bump(&self.events_replayed, events);
        let source = match fallback {
            None => {
                bump(&self.snapshot_hits, 1);
                "snapshot"
            }
            Some(reason) => {
                bump(&self.full_replays, 1);
                let index = REASONS.iter().position(|r| *r == reason).unwrap_or(0);
                bump(&self.fallbacks[index], 1);
                metrics::counter!(
                    "snap_repo_load_fallbacks_total",
                    "aggregate_type" => aggregate_type,
                    "reason" => reason.as_str()
                )
                .increment(1);
                "replay"
            }
        };
        metrics::counter!("snap_repo_loads_total", "aggregate_type" => aggregate_type, "source" => source)
            .increment(1);
        #[allow(clippy::cast_precision_loss, reason = "a histogram sample")]
        metrics::histogram!("snap_repo_events_replayed", "aggregate_type" => aggregate_type)
            .record(events as f64);
    }

    /// A load at a version; `from_start` when it found no snapshot to start from. Returns
    /// whether it is the first such load without a snapshot.
    pub(crate) fn historical(&self, aggregate_type: &'static str, from_start: bool) -> bool {
        bump(&self.historical_loads, 1);
        if !from_start {
            return false;
        }
        metrics::counter!(
            "snap_repo_historical_loads_without_snapshot_total",
            "aggregate_type" => aggregate_type
        )
        .increment(1);
        self.historical_without_snapshot
            .fetch_add(1, Ordering::Relaxed)
            == 0
    }

    pub(crate) fn migrated(&self) {
        bump(&self.snapshots_migrated, 1);
    }

    pub(crate) fn saved(&self, aggregate_type: &'static str) {
        bump(&self.saves, 1);
        metrics::counter!("snap_repo_saves_total", "aggregate_type" => aggregate_type).increment(1);
    }

    pub(crate) fn conflict(&self, aggregate_type: &'static str) {
        bump(&self.conflicts, 1);
        metrics::counter!("snap_repo_conflicts_total", "aggregate_type" => aggregate_type)
            .increment(1);
    }

    pub(crate) fn snapshot_written(&self, aggregate_type: &'static str, mode: &'static str) {
        bump(&self.snapshots_written, 1);
        metrics::counter!(
            "snap_repo_snapshot_writes_total",
            "aggregate_type" => aggregate_type,
            "mode" => mode,
            "outcome" => "ok"
        )
        .increment(1);
    }

    pub(crate) fn snapshot_failed(&self, aggregate_type: &'static str, mode: &'static str) {
        bump(&self.snapshot_failures, 1);
        metrics::counter!(
            "snap_repo_snapshot_writes_total",
            "aggregate_type" => aggregate_type,
            "mode" => mode,
            "outcome" => "error"
        )
        .increment(1);
    }

    pub(crate) fn snapshot(&self, background: BackgroundStats) -> RepositoryStats {
        let fallback = |reason: FallbackReason| {
            read(&self.fallbacks[REASONS.iter().position(|r| *r == reason).unwrap_or(0)])
        };
        RepositoryStats {
            loads: read(&self.loads),
            snapshot_hits: read(&self.snapshot_hits),
            full_replays: read(&self.full_replays),
            fallbacks: FallbackStats {
                no_snapshot: fallback(FallbackReason::NoSnapshot),
                schema_mismatch: fallback(FallbackReason::SchemaMismatch),
                store_error: fallback(FallbackReason::StoreError),
                corrupt_snapshot: fallback(FallbackReason::CorruptSnapshot),
                restore_failure: fallback(FallbackReason::RestoreFailure),
                snapshot_ahead: fallback(FallbackReason::SnapshotAhead),
            },
            events_replayed: read(&self.events_replayed),
            historical_loads: read(&self.historical_loads),
            historical_without_snapshot: read(&self.historical_without_snapshot),
            snapshots_migrated: read(&self.snapshots_migrated),
            saves: read(&self.saves),
            conflicts: read(&self.conflicts),
            snapshots_written: read(&self.snapshots_written) + background.written,
            snapshot_failures: read(&self.snapshot_failures) + background.failed,
            snapshots_coalesced: background.coalesced,
            snapshots_dropped: background.dropped,
        }
    }
}
