//! When to snapshot: the [`SnapshotStrategy`] trait and its implementations.

use std::fmt::Debug;
use std::time::Duration;

use snap_core::AggregateId;

/// An invalid strategy setting, reported when the repository is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StrategyError {
    /// A count that must be at least 1 is 0 (`Threshold(0)`, `EventCount(0)`, a `Hybrid` with
    /// `every` or `max` 0).
    #[error("{setting} must be at least 1")]
    Zero {
        /// Which setting.
        setting: &'static str,
    },
    /// `Hybrid`'s `min` is above its `max`.
    #[error("hybrid strategy: min ({min}) is above max ({max})")]
    MinAboveMax {
        /// The minimum distance between snapshots.
        min: u64,
        /// The maximum distance between snapshots.
        max: u64,
    },
    /// `ReplayBudget`'s duration is zero.
    #[error("replay budget must be longer than zero")]
    ZeroBudget,
    /// A snapshot mode name other than `sync`, `background` or `manual`.
    #[error("unknown snapshot mode {0:?}: expected \"sync\", \"background\" or \"manual\"")]
    UnknownMode(String),
}

/// What a load of the aggregate cost the last time it was replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayCost {
    /// Events applied by the load.
    pub events: u64,
    /// Time spent reading and applying them.
    pub duration: Duration,
}

impl ReplayCost {
    /// The average cost of one event, if any were replayed.
    pub fn per_event(&self) -> Option<Duration> {
        let events = u32::try_from(self.events).unwrap_or(u32::MAX);
        (events > 0).then(|| self.duration / events)
    }
}

/// What a strategy sees after a save committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotContext<'a> {
    /// The aggregate.
    pub aggregate_id: &'a AggregateId,
    /// Its type.
    pub aggregate_type: &'a str,
    /// The version before the save.
    pub previous_version: u64,
    /// The version after the save.
    pub version: u64,
    /// The version of the latest snapshot this handle knows of (the one it was loaded from or
    /// the last one it wrote), 0 if none.
    pub snapshot_version: u64,
    /// What replaying this aggregate cost when it was last loaded, if it was loaded.
    pub last_replay: Option<ReplayCost>,
}

impl<'a> SnapshotContext<'a> {
    /// A context for a save that moved `aggregate_type/aggregate_id` from `previous_version`
    /// to `version`.
    pub fn new(
        aggregate_id: &'a AggregateId,
        aggregate_type: &'a str,
        previous_version: u64,
        version: u64,
    ) -> Self {
        Self {
            aggregate_id,
            aggregate_type,
            previous_version,
            version,
            snapshot_version: 0,
            last_replay: None,
        }
    }

    /// Sets the version of the latest known snapshot.
    #[must_use]
    pub fn snapshot_version(mut self, version: u64) -> Self {
        self.snapshot_version = version;
        self
    }

    /// Sets what the last load's replay cost.
    #[must_use]
    pub fn last_replay(mut self, cost: Option<ReplayCost>) -> Self {
        self.last_replay = cost;
        self
    }

    /// Events in this save.
    pub fn events_in_save(&self) -> u64 {
        self.version.saturating_sub(self.previous_version)
    }

    /// Events since the latest known snapshot: what a load would replay after it.
    pub fn events_since_snapshot(&self) -> u64 {
        self.version.saturating_sub(self.snapshot_version)
    }

    /// Whether the save crossed (or landed on) a multiple of `n`: versions `n`, `2n`, ...
    pub fn crosses_multiple_of(&self, n: u64) -> bool {
        n > 0 && self.previous_version / n < self.version / n
    }
}

/// Decides, after a save committed, whether to snapshot the aggregate.
///
/// Implementations must be cheap and deterministic: they run on every save.
pub trait SnapshotStrategy: Send + Sync + Debug + 'static {
    /// Whether to snapshot now.
    fn should_snapshot(&self, ctx: &SnapshotContext<'_>) -> bool;

    /// Checks the settings; the repository calls it in `build()`.
    fn validate(&self) -> Result<(), StrategyError> {
        Ok(())
    }

    /// The fixed number of events between snapshots, for a strategy that has one
    /// ([`Threshold`], [`EventCount`]); `None` otherwise.
    fn threshold(&self) -> Option<u64> {
        None
    }
}

