//! The aggregate repository: load through a snapshot, save with a strategy.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use snap_core::{
    Aggregate, AggregateRoot, CaptureError, DynEventStore, DynSnapshotStore, EventStore,
    MigrationChain, MigrationError, Snapshot, SnapshotError, SnapshotStore,
};
use snap_strategy::{
    BackgroundConfig, BackgroundSnapshotter, ReplayCost, Scheduled, SnapshotContext, SnapshotMode,
    SnapshotPolicy, SnapshotStrategy, Threshold,
};
use tracing::Instrument;
use uuid::Uuid;

use crate::error::{BuildError, RepositoryError};
use crate::stats::{Counters, FallbackReason, RepositoryStats};

/// Loads and saves aggregates of type `A` through an event store `E`, with snapshots.
///
/// - [`load`](Self::load) reads the latest snapshot, restores it (migrating its schema if a
///   path exists) and replays only the later events. A missing, corrupt, unreadable,
///   schema-incompatible or out-of-range snapshot is never an error: the load replays the
///   whole stream instead, logs a warning and counts the reason in [`stats`](Self::stats).
///   Either way the state is exactly the state of a full replay.
/// - [`save`](Self::save) appends the uncommitted events with the version they were built on
///   (optimistic concurrency), then asks the strategy whether to snapshot and writes the
///   snapshot as the mode says. A snapshot failure after the events committed is logged and
///   counted; the save still succeeds, because the events are the source of truth.
///
/// Clones share the stores, the background writer and the counters.
pub struct AggregateRepository<A: Aggregate, E: EventStore = Arc<DynEventStore>> {
    inner: Arc<Inner<A, E>>,
}

