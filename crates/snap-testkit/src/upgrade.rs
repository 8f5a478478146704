//! What a backend's schema-upgrade test checks once its database, written by plain SQL as an
//! older schema laid the rows out, has been migrated: every row reads back through the stores,
//! and the stores write to it. The rows are the same on every backend: [`payload`] and
//! [`state`] give their contents.

use serde_json::{Value, json};
use snap_core::{AggregateId, EventStore, NewEvent, Snapshot, SnapshotStore};
use uuid::Uuid;

/// The aggregate type of the rows.
pub const TYPE: &str = "Account";

/// The schema version of the snapshot rows.
pub const SCHEMA: u32 = 2;

/// The payload of event `version` of every stream.
pub fn payload(version: i64) -> Value {
    json!({"amount": version, "note": "ünïcode"})
}

/// The state of the snapshot of a stream of `events` events (taken at `events - 1`).
pub fn state(events: i64) -> Value {
    json!({"balance": events * 10})
}

/// Each stream `(id, n)` holds events 1 to `n` with [`payload`] and a snapshot at `n - 1` with
/// [`state`], whose `updated_at` is its `created_at`; then an append and a newer snapshot
/// succeed on it, the newer snapshot keeping the first one's `created_at`. A stream with a
/// string id is written and read back too.
pub async fn rows_read_back_and_take_writes(
    events: &impl EventStore,
    snapshots: &impl SnapshotStore,
    streams: &[(Uuid, i64)],
) {
    for &(uuid, n) in streams {
        let id = &AggregateId::from(uuid);
        let count = u64::try_from(n).expect("a positive count");
        let stored = events
            .load(id, TYPE, 0, None)
            .await
            .expect("read the events");
        assert_eq!(stored.len() as u64, count);
        for (event, version) in stored.iter().zip(1..) {
            assert_eq!(event.version, version);
            assert_eq!(
                event.payload,
                payload(i64::try_from(version).expect("small"))
            );
        }
        let snapshot = snapshots
            .get_snapshot(id, TYPE)
            .await
            .expect("read the snapshot");
        let snapshot = snapshot.expect("the snapshot row survives");
        assert_eq!(
            (snapshot.version, snapshot.schema_version),
            (count - 1, SCHEMA)
        );
        assert_eq!(snapshot.state, state(n));
        assert_eq!(snapshot.updated_at, snapshot.created_at);
        let new = vec![NewEvent::new("Deposited", json!({"amount": 1}))];
        let version = events.append(id, TYPE, count, new).await.expect("append");
        let newer = Snapshot::new(id, TYPE, version, json!({"balance": 1}), SCHEMA);
        let newer = newer.with_updated_at(snapshot.created_at + time::Duration::seconds(5));
        snapshots
            .save_snapshot(&newer)
            .await
            .expect("save a snapshot");
        let latest = snapshots
            .get_snapshot(id, TYPE)
            .await
            .expect("read it back");
        let latest = latest.expect("the newer snapshot");
        assert_eq!(latest.version, count + 1);
        assert_eq!(
            (latest.created_at, latest.updated_at),
            (snapshot.created_at, newer.updated_at),
            "a replacement keeps when the aggregate was first snapshotted"
        );
    }
    let named = &AggregateId::parse("Account-after the upgrade/ü").expect("a valid id");
    let new = vec![NewEvent::new("Deposited", json!({"amount": 1}))];
    assert_eq!(events.append(named, TYPE, 0, new).await.expect("append"), 1);
    let snapshot = Snapshot::new(named, TYPE, 1, json!({"balance": 1}), SCHEMA);
    snapshots.save_snapshot(&snapshot).await.expect("save");
    assert_eq!(
        snapshots.get_snapshot(named, TYPE).await.expect("read"),
        Some(snapshot)
    );
    let loaded = events.load(named, TYPE, 0, None).await.expect("load");
    assert_eq!(&loaded[0].aggregate_id, named);
}
