//! Schema migrations of snapshot state: a validated chain of steps from old schema versions to
//! the aggregate's current [`Aggregate::SCHEMA_VERSION`](crate::Aggregate::SCHEMA_VERSION).
//!
//! A snapshot stored at schema 1 and read by code at schema 3 is usable if the chain has the
//! steps 1 -> 2 and 2 -> 3; the repository runs them and replays only the events after the
//! snapshot. Without a path, the snapshot is discarded and the aggregate is rebuilt by a full
//! replay: a snapshot only ever makes a load faster, never different.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::error::BoxError;

type MigrateFn = dyn Fn(Value) -> Result<Value, BoxError> + Send + Sync;

/// One step of a [`MigrationChain`]: turns a state of schema `from_version` into a state of
/// schema `to_version`.
///
/// ```
/// use serde_json::json;
/// use snap_core::SnapshotMigration;
///
/// // Schema 2 added a currency, defaulting to EUR for old states.
/// let add_currency = SnapshotMigration::new(1, 2, |mut state| {
///     state["currency"] = json!("EUR");
///     Ok(state)
/// });
/// assert_eq!((add_currency.from_version(), add_currency.to_version()), (1, 2));
/// ```
#[derive(Clone)]
pub struct SnapshotMigration {
    from_version: u32,
    to_version: u32,
    migrate: Arc<MigrateFn>,
}

impl SnapshotMigration {
    /// A step from `from_version` to `to_version`. The function receives the stored state and
    /// returns the migrated one, or an error that makes the load fall back to a full replay.
    pub fn new<F>(from_version: u32, to_version: u32, migrate: F) -> Self
    where
        F: Fn(Value) -> Result<Value, BoxError> + Send + Sync + 'static,
    {
        Self {
            from_version,
            to_version,
            migrate: Arc::new(migrate),
        }
    }

    /// The schema version this step reads.
    pub fn from_version(&self) -> u32 {
        self.from_version
    }

    /// The schema version this step writes.
    pub fn to_version(&self) -> u32 {
        self.to_version
    }

    /// Runs the step on a state.
    pub fn migrate(&self, state: Value) -> Result<Value, BoxError> {
        (self.migrate)(state)
    }
}

impl fmt::Debug for SnapshotMigration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotMigration")
            .field("from_version", &self.from_version)
            .field("to_version", &self.to_version)
            .finish_non_exhaustive()
    }
}

/// Why a list of migrations is not a usable chain. Each rule has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationChainError {
    /// The current schema version is 0; schema versions start at 1.
    #[error("the current schema version must be at least 1")]
    CurrentVersionZero,
    /// A step reads schema 0, which no snapshot has.
    #[error("migration {from_version} -> {to_version} starts below schema version 1")]
    FromZero {
        /// The step's source version.
        from_version: u32,
        /// The step's target version.
        to_version: u32,
    },
    /// A step does not move forward (`to_version <= from_version`).
    #[error("migration {from_version} -> {to_version} does not move to a higher schema version")]
    NotForward {
        /// The step's source version.
        from_version: u32,
        /// The step's target version.
        to_version: u32,
    },
    /// Two steps read the same schema version, so the path would be ambiguous.
    #[error("two migrations start at schema version {from_version}")]
    DuplicateFrom {
        /// The shared source version.
        from_version: u32,
    },
    /// A step starts inside another step's range (1 -> 3 and 2 -> 4): two paths would lead
    /// through the same versions.
    #[error(
        "migration {from_version} -> {to_version} overlaps the migration starting at {next_from}"
    )]
    Overlap {
        /// The earlier step's source version.
        from_version: u32,
        /// The earlier step's target version.
        to_version: u32,
        /// Where the overlapping step starts.
        next_from: u32,
    },
    /// A step ends at a version where no step starts, while a later step exists.
    #[error(
        "the chain has a gap: migration to schema version {to_version} is followed by one from {next_from}"
    )]
    Gap {
        /// Where the earlier step ends.
        to_version: u32,
        /// Where the next step starts.
        next_from: u32,
    },
    /// The last step does not end at the current schema version.
    #[error("the chain ends at schema version {end}, but the current schema version is {current}")]
    WrongEnd {
        /// Where the chain ends.
        end: u32,
        /// The aggregate's current schema version.
        current: u32,
    },
}