struct Inner<A, E> {
    events: E,
    snapshots: Option<Arc<DynSnapshotStore>>,
    strategy: Arc<dyn SnapshotStrategy>,
    mode: SnapshotMode,
    chain: MigrationChain,
    background: Option<BackgroundSnapshotter>,
    snapshot_timeout: Option<Duration>,
    counters: Counters,
    aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate, E: EventStore> Clone for AggregateRepository<A, E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<A: Aggregate, E: EventStore> fmt::Debug for AggregateRepository<A, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateRepository")
            .field("aggregate_type", &A::TYPE)
            .field("events", &self.inner.events)
            .field("snapshots", &self.inner.snapshots)
            .field("strategy", &self.inner.strategy)
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

/// Builds an [`AggregateRepository`]; see [`AggregateRepository::builder`].
pub struct RepositoryBuilder<A: Aggregate, E: EventStore> {
    events: E,
    snapshots: Option<Arc<DynSnapshotStore>>,
    strategy: Option<Arc<dyn SnapshotStrategy>>,
    mode: SnapshotMode,
    chain: Option<MigrationChain>,
    background: BackgroundConfig,
    snapshot_timeout: Option<Duration>,
    aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate, E: EventStore> fmt::Debug for RepositoryBuilder<A, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepositoryBuilder")
            .field("aggregate_type", &A::TYPE)
            .field("snapshots", &self.snapshots)
            .field("strategy", &self.strategy)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl<A: Aggregate, E: EventStore> RepositoryBuilder<A, E> {
    /// The snapshot store. Without one, every load is a full replay.
    #[must_use]
    pub fn snapshot_store(mut self, store: impl SnapshotStore) -> Self {
        self.snapshots = Some(Arc::new(store));
        self
    }

    /// When to snapshot. Default: `Threshold(100)`.
    #[must_use]
    pub fn strategy(mut self, strategy: impl SnapshotStrategy) -> Self {
        self.strategy = Some(Arc::new(strategy));
        self
    }

    /// How to snapshot. Default: [`SnapshotMode::Sync`].
    #[must_use]
    pub fn mode(mut self, mode: SnapshotMode) -> Self {
        self.mode = mode;
        self
    }

    /// When and how at once, e.g. from [`create_snapshot_strategy`](snap_strategy::create_snapshot_strategy).
    #[must_use]
    pub fn policy(mut self, policy: SnapshotPolicy) -> Self {
        let (strategy, mode) = policy.into_parts();
        self.strategy = Some(strategy);
        self.mode = mode;
        self
    }

    /// The schema migrations of snapshot state; the chain must end at `A::SCHEMA_VERSION`.
    #[must_use]
    pub fn migrations(mut self, chain: MigrationChain) -> Self {
        self.chain = Some(chain);
        self
    }

    /// How long a load waits for the snapshot store before it gives up on the snapshot and
    /// replays the stream (counted as a store error), and how long a sync-mode save waits for
    /// its snapshot write (counted as a failed write; the save still succeeds). Default: no
    /// limit. Needs a tokio runtime with the time driver enabled.
    #[must_use]
    pub fn snapshot_timeout(mut self, limit: Duration) -> Self {
        self.snapshot_timeout = Some(limit);
        self
    }

    /// Queue and concurrency limits of the background writer.
    #[must_use]
    pub fn background(mut self, config: BackgroundConfig) -> Self {
        self.background = config;
        self
    }

    /// Checks the settings and builds the repository.
    pub fn build(self) -> Result<AggregateRepository<A, E>, BuildError> {
        if A::SCHEMA_VERSION == 0 {
            return Err(BuildError::SchemaVersionZero {
                aggregate_type: A::TYPE,
            });
        }
        let strategy = self.strategy.unwrap_or_else(|| Arc::new(Threshold(100)));
        strategy.validate()?;
        let chain = match self.chain {
            Some(chain) if chain.current_version() != A::SCHEMA_VERSION => {
                return Err(BuildError::ChainMismatch {
                    aggregate_type: A::TYPE,
                    chain: chain.current_version(),
                    aggregate: A::SCHEMA_VERSION,
                });
            }
            Some(chain) => chain,
            None => MigrationChain::empty(A::SCHEMA_VERSION).map_err(|_| {
                BuildError::SchemaVersionZero {
                    aggregate_type: A::TYPE,
                }
            })?,
        };
        let background = self
            .snapshots
            .as_ref()
            .map(|store| BackgroundSnapshotter::new(Arc::clone(store), self.background));
        Ok(AggregateRepository {
            inner: Arc::new(Inner {
                events: self.events,
                snapshots: self.snapshots,
                strategy,
                mode: self.mode,
                chain,
                background,
                snapshot_timeout: self.snapshot_timeout,
                counters: Counters::default(),
                aggregate: PhantomData,
            }),
        })
    }
}

impl<A: Aggregate> AggregateRepository<A> {
    /// Starts building a repository on `event_store` (any [`EventStore`], including
    /// `Arc<dyn EventStore>`).
    pub fn builder<E: EventStore>(event_store: E) -> RepositoryBuilder<A, E> {
        RepositoryBuilder {
            events: event_store,
            snapshots: None,
            strategy: None,
            mode: SnapshotMode::Sync,
            chain: None,
            background: BackgroundConfig::default(),
            snapshot_timeout: None,
            aggregate: PhantomData,
        }
    }
}

/// The error of a snapshot store call that ran out of `snapshot_timeout`.
fn timed_out(call: &str) -> SnapshotError {
    SnapshotError::backend(
        "repository",
        format!("the snapshot {call} timed out")
            .into_boxed_str()
            .into_string(),
    )
}

/// Totals of [`AggregateRepository::rebuild_snapshots`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RebuildReport {
    /// Aggregates read so far.
    pub aggregates: u64,
    /// Snapshots written.
    pub written: u64,
    /// Aggregates skipped because they are discarded.
    pub skipped: u64,
}

/// What [`AggregateRepository::verify_snapshot`] found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SnapshotCheck {
    /// No snapshot is stored (or the repository has no snapshot store).
    NoSnapshot,
    /// The snapshot equals the state a replay to its version builds.
    Matches {
        /// The snapshot's version.
        version: u64,
    },
    /// The snapshot differs from the replay: loads through it return a state no replay gives.
    Mismatch {
        /// The snapshot's version.
        version: u64,
        /// The snapshot's state, migrated to the current schema, as JSON.
        snapshot: serde_json::Value,
        /// The replayed state at that version, as JSON.
        replayed: serde_json::Value,
    },
    /// Loads cannot use the snapshot and already fall back to a full replay.
    Unusable {
        /// Why.
        reason: FallbackReason,
    },
}

