//! How to snapshot: [`SnapshotMode`], and [`SnapshotPolicy`], which pairs it with a strategy.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::strategy::{Never, SnapshotStrategy, StrategyError, Threshold};

/// How the repository writes the snapshots its strategy asks for.
///
/// More modes may come, so a `match` outside this crate needs a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SnapshotMode {
    /// The snapshot is written before `save` returns (one more write per snapshot).
    #[default]
    Sync,
    /// `save` returns at once; a background writer stores the snapshot. Requests for the same
    /// aggregate coalesce, and failures are logged and counted, never returned by `save`.
    Background,
    /// Only explicit `create_snapshot` calls write snapshots.
    Manual,
}

impl SnapshotMode {
    /// The mode's name, as [`FromStr`] accepts it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Background => "background",
            Self::Manual => "manual",
        }
    }
}

impl fmt::Display for SnapshotMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SnapshotMode {
    type Err = StrategyError;

    /// Parses `"sync"`, `"background"` or `"manual"`, ignoring ASCII case and surrounding
    /// whitespace (configuration files and environment variables).
    fn from_str(s: &str) -> Result<Self, StrategyError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sync" => Ok(Self::Sync),
            "background" => Ok(Self::Background),
            "manual" => Ok(Self::Manual),
            _ => Err(StrategyError::UnknownMode(s.to_owned())),
        }
    }
}

/// When and how to snapshot, as one value: what [`create_snapshot_strategy`] returns and the
/// repository builder's `policy` accepts.
#[derive(Debug, Clone)]
pub struct SnapshotPolicy {
    strategy: Arc<dyn SnapshotStrategy>,
    mode: SnapshotMode,
}

impl SnapshotPolicy {
    /// A policy from a strategy and a mode; the strategy's settings are checked.
    pub fn new(strategy: impl SnapshotStrategy, mode: SnapshotMode) -> Result<Self, StrategyError> {
        strategy.validate()?;
        Ok(Self {
            strategy: Arc::new(strategy),
            mode,
        })
    }

    /// When to snapshot.
    pub fn strategy(&self) -> &Arc<dyn SnapshotStrategy> {
        &self.strategy
    }

    /// How to snapshot.
    pub fn mode(&self) -> SnapshotMode {
        self.mode
    }

    /// The strategy and the mode.
    pub fn into_parts(self) -> (Arc<dyn SnapshotStrategy>, SnapshotMode) {
        (self.strategy, self.mode)
    }
}

/// A snapshot mode as [`create_snapshot_strategy`] takes it: a [`SnapshotMode`], or its name
/// (`"sync"`, `"background"`, `"manual"`, as configuration files and the reference library
/// spell it).
pub trait IntoSnapshotMode {
    /// The mode, or [`StrategyError::UnknownMode`].
    fn into_snapshot_mode(self) -> Result<SnapshotMode, StrategyError>;
}

impl IntoSnapshotMode for SnapshotMode {
    fn into_snapshot_mode(self) -> Result<SnapshotMode, StrategyError> {
        Ok(self)
    }
}

impl IntoSnapshotMode for &str {
    fn into_snapshot_mode(self) -> Result<SnapshotMode, StrategyError> {
        self.parse()
    }
}

impl IntoSnapshotMode for String {
    fn into_snapshot_mode(self) -> Result<SnapshotMode, StrategyError> {
        self.parse()
    }
}

/// The policy for a mode and an optional threshold, as in the reference library: `Sync` and
/// `Background` snapshot every `threshold` events ([`Threshold`]); without a threshold, or in
/// `Manual` mode, nothing snapshots by itself ([`Never`]), only explicit `create_snapshot`
/// calls. The mode may be given by name. A threshold of 0 is an error for the automatic modes.
///
/// ```
/// use snap_strategy::{create_snapshot_strategy, SnapshotMode};
///
/// let policy = create_snapshot_strategy("background", 100)?;
/// assert_eq!(policy.mode(), SnapshotMode::Background);
/// assert_eq!(policy.strategy().threshold(), Some(100));
/// let manual = create_snapshot_strategy(SnapshotMode::Sync, None)?;
/// assert_eq!(manual.strategy().threshold(), None);
/// assert!(create_snapshot_strategy(SnapshotMode::Sync, 0).is_err());
/// assert!(create_snapshot_strategy("eventually", 10).is_err());
/// # Ok::<(), snap_strategy::StrategyError>(())
/// ```
pub fn create_snapshot_strategy(
    mode: impl IntoSnapshotMode,
    threshold: impl Into<Option<u64>>,
) -> Result<SnapshotPolicy, StrategyError> {
    let mode = mode.into_snapshot_mode()?;
    match (mode, threshold.into()) {
        (SnapshotMode::Sync | SnapshotMode::Background, Some(threshold)) => {
            SnapshotPolicy::new(Threshold(threshold), mode)
        }
        _ => SnapshotPolicy::new(Never, mode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for mode in [
            SnapshotMode::Sync,
            SnapshotMode::Background,
            SnapshotMode::Manual,
        ] {
            assert_eq!(mode.to_string().parse::<SnapshotMode>(), Ok(mode));
        }
        assert_eq!(
            " Background ".parse::<SnapshotMode>(),
            Ok(SnapshotMode::Background)
        );
        assert_eq!(
            "async".parse::<SnapshotMode>(),
            Err(StrategyError::UnknownMode("async".into()))
        );
        assert!("".parse::<SnapshotMode>().is_err());
    }

    #[test]
    fn the_factory_mirrors_the_modes() {
        let sync = create_snapshot_strategy(SnapshotMode::Sync, 10).unwrap();
        assert_eq!(sync.mode(), SnapshotMode::Sync);
        assert_eq!(format!("{:?}", sync.strategy()), "Threshold(10)");
        let manual = create_snapshot_strategy(SnapshotMode::Manual, 0).unwrap();
        assert_eq!(format!("{:?}", manual.strategy()), "Never");
        assert!(create_snapshot_strategy(SnapshotMode::Background, 0).is_err());
    }

    #[test]
    fn the_factory_takes_mode_names_and_an_optional_threshold() {
        let named = create_snapshot_strategy(" Background ", Some(25)).unwrap();
        assert_eq!(named.mode(), SnapshotMode::Background);
        assert_eq!(named.strategy().threshold(), Some(25));
        let owned = create_snapshot_strategy(String::from("sync"), 7).unwrap();
        assert_eq!(
            (owned.mode(), owned.strategy().threshold()),
            (SnapshotMode::Sync, Some(7))
        );
        let without = create_snapshot_strategy("sync", None).unwrap();
        assert_eq!(format!("{:?}", without.strategy()), "Never");
        assert_eq!(without.mode(), SnapshotMode::Sync);
        let manual = create_snapshot_strategy("manual", Some(50)).unwrap();
        assert_eq!(format!("{:?}", manual.strategy()), "Never");
        assert_eq!(
            create_snapshot_strategy("async", 10).unwrap_err(),
            StrategyError::UnknownMode("async".into())
        );
    }
}
