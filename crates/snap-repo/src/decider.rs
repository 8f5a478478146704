//! The decider repository: `handle(id, command)` loads through the snapshot, decides, appends
//! with the expected version and retries on a conflict. It is an [`AggregateRepository`] over
//! [`Decided<D>`], so loading, snapshots, strategies, migrations and the background writer
//! are the same code.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use snap_core::{
    AggregateId, AggregateRoot, Backend, Decided, Decider, MigrationChain, Snapshot, StateCodec,
};
use snap_strategy::{BackgroundConfig, SnapshotMode, SnapshotPolicy, SnapshotStrategy};

use crate::error::{BuildError, RepositoryError};
use crate::repository::{AggregateRepository, Rebuilt, RepositoryBuilder, SnapshotCheck};
use crate::stats::RepositoryStats;

/// Why `handle` did not carry out a command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeciderError<E: std::error::Error + 'static> {
    /// `decide` rejected the command; nothing was written.
    #[error("the command was rejected")]
    Rejected(#[source] E),
    /// The aggregate is terminal ([`Decider::is_terminal`]): it accepts no more commands.
    /// Nothing was decided or written, and the command was not retried.
    #[error(
        "{aggregate_type}/{aggregate_id} is terminal at version {version}: it accepts no more commands"
    )]
    Terminal {
        /// The aggregate.
        aggregate_id: AggregateId,
        /// Its type.
        aggregate_type: &'static str,
        /// The version at which it became terminal (its head).
        version: u64,
    },
    /// Loading or saving failed; after the last attempt this includes
    /// [`RepositoryError::Concurrency`].
    #[error("the repository failed")]
    Repository(#[from] RepositoryError),
}

/// What `handle` did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Handled<Event> {
    /// The aggregate's version afterwards.
    pub version: u64,
    /// The events the command produced and the store committed (empty: nothing to do).
    pub events: Vec<Event>,
    /// How many times the command was decided: 1 unless a conflict made it reload and retry.
    pub attempts: u32,
}

/// Loads, decides and saves decider-style aggregates; see [`Decider`].
pub struct DeciderRepository<D: Decider> {
    inner: AggregateRepository<Decided<D>>,
    max_attempts: u32,
}

impl<D: Decider> Clone for DeciderRepository<D> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            max_attempts: self.max_attempts,
        }
    }
}

impl<D: Decider> fmt::Debug for DeciderRepository<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeciderRepository")
            .field("inner", &self.inner)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

/// Builds a [`DeciderRepository`]: the options of [`RepositoryBuilder`] plus the number of
/// attempts `handle` makes.
pub struct DeciderRepositoryBuilder<D: Decider> {
    inner: RepositoryBuilder<Decided<D>>,
    max_attempts: u32,
}

impl<D: Decider> fmt::Debug for DeciderRepositoryBuilder<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeciderRepositoryBuilder")
            .field("inner", &self.inner)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

impl<D: Decider> DeciderRepositoryBuilder<D> {
    /// When to snapshot. Default: `Threshold(100)`.
    #[must_use]
    pub fn strategy(self, strategy: impl SnapshotStrategy) -> Self {
        self.map(|b| b.strategy(strategy))
    }

    /// How to snapshot. Default: [`SnapshotMode::Sync`].
    #[must_use]
    pub fn mode(self, mode: SnapshotMode) -> Self {
        self.map(|b| b.mode(mode))
    }

    /// When and how at once.
    #[must_use]
    pub fn policy(self, policy: SnapshotPolicy) -> Self {
        self.map(|b| b.policy(policy))
    }

    /// How the state becomes a snapshot's stored state and back; see
    /// [`RepositoryBuilder::codec`]. Default: the state's own serde form.
    #[must_use]
    pub fn codec(self, codec: impl StateCodec<D::State>) -> Self {
        self.map(|b| {
            b.codec(DecidedCodec::<D, _> {
                codec,
                decider: PhantomData,
            })
        })
    }

    /// The schema migrations of snapshot state; the chain must end at `D::SCHEMA_VERSION`.
    #[must_use]
    pub fn migrations(self, chain: MigrationChain) -> Self {
        self.map(|b| b.migrations(chain))
    }

    /// Queue and concurrency limits of the background writer.
    #[must_use]
    pub fn background(self, config: BackgroundConfig) -> Self {
        self.map(|b| b.background(config))
    }

    /// See [`RepositoryBuilder::snapshot_timeout`].
    #[must_use]
    pub fn snapshot_timeout(self, limit: Duration) -> Self {
        self.map(|b| b.snapshot_timeout(limit))
    }

    /// How many times `handle` decides a command before it gives up on conflicts (at least 1;
    /// default 5). Each attempt reloads the aggregate, so it decides on the events the other
    /// writer committed: never a blind overwrite.
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    fn map(
        self,
        f: impl FnOnce(RepositoryBuilder<Decided<D>>) -> RepositoryBuilder<Decided<D>>,
    ) -> Self {
        Self {
            inner: f(self.inner),
            max_attempts: self.max_attempts,
        }
    }