/// Where a load started.
struct Start<A: Aggregate> {
    root: AggregateRoot<A>,
    /// `None` for a snapshot hit, the reason for a full replay otherwise.
    fallback: Option<FallbackReason>,
    /// The snapshot migrated to the current schema, to store once the load succeeds.
    migrated: Option<Snapshot>,
}

impl<A: Aggregate> Start<A> {
    fn replay(id: Uuid, reason: FallbackReason) -> Self {
        Self {
            root: AggregateRoot::new(id),
            fallback: Some(reason),
            migrated: None,
        }
    }
}

impl<A: Aggregate, E: EventStore> AggregateRepository<A, E> {
    /// A new aggregate at version 0, not stored until it is saved with events.
    pub fn create_new(&self, id: Uuid) -> AggregateRoot<A> {
        AggregateRoot::new(id)
    }

    /// The aggregate's current state: the latest snapshot plus the events after it, or a full
    /// replay. [`RepositoryError::AggregateNotFound`] if it has no events or is discarded.
    pub async fn load(&self, id: Uuid) -> Result<AggregateRoot<A>, RepositoryError> {
        Self::found(self.load_span(id, None).await?)
    }

    /// The aggregate as it was at `version`: the nearest retained snapshot at or below it plus
    /// the events up to `version`. A version past the head gives the current state.
    pub async fn load_at(
        &self,
        id: Uuid,
        version: u64,
    ) -> Result<AggregateRoot<A>, RepositoryError> {
        Self::found(self.load_span(id, Some(version)).await?)
    }

    /// The root, or [`RepositoryError::AggregateNotFound`] if it has no events or is
    /// discarded.
    fn found(root: AggregateRoot<A>) -> Result<AggregateRoot<A>, RepositoryError> {
        if root.version() == 0 || root.state().is_discarded() {
            return Err(RepositoryError::AggregateNotFound {
                aggregate_id: root.id(),
                aggregate_type: A::TYPE.to_owned(),
            });
        }
        Ok(root)
    }

    /// The current state for a command: a new root at version 0 when the aggregate has no
    /// events, and a discarded aggregate as it is, so the caller can tell the two apart.
    pub(crate) async fn load_for_command(
        &self,
        id: Uuid,
    ) -> Result<AggregateRoot<A>, RepositoryError> {
        self.load_span(id, None).await
    }

    async fn load_span(
        &self,
        id: Uuid,
        at: Option<u64>,
    ) -> Result<AggregateRoot<A>, RepositoryError> {
        let span = tracing::info_span!(
            "snap.repo.load",
            aggregate_id = %id,
            aggregate_type = A::TYPE,
            at = at,
            version = tracing::field::Empty,
            snapshot_used = tracing::field::Empty,
            fallback = tracing::field::Empty,
            events_replayed = tracing::field::Empty,
        );
        self.load_inner(id, at).instrument(span).await
    }

    async fn load_inner(
        &self,
        id: Uuid,
        at: Option<u64>,
    ) -> Result<AggregateRoot<A>, RepositoryError> {
        let mut start = self.start(id, at).await;
        let mut started = Instant::now();
        let mut replayed = self.replay(&mut start.root, at).await?;
        if start.fallback.is_none() && replayed == 0 {
            // Nothing after the snapshot: make sure the stream really reaches it.
            let head = self.inner.events.current_version(id, A::TYPE).await?;
            if head < start.root.version() {
                tracing::warn!(
                    aggregate_id = %id,
                    aggregate_type = A::TYPE,
                    snapshot_version = start.root.version(),
                    head,
                    "snapshot is ahead of the event stream; replaying the stream"
                );
                start = Start::replay(id, FallbackReason::SnapshotAhead);
                // The cost noted for the strategies is the replay that built the state.
                started = Instant::now();
                replayed = self.replay(&mut start.root, at).await?;
            }
        }
        let mut root = start.root;
        root.note_replay(replayed, started.elapsed());
        if root.version() == 0 {
            // No stream: a new aggregate, and nothing a load could count.
            return Ok(AggregateRoot::new(id));
        }
        self.inner.counters.load(A::TYPE, start.fallback, replayed);
        if let Some(migrated) = start.migrated {
            self.store_migrated(migrated);
        }
        let span = tracing::Span::current();
        span.record("version", root.version());
        span.record("snapshot_used", start.fallback.is_none());
        span.record("events_replayed", replayed);
        if let Some(reason) = start.fallback {
            span.record("fallback", reason.as_str());
        }
        Ok(root)
    }

