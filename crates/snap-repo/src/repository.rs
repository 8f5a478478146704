//! The aggregate repository: load through a snapshot, save with a strategy.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use snap_core::{
    Aggregate, AggregateId, AggregateRoot, Backend, Commit, DynBackend, DynEventStore,
    DynSnapshotStore, MigrationChain, SerdeCodec, Snapshot, SnapshotError, SnapshotWrite,
    StateCodec, share_backend,
};
use snap_strategy::{
    BackgroundConfig, BackgroundSnapshotter, ReplayCost, Scheduled, SnapshotContext, SnapshotMode,
    SnapshotPolicy, SnapshotStrategy, Threshold,
};
use tracing::Instrument;

use crate::error::{BuildError, RepositoryError};
use crate::stats::{Counters, FallbackReason, RepositoryStats};

/// Loads and saves aggregates of type `A` through a [`Backend`], with snapshots.
///
/// - [`load`](Self::load) reads the latest snapshot, restores it (migrating its schema if a
///   path exists) and replays only the later events. A missing, corrupt, unreadable,
///   schema-incompatible or out-of-range snapshot is never an error: the load replays the
///   whole stream instead, logs a warning and counts the reason in [`stats`](Self::stats).
///   Either way the state is exactly the state of a full replay.
/// - [`save`](Self::save) asks the strategy whether to snapshot and appends the uncommitted
///   events with the version they were built on (optimistic concurrency). In sync mode the
///   snapshot rides in the same commit (one transaction on a database backend); in background
///   mode it is written after. A snapshot failure is logged and counted; the save still
///   succeeds, because the events are the source of truth.
///
/// Clones share the backend, the background writer and the counters.
pub struct AggregateRepository<A: Aggregate> {
    pub(crate) inner: Arc<Inner<A>>,
}