/// Snapshot whenever a save crosses a multiple of `n`: versions `n`, `2n`, `3n`, ... A save
/// that jumps from 95 to 215 with `Threshold(100)` snapshots once, at 215. `Threshold(0)` is
/// refused when the repository is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold(pub u64);

impl SnapshotStrategy for Threshold {
    fn should_snapshot(&self, ctx: &SnapshotContext<'_>) -> bool {
        ctx.crosses_multiple_of(self.0)
    }

    fn validate(&self) -> Result<(), StrategyError> {
        if self.0 == 0 {
            return Err(StrategyError::Zero {
                setting: "threshold",
            });
        }
        Ok(())
    }

    fn threshold(&self) -> Option<u64> {
        Some(self.0)
    }
}

/// Snapshot once `n` events have accumulated since the last snapshot this handle knows of (the
/// one the aggregate was loaded from, or the last one written), whatever versions they land on.
///
/// Where [`Threshold`] snapshots at fixed versions (`n`, `2n`, ...), `EventCount` counts from
/// the last snapshot: saves of 4, 2, 4 and 4 events with `n = 5` snapshot at 6 and 14 (6 and
/// then 8 events since the last), where `Threshold(5)` snapshots at 6 and 10. An aggregate
/// loaded by a full replay counts from version 0, so its first save snapshots it if it has
/// `n` events or more. `EventCount(0)` is refused when the repository is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCount(pub u64);

impl SnapshotStrategy for EventCount {
    fn should_snapshot(&self, ctx: &SnapshotContext<'_>) -> bool {
        self.0 > 0 && ctx.events_in_save() > 0 && ctx.events_since_snapshot() >= self.0
    }

    fn validate(&self) -> Result<(), StrategyError> {
        if self.0 == 0 {
            return Err(StrategyError::Zero {
                setting: "event count",
            });
        }
        Ok(())
    }

    fn threshold(&self) -> Option<u64> {
        Some(self.0)
    }
}

/// Snapshot at multiples of `every`, but never less than `min` events after the last known
/// snapshot, and always once `max` events have accumulated since it.
///
/// `min` keeps bursts of small saves from snapshotting twice in quick succession; `max`
/// bounds the replay of an aggregate whose saves keep jumping past the multiples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hybrid {
    /// Fewest events between two snapshots.
    pub min: u64,
    /// Most events between two snapshots.
    pub max: u64,
    /// The regular interval.
    pub every: u64,
}

impl SnapshotStrategy for Hybrid {
    fn should_snapshot(&self, ctx: &SnapshotContext<'_>) -> bool {
        let since = ctx.events_since_snapshot();
        since >= self.max || (since >= self.min && ctx.crosses_multiple_of(self.every))
    }

    fn validate(&self) -> Result<(), StrategyError> {
        if self.every == 0 {
            return Err(StrategyError::Zero {
                setting: "hybrid every",
            });
        }
        if self.max == 0 {
            return Err(StrategyError::Zero {
                setting: "hybrid max",
            });
        }
        if self.min > self.max {
            return Err(StrategyError::MinAboveMax {
                min: self.min,
                max: self.max,
            });
        }
        Ok(())
    }
}

/// Never snapshot automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Never;

impl SnapshotStrategy for Never {
    fn should_snapshot(&self, _: &SnapshotContext<'_>) -> bool {
        false
    }
}

/// Snapshot when replaying the events since the last snapshot would take longer than the
/// budget, estimated from what the last load of this aggregate spent per event.
///
/// Adaptive: an aggregate whose events are expensive to apply snapshots sooner than one whose
/// events are cheap. An aggregate that was not loaded in this process (created and saved by the
/// same handle) has no measurement and is not snapshotted by this strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayBudget(pub Duration);

impl SnapshotStrategy for ReplayBudget {
    fn should_snapshot(&self, ctx: &SnapshotContext<'_>) -> bool {
        let Some(per_event) = ctx.last_replay.and_then(|cost| cost.per_event()) else {
            return false;
        };
        let since = u32::try_from(ctx.events_since_snapshot()).unwrap_or(u32::MAX);
        per_event.saturating_mul(since) > self.0
    }