    /// Checks the settings and builds the repository.
    pub fn build(self) -> Result<DeciderRepository<D>, BuildError> {
        Ok(DeciderRepository {
            inner: self.inner.build()?,
            max_attempts: self.max_attempts,
        })
    }
}

impl<D: Decider> DeciderRepository<D> {
    /// Starts building a repository on `backend`; see [`AggregateRepository::builder`].
    pub fn builder(backend: impl Backend) -> DeciderRepositoryBuilder<D> {
        DeciderRepositoryBuilder {
            inner: AggregateRepository::<Decided<D>>::builder(backend),
            max_attempts: 5,
        }
    }
}

impl<D: Decider> DeciderRepository<D> {
    /// Carries out a command: loads the aggregate (a new one starts from
    /// [`Decider::initial_state`]), decides, and appends the events with the version they were
    /// decided on. On a version conflict it reloads and decides again, up to `max_attempts`
    /// times. Snapshots follow the strategy and mode, as in [`AggregateRepository::save`].
    ///
    /// A terminal aggregate ([`Decider::is_terminal`]) gets no say: the call returns
    /// [`DeciderError::Terminal`] without deciding, writing or retrying.
    pub async fn handle(
        &self,
        id: impl Into<AggregateId>,
        command: &D::Command,
    ) -> Result<Handled<D::Event>, DeciderError<D::Error>> {
        let id = &id.into();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut root = self.inner.load_for_command(id).await?;
            if root.version() > 0 && D::is_terminal(&root.state().0) {
                return Err(DeciderError::Terminal {
                    aggregate_id: id.clone(),
                    aggregate_type: D::TYPE,
                    version: root.version(),
                });
            }
            let events = D::decide(command, &root.state().0).map_err(DeciderError::Rejected)?;
            if events.is_empty() {
                return Ok(Handled {
                    version: root.version(),
                    events,
                    attempts,
                });
            }
            for event in &events {
                root.record(event.clone());
            }
            match self.inner.save(&mut root).await {
                Ok(version) => {
                    return Ok(Handled {
                        version,
                        events,
                        attempts,
                    });
                }
                Err(RepositoryError::Concurrency { .. }) if attempts < self.max_attempts => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The aggregate's current state; see [`AggregateRepository::load`].
    pub async fn load(
        &self,
        id: impl Into<AggregateId>,
    ) -> Result<AggregateRoot<Decided<D>>, RepositoryError> {
        self.inner.load(id).await
    }

    /// The aggregate as it was at `version`; see [`AggregateRepository::load_at`].
    pub async fn load_at(
        &self,
        id: impl Into<AggregateId>,
        version: u64,
    ) -> Result<AggregateRoot<Decided<D>>, RepositoryError> {
        self.inner.load_at(id, version).await
    }

    /// Snapshots a loaded aggregate now; see [`AggregateRepository::create_snapshot`].
    pub async fn create_snapshot(
        &self,
        root: &AggregateRoot<Decided<D>>,
    ) -> Result<Snapshot, RepositoryError> {
        self.inner.create_snapshot(root).await
    }

    /// See [`AggregateRepository::rebuild_snapshot`].
    pub async fn rebuild_snapshot(
        &self,
        id: impl Into<AggregateId>,
    ) -> Result<Rebuilt, RepositoryError> {
        self.inner.rebuild_snapshot(id).await
    }

    /// See [`AggregateRepository::verify_snapshot`].
    pub async fn verify_snapshot(
        &self,
        id: impl Into<AggregateId>,
    ) -> Result<SnapshotCheck, RepositoryError> {
        self.inner.verify_snapshot(id).await
    }

    /// See [`AggregateRepository::await_pending_snapshots`].
    pub async fn await_pending_snapshots(&self) -> usize {
        self.inner.await_pending_snapshots().await
    }

    /// See [`AggregateRepository::pending_snapshot_count`].
    pub fn pending_snapshot_count(&self) -> usize {
        self.inner.pending_snapshot_count()
    }

    /// See [`AggregateRepository::shutdown`].
    pub async fn shutdown(&self) -> usize {
        self.inner.shutdown().await
    }

    /// The counters so far; a retried `handle` counts its conflicts in `conflicts`.
    pub fn stats(&self) -> RepositoryStats {
        self.inner.stats()
    }

    /// The aggregate repository underneath, for everything else it offers.
    pub fn aggregates(&self) -> &AggregateRepository<Decided<D>> {
        &self.inner
    }
}

/// A codec of a decider's state, as the codec of the [`Decided`] aggregate that wraps it.
struct DecidedCodec<D, C> {
    codec: C,
    decider: PhantomData<fn() -> D>,
}

impl<D, C: fmt::Debug> fmt::Debug for DecidedCodec<D, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.codec.fmt(f)
    }
}

impl<D: Decider, C: StateCodec<D::State>> StateCodec<Decided<D>> for DecidedCodec<D, C> {
    fn encode(&self, state: &Decided<D>) -> Result<serde_json::Value, snap_core::BoxError> {
        self.codec.encode(&state.0)
    }

    fn decode(&self, stored: &serde_json::Value) -> Result<Decided<D>, snap_core::BoxError> {
        self.codec.decode(stored).map(Decided)
    }
}
