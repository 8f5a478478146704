//! The load path: one [`Backend::load`](snap_core::Backend::load) into a sink that restores
//! the snapshot and applies the events after it, and the checks built on it.

use std::ops::ControlFlow;
use std::time::Instant;

use snap_core::{
    Aggregate, AggregateId, AggregateRoot, CaptureError, LoadRequest, LoadSink, Loaded,
    MigrationError, ReplayError, Snapshot, SnapshotError, SnapshotRead, StoredEvent,
};
use tracing::Instrument;

use crate::error::RepositoryError;
use crate::repository::{AggregateRepository, SnapshotCheck, timed_out};
use crate::stats::FallbackReason;

/// Builds a root from what a load hands over: a snapshot (restored, migrated if needed) and
/// the events after it.
struct Replay<'r, A: Aggregate> {
    repo: &'r AggregateRepository<A>,
    root: AggregateRoot<A>,
    /// `None` when the load started from a snapshot, the reason for a full replay otherwise.
    fallback: Option<FallbackReason>,
    /// The snapshot migrated to the current schema, to store once the load succeeds.
    migrated: Option<Snapshot>,
    applied: u64,
    failure: Option<ReplayError>,
    /// When the events began: the replay cost the strategies see excludes the snapshot.
    started: Instant,
}

impl<'r, A: Aggregate> Replay<'r, A> {
    fn new(repo: &'r AggregateRepository<A>, id: &AggregateId, reason: FallbackReason) -> Self {
        Self {
            repo,
            root: AggregateRoot::new(id.clone()),
            fallback: Some(reason),
            migrated: None,
            applied: 0,
            failure: None,
            started: Instant::now(),
        }
    }

    fn fail(&mut self, reason: FallbackReason) -> bool {
        self.fallback = Some(reason);
        false
    }

    /// The root, or the first event that could not be applied.
    fn finish(self) -> Result<Self, RepositoryError> {
        match self.failure {
            Some(error) => Err(error.into()),
            None => Ok(self),
        }
    }
}

impl<A: Aggregate> LoadSink for Replay<'_, A> {
    fn snapshot(&mut self, read: SnapshotRead) -> bool {
        let id = self.root.id();
        let taken = match read {
            SnapshotRead::Found(snapshot) => match self.repo.restore(id, &snapshot) {
                Ok((root, migrated)) => {
                    self.root = root;
                    self.fallback = None;
                    self.migrated = migrated;
                    true
                }
                Err(reason) => self.fail(reason),
            },
            SnapshotRead::Missing => self.fail(FallbackReason::NoSnapshot),
            SnapshotRead::Failed(error @ SnapshotError::Deserialization { .. }) => {
                tracing::warn!(
                    aggregate_id = %id,
                    aggregate_type = A::TYPE,
                    error = &error as &dyn std::error::Error,
                    "corrupt snapshot; replaying the stream"
                );
                self.fail(FallbackReason::CorruptSnapshot)
            }
            SnapshotRead::Failed(error) => {
                tracing::warn!(
                    aggregate_id = %id,
                    aggregate_type = A::TYPE,
                    error = &error as &dyn std::error::Error,
                    "snapshot store failed; replaying the stream"
                );
                self.fail(FallbackReason::StoreError)
            }
            SnapshotRead::TimedOut => {
                tracing::warn!(
                    aggregate_id = %id,
                    aggregate_type = A::TYPE,
                    timeout = ?self.repo.inner.snapshot_timeout,
                    "snapshot read timed out; replaying the stream"
                );
                self.fail(FallbackReason::StoreError)
            }
            _ => self.fail(FallbackReason::StoreError),
        };
        self.started = Instant::now();
        taken
    }

    fn event(&mut self, event: &StoredEvent<'_>) -> ControlFlow<()> {
        match self.root.apply_stored(event) {
            Ok(()) => {
                self.applied += 1;
                ControlFlow::Continue(())
            }
            Err(error) => {
                self.failure = Some(error);
                ControlFlow::Break(())
            }
        }
    }
}

impl<A: Aggregate> AggregateRepository<A> {
    /// The current state for a command: a new root at version 0 when the aggregate has no
    /// events, and a discarded aggregate as it is, so the caller can tell the two apart.
    pub(crate) async fn load_for_command(
        &self,
        id: &AggregateId,
    ) -> Result<AggregateRoot<A>, RepositoryError> {
        self.load_span(id, None).await
    }

