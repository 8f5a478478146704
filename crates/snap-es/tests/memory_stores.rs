//! What the in-memory stores add to the shared contract, through the facade's public API.

use serde_json::json;
use snap_es::prelude::*;
use snap_es::{AggregateId, BackendError, InvalidInput};

fn snapshot(id: &AggregateId, version: u64) -> Snapshot {
    Snapshot::new(id, "Account", version, json!({"v": version}), 1)
}

#[tokio::test]
async fn count_and_clear() {
    let store = InMemorySnapshotStore::new();
    assert_eq!(store.snapshot_count(), 0);
    let (a, b) = (
        &AggregateId::from(Uuid::new_v4()),
        &AggregateId::from(Uuid::new_v4()),
    );
    store.save_snapshot(&snapshot(a, 1)).await.unwrap();
    store.save_snapshot(&snapshot(a, 2)).await.unwrap();
    store.save_snapshot(&snapshot(b, 1)).await.unwrap();
    assert_eq!(
        store.snapshot_count(),
        2,
        "one snapshot per aggregate by default"
    );
    store.clear();
    assert_eq!(store.snapshot_count(), 0);
    assert!(!store.snapshot_exists(a, "Account").await.unwrap());
}

#[tokio::test]
async fn history_counts_every_retained_version() {
    let store = InMemorySnapshotStore::new().keep_history(3);
    let id = &AggregateId::from(Uuid::new_v4());
    for v in 1..=5 {
        store.save_snapshot(&snapshot(id, v)).await.unwrap();
    }
    assert_eq!(store.snapshot_count(), 3);
    assert_eq!(store.retained_versions(), 3);
    assert_eq!(
        InMemorySnapshotStore::new()
            .keep_history(0)
            .retained_versions(),
        1,
        "the latest is always kept"
    );
}

#[tokio::test]
async fn clones_share_their_data() {
    let snapshots = InMemorySnapshotStore::new();
    let events = InMemoryEventStore::new();
    let id = &AggregateId::from(Uuid::new_v4());
    snapshots
        .clone()
        .save_snapshot(&snapshot(id, 4))
        .await
        .unwrap();
    events
        .clone()
        .append(id, "Account", 0, vec![NewEvent::new("Opened", json!({}))])
        .await
        .unwrap();
    assert_eq!(
        snapshots
            .get_snapshot(id, "Account")
            .await
            .unwrap()
            .map(|s| s.version),
        Some(4)
    );
    assert_eq!(events.current_version(id, "Account").await.unwrap(), 1);
    assert_eq!(events.event_count(), 1);
    events.clear();
    assert_eq!(events.current_version(id, "Account").await.unwrap(), 0);
}

#[test]
fn errors_read_well_and_chain_their_sources() {
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
    let err = SnapshotError::Backend(
        BackendError::new("redis", io)
            .context("get_snapshot")
            .retryable(true),
    );
    assert_eq!(err.to_string(), "redis backend error: get_snapshot");
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        "reset by peer"
    );
    assert!(err.is_retryable());
    assert!(!SnapshotError::backend("redis", "boom").is_retryable());

    let invalid = SnapshotError::from(InvalidInput::Empty {
        field: "aggregate_type",
    });
    assert_eq!(invalid.to_string(), "invalid snapshot store input");
    assert_eq!(
        std::error::Error::source(&invalid).unwrap().to_string(),
        "aggregate_type must not be empty"
    );

    let conflict = EventStoreError::Concurrency {
        aggregate_id: Uuid::nil().into(),
        aggregate_type: "Account".into(),
        expected: 3,
        actual: 5,
    };
    assert_eq!(
        conflict.to_string(),
        "concurrency conflict on Account/00000000-0000-0000-0000-000000000000: expected version 3, stream is at 5"
    );
    assert!(conflict.is_retryable());
}

#[test]
fn snapshot_displays_type_id_version_and_schema() {
    let id = Uuid::parse_str("550e8400-e29b-41d4-a716-446655440000").unwrap();
    let s = Snapshot::new(id, "Order", 100, json!({}), 1);
    assert_eq!(
        s.to_string(),
        "Snapshot(Order/550e8400-e29b-41d4-a716-446655440000, v100, schema_v1)"
    );
}