/// Why a snapshot's state could not be brought to the current schema.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationError {
    /// The snapshot is newer than the code: never downgrade.
    #[error("snapshot schema version {found} is newer than the current {current}")]
    Newer {
        /// The snapshot's schema version.
        found: u32,
        /// The code's schema version.
        current: u32,
    },
    /// No chain of steps leads from the snapshot's schema to the current one.
    #[error("no migration path from schema version {found} to {current}")]
    NoPath {
        /// The snapshot's schema version.
        found: u32,
        /// The code's schema version.
        current: u32,
    },
    /// A step returned an error, or a state that is not a JSON object.
    #[error("migration {from_version} -> {to_version} failed")]
    Failed {
        /// The step's source version.
        from_version: u32,
        /// The step's target version.
        to_version: u32,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
}

/// A validated chain of [`SnapshotMigration`]s ending at the current schema version.
///
/// The steps may be given in any order; they are sorted by `from_version`. The chain is
/// rejected, each rule with its own [`MigrationChainError`], when a step starts at 0, does not
/// move forward, shares its start with another step, overlaps the next step, leaves a gap
/// before the next step, or
/// when the last step does not end at `current_version`. Steps need not start at 1: a chain
/// `3 -> 4 -> 5` migrates snapshots of schema 3 and 4, and snapshots of 1 and 2 are replayed.
///
/// ```
/// use serde_json::json;
/// use snap_core::{MigrationChain, MigrationChainError, SnapshotMigration};
///
/// let chain = MigrationChain::new(
///     vec![
///         SnapshotMigration::new(2, 3, |mut s| { s["c"] = json!(3); Ok(s) }),
///         SnapshotMigration::new(1, 2, |mut s| { s["b"] = json!(2); Ok(s) }),
///     ],
///     3,
/// )?;
/// assert_eq!(chain.migrate(json!({"a": 1}), 1)?, json!({"a": 1, "b": 2, "c": 3}));
///
/// let gap = MigrationChain::new(
///     vec![SnapshotMigration::new(1, 2, Ok), SnapshotMigration::new(3, 4, Ok)],
///     4,
/// );
/// assert_eq!(gap.unwrap_err(), MigrationChainError::Gap { to_version: 2, next_from: 3 });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct MigrationChain {
    steps: Vec<SnapshotMigration>,
    current_version: u32,
}

impl MigrationChain {
    /// Validates `migrations` as a chain ending at `current_version`.
    pub fn new(
        mut migrations: Vec<SnapshotMigration>,
        current_version: u32,
    ) -> Result<Self, MigrationChainError> {
        if current_version == 0 {
            return Err(MigrationChainError::CurrentVersionZero);
        }
        for step in &migrations {
            let (from_version, to_version) = (step.from_version, step.to_version);
            if from_version == 0 {
                return Err(MigrationChainError::FromZero {
                    from_version,
                    to_version,
                });
            }
            if to_version <= from_version {
                return Err(MigrationChainError::NotForward {
                    from_version,
                    to_version,
                });
            }
        }
        migrations.sort_by_key(SnapshotMigration::from_version);
        for pair in migrations.windows(2) {
            let (earlier, next) = (&pair[0], &pair[1]);
            if earlier.from_version == next.from_version {
                return Err(MigrationChainError::DuplicateFrom {
                    from_version: next.from_version,
                });
            }
            if next.from_version < earlier.to_version {
                return Err(MigrationChainError::Overlap {
                    from_version: earlier.from_version,
                    to_version: earlier.to_version,
                    next_from: next.from_version,
                });
            }
            if earlier.to_version != next.from_version {
                return Err(MigrationChainError::Gap {
                    to_version: earlier.to_version,
                    next_from: next.from_version,
                });
            }
        }
        if let Some(last) = migrations.last()
            && last.to_version != current_version
        {
            return Err(MigrationChainError::WrongEnd {
                end: last.to_version,
                current: current_version,
            });
        }
        Ok(Self {
            steps: migrations,
            current_version,
        })
    }

    /// A chain with no steps: only snapshots of `current_version` are usable.
    pub fn empty(current_version: u32) -> Result<Self, MigrationChainError> {
        Self::new(Vec::new(), current_version)
    }

    /// The schema version the chain ends at.
    pub fn current_version(&self) -> u32 {
        self.current_version
    }

    /// The steps, sorted by `from_version`.
    pub fn steps(&self) -> &[SnapshotMigration] {
        &self.steps
    }

    /// Whether a state of schema `from_version` can be brought to the current version.
    pub fn has_path(&self, from_version: u32) -> bool {
        from_version == self.current_version
            || self.steps.iter().any(|s| s.from_version == from_version)
    }

