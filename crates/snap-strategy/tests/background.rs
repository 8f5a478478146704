//! The background snapshotter against a slow, counting store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use snap_core::{
    AggregateId, DynSnapshotStore, Snapshot, SnapshotError, SnapshotStore, async_trait,
};
use snap_memory::InMemorySnapshotStore;
use snap_strategy::{BackgroundConfig, BackgroundSnapshotter, Scheduled};
use uuid::Uuid;

/// Delays every save and counts them; fails saves of version 13.
#[derive(Debug, Default)]
struct SlowStore {
    inner: InMemorySnapshotStore,
    saves: AtomicUsize,
}

#[async_trait]
impl SnapshotStore for SlowStore {
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), SnapshotError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.saves.fetch_add(1, Ordering::SeqCst);
        if snapshot.version == 13 {
            return Err(SnapshotError::backend("slow", "version 13 is unlucky"));
        }
        self.inner.save_snapshot(snapshot).await
    }
    async fn get_snapshot(
        &self,
        id: &AggregateId,
        t: &str,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        self.inner.get_snapshot(id, t).await
    }
    async fn get_snapshot_at(
        &self,
        id: &AggregateId,
        t: &str,
        max: u64,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        self.inner.get_snapshot_at(id, t, max).await
    }
    async fn delete_snapshot(&self, id: &AggregateId, t: &str) -> Result<bool, SnapshotError> {
        self.inner.delete_snapshot(id, t).await
    }
    async fn snapshot_exists(&self, id: &AggregateId, t: &str) -> Result<bool, SnapshotError> {
        self.inner.snapshot_exists(id, t).await
    }
    async fn delete_snapshots_by_type(
        &self,
        t: &str,
        below: Option<u32>,
    ) -> Result<u64, SnapshotError> {
        self.inner.delete_snapshots_by_type(t, below).await
    }
}

fn snapshot(id: &AggregateId, version: u64) -> Snapshot {
    Snapshot::new(id, "Account", version, json!({ "v": version }), 1)
}