    pub(crate) async fn load_span(
        &self,
        id: &AggregateId,
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

    /// One load into a fresh [`Replay`].
    async fn read(
        &self,
        id: &AggregateId,
        at: Option<u64>,
        through_snapshot: bool,
    ) -> Result<(Replay<'_, A>, Loaded), RepositoryError> {
        let snapshots = through_snapshot && self.inner.snapshots.is_some();
        let mut replay = Replay::new(self, id, FallbackReason::NoSnapshot);
        // The sink applies payloads and checks versions; it reads nothing else of an event.
        let request = LoadRequest::new(A::TYPE, id)
            .up_to(at)
            .through_snapshot(snapshots)
            .snapshot_timeout(self.inner.snapshot_timeout)
            .payload_only(true);
        let loaded = self.inner.traced.load(&request, &mut replay).await?;
        Ok((replay.finish()?, loaded))
    }

    async fn load_inner(
        &self,
        id: &AggregateId,
        at: Option<u64>,
    ) -> Result<AggregateRoot<A>, RepositoryError> {
        let (mut replay, loaded) = self.read(id, at, true).await?;
        if replay.fallback.is_none() && loaded.version < replay.root.version() {
            tracing::warn!(
                aggregate_id = %id,
                aggregate_type = A::TYPE,
                snapshot_version = replay.root.version(),
                head = loaded.version,
                "snapshot is ahead of the event stream; replaying the stream"
            );
            replay = self.read(id, at, false).await?.0;
            replay.fallback = Some(FallbackReason::SnapshotAhead);
        }
        let Replay {
            mut root,
            fallback,
            migrated,
            applied,
            started,
            ..
        } = replay;
        root.note_replay(applied, started.elapsed());
        if root.version() == 0 {
            // No stream: a new aggregate, and nothing a load could count.
            return Ok(AggregateRoot::new(id.clone()));
        }
        self.inner.counters.load(A::TYPE, fallback, applied);
        if let Some(at) = at {
            let from_start = fallback == Some(FallbackReason::NoSnapshot);
            if self.inner.counters.historical(A::TYPE, from_start) {
                tracing::info!(
                    aggregate_id = %id,
                    aggregate_type = A::TYPE,
                    at,
                    "a load at a version found no snapshot at or below it and replayed from \
                     the first event; a store built with keep_history(k) keeps older snapshots \
                     (said once per repository; counted in stats().historical_without_snapshot)"
                );
            }
        }
        if let Some(migrated) = migrated {
            self.store_migrated(migrated);
        }
        let span = tracing::Span::current();
        span.record("version", root.version());
        span.record("snapshot_used", fallback.is_none());
        span.record("events_replayed", applied);
        if let Some(reason) = fallback {
            span.record("fallback", reason.as_str());
        }
        Ok(root)
    }

    /// The aggregate rebuilt by a full replay of its events up to `to`.
    pub(crate) async fn full_replay(
        &self,
        id: &AggregateId,
        to: Option<u64>,
    ) -> Result<AggregateRoot<A>, RepositoryError> {
        Ok(self.read(id, to, false).await?.0.root)
    }

    /// Restores a root from a snapshot, migrating its schema when a path exists; a migrated
    /// snapshot comes back too, to be stored if the load succeeds.
    pub(crate) fn restore(
        &self,
        id: &AggregateId,
        snapshot: &Snapshot,
    ) -> Result<(AggregateRoot<A>, Option<Snapshot>), FallbackReason> {
        if snapshot.aggregate_id != *id || snapshot.aggregate_type != A::TYPE {
            tracing::warn!(aggregate_id = %id, aggregate_type = A::TYPE, %snapshot, "snapshot of another aggregate; replaying the stream");
            return Err(FallbackReason::RestoreFailure);
        }
        let migrated = snapshot.schema_version != A::SCHEMA_VERSION;
        let decoded = if migrated {
            match self
                .inner
                .chain
                .migrate(snapshot.state.clone(), snapshot.schema_version)
            {
                Ok(state) => self.inner.codec.decode(&state),
                Err(error @ (MigrationError::Newer { .. } | MigrationError::NoPath { .. })) => {
                    tracing::warn!(aggregate_id = %id, aggregate_type = A::TYPE, %snapshot, error = &error as &dyn std::error::Error, "snapshot schema not usable; replaying the stream");
                    return Err(FallbackReason::SchemaMismatch);
                }
                Err(error) => {
                    tracing::warn!(aggregate_id = %id, aggregate_type = A::TYPE, %snapshot, error = &error as &dyn std::error::Error, "snapshot migration failed; replaying the stream");
                    return Err(FallbackReason::RestoreFailure);
                }
            }
        } else {
            // The current schema: decoded in place, without a copy of the state.
            self.inner.codec.decode(&snapshot.state)
        };
        let state: A = match decoded {
            Ok(state) => state,
            Err(error) => {
                tracing::warn!(aggregate_id = %id, aggregate_type = A::TYPE, %snapshot, error = &*error as &dyn std::error::Error, "snapshot state does not fit the aggregate; replaying the stream");
                return Err(FallbackReason::RestoreFailure);
            }
        };
        let mut root =
            AggregateRoot::restore(snapshot.aggregate_id.clone(), snapshot.version, state);
        let resave = if migrated {
            root.to_snapshot_with(&*self.inner.codec).ok()
        } else {
            None
        };
        root.note_snapshot(snapshot.version);
        Ok((root, resave))
    }

    /// Checks the latest snapshot against the events: restores it (migrating it as a load
    /// would), replays the stream up to the snapshot's version, and compares the two states as
    /// JSON. A [`SnapshotCheck::Mismatch`] means loads are returning a state no replay gives,
    /// typically because `apply` changed without a `SCHEMA_VERSION` bump: bump the schema
    /// version or delete the snapshots of the type. Nothing is written.
    pub async fn verify_snapshot(
        &self,
        id: impl Into<AggregateId>,
    ) -> Result<SnapshotCheck, RepositoryError> {
        let id = &id.into();
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
        let replayed = self.full_replay(id, Some(snapshot.version)).await?;
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
}
