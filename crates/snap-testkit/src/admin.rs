//! The operator queries of a SQL backend ([`SnapshotAdmin`]), checked against stores it
//! shares a database with.

use serde_json::json;
use snap_core::{AggregateId, EventStore, SnapshotAdmin, SnapshotStore};

use crate::fixtures::{events, new_id, snapshot_with};

/// Stats per type and schema version, the aggregates furthest behind their snapshots, and
/// prune counts, on a database whose snapshot and event stores are given.
pub async fn admin_reports_stats_lag_and_prune_counts(
    admin: &dyn SnapshotAdmin,
    snapshots: &impl SnapshotStore,
    event_store: &impl EventStore,
) {
    // A string id among UUIDs: the operator's reports carry both kinds.
    let orders = [
        new_id(),
        AggregateId::parse("order two/é").unwrap(),
        new_id(),
    ];
    for (id, count) in orders.iter().zip([10, 5, 1]) {
        event_store
            .append(id, "Order", 0, events(1, count, "admin"))
            .await
            .unwrap();
    }
    let big = snapshot_with(&orders[0], "Order", 8, 1, json!({"lines": vec!["x"; 200]}));
    let small = snapshot_with(&orders[1], "Order", 5, 2, json!({"lines": []}));
    snapshots.save_snapshot(&big).await.unwrap();
    snapshots.save_snapshot(&small).await.unwrap();
    for _ in 0..2 {
        let user = snapshot_with(&new_id(), "User", 3, 1, json!({"name": "ada"}));
        snapshots.save_snapshot(&user).await.unwrap();
    }

    let stats = admin.snapshot_stats(None).await.unwrap();
    let groups: Vec<(&str, u32, u64)> = stats
        .iter()
        .map(|s| (s.aggregate_type.as_str(), s.schema_version, s.snapshots))
        .collect();
    assert_eq!(groups, [("Order", 1, 1), ("Order", 2, 1), ("User", 1, 2)]);
    assert!(stats[0].largest_state_bytes > 800, "{:?}", stats[0]);
    assert!(stats[1].largest_state_bytes < 50, "{:?}", stats[1]);
    assert!(stats[2].total_state_bytes >= 2 * stats[2].largest_state_bytes);
    assert_eq!(
        (stats[0].oldest, stats[0].newest),
        (big.updated_at, big.updated_at),
        "the ages of the snapshots: when each was written"
    );
    let users = admin.snapshot_stats(Some("User")).await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].aggregate_type, "User");

    let lag = admin.snapshot_lag(Some("Order"), 10).await.unwrap();
    let behind: Vec<(&AggregateId, u64, u64)> = lag
        .iter()
        .map(|l| (&l.aggregate_id, l.head, l.snapshot_version))
        .collect();
    assert_eq!(
        behind,
        [(&orders[0], 10, 8), (&orders[2], 1, 0), (&orders[1], 5, 5)],
        "most events after the snapshot first"
    );
    assert_eq!(lag[0].behind(), 2);
    let written: Vec<bool> = lag
        .iter()
        .map(|l| l.snapshot_updated_at.is_some())
        .collect();
    assert_eq!(
        written,
        [true, false, true],
        "when each latest snapshot was written"
    );
    assert_eq!(lag[0].snapshot_updated_at, Some(big.updated_at));
    assert_eq!(admin.snapshot_lag(None, 1).await.unwrap().len(), 1);

    assert_eq!(
        admin.count_snapshots_by_type("Order", None).await.unwrap(),
        2
    );
    assert_eq!(
        admin
            .count_snapshots_by_type("Order", Some(2))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        admin
            .count_snapshots_by_type("User", Some(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        snapshots
            .delete_snapshots_by_type("Order", Some(2))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        admin.count_snapshots_by_type("Order", None).await.unwrap(),
        1
    );
    assert!(admin.count_snapshots_by_type("", None).await.is_err());
    assert!(admin.snapshot_stats(Some("")).await.is_err());
}