    /// Brings `state`, stored at schema `from_version`, to the current schema version by
    /// running each step in order. A state already at the current version is returned as is.
    pub fn migrate(&self, mut state: Value, from_version: u32) -> Result<Value, MigrationError> {
        let current = self.current_version;
        if from_version > current {
            return Err(MigrationError::Newer {
                found: from_version,
                current,
            });
        }
        let Some(start) = self
            .steps
            .iter()
            .position(|s| s.from_version == from_version)
        else {
            return if from_version == current {
                Ok(state)
            } else {
                Err(MigrationError::NoPath {
                    found: from_version,
                    current,
                })
            };
        };
        // Validation made the steps from `start` on contiguous up to `current`.
        for step in &self.steps[start..] {
            state = step
                .migrate(state)
                .map_err(|source| MigrationError::Failed {
                    from_version: step.from_version,
                    to_version: step.to_version,
                    source,
                })?;
            if !state.is_object() {
                return Err(MigrationError::Failed {
                    from_version: step.from_version,
                    to_version: step.to_version,
                    source: "the migrated state is not a JSON object".into(),
                });
            }
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn step(from: u32, to: u32) -> SnapshotMigration {
        SnapshotMigration::new(from, to, move |mut state| {
            state[format!("v{to}")] = json!(from);
            Ok(state)
        })
    }

    #[test]
    fn each_bad_chain_has_its_own_error() {
        let cases = [
            (
                vec![step(0, 1)],
                1,
                MigrationChainError::FromZero {
                    from_version: 0,
                    to_version: 1,
                },
            ),
            (
                vec![step(2, 2)],
                2,
                MigrationChainError::NotForward {
                    from_version: 2,
                    to_version: 2,
                },
            ),
            (
                vec![step(3, 2)],
                3,
                MigrationChainError::NotForward {
                    from_version: 3,
                    to_version: 2,
                },
            ),
            (
                vec![step(1, 2), step(1, 3)],
                3,
                MigrationChainError::DuplicateFrom { from_version: 1 },
            ),
            (
                vec![step(1, 2), step(3, 4)],
                4,
                MigrationChainError::Gap {
                    to_version: 2,
                    next_from: 3,
                },
            ),
            (
                vec![step(2, 4), step(1, 3)],
                4,
                MigrationChainError::Overlap {
                    from_version: 1,
                    to_version: 3,
                    next_from: 2,
                },
            ),
            (
                vec![step(1, 2)],
                3,
                MigrationChainError::WrongEnd { end: 2, current: 3 },
            ),
            (
                vec![step(1, 3)],
                2,
                MigrationChainError::WrongEnd { end: 3, current: 2 },
            ),
            (vec![], 0, MigrationChainError::CurrentVersionZero),
        ];
        for (steps, current, expected) in cases {
            assert_eq!(MigrationChain::new(steps, current).unwrap_err(), expected);
        }
    }

    #[test]
    fn unsorted_steps_are_accepted_and_run_in_order() {
        let chain = MigrationChain::new(vec![step(2, 3), step(1, 2)], 3).unwrap();
        assert_eq!(
            chain.migrate(json!({}), 1).unwrap(),
            json!({"v2": 1, "v3": 2})
        );
        assert_eq!(chain.migrate(json!({}), 2).unwrap(), json!({"v3": 2}));
        assert_eq!(chain.migrate(json!({"a": 1}), 3).unwrap(), json!({"a": 1}));
    }

    #[test]
    fn a_chain_may_start_above_one() {
        let chain = MigrationChain::new(vec![step(3, 4)], 4).unwrap();
        assert!(chain.has_path(3) && chain.has_path(4));
        assert!(!chain.has_path(2));
        assert!(matches!(
            chain.migrate(json!({}), 2),
            Err(MigrationError::NoPath {
                found: 2,
                current: 4
            })
        ));
    }

    #[test]
    fn newer_snapshots_are_never_downgraded() {
        let chain = MigrationChain::empty(2).unwrap();
        assert!(matches!(
            chain.migrate(json!({}), 3),
            Err(MigrationError::Newer {
                found: 3,
                current: 2
            })
        ));
    }

    #[test]
    fn a_failing_or_non_object_step_is_an_error() {
        let failing = SnapshotMigration::new(1, 2, |_| Err("bad state".into()));
        let chain = MigrationChain::new(vec![failing], 2).unwrap();
        assert!(matches!(
            chain.migrate(json!({}), 1),
            Err(MigrationError::Failed {
                from_version: 1,
                to_version: 2,
                ..
            })
        ));
        let array = SnapshotMigration::new(1, 2, |_| Ok(json!([1])));
        let chain = MigrationChain::new(vec![array], 2).unwrap();
        assert!(matches!(
            chain.migrate(json!({}), 1),
            Err(MigrationError::Failed { .. })
        ));
    }
}