    /// Applies the stored events after the root's version (up to `to`) as the store reads
    /// them, and returns how many were applied.
    async fn replay(
        &self,
        root: &mut AggregateRoot<A>,
        to: Option<u64>,
    ) -> Result<u64, RepositoryError> {
        let mut applied = 0;
        let mut failure = None;
        self.inner
            .events
            .load_batches(root.id(), A::TYPE, root.version(), to, &mut |batch| {
                for event in &batch {
                    if let Err(e) = root.apply_recorded(event) {
                        failure = Some(e);
                        return ControlFlow::Break(());
                    }
                    applied += 1;
                }
                ControlFlow::Continue(())
            })
            .await?;
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(applied),
        }
    }

    /// Finds the snapshot to start from, or why there is none. Never fails.
    async fn start(&self, id: Uuid, at: Option<u64>) -> Start<A> {
        let Some(store) = &self.inner.snapshots else {
            return Start::replay(id, FallbackReason::NoSnapshot);
        };
        let read = async {
            match at {
                Some(version) => store.get_snapshot_at(id, A::TYPE, version).await,
                None => store.get_snapshot(id, A::TYPE).await,
            }
        };
        let Some(found) = self.within_timeout(read).await else {
            tracing::warn!(
                aggregate_id = %id,
                aggregate_type = A::TYPE,
                timeout = ?self.inner.snapshot_timeout,
                "snapshot read timed out; replaying the stream"
            );
            return Start::replay(id, FallbackReason::StoreError);
        };
        let snapshot = match found {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => return Start::replay(id, FallbackReason::NoSnapshot),
            Err(error @ SnapshotError::Deserialization { .. }) => {
                tracing::warn!(
                    aggregate_id = %id,
                    aggregate_type = A::TYPE,
                    error = &error as &dyn std::error::Error,
                    "corrupt snapshot; replaying the stream"
                );
                return Start::replay(id, FallbackReason::CorruptSnapshot);
            }
            Err(error) => {
                tracing::warn!(
                    aggregate_id = %id,
                    aggregate_type = A::TYPE,
                    error = &error as &dyn std::error::Error,
                    "snapshot store failed; replaying the stream"
                );
                return Start::replay(id, FallbackReason::StoreError);
            }
        };
        match self.restore(id, &snapshot) {
            Ok((root, migrated)) => Start {
                root,
                fallback: None,
                migrated,
            },
            Err(reason) => Start::replay(id, reason),
        }
    }

    /// Runs a snapshot store call within the configured timeout; `None` if it ran out.
    async fn within_timeout<T>(&self, call: impl Future<Output = T>) -> Option<T> {
        match self.inner.snapshot_timeout {
            Some(limit) => tokio::time::timeout(limit, call).await.ok(),
            None => Some(call.await),
        }
    }

    /// Restores a root from a snapshot, migrating its schema when a path exists; a migrated
    /// snapshot comes back too, to be stored if the load succeeds.
    fn restore(
        &self,
        id: Uuid,
        snapshot: &Snapshot,
    ) -> Result<(AggregateRoot<A>, Option<Snapshot>), FallbackReason> {
        if snapshot.aggregate_id != id || snapshot.aggregate_type != A::TYPE {
            tracing::warn!(aggregate_id = %id, aggregate_type = A::TYPE, %snapshot, "snapshot of another aggregate; replaying the stream");
            return Err(FallbackReason::RestoreFailure);
        }
        let migrated = snapshot.schema_version != A::SCHEMA_VERSION;
        let state = match self
            .inner
            .chain
            .migrate(snapshot.state.clone(), snapshot.schema_version)
        {
            Ok(state) => state,
            Err(error @ (MigrationError::Newer { .. } | MigrationError::NoPath { .. })) => {
                tracing::warn!(aggregate_id = %id, aggregate_type = A::TYPE, %snapshot, error = &error as &dyn std::error::Error, "snapshot schema not usable; replaying the stream");
                return Err(FallbackReason::SchemaMismatch);
            }
            Err(error) => {
                tracing::warn!(aggregate_id = %id, aggregate_type = A::TYPE, %snapshot, error = &error as &dyn std::error::Error, "snapshot migration failed; replaying the stream");
                return Err(FallbackReason::RestoreFailure);
            }
        };
        let state: A = match serde_json::from_value(state) {
            Ok(state) => state,
            Err(error) => {
                tracing::warn!(aggregate_id = %id, aggregate_type = A::TYPE, %snapshot, error = &error as &dyn std::error::Error, "snapshot state does not fit the aggregate; replaying the stream");
                return Err(FallbackReason::RestoreFailure);
            }
        };
        let mut root = AggregateRoot::restore(snapshot.aggregate_id, snapshot.version, state);
        let resave = if migrated {
            root.to_snapshot().ok()
        } else {
            None
        };
        root.note_snapshot(snapshot.version);
        Ok((root, resave))
    }

    /// Counts a snapshot that a successful load migrated and stores it, so the next load skips
    /// the migration. Best effort, in the background, and only where snapshots are written
    /// automatically.
    fn store_migrated(&self, snapshot: Snapshot) {
        self.inner.counters.migrated();
        if self.inner.mode != SnapshotMode::Manual
            && let Some(background) = &self.inner.background
        {
            background.schedule(snapshot);
        }
    }

    /// Appends the uncommitted events with the version they were built on, then snapshots
    /// per the strategy and mode. Returns the new version. A root with nothing uncommitted is
    /// left as is and nothing is written.
    ///
    /// On [`RepositoryError::Concurrency`] nothing was written and the root keeps its
    /// uncommitted events: load the aggregate again and retry the command.
    pub async fn save(&self, root: &mut AggregateRoot<A>) -> Result<u64, RepositoryError> {
        let span = tracing::info_span!(
            "snap.repo.save",
            aggregate_id = %root.id(),
            aggregate_type = A::TYPE,
            expected_version = root.version(),
            version = tracing::field::Empty,
            events = root.uncommitted().len(),
            snapshot = tracing::field::Empty,
        );
        self.save_inner(root).instrument(span).await
    }

    async fn save_inner(&self, root: &mut AggregateRoot<A>) -> Result<u64, RepositoryError> {
        if root.uncommitted().is_empty() {
            return Ok(root.version());
        }
        let id = root.id();
        let events =
            root.uncommitted_as_new_events()
                .map_err(|source| RepositoryError::Serialization {
                    aggregate_id: id,
                    aggregate_type: A::TYPE.to_owned(),
                    source,
                })?;
        let previous = root.version();
        match self
            .inner
            .events
            .append(id, A::TYPE, previous, events)
            .await
        {
            Ok(_) => self.inner.counters.saved(A::TYPE),
            Err(error) => {
                let error = RepositoryError::from(error);
                if matches!(error, RepositoryError::Concurrency { .. }) {
                    self.inner.counters.conflict(A::TYPE);
                }
                return Err(error);
            }
        }
        root.mark_committed();
        let version = root.version();
        tracing::Span::current().record("version", version);
        self.after_commit(root, previous).await;
        Ok(version)
    }

    /// Applies the strategy after a committed save. Never fails: snapshot problems are logged
    /// and counted.
    async fn after_commit(&self, root: &mut AggregateRoot<A>, previous: u64) {
        let inner = &*self.inner;
        let (Some(store), mode) = (&inner.snapshots, inner.mode) else {
            return;
        };
        if mode == SnapshotMode::Manual {
            return;
        }
        // A background write this handle noted when it scheduled it, but which failed, is no
        // snapshot: the strategy counts from none, so the next save may schedule it again.
        let known = match &inner.background {
            Some(background)
                if background
                    .failed_write(A::TYPE, root.id())
                    .is_some_and(|failed| failed >= root.snapshot_version()) =>
            {
                0
            }
            _ => root.snapshot_version(),
        };
        let ctx = SnapshotContext::new(root.id(), A::TYPE, previous, root.version())
            .snapshot_version(known)
            .last_replay(
                root.last_replay()
                    .map(|(events, duration)| ReplayCost { events, duration }),
            );
        if !inner.strategy.should_snapshot(&ctx) {
            return;
        }
        let snapshot = match root.to_snapshot() {
            Ok(snapshot) => snapshot,
            Err(error) => {
                inner.counters.snapshot_failed(A::TYPE, mode.as_str());
                tracing::Span::current().record("snapshot", "failed");
                tracing::warn!(
                    aggregate_id = %root.id(),
                    aggregate_type = A::TYPE,
                    error = &error as &dyn std::error::Error,
                    "cannot capture a snapshot; the save succeeded"
                );
                return;
            }
        };
        let version = snapshot.version;
        match mode {
            SnapshotMode::Sync => match self
                .within_timeout(store.save_snapshot(&snapshot))
                .await
                .unwrap_or_else(|| Err(timed_out("write")))
            {
                Ok(()) => {
                    inner.counters.snapshot_written(A::TYPE, "sync");
                    root.note_snapshot(version);
                    tracing::Span::current().record("snapshot", "written");
                }
                Err(error) => {
                    inner.counters.snapshot_failed(A::TYPE, "sync");
                    tracing::warn!(
                        aggregate_id = %root.id(),
                        aggregate_type = A::TYPE,
                        version,
                        error = &error as &dyn std::error::Error,
                        "snapshot write failed; the save succeeded"
                    );
                    tracing::Span::current().record("snapshot", "failed");
                }
            },
            SnapshotMode::Background => {
                if let Some(background) = &inner.background
                    && background.schedule(snapshot) != Scheduled::Dropped
                {
                    root.note_snapshot(version);
                    tracing::Span::current().record("snapshot", "scheduled");
                }
            }
            // Manual, or a mode this repository does not know: only explicit requests write.
            _ => {}
        }
    }

    /// Checks the latest snapshot against the events: restores it (migrating it as a load
    /// would), replays the stream up to the snapshot's version, and compares the two states as
    /// JSON. A [`SnapshotCheck::Mismatch`] means loads are returning a state no replay gives,
    /// typically because `apply` changed without a `SCHEMA_VERSION` bump: bump the schema
    /// version or delete the snapshots of the type. Nothing is written.
    pub async fn verify_snapshot(&self, id: Uuid) -> Result<SnapshotCheck, RepositoryError> {
        let Some(store) = &self.inner.snapshots else {
            return Ok(SnapshotCheck::NoSnapshot);
        };
        let read = self.within_timeout(store.get_snapshot(id, A::TYPE)).await;
        let snapshot = match read.unwrap_or_else(|| Err(timed_out("read"))) {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => return Ok(SnapshotCheck::NoSnapshot),
            Err(SnapshotError::Deserialization { .. }) => {
                return Ok(SnapshotCheck::Unusable {
                    reason: FallbackReason::CorruptSnapshot,
                });
            }
            Err(error) => return Err(error.into()),
        };
        let restored = match self.restore(id, &snapshot) {
            Ok((root, _)) => root,
            Err(reason) => return Ok(SnapshotCheck::Unusable { reason }),
        };
        let mut replayed = AggregateRoot::<A>::new(id);
        self.replay(&mut replayed, Some(snapshot.version)).await?;
        if replayed.version() < snapshot.version {
            return Ok(SnapshotCheck::Unusable {
                reason: FallbackReason::SnapshotAhead,
            });
        }
        let as_json = |state: &A| {
            serde_json::to_value(state)
                .map_err(|e| RepositoryError::Capture(CaptureError::Serialize(e)))
        };
        let (snapshot_state, replayed_state) =
            (as_json(restored.state())?, as_json(replayed.state())?);
        let version = snapshot.version;
        if snapshot_state == replayed_state {
            Ok(SnapshotCheck::Matches { version })
        } else {
            tracing::warn!(
                aggregate_id = %id,
                aggregate_type = A::TYPE,
                version,
                "snapshot differs from a replay of the events"
            );
            Ok(SnapshotCheck::Mismatch {
                version,
                snapshot: snapshot_state,
                replayed: replayed_state,
            })
        }
    }

    /// Snapshots the root's committed state now, whatever the strategy, and returns the
    /// snapshot. Errors are returned (unlike automatic snapshots): no snapshot store,
    /// uncommitted events, or the store's failure.
    pub async fn create_snapshot(
        &self,
        root: &AggregateRoot<A>,
    ) -> Result<Snapshot, RepositoryError> {
        let store = self
            .inner
            .snapshots
            .as_ref()
            .ok_or(RepositoryError::NoSnapshotStore)?;
        let snapshot = root.to_snapshot()?;
        self.within_timeout(store.save_snapshot(&snapshot))
            .await
            .unwrap_or_else(|| Err(timed_out("write")))?;
        self.inner.counters.snapshot_written(A::TYPE, "manual");
        Ok(snapshot)
    }

    /// Writes a fresh snapshot of every aggregate of this type, each rebuilt by a full replay
    /// of its events, at the current `SCHEMA_VERSION`: what to run after a schema bump, or
    /// after [`verify_snapshot`](Self::verify_snapshot) found a drift. Aggregates are read
    /// `page_size` ids at a time ([`EventStore::list_aggregate_ids`]); `progress` sees the
    /// running totals after each page. Aggregates that are discarded are skipped. The first
    /// error stops the run and is returned; the snapshots written before it stay.
    pub async fn rebuild_snapshots(
        &self,
        page_size: usize,
        mut progress: impl FnMut(&RebuildReport) + Send,
    ) -> Result<RebuildReport, RepositoryError> {
        let store = self
            .inner
            .snapshots
            .as_ref()
            .ok_or(RepositoryError::NoSnapshotStore)?;
        let mut report = RebuildReport::default();
        let mut after = None;
        loop {
            let page = self
                .inner
                .events
                .list_aggregate_ids(A::TYPE, after, page_size.max(1))
                .await?;
            let Some(last) = page.last().copied() else {
                return Ok(report);
            };
            for id in page {
                report.aggregates += 1;
                let mut root = AggregateRoot::<A>::new(id);
                self.replay(&mut root, None).await?;
                if root.version() == 0 || root.state().is_discarded() {
                    report.skipped += 1;
                    continue;
                }
                let snapshot = root.to_snapshot()?;
                self.within_timeout(store.save_snapshot(&snapshot))
                    .await
                    .unwrap_or_else(|| Err(timed_out("write")))?;
                self.inner.counters.snapshot_written(A::TYPE, "rebuild");
                report.written += 1;
            }
            progress(&report);
            after = Some(last);
        }
    }

    /// Waits for the background snapshot writes queued so far; returns how many it waited
    /// for (succeeded or failed). 0 without background writes.
    pub async fn await_pending_snapshots(&self) -> usize {
        match &self.inner.background {
            Some(background) => background.await_pending().await,
            None => 0,
        }
    }

    /// Background snapshot writes queued or running.
    pub fn pending_snapshot_count(&self) -> usize {
        self.inner
            .background
            .as_ref()
            .map_or(0, BackgroundSnapshotter::pending_count)
    }

    /// Refuses further background writes and waits for the queued ones; returns how many.
    /// Dropping the last clone instead lets queued writes finish on the runtime.
    pub async fn shutdown(&self) -> usize {
        match &self.inner.background {
            Some(background) => background.shutdown().await,
            None => 0,
        }
    }

    /// Whether the repository has a snapshot store.
    pub fn has_snapshot_support(&self) -> bool {
        self.inner.snapshots.is_some()
    }

    /// How snapshots are written.
    pub fn snapshot_mode(&self) -> SnapshotMode {
        self.inner.mode
    }

    /// When snapshots are taken.
    pub fn strategy(&self) -> &Arc<dyn SnapshotStrategy> {
        &self.inner.strategy
    }

    /// The event store.
    pub fn event_store(&self) -> &E {
        &self.inner.events
    }

    /// The snapshot store, if any.
    pub fn snapshot_store(&self) -> Option<&Arc<DynSnapshotStore>> {
        self.inner.snapshots.as_ref()
    }

    /// The counters so far.
    pub fn stats(&self) -> RepositoryStats {
        let background = self
            .inner
            .background
            .as_ref()
            .map(BackgroundSnapshotter::stats)
            .unwrap_or_default();
        self.inner.counters.snapshot(background)
    }
}