fn setup(config: BackgroundConfig) -> (Arc<SlowStore>, BackgroundSnapshotter) {
    let store = Arc::new(SlowStore::default());
    let dyn_store: Arc<DynSnapshotStore> = store.clone();
    (store, BackgroundSnapshotter::new(dyn_store, config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_requests_for_one_aggregate_coalesce_to_the_latest() {
    let (store, snapshotter) = setup(BackgroundConfig::default());
    let id = &AggregateId::from(Uuid::new_v4());
    for version in 1..=1_000 {
        if version != 13 {
            snapshotter.schedule(snapshot(id, version));
        }
    }
    let waited = snapshotter.await_pending().await;
    assert!(waited >= 1);
    assert_eq!(snapshotter.pending_count(), 0);
    let saves = store.saves.load(Ordering::SeqCst);
    assert!(saves < 20, "1,000 requests cost {saves} writes");
    let latest = store.get_snapshot(id, "Account").await.unwrap().unwrap();
    assert_eq!(latest.version, 1_000);
    let stats = snapshotter.stats();
    assert_eq!(stats.queued + stats.coalesced, 999);
    assert_eq!(stats.written, u64::try_from(saves).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn await_pending_counts_the_writes_it_waited_for_and_failures_are_counted() {
    let (store, snapshotter) = setup(BackgroundConfig::default());
    let ids: Vec<AggregateId> = (0..3).map(|_| AggregateId::from(Uuid::new_v4())).collect();
    for id in &ids {
        assert_eq!(snapshotter.schedule(snapshot(id, 13)), Scheduled::Queued);
    }
    assert_eq!(snapshotter.await_pending().await, 3);
    assert_eq!(snapshotter.pending_count(), 0);
    assert_eq!(snapshotter.stats().failed, 3);
    // Failures do not stop later requests.
    assert_eq!(
        snapshotter.schedule(snapshot(&ids[0], 14)),
        Scheduled::Queued
    );
    assert_eq!(snapshotter.await_pending().await, 1);
    assert_eq!(snapshotter.stats().written, 1);
    assert!(
        store
            .inner
            .get_snapshot(&ids[0], "Account")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_shutdown_flushes_then_refuses() {
    let config = BackgroundConfig::default()
        .queue_capacity(2)
        .max_concurrency(1);
    let (store, snapshotter) = setup(config);
    let outcomes: Vec<Scheduled> = (0..6)
        .map(|_| snapshotter.schedule(snapshot(&Uuid::new_v4().into(), 1)))
        .collect();
    let dropped = outcomes
        .iter()
        .filter(|o| **o == Scheduled::Dropped)
        .count();
    assert!(dropped >= 3, "{outcomes:?}");
    let flushed = snapshotter.shutdown().await;
    assert_eq!(flushed + dropped, 6);
    assert_eq!(store.saves.load(Ordering::SeqCst), flushed);
    assert_eq!(
        snapshotter.schedule(snapshot(&Uuid::new_v4().into(), 1)),
        Scheduled::Dropped
    );
    assert_eq!(
        snapshotter.stats().dropped,
        u64::try_from(dropped).unwrap() + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_still_writes_what_was_queued() {
    let (store, snapshotter) = setup(BackgroundConfig::default());
    let id = &AggregateId::from(Uuid::new_v4());
    snapshotter.schedule(snapshot(id, 7));
    drop(snapshotter);
    for _ in 0..200 {
        if store
            .inner
            .get_snapshot(id, "Account")
            .await
            .unwrap()
            .is_some()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the queued write never happened");
}

#[test]
fn without_a_runtime_requests_are_dropped_not_lost_in_a_queue() {
    let (_, snapshotter) = setup(BackgroundConfig::default());
    assert_eq!(
        snapshotter.schedule(snapshot(&Uuid::new_v4().into(), 1)),
        Scheduled::Dropped
    );
    assert_eq!(snapshotter.pending_count(), 0);
}

/// The same when the runtime stops before its workers ever ran: a current-thread runtime that
/// is never driven drops the worker unpolled. (This once lost the count: the guard that
/// counts was made inside the worker's body, which an unpolled worker never runs.)
#[test]
fn writes_queued_on_a_runtime_that_never_ran_are_counted() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let snapshotter = {
        let _entered = runtime.enter();
        let (_, snapshotter) = setup(BackgroundConfig::default());
        for _ in 0..5 {
            assert_eq!(
                snapshotter.schedule(snapshot(&Uuid::new_v4().into(), 1)),
                Scheduled::Queued
            );
        }
        snapshotter
    };
    drop(runtime);
    let stats = snapshotter.stats();
    assert_eq!(
        (stats.written, stats.failed, stats.dropped),
        (0, 0, 5),
        "{stats:?}"
    );
}

/// Writes still queued or running when the runtime stops are not lost without a word: they
/// are counted as dropped (and logged), so written + failed + dropped covers every request.
#[test]
fn writes_lost_when_the_runtime_stops_are_counted() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_store, snapshotter) = {
        let _entered = runtime.enter();
        let (store, snapshotter) = setup(BackgroundConfig::default().max_concurrency(1));
        for _ in 0..50 {
            assert_eq!(
                snapshotter.schedule(snapshot(&Uuid::new_v4().into(), 1)),
                Scheduled::Queued
            );
        }
        (store, snapshotter)
    };
    drop(runtime);
    let stats = snapshotter.stats();
    assert!(stats.dropped > 0, "{stats:?}");
    assert_eq!(
        stats.written + stats.failed + stats.dropped,
        50,
        "{stats:?}"
    );
    assert_eq!(snapshotter.pending_count(), 0);
}

/// A failed write is remembered until a later write of the aggregate succeeds, so the
/// repository does not count it as a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_is_remembered_until_a_later_one_succeeds() {
    let (_store, snapshotter) = setup(BackgroundConfig::default());
    let id = &AggregateId::from(Uuid::new_v4());
    assert_eq!(snapshotter.failed_write("Account", id), None);
    snapshotter.schedule(snapshot(id, 13));
    snapshotter.await_pending().await;
    assert_eq!(snapshotter.failed_write("Account", id), Some(13));
    snapshotter.schedule(snapshot(id, 14));
    snapshotter.await_pending().await;
    assert_eq!(snapshotter.failed_write("Account", id), None);
}
