//! Repositories on a backend's own handle, through the facade: the in-memory database, a
//! shared `Arc<dyn Backend>` kept as it is, and the state at a version through a snapshot.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use snap_es::prelude::*;
use snap_es::{AggregateId, BoxError, DynBackend, StateCodec, StorePair};

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Counter {
    total: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum CounterEvent {
    Added(i64),
}

impl Aggregate for Counter {
    const TYPE: &'static str = "Counter";
    type Event = CounterEvent;
    fn apply(&mut self, CounterEvent::Added(n): &CounterEvent) {
        self.total += n;
    }
}

async fn fill(repo: &AggregateRepository<Counter>, id: &AggregateId, events: i64) {
    let mut root = repo.create_new(id);
    for n in 1..=events {
        root.record(CounterEvent::Added(n));
        repo.save(&mut root).await.expect("save");
    }
}

#[tokio::test]
async fn the_state_at_a_version_comes_through_the_nearest_snapshot() {
    let database = InMemoryDatabase::new().keep_history(3);
    let repo = AggregateRepository::<Counter>::builder(database.clone())
        .strategy(Threshold(100))
        .build()
        .unwrap();
    let id = &AggregateId::from(Uuid::new_v4());
    fill(&repo, id, 250).await;

    let (state, version) = repo.capture_state(id, 150).await.unwrap();
    assert_eq!((state.total, version), (150 * 151 / 2, 150));
    assert_eq!(repo.stats().events_replayed, 50, "from the snapshot at 100");

    let replay =
        AggregateRepository::<Counter>::builder(StorePair::events_only(database.event_store()))
            .build()
            .unwrap();
    for at in [1, 99, 100, 101, 199, 200, 250, 400] {
        let through = repo.capture_state(id, at).await.unwrap();
        let replayed = replay.capture_state(id, at).await.unwrap();
        assert_eq!(through, replayed, "at {at}");
    }
    assert!(matches!(
        repo.capture_state(Uuid::new_v4(), 5).await,
        Err(RepositoryError::AggregateNotFound { .. })
    ));
}

#[tokio::test]
async fn a_shared_backend_is_kept_as_it_is() {
    let shared: Arc<DynBackend> = Arc::new(InMemoryDatabase::new());
    let repo = AggregateRepository::<Counter>::builder(Arc::clone(&shared))
        .build()
        .unwrap();
    assert!(Arc::ptr_eq(repo.backend(), &shared), "not wrapped again");
    let id = &AggregateId::from(Uuid::new_v4());
    fill(&repo, id, 3).await;
    let other = AggregateRepository::<Counter>::builder(shared)
        .build()
        .unwrap();
    assert_eq!(other.load(id).await.unwrap().state().total, 6);
}

#[tokio::test]
async fn shared_stores_in_a_pair_are_kept_as_they_are() {
    let events: Arc<snap_es::DynEventStore> = Arc::new(InMemoryEventStore::new());
    let snapshots: Arc<snap_es::DynSnapshotStore> = Arc::new(InMemorySnapshotStore::new());
    let pair = StorePair::new(Arc::clone(&events), Arc::clone(&snapshots));
    assert!(Arc::ptr_eq(&pair.event_store(), &events));
    assert!(Arc::ptr_eq(&pair.snapshot_store().unwrap(), &snapshots));
    let repo = AggregateRepository::<Counter>::builder(pair)
        .strategy(Threshold(2))
        .build()
        .unwrap();
    let id = &AggregateId::from(Uuid::new_v4());
    fill(&repo, id, 5).await;
    assert_eq!(
        snapshots
            .get_snapshot(id, "Counter")
            .await
            .unwrap()
            .map(|s| s.version),
        Some(4)
    );
}

#[tokio::test]
async fn the_factory_and_the_threshold_speak_as_the_reference_library_does() {
    let policy = create_snapshot_strategy("sync", Some(4)).expect("a policy");
    let repo = AggregateRepository::<Counter>::builder(InMemoryDatabase::new())
        .policy(policy)
        .build()
        .expect("a repository");
    assert_eq!(repo.snapshot_threshold(), Some(4));
    assert_eq!(repo.snapshot_mode(), SnapshotMode::Sync);
    let id = &AggregateId::from(Uuid::new_v4());
    fill(&repo, id, 9).await;
    assert_eq!(repo.stats().snapshots_written, 2, "at 4 and 8");

    let manual = AggregateRepository::<Counter>::builder(InMemoryDatabase::new())
        .policy(create_snapshot_strategy("background", None).expect("a policy"))
        .build()
        .expect("a repository");
    assert_eq!(manual.snapshot_threshold(), None);
    fill(&manual, id, 9).await;
    assert_eq!(
        manual.stats().snapshots_written,
        0,
        "no threshold: only on request"
    );
    assert!(create_snapshot_strategy("eventually", 10).is_err());
}

#[tokio::test]
async fn store_calls_are_in_spans_through_the_facade() {
    let log = snap_testkit::spans::SpanLog::default();
    let _capturing = log.capture();
    let database = snap_es::sqlite::SqliteDatabase::open_in_memory()
        .await
        .unwrap();
    let repo = AggregateRepository::<Counter>::builder(database.clone())
        .strategy(Threshold(3))
        .build()
        .unwrap();
    let id = &AggregateId::from(Uuid::new_v4());
    fill(&repo, id, 3).await;
    let commit = log.last("snap.backend.commit");
    assert_eq!(commit.fields["backend"], "sqlite");
    assert_eq!(commit.fields["snapshot"], "written");
    assert_eq!(commit.fields["version"], "3");

    // A store used on its own is traced by wrapping it.
    let store = snap_es::Traced::new(database.snapshot_store(), "sqlite");
    let found = store.get_snapshot(id, "Counter").await.unwrap();
    assert_eq!(found.map(|s| s.version), Some(3));
    let get = log.last("snap.snapshot.get");
    assert_eq!(
        (
            get.fields["aggregate_id"].as_str(),
            get.fields["version"].as_str()
        ),
        (id.to_string().as_str(), "3")
    );
    assert_eq!(get.parent, None, "called outside any repository span");
}

#[tokio::test]
async fn event_count_snapshots_n_events_after_the_last_snapshot() {
    // Saves of 4, 2, 4 and 4 events: EventCount(5) snapshots 5 or more events after the last
    // snapshot (at 6, then 14); Threshold(5) when a save crosses a multiple of 5 (6, then 10).
    async fn snapshots_taken(strategy: impl SnapshotStrategy) -> Vec<Option<u64>> {
        let database = InMemoryDatabase::new();
        let repo = AggregateRepository::<Counter>::builder(database.clone())
            .strategy(strategy)
            .build()
            .unwrap();
        let id = &AggregateId::from(Uuid::new_v4());
        let mut root = repo.create_new(id);
        let mut seen = Vec::new();
        for size in [4, 2, 4, 4] {
            for n in 0..size {
                root.record(CounterEvent::Added(n));
            }
            repo.save(&mut root).await.unwrap();
            let stored = database.snapshot_store().get_snapshot(id, "Counter").await;
            seen.push(stored.unwrap().map(|s| s.version));
        }
        seen
    }
    assert_eq!(
        snapshots_taken(snap_es::EventCount(5)).await,
        [None, Some(6), Some(6), Some(14)]
    );
    assert_eq!(
        snapshots_taken(Threshold(5)).await,
        [None, Some(6), Some(10), Some(10)]
    );
    let repo = AggregateRepository::<Counter>::builder(InMemoryDatabase::new())
        .strategy(snap_es::EventCount(5))
        .build()
        .unwrap();
    assert_eq!(repo.snapshot_threshold(), Some(5));
    assert!(
        AggregateRepository::<Counter>::builder(InMemoryDatabase::new())
            .strategy(snap_es::EventCount(0))
            .build()
            .is_err()
    );
}

/// Stores the counter's total under another name, with a marker: a snapshot shape of the
/// application's own, not the state's serde form.
#[derive(Debug)]
struct Renamed {
    refuse: bool,
}

impl StateCodec<Counter> for Renamed {
    fn encode(&self, state: &Counter) -> Result<snap_es::serde_json::Value, BoxError> {
        Ok(snap_es::serde_json::json!({"sum": state.total, "codec": "renamed"}))
    }

    fn decode(&self, stored: &snap_es::serde_json::Value) -> Result<Counter, BoxError> {
        if self.refuse {
            return Err("refused".into());
        }
        let total = stored["sum"].as_i64().ok_or("no sum")?;
        Ok(Counter { total })
    }
}

#[tokio::test]
async fn a_state_codec_of_the_application_shapes_the_stored_snapshot() {
    let database = snap_es::sqlite::SqliteDatabase::open_in_memory()
        .await
        .unwrap();
    let repo = AggregateRepository::<Counter>::builder(database.clone())
        .strategy(Threshold(4))
        .codec(Renamed { refuse: false })
        .build()
        .unwrap();
    let id = &AggregateId::from(Uuid::new_v4());
    fill(&repo, id, 6).await;
    let stored = database.snapshot_store().get_snapshot(id, "Counter").await;
    let stored = stored.unwrap().unwrap();
    assert_eq!(
        stored.state,
        snap_es::serde_json::json!({"sum": 10, "codec": "renamed"})
    );
    let loaded = repo.load(id).await.unwrap();
    assert_eq!((loaded.version(), loaded.state().total), (6, 21));
    assert_eq!(
        repo.stats().snapshot_hits,
        1,
        "loaded through the codec's snapshot: {:?}",
        repo.stats()
    );

    // A codec that cannot decode costs a replay, never a wrong state.
    let refusing = AggregateRepository::<Counter>::builder(database.clone())
        .codec(Renamed { refuse: true })
        .build()
        .unwrap();
    assert_eq!(refusing.load(id).await.unwrap().state().total, 21);
    assert_eq!(refusing.stats().fallbacks.restore_failure, 1);
    // And the serde default does not read the codec's shape as a counter.
    let plain = AggregateRepository::<Counter>::builder(database)
        .build()
        .unwrap();
    assert_eq!(plain.load(id).await.unwrap().state().total, 21);
    assert_eq!(plain.stats().fallbacks.restore_failure, 1);
}