pub(crate) struct Inner<A> {
    /// The backend as given, for [`AggregateRepository::backend`].
    backend: Arc<DynBackend>,
    /// The backend in a store-span layer: what the repository calls.
    pub(crate) traced: Arc<DynBackend>,
    pub(crate) events: Arc<DynEventStore>,
    pub(crate) snapshots: Option<Arc<DynSnapshotStore>>,
    pub(crate) strategy: Arc<dyn SnapshotStrategy>,
    pub(crate) mode: SnapshotMode,
    pub(crate) chain: MigrationChain,
    pub(crate) background: Option<BackgroundSnapshotter>,
    pub(crate) snapshot_timeout: Option<Duration>,
    pub(crate) codec: Arc<dyn StateCodec<A>>,
    pub(crate) counters: Counters,
    aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate> Clone for AggregateRepository<A> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<A: Aggregate> fmt::Debug for AggregateRepository<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateRepository")
            .field("aggregate_type", &A::TYPE)
            .field("backend", &self.inner.backend)
            .field("strategy", &self.inner.strategy)
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

/// Builds an [`AggregateRepository`]; see [`AggregateRepository::builder`].
pub struct RepositoryBuilder<A: Aggregate> {
    backend: Arc<DynBackend>,
    strategy: Option<Arc<dyn SnapshotStrategy>>,
    mode: SnapshotMode,
    chain: Option<MigrationChain>,
    background: BackgroundConfig,
    snapshot_timeout: Option<Duration>,
    codec: Arc<dyn StateCodec<A>>,
    aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate> fmt::Debug for RepositoryBuilder<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepositoryBuilder")
            .field("aggregate_type", &A::TYPE)
            .field("backend", &self.backend)
            .field("strategy", &self.strategy)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl<A: Aggregate> RepositoryBuilder<A> {
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

    /// How the state becomes a snapshot's stored state and back. Default: [`SerdeCodec`], the
    /// state's own serde form. Migrations run on the stored form before the codec decodes it.
    #[must_use]
    pub fn codec(mut self, codec: impl StateCodec<A>) -> Self {
        self.codec = Arc::new(codec);
        self
    }

    /// The schema migrations of snapshot state; the chain must end at `A::SCHEMA_VERSION`.
    #[must_use]
    pub fn migrations(mut self, chain: MigrationChain) -> Self {
        self.chain = Some(chain);
        self
    }

    /// How long a load waits for a separate snapshot read before it gives up on the snapshot
    /// and replays the stream (counted as a store error), and how long a sync-mode save waits
    /// for a separate snapshot write (counted as a failed write; the save still succeeds).
    /// Separate means a [`StorePair`](crate::StorePair) backend; a backend that reads and
    /// commits both at once has no separate wait to bound. Default: no limit. Needs a tokio
    /// runtime with the time driver enabled.
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
    pub fn build(self) -> Result<AggregateRepository<A>, BuildError> {
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
        // Every store call gets its span, whichever backend this is (unless it has them).
        let traced = snap_core::trace_backend(Arc::clone(&self.backend));
        let snapshots = traced.snapshot_store();
        let background = snapshots
            .as_ref()
            .map(|store| BackgroundSnapshotter::new(Arc::clone(store), self.background));
        Ok(AggregateRepository {
            inner: Arc::new(Inner {
                events: traced.event_store(),
                backend: self.backend,
                traced,
                snapshots,
                strategy,
                mode: self.mode,
                chain,
                background,
                snapshot_timeout: self.snapshot_timeout,
                codec: self.codec,
                counters: Counters::default(),
                aggregate: PhantomData,
            }),
        })
    }
}

impl<A: Aggregate> AggregateRepository<A> {
    /// Starts building a repository on `backend`: a backend's database handle, an
    /// `Arc<dyn Backend>` (kept as is, not wrapped again), or a
    /// [`StorePair`](crate::StorePair) of separate stores.
    pub fn builder(backend: impl Backend) -> RepositoryBuilder<A> {
        RepositoryBuilder {
            backend: share_backend(backend),
            strategy: None,
            mode: SnapshotMode::Sync,
            chain: None,
            background: BackgroundConfig::default(),
            snapshot_timeout: None,
            codec: Arc::new(SerdeCodec),
            aggregate: PhantomData,
        }
    }
}

/// The error of a snapshot store call that ran out of `snapshot_timeout`.
pub(crate) fn timed_out(call: &str) -> SnapshotError {
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

/// What [`AggregateRepository::rebuild_snapshot`] did with one aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rebuilt {
    /// A snapshot at this version was written.
    Written {
        /// The stream's version, now the snapshot's.
        version: u64,
    },
    /// The aggregate has no events: nothing to snapshot.
    NoEvents,
    /// The aggregate is discarded: it is not snapshotted.
    Discarded,
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

impl<A: Aggregate> AggregateRepository<A> {
    /// A new aggregate at version 0, not stored until it is saved with events.
    pub fn create_new(&self, id: impl Into<AggregateId>) -> AggregateRoot<A> {
        AggregateRoot::new(id)
    }

    /// The aggregate's current state: the latest snapshot plus the events after it, or a full
    /// replay. [`RepositoryError::AggregateNotFound`] if it has no events or is discarded.
    pub async fn load(
        &self,
        id: impl Into<AggregateId>,
    ) -> Result<AggregateRoot<A>, RepositoryError> {
        Self::found(self.load_span(&id.into(), None).await?)
    }

    /// The aggregate as it was at `version`: the nearest retained snapshot at or below it plus
    /// the events up to `version`. A version past the head gives the current state.
    pub async fn load_at(
        &self,
        id: impl Into<AggregateId>,
        version: u64,
    ) -> Result<AggregateRoot<A>, RepositoryError> {
        Self::found(self.load_span(&id.into(), Some(version)).await?)
    }

    /// The aggregate's state at `version` and the version it reflects (lower than asked when
    /// the stream is shorter): [`load_at`](Self::load_at) for callers that want the state
    /// alone, e.g. to answer "what was the balance at version 150?" through the nearest
    /// retained snapshot instead of a replay from the start.
    pub async fn capture_state(
        &self,
        id: impl Into<AggregateId>,
        version: u64,
    ) -> Result<(A, u64), RepositoryError> {
        let root = self.load_at(id, version).await?;
        let at = root.version();
        Ok((root.into_state(), at))
    }

    /// The root, or [`RepositoryError::AggregateNotFound`] if it has no events or is
    /// discarded.
    fn found(root: AggregateRoot<A>) -> Result<AggregateRoot<A>, RepositoryError> {
        if root.version() == 0 || root.state().is_discarded() {
            return Err(RepositoryError::AggregateNotFound {
                aggregate_id: root.id().clone(),
                aggregate_type: A::TYPE.to_owned(),
            });
        }
        Ok(root)
    }

    /// Runs a snapshot store call within the configured timeout; `None` if it ran out.
    pub(crate) async fn within_timeout<T>(&self, call: impl Future<Output = T>) -> Option<T> {
        match self.inner.snapshot_timeout {
            Some(limit) => tokio::time::timeout(limit, call).await.ok(),
            None => Some(call.await),
        }
    }

    /// Counts a snapshot that a successful load migrated and stores it, so the next load skips
    /// the migration. Best effort, in the background, and only where snapshots are written
    /// automatically.
    pub(crate) fn store_migrated(&self, snapshot: Snapshot) {
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
        let id = root.id().clone();
        let events = root
            .new_events()
            .map_err(|source| RepositoryError::Serialization {
                aggregate_id: id.clone(),
                aggregate_type: A::TYPE.to_owned(),
                source,
            })?;
        let previous = root.version();
        let wanted = self.wants_snapshot(root);
        let sync = match wanted {
            Some(SnapshotMode::Sync) => self.capture_after_save(root, "sync"),
            _ => None,
        };
        let commit = Commit::new(A::TYPE, id, previous, events)
            .with_snapshot(sync)
            .snapshot_timeout(self.inner.snapshot_timeout);
        let committed = match self.inner.traced.commit(commit).await {
            Ok(committed) => committed,
            Err(error) => {
                let error = RepositoryError::from(error);
                if matches!(error, RepositoryError::Concurrency { .. }) {
                    self.inner.counters.conflict(A::TYPE);
                }
                return Err(error);
            }
        };
        self.inner.counters.saved(A::TYPE);
        root.mark_committed();
        let version = root.version();
        tracing::Span::current().record("version", version);
        self.note_sync_write(root, committed.snapshot);
        if wanted == Some(SnapshotMode::Background) {
            self.schedule(root);
        }
        Ok(version)
    }

    /// Whether the strategy asks for a snapshot at the version this save reaches, and in
    /// which mode it is written. Never for manual mode or without a snapshot store.
    fn wants_snapshot(&self, root: &AggregateRoot<A>) -> Option<SnapshotMode> {
        let inner = &*self.inner;
        let mode = inner.mode;
        if inner.snapshots.is_none()
            || !matches!(mode, SnapshotMode::Sync | SnapshotMode::Background)
        {
            return None;
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
        let ctx = SnapshotContext::new(root.id(), A::TYPE, root.version(), root.pending_version())
            .snapshot_version(known)
            .last_replay(
                root.last_replay()
                    .map(|(events, duration)| ReplayCost { events, duration }),
            );
        inner.strategy.should_snapshot(&ctx).then_some(mode)
    }

    /// The snapshot of the state the save reaches, or `None` (counted and logged) when it
    /// cannot be taken; the save goes on either way.
    fn capture_after_save(&self, root: &AggregateRoot<A>, mode: &'static str) -> Option<Snapshot> {
        match root.to_snapshot_after_save_with(&*self.inner.codec) {
            Ok(snapshot) => Some(snapshot),
            Err(error) => {
                self.inner.counters.snapshot_failed(A::TYPE, mode);
                tracing::Span::current().record("snapshot", "failed");
                tracing::warn!(
                    aggregate_id = %root.id(),
                    aggregate_type = A::TYPE,
                    error = &error as &dyn std::error::Error,
                    "cannot capture a snapshot; the save goes on without it"
                );
                None
            }
        }
    }

    /// Counts what became of the snapshot that rode in the commit.
    fn note_sync_write(&self, root: &mut AggregateRoot<A>, write: SnapshotWrite) {
        let span = tracing::Span::current();
        match write {
            SnapshotWrite::Written => {
                self.inner.counters.snapshot_written(A::TYPE, "sync");
                root.note_snapshot(root.version());
                span.record("snapshot", "written");
            }
            SnapshotWrite::Failed(error) => {
                self.inner.counters.snapshot_failed(A::TYPE, "sync");
                tracing::warn!(
                    aggregate_id = %root.id(),
                    aggregate_type = A::TYPE,
                    version = root.version(),
                    error = &error as &dyn std::error::Error,
                    "snapshot write failed; the save succeeded"
                );
                span.record("snapshot", "failed");
            }
            _ => {}
        }
    }

    /// Hands the committed state's snapshot to the background writer.
    fn schedule(&self, root: &mut AggregateRoot<A>) {
        let Some(background) = &self.inner.background else {
            return;
        };
        let Some(snapshot) = self.capture_after_save(root, "background") else {
            return;
        };
        let version = snapshot.version;
        if background.schedule(snapshot) != Scheduled::Dropped {
            root.note_snapshot(version);
            tracing::Span::current().record("snapshot", "scheduled");
        }
    }

    /// Snapshots the root's committed state now, whatever the strategy, and returns the
    /// snapshot. Errors are returned (unlike automatic snapshots): no snapshot store,
    /// uncommitted events, the store's failure, or
    /// [`RepositoryError::SnapshotSuperseded`] when the stored snapshot is newer than the root
    /// (stores never move back, so there is nothing to write; the same version is written
    /// again). An unreadable stored snapshot is overwritten.
    pub async fn create_snapshot(
        &self,
        root: &AggregateRoot<A>,
    ) -> Result<Snapshot, RepositoryError> {
        let store = self
            .inner
            .snapshots
            .as_ref()
            .ok_or(RepositoryError::NoSnapshotStore)?;
        let snapshot = root.to_snapshot_with(&*self.inner.codec)?;
        let stored = self
            .within_timeout(store.get_snapshot(root.id(), A::TYPE))
            .await
            .unwrap_or_else(|| Err(timed_out("read")));
        match stored {
            Ok(Some(stored)) if stored.version > snapshot.version => {
                return Err(RepositoryError::SnapshotSuperseded {
                    aggregate_id: root.id().clone(),
                    aggregate_type: A::TYPE.to_owned(),
                    version: snapshot.version,
                    stored: stored.version,
                });
            }
            Ok(_) | Err(SnapshotError::Deserialization { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        self.within_timeout(store.save_snapshot(&snapshot))
            .await
            .unwrap_or_else(|| Err(timed_out("write")))?;
        self.inner.counters.snapshot_written(A::TYPE, "manual");
        Ok(snapshot)
    }

    /// Writes a fresh snapshot of one aggregate, rebuilt by a full replay of its events at the
    /// current `SCHEMA_VERSION`, over whatever snapshot is stored (a stored snapshot is never
    /// read, so a drifted or unreadable one is replaced too). An aggregate without events, or
    /// one that is discarded, is left as it is. The unit of work of
    /// [`rebuild_snapshots`](Self::rebuild_snapshots) and of the operator tool's `rebuild`.
    pub async fn rebuild_snapshot(
        &self,
        id: impl Into<AggregateId>,
    ) -> Result<Rebuilt, RepositoryError> {
        let store = self
            .inner
            .snapshots
            .as_ref()
            .ok_or(RepositoryError::NoSnapshotStore)?;
        let root = self.full_replay(&id.into(), None).await?;
        if root.version() == 0 {
            return Ok(Rebuilt::NoEvents);
        }
        if root.state().is_discarded() {
            return Ok(Rebuilt::Discarded);
        }
        let snapshot = root.to_snapshot_with(&*self.inner.codec)?;
        self.within_timeout(store.save_snapshot(&snapshot))
            .await
            .unwrap_or_else(|| Err(timed_out("write")))?;
        self.inner.counters.snapshot_written(A::TYPE, "rebuild");
        Ok(Rebuilt::Written {
            version: snapshot.version,
        })
    }

    /// Writes a fresh snapshot of every aggregate of this type, each rebuilt by a full replay
    /// of its events, at the current `SCHEMA_VERSION`: what to run after a schema bump, or
    /// after [`verify_snapshot`](Self::verify_snapshot) found a drift. Aggregates are read
    /// `page_size` ids at a time
    /// ([`EventStore::list_aggregate_ids`](snap_core::EventStore::list_aggregate_ids)), one
    /// after another; `progress` sees the running totals after each page. Aggregates that are
    /// discarded are skipped. The first error stops the run and is returned; the snapshots
    /// written before it stay. For concurrency, a resume cursor and progress bars, the operator
    /// tool's `rebuild` runs [`rebuild_snapshot`](Self::rebuild_snapshot) per aggregate.
    pub async fn rebuild_snapshots(
        &self,
        page_size: usize,
        mut progress: impl FnMut(&RebuildReport) + Send,
    ) -> Result<RebuildReport, RepositoryError> {
        if self.inner.snapshots.is_none() {
            return Err(RepositoryError::NoSnapshotStore);
        }
        let mut report = RebuildReport::default();
        let mut after = None;
        loop {
            let page = self
                .inner
                .events
                .list_aggregate_ids(A::TYPE, after.as_ref(), page_size.max(1))
                .await?;
            let Some(last) = page.last().cloned() else {
                return Ok(report);
            };
            for id in page {
                report.aggregates += 1;
                match self.rebuild_snapshot(id).await? {
                    Rebuilt::Written { .. } => report.written += 1,
                    Rebuilt::NoEvents | Rebuilt::Discarded => report.skipped += 1,
                }
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

    /// The number of events between snapshots, when the strategy has a fixed one
    /// ([`Threshold`], [`EventCount`](snap_strategy::EventCount)); `None` for the other strategies.
    pub fn snapshot_threshold(&self) -> Option<u64> {
        self.inner.strategy.threshold()
    }

    /// The backend, as it was given to the builder (the repository's own calls go through a
    /// [`Traced`](snap_core::Traced) layer on it; the stores below are in that layer).
    pub fn backend(&self) -> &Arc<DynBackend> {
        &self.inner.backend
    }

    /// The event store, on the backend's data.
    pub fn event_store(&self) -> &Arc<DynEventStore> {
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