    fn validate(&self) -> Result<(), StrategyError> {
        if self.0.is_zero() {
            return Err(StrategyError::ZeroBudget);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static ID: std::sync::LazyLock<AggregateId> =
        std::sync::LazyLock::new(|| AggregateId::from(uuid::Uuid::nil()));

    fn save(previous: u64, version: u64) -> SnapshotContext<'static> {
        SnapshotContext::new(&ID, "Account", previous, version)
    }

    #[test]
    fn threshold_snapshots_when_a_save_crosses_a_multiple() {
        let t = Threshold(100);
        assert!(!t.should_snapshot(&save(0, 99)));
        assert!(t.should_snapshot(&save(99, 100)));
        assert!(!t.should_snapshot(&save(100, 101)));
        assert!(t.should_snapshot(&save(95, 215)));
        assert!(t.should_snapshot(&save(199, 200)));
        assert!(
            !t.should_snapshot(&save(200, 200)),
            "an empty save never snapshots"
        );
        assert_eq!(
            Threshold(0).validate(),
            Err(StrategyError::Zero {
                setting: "threshold"
            })
        );
        assert!(!Threshold(0).should_snapshot(&save(0, 10)));
    }

    #[test]
    fn event_count_counts_from_the_last_snapshot() {
        let c = EventCount(5);
        assert!(!c.should_snapshot(&save(0, 4)));
        assert!(c.should_snapshot(&save(4, 6)));
        assert!(!c.should_snapshot(&save(6, 10).snapshot_version(6)));
        assert!(c.should_snapshot(&save(10, 14).snapshot_version(6)));
        assert!(
            c.should_snapshot(&save(100, 101)),
            "loaded by a full replay: 101 events since none"
        );
        assert!(
            !c.should_snapshot(&save(7, 7)),
            "an empty save never snapshots"
        );
        assert_eq!(c.threshold(), Some(5));
        assert_eq!(
            EventCount(0).validate(),
            Err(StrategyError::Zero {
                setting: "event count"
            })
        );
        assert!(!EventCount(0).should_snapshot(&save(0, 10)));
    }

    #[test]
    fn hybrid_respects_min_and_max() {
        let h = Hybrid {
            min: 10,
            max: 50,
            every: 20,
        };
        // A multiple of 20, but only 5 events after the last snapshot.
        assert!(!h.should_snapshot(&save(15, 20).snapshot_version(15)));
        assert!(h.should_snapshot(&save(15, 20).snapshot_version(0)));
        // No multiple crossed, but 50 events since the snapshot.
        assert!(h.should_snapshot(&save(61, 62).snapshot_version(12)));
        assert!(!h.should_snapshot(&save(61, 62).snapshot_version(13)));
        assert!(
            Hybrid {
                min: 5,
                max: 4,
                every: 1
            }
            .validate()
            .is_err()
        );
        assert!(
            Hybrid {
                min: 0,
                max: 4,
                every: 0
            }
            .validate()
            .is_err()
        );
        assert!(
            Hybrid {
                min: 0,
                max: 0,
                every: 1
            }
            .validate()
            .is_err()
        );
        assert!(h.validate().is_ok());
    }

    #[test]
    fn replay_budget_uses_the_measured_cost_per_event() {
        let b = ReplayBudget(Duration::from_millis(10));
        let cost = ReplayCost {
            events: 1_000,
            duration: Duration::from_millis(5),
        };
        // 5 µs per event: 2,000 events would take 10 ms, 2,001 take longer.
        assert!(!b.should_snapshot(&save(1_999, 2_000).last_replay(Some(cost))));
        assert!(b.should_snapshot(&save(2_000, 2_001).last_replay(Some(cost))));
        assert!(
            !b.should_snapshot(
                &save(2_000, 2_001)
                    .last_replay(Some(cost))
                    .snapshot_version(1)
            )
        );
        assert!(
            !b.should_snapshot(&save(2_000, 2_001)),
            "no measurement, no snapshot"
        );
        assert_eq!(
            ReplayBudget(Duration::ZERO).validate(),
            Err(StrategyError::ZeroBudget)
        );
    }

    #[test]
    fn never_never_snapshots() {
        assert!(!Never.should_snapshot(&save(0, 1_000_000)));
    }
}
