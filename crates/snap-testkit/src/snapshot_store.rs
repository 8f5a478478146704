//! Snapshot store cases: DESIGN.md section 3 and CONFORMANCE.md groups A, B and C.
//!
//! Each case takes a harness, opens the stores it needs and panics with a message naming the
//! broken rule.

use std::sync::Arc;

use serde_json::{Value, json};
use snap_core::{AggregateId, InvalidInput, Snapshot, SnapshotError, SnapshotStore, validate};
use time::macros::datetime;

use crate::SnapshotStoreHarness;
use crate::fixtures::{at_micros, new_id, snapshot, snapshot_with};

const ORDER: &str = "Order";
const USER: &str = "User";

async fn get(store: &impl SnapshotStore, id: &AggregateId, ty: &str) -> Option<Snapshot> {
    store.get_snapshot(id, ty).await.expect("get_snapshot")
}

async fn get_at(
    store: &impl SnapshotStore,
    id: &AggregateId,
    ty: &str,
    max: u64,
) -> Option<Snapshot> {
    store
        .get_snapshot_at(id, ty, max)
        .await
        .expect("get_snapshot_at")
}

async fn save(store: &impl SnapshotStore, s: &Snapshot) {
    store
        .save_snapshot(s)
        .await
        .unwrap_or_else(|e| panic!("save_snapshot({s}) failed: {e:?}"));
}

async fn version_of(store: &impl SnapshotStore, id: &AggregateId, ty: &str) -> Option<u64> {
    get(store, id, ty).await.map(|s| s.version)
}

/// Floats that print with an exponent (1e16 and up) come back as the same floats, not as
/// integers of equal value (PostgreSQL's JSONB once returned `-2.0006979402585277e18` as the
/// integer `-2000697940258527700`; found by the hostile-input property).
pub async fn large_floats_stay_floats<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(1).await;
    let id = &new_id();
    let floats = large_floats();
    let saved = snapshot_with(id, ORDER, 1, 1, json!({ "floats": floats }));
    save(&store, &saved).await;
    let found = get(&store, id, ORDER).await.expect("stored");
    assert_eq!(found, saved);
    let back = found.state["floats"].as_array().expect("an array").clone();
    assert!(
        back.iter().all(Value::is_f64),
        "every number is still a float: {back:?}"
    );
}

/// Floats around and above the point where JSON writers switch to exponent notation.
pub fn large_floats() -> Value {
    json!([
        9_999_999_999_999_998.0_f64,
        1e16_f64,
        -2.000_697_940_258_527_7e18_f64,
        9.223_372_036_854_776e18_f64,
        1.844_674_407_370_955_2e19_f64,
        1e20_f64,
        1.797_693_134_862_315_7e308_f64,
        -1e300_f64,
        1e-7_f64,
        5e-324_f64
    ])
}

/// A1: an empty store finds nothing and deletes nothing.
pub async fn empty_store_has_nothing<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(1).await;
    let id = &new_id();
    assert_eq!(get(&store, id, ORDER).await, None);
    assert_eq!(get_at(&store, id, ORDER, u64::MAX).await, None);
    assert!(!store.snapshot_exists(id, ORDER).await.unwrap());
    assert!(!store.delete_snapshot(id, ORDER).await.unwrap());
    assert_eq!(
        store.delete_snapshots_by_type(ORDER, None).await.unwrap(),
        0
    );
}

/// A2: a saved snapshot comes back equal in every field, `created_at` to the microsecond.
pub async fn round_trip_is_exact<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(1).await;
    let id = &new_id();
    let saved = snapshot_with(
        id,
        ORDER,
        5,
        1,
        json!({"lines": [{"sku": "A-1", "qty": 2}], "total": 19.99, "paid": false, "note": null}),
    )
    .with_created_at(datetime!(2025-12-31 23:59:59.999_999 UTC));
    save(&store, &saved).await;
    assert_eq!(get(&store, id, ORDER).await, Some(saved.clone()));
    assert!(store.snapshot_exists(id, ORDER).await.unwrap());
    assert_eq!(get_at(&store, id, ORDER, 5).await, Some(saved));
}

/// `created_at` and `updated_at` are stored in UTC to the microsecond on every backend: finer
/// precision and other offsets are normalised, never refused.
pub async fn timestamps_are_normalised<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(1).await;
    let id = &new_id();
    let mut saved = snapshot(id, ORDER, 1, 1);
    saved.created_at = datetime!(2024-02-29 12:00:00.123_456_789 +05:30);
    saved.updated_at = datetime!(2024-02-29 12:00:01.999_999_999 -01:00);
    save(&store, &saved).await;
    let loaded = get(&store, id, ORDER).await.expect("saved");
    assert_eq!(
        (loaded.created_at, loaded.updated_at),
        (
            datetime!(2024-02-29 06:30:00.123_456 UTC),
            datetime!(2024-02-29 13:00:01.999_999 UTC)
        )
    );
    assert_eq!(loaded.created_at.offset(), time::UtcOffset::UTC);
    assert_eq!(loaded.updated_at.offset(), time::UtcOffset::UTC);
    let before_epoch = snapshot(id, ORDER, 2, 1)
        .with_created_at(loaded.created_at)
        .with_updated_at(datetime!(1969-07-20 20:17:40.5 UTC));
    save(&store, &before_epoch).await;
    assert_eq!(get(&store, id, ORDER).await, Some(before_epoch));
}

/// waku's data model: a snapshot that replaces another keeps its `created_at` (when the
/// aggregate was first snapshotted) and carries its own `updated_at` (when it was taken), at
/// a higher version and at the same one; history rows keep theirs; after a delete the next
/// snapshot starts afresh.
pub async fn a_replacement_keeps_when_the_aggregate_was_first_snapshotted<
    H: SnapshotStoreHarness,
>(
    h: &H,
) {
    let taken = |seconds: i64| at_micros(seconds * 1_000_000);
    for keep in [1, 3] {
        let store = h.open(keep).await;
        let id = &new_id();
        let first = snapshot(id, ORDER, 1, 1).with_created_at(taken(1));
        save(&store, &first).await;
        let second = snapshot(id, ORDER, 2, 1).with_created_at(taken(2));
        save(&store, &second).await;
        let bumped = snapshot(id, ORDER, 2, 2).with_created_at(taken(3));
        save(&store, &bumped).await;
        let latest = get(&store, id, ORDER).await.expect("saved");
        assert_eq!(
            (latest.schema_version, latest.created_at, latest.updated_at),
            (2, taken(1), taken(3)),
            "keep_history({keep})"
        );
        if keep > 1 {
            let older = get_at(&store, id, ORDER, 1).await.expect("retained");
            assert_eq!((older.created_at, older.updated_at), (taken(1), taken(1)));
        }
        save(&store, &snapshot(id, ORDER, 1, 1).with_created_at(taken(4))).await;
        assert_eq!(
            get(&store, id, ORDER).await.map(|s| s.updated_at),
            Some(taken(3)),
            "a lower version changes nothing"
        );
        assert!(store.delete_snapshot(id, ORDER).await.unwrap());
        let again = snapshot(id, ORDER, 5, 1).with_created_at(taken(5));
        save(&store, &again).await;
        assert_eq!(get(&store, id, ORDER).await, Some(again));
    }
}

/// A3: saving S(1) then S(2) leaves S(2), and with the default retention only one row.
pub async fn newer_version_replaces_older<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(1).await;
    let id = &new_id();
    save(&store, &snapshot(id, ORDER, 1, 1)).await;
    save(&store, &snapshot(id, ORDER, 2, 1)).await;
    assert_eq!(
        get(&store, id, ORDER).await,
        Some(snapshot(id, ORDER, 2, 1))
    );
    assert_eq!(
        get_at(&store, id, ORDER, 1).await,
        None,
        "default retention keeps only the latest snapshot"
    );
    assert_eq!(
        store.delete_snapshots_by_type(ORDER, None).await.unwrap(),
        1
    );
}

/// A4: an equal version replaces, including a schema bump at the same version.
pub async fn equal_version_replaces<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(1).await;
    let id = &new_id();
    save(&store, &snapshot_with(id, ORDER, 5, 1, json!({"s": "a"}))).await;
    save(&store, &snapshot_with(id, ORDER, 5, 1, json!({"s": "b"}))).await;
    assert_eq!(
        get(&store, id, ORDER).await.unwrap().state,
        json!({"s": "b"})
    );
    let bumped = snapshot_with(id, ORDER, 5, 2, json!({"s": "c", "added": 1}));
    save(&store, &bumped).await;
    assert_eq!(get(&store, id, ORDER).await, Some(bumped));
}

/// B15: saving S(10) then S(5) leaves S(10): a store never moves backwards.
pub async fn lower_version_is_ignored<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(1).await;
    let id = &new_id();
    let ten = snapshot(id, ORDER, 10, 1);
    save(&store, &ten).await;
    save(&store, &snapshot(id, ORDER, 5, 7)).await;
    assert_eq!(get(&store, id, ORDER).await, Some(ten));
    assert_eq!(get_at(&store, id, ORDER, 9).await, None);
}

/// A5: one UUID under two types is two independent snapshots.
pub async fn ids_are_scoped_by_type<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(1).await;
    let id = &new_id();
    let order = snapshot(id, ORDER, 3, 1);
    let user = snapshot(id, USER, 8, 2);
    save(&store, &order).await;
    save(&store, &user).await;
    assert_eq!(get(&store, id, ORDER).await, Some(order));
    assert_eq!(get(&store, id, USER).await, Some(user.clone()));
    assert!(store.delete_snapshot(id, ORDER).await.unwrap());
    assert!(!store.snapshot_exists(id, ORDER).await.unwrap());
    assert!(store.snapshot_exists(id, USER).await.unwrap());
    assert_eq!(get(&store, id, USER).await, Some(user));
    assert_eq!(
        get(&store, id, "order").await,
        None,
        "types are case-sensitive"
    );
}

/// A6: delete returns true for an existing snapshot, then false.
pub async fn delete_reports_whether_it_existed<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(1).await;
    let id = &new_id();
    let other = &new_id();
    save(&store, &snapshot(id, ORDER, 1, 1)).await;
    save(&store, &snapshot(other, ORDER, 1, 1)).await;
    assert!(store.delete_snapshot(id, ORDER).await.unwrap());
    assert_eq!(get(&store, id, ORDER).await, None);
    assert!(!store.delete_snapshot(id, ORDER).await.unwrap());
    assert!(!store.delete_snapshot(&new_id(), ORDER).await.unwrap());
    assert!(
        store.snapshot_exists(other, ORDER).await.unwrap(),
        "only the named aggregate goes"
    );
}

/// A7: delete by type with 3 Order and 2 User removes 3; User is untouched.
pub async fn delete_by_type_counts_and_isolates<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(1).await;
    let orders: Vec<AggregateId> = (0..3).map(|_| new_id()).collect();
    let users: Vec<AggregateId> = (0..2).map(|_| new_id()).collect();
    for (i, id) in (1..).zip(&orders) {
        save(&store, &snapshot(id, ORDER, i, 1)).await;
    }
    for (i, id) in (1..).zip(&users) {
        save(&store, &snapshot(id, USER, i, 1)).await;
    }
    assert_eq!(
        store.delete_snapshots_by_type(ORDER, None).await.unwrap(),
        3
    );
    for id in &orders {
        assert!(!store.snapshot_exists(id, ORDER).await.unwrap());
    }
    for (i, id) in (1..).zip(&users) {
        assert_eq!(get(&store, id, USER).await, Some(snapshot(id, USER, i, 1)));
    }
}

/// A8: the schema bound is strict: only `schema_version < below` goes.
pub async fn delete_by_type_schema_bound_is_strict<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(1).await;
    let ids: Vec<AggregateId> = (0..3).map(|_| new_id()).collect();
    for (sv, id) in (1..).zip(&ids) {
        save(&store, &snapshot(id, ORDER, 4, sv)).await;
    }
    assert_eq!(
        store
            .delete_snapshots_by_type(ORDER, Some(3))
            .await
            .unwrap(),
        2
    );
    assert!(!store.snapshot_exists(&ids[0], ORDER).await.unwrap());
    assert!(!store.snapshot_exists(&ids[1], ORDER).await.unwrap());
    assert_eq!(
        get(&store, &ids[2], ORDER).await,
        Some(snapshot(&ids[2], ORDER, 4, 3))
    );

    let five = &new_id();
    save(&store, &snapshot(five, USER, 1, 5)).await;
    assert_eq!(
        store.delete_snapshots_by_type(USER, Some(5)).await.unwrap(),
        0
    );
    assert_eq!(
        store.delete_snapshots_by_type(USER, Some(6)).await.unwrap(),
        1
    );
    assert!(!store.snapshot_exists(five, USER).await.unwrap());
}

/// A9: delete by type with nothing to delete returns 0 and changes nothing.
pub async fn delete_by_type_without_match_is_zero<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(1).await;
    let id = &new_id();
    save(&store, &snapshot(id, ORDER, 1, 2)).await;
    assert_eq!(store.delete_snapshots_by_type(USER, None).await.unwrap(), 0);
    assert_eq!(
        store
            .delete_snapshots_by_type(ORDER, Some(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .delete_snapshots_by_type(ORDER, Some(0))
            .await
            .unwrap(),
        0
    );
    assert!(store.snapshot_exists(id, ORDER).await.unwrap());
}

/// States that stress a backend's JSON handling.
pub fn edge_case_states() -> Vec<(&'static str, Value)> {
    let mut nested = json!({"leaf": true});
    for depth in 0..(validate::MAX_JSON_DEPTH - 1) {
        nested = json!({"depth": depth, "child": nested});
    }
    let ten_kb: Vec<Value> = (0..400).map(|i| json!(format!("item-{i:019}"))).collect();
    let one_mb = "x".repeat(1024 * 1024);
    vec![
        ("empty object", json!({})),
        ("10 KB", json!({"items": ten_kb})),
        ("1 MB", json!({"blob": one_mb})),
        ("nested to the depth limit", nested),
        (
            "unicode",
            json!({
                "greek": "αβγ", "cjk": "中文字符", "emoji": "🦀😀", "astral": "𝄞 \u{10FFFF}",
                "rtl": "שלום", "combining": "e\u{301}", "ключ": "значение", "🔑": "🗝",
            }),
        ),
        (
            "escapes",
            json!({"quote": "\"", "backslash": "\\", "controls": "\n\t\r\u{1}\u{1f}\u{7f}", "sql": "'); DROP TABLE snapshots; --", "": "empty key"}),
        ),
        (
            "large numbers",
            json!({
                "u64_max": u64::MAX, "i64_min": i64::MIN, "i64_max": i64::MAX,
                "huge": 1.5e300, "tiny": 1e-300, "min_positive": f64::MIN_POSITIVE,
                "neg": -123.456, "third": 1.0 / 3.0, "zero": 0, "float_one": 1.5,
            }),
        ),
        (
            "every JSON kind",
            json!({"null": null, "t": true, "f": false, "arr": [1, "two", [3], {"four": 4}, null], "obj": {}}),
        ),
    ]
}

/// A10: 10 KB and 1 MB states, nesting, the empty object, unicode (astral plane included),
/// escapes and large numbers round-trip unchanged.
pub async fn edge_case_states_round_trip<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(1).await;
    for (name, state) in edge_case_states() {
        let id = &new_id();
        let size = serde_json::to_vec(&state).map_or(0, |json| json.len());
        let saved = snapshot_with(id, ORDER, 1, 1, state);
        if h.max_payload().is_some_and(|max| size >= max) {
            match store.save_snapshot(&saved).await {
                Err(SnapshotError::InvalidInput(InvalidInput::TooLong { .. })) => {}
                other => panic!("state {name:?} is over the backend's limit: {other:?}"),
            }
            assert_eq!(
                get(&store, id, ORDER).await,
                None,
                "{name:?}: nothing written"
            );
            continue;
        }
        save(&store, &saved).await;
        let loaded = get(&store, id, ORDER).await;
        assert!(
            loaded.as_ref() == Some(&saved),
            "state {name:?} did not round-trip"
        );
    }
}

/// A12: changing a value after save or after get never changes the stored copy.
pub async fn stored_copies_are_independent<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(1).await;
    let id = &new_id();
    let original = snapshot(id, ORDER, 3, 1);
    let mut local = original.clone();
    save(&store, &local).await;
    local.state["note"] = json!("changed after save");
    local.version = 99;
    let mut loaded = get(&store, id, ORDER).await.expect("saved");
    assert_eq!(loaded, original);
    loaded.state["note"] = json!("changed after get");
    assert_eq!(get(&store, id, ORDER).await, Some(original));
}

/// A13: with `keep_history(3)` and versions 11..=15, `get_snapshot_at` finds the highest
/// retained version at or below the bound, and delete removes them all.
pub async fn retention_keeps_the_highest_versions<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(3).await;
    let id = &new_id();
    let other = &new_id();
    for v in 11..=15 {
        save(&store, &snapshot(id, ORDER, v, 1)).await;
    }
    save(&store, &snapshot(other, ORDER, 12, 1)).await;
    assert_eq!(
        get(&store, id, ORDER).await,
        Some(snapshot(id, ORDER, 15, 1))
    );
    assert_eq!(
        get_at(&store, id, ORDER, 13).await,
        Some(snapshot(id, ORDER, 13, 1))
    );
    assert_eq!(
        get_at(&store, id, ORDER, 14).await,
        Some(snapshot(id, ORDER, 14, 1))
    );
    assert_eq!(
        get_at(&store, id, ORDER, 12).await,
        None,
        "v12 fell out of the history of 3"
    );
    assert_eq!(get_at(&store, id, ORDER, 7).await, None);
    assert_eq!(
        get_at(&store, id, ORDER, u64::MAX).await,
        Some(snapshot(id, ORDER, 15, 1))
    );
    assert!(store.delete_snapshot(id, ORDER).await.unwrap());
    assert_eq!(get_at(&store, id, ORDER, 15).await, None);
    assert_eq!(get_at(&store, id, ORDER, 13).await, None);
    assert!(!store.snapshot_exists(id, ORDER).await.unwrap());
    assert_eq!(
        get(&store, other, ORDER).await,
        Some(snapshot(other, ORDER, 12, 1))
    );
}

/// With history, a save below the latest is still a no-op even if it would fit the window,
/// an equal version replaces in place, and delete by type counts every retained row.
pub async fn retention_never_takes_older_versions<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(3).await;
    let id = &new_id();
    save(&store, &snapshot(id, ORDER, 10, 1)).await;
    save(&store, &snapshot(id, ORDER, 12, 1)).await;
    save(&store, &snapshot(id, ORDER, 11, 1)).await;
    assert_eq!(
        get_at(&store, id, ORDER, 11).await,
        Some(snapshot(id, ORDER, 10, 1))
    );
    save(&store, &snapshot(id, ORDER, 12, 2)).await;
    assert_eq!(
        get(&store, id, ORDER).await,
        Some(snapshot(id, ORDER, 12, 2))
    );
    assert_eq!(
        get_at(&store, id, ORDER, 10).await,
        Some(snapshot(id, ORDER, 10, 1))
    );
    assert_eq!(
        store
            .delete_snapshots_by_type(ORDER, Some(2))
            .await
            .unwrap(),
        1
    );
    assert_eq!(get_at(&store, id, ORDER, 11).await, None);
    assert_eq!(
        get(&store, id, ORDER).await,
        Some(snapshot(id, ORDER, 12, 2))
    );
    save(&store, &snapshot(id, ORDER, 13, 2)).await;
    assert_eq!(
        store.delete_snapshots_by_type(ORDER, None).await.unwrap(),
        2
    );
}

/// With history, delete by type can remove the latest snapshot and leave older versions of a
/// higher schema: those are then the aggregate's snapshots, and saves still never go below
/// them. (Found by the model test on PostgreSQL, which keeps the latest and the history
/// apart.)
pub async fn retention_after_deleting_the_latest_by_schema<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(3).await;
    let id = &new_id();
    save(&store, &snapshot(id, ORDER, 10, 3)).await;
    save(&store, &snapshot(id, ORDER, 12, 1)).await;
    assert_eq!(
        store
            .delete_snapshots_by_type(ORDER, Some(2))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        get(&store, id, ORDER).await,
        Some(snapshot(id, ORDER, 10, 3))
    );
    assert!(store.snapshot_exists(id, ORDER).await.unwrap());
    save(&store, &snapshot(id, ORDER, 8, 3)).await;
    assert_eq!(
        get_at(&store, id, ORDER, 9).await,
        None,
        "a lower version is still a no-op"
    );
    let replaced = snapshot_with(id, ORDER, 10, 3, json!({"replaced": true}));
    save(&store, &replaced).await;
    assert_eq!(get(&store, id, ORDER).await, Some(replaced.clone()));
    assert_eq!(get_at(&store, id, ORDER, 10).await, Some(replaced.clone()));
    save(&store, &snapshot(id, ORDER, 11, 3)).await;
    assert_eq!(get_at(&store, id, ORDER, 10).await, Some(replaced));
    assert_eq!(
        get(&store, id, ORDER).await,
        Some(snapshot(id, ORDER, 11, 3))
    );
    assert_eq!(
        store.delete_snapshots_by_type(ORDER, None).await.unwrap(),
        2
    );
}

/// The extremes of the accepted ranges round-trip: version `i64::MAX`, schema version
/// `u32::MAX`, a 255-byte type name.
pub async fn version_and_schema_bounds_round_trip<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(1).await;
    let id = &new_id();
    let top = snapshot(id, ORDER, validate::MAX_VERSION, u32::MAX);
    save(&store, &top).await;
    assert_eq!(get(&store, id, ORDER).await, Some(top.clone()));
    assert_eq!(get_at(&store, id, ORDER, u64::MAX).await, Some(top));
    let long_type = "T".repeat(validate::MAX_NAME_LEN);
    let long = snapshot(id, &long_type, 1, 1);
    save(&store, &long).await;
    assert_eq!(get(&store, id, &long_type).await, Some(long));
    assert_eq!(
        store
            .delete_snapshots_by_type(ORDER, Some(u32::MAX))
            .await
            .unwrap(),
        0
    );
}

/// Type names that would break naive SQL: quotes, semicolons, comment markers, wildcards,
/// unicode. Each must be stored and matched exactly as given.
pub const HOSTILE_TYPES: [&str; 8] = [
    "O'Brien",
    "Robert'); DROP TABLE snapshots; --",
    "\"quoted\"",
    "semi;colon",
    "per%cent_under",
    "back\\slash",
    "Заказ 注文 🧾",
    " padded ",
];

/// Hostile type names round-trip untouched and stay apart from each other and from the
/// names they resemble.
pub async fn hostile_type_names_round_trip<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(1).await;
    let id = &new_id();
    for (v, ty) in (1..).zip(HOSTILE_TYPES) {
        save(&store, &snapshot(id, ty, v, 1)).await;
    }
    for (v, ty) in (1..).zip(HOSTILE_TYPES) {
        let loaded = get(&store, id, ty).await.expect("saved above");
        assert_eq!((loaded.aggregate_type.as_str(), loaded.version), (ty, v));
    }
    assert_eq!(get(&store, id, "padded").await, None);
    assert_eq!(
        get(&store, id, "per_cent_under").await,
        None,
        "no LIKE matching"
    );
    assert_eq!(
        store.delete_snapshots_by_type("per%", None).await.unwrap(),
        0
    );
    assert_eq!(
        store
            .delete_snapshots_by_type(HOSTILE_TYPES[1], None)
            .await
            .unwrap(),
        1
    );
    assert!(store.snapshot_exists(id, HOSTILE_TYPES[0]).await.unwrap());
}

/// Fifty aggregates of two types, saved interleaved, each read back as its own.
pub async fn many_aggregates_stay_apart<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(1).await;
    let ids: Vec<AggregateId> = (0..50).map(|_| new_id()).collect();
    for (i, id) in (1..).zip(&ids) {
        save(&store, &snapshot(id, ORDER, i, 1)).await;
        save(&store, &snapshot(id, USER, i + 100, 1)).await;
    }
    for (i, id) in (1..).zip(&ids) {
        assert_eq!(version_of(&store, id, ORDER).await, Some(i));
        assert_eq!(version_of(&store, id, USER).await, Some(i + 100));
    }
    assert_eq!(
        store.delete_snapshots_by_type(USER, None).await.unwrap(),
        50
    );
}

/// B14: sixteen concurrent saves of one aggregate with distinct versions in scrambled order
/// leave one whole row at the highest version.
pub async fn concurrent_saves_keep_the_highest<H: SnapshotStoreHarness>(h: &H) {
    let store = Arc::new(h.open(1).await);
    let id = &new_id();
    // A fixed scramble of 1..=16 so the highest version is neither first nor last.
    let versions = [7u64, 13, 2, 16, 9, 1, 12, 5, 15, 3, 10, 8, 14, 4, 11, 6];
    let tasks: Vec<_> = versions
        .iter()
        .map(|&v| {
            let (store, id) = (Arc::clone(&store), id.clone());
            tokio::spawn(async move { store.save_snapshot(&snapshot(&id, ORDER, v, 1)).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("concurrent save");
    }
    assert_eq!(
        get(&*store, id, ORDER).await,
        Some(snapshot(id, ORDER, 16, 1))
    );
    assert_eq!(
        get_at(&*store, id, ORDER, 15).await,
        None,
        "one row for the key"
    );
}

/// B16: delete by type alongside saves: no errors, and no row below the bound that was written
/// before the delete survives it. A barrier releases the writers and the delete together.
pub async fn delete_by_type_alongside_saves<H: SnapshotStoreHarness>(h: &H) {
    let store = Arc::new(h.open(1).await);
    let old: Vec<AggregateId> = (0..20).map(|_| new_id()).collect();
    for id in &old {
        save(&*store, &snapshot(id, ORDER, 1, 1)).await;
    }
    let start = Arc::new(tokio::sync::Barrier::new(5));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (store, start) = (Arc::clone(&store), Arc::clone(&start));
            tokio::spawn(async move {
                start.wait().await;
                for i in 0..10u32 {
                    let id = &new_id();
                    store
                        .save_snapshot(&snapshot(id, ORDER, 1, 1 + (i + w) % 2))
                        .await?;
                    store.save_snapshot(&snapshot(id, USER, 1, 1)).await?;
                }
                Ok::<_, SnapshotError>(())
            })
        })
        .collect();
    start.wait().await;
    let deleted = store
        .delete_snapshots_by_type(ORDER, Some(2))
        .await
        .expect("delete_snapshots_by_type during saves");
    for writer in writers {
        writer
            .await
            .expect("task")
            .expect("save during delete_snapshots_by_type");
    }
    assert!(
        deleted >= 20,
        "the 20 rows written before the delete go (deleted {deleted})"
    );
    for id in &old {
        assert!(!store.snapshot_exists(id, ORDER).await.unwrap());
    }
}

fn expect_invalid<T: std::fmt::Debug>(result: Result<T, SnapshotError>, what: &str) {
    match result {
        Err(SnapshotError::InvalidInput(_)) => {}
        other => panic!("{what}: expected SnapshotError::InvalidInput, got {other:?}"),
    }
}

/// A change that makes a valid snapshot invalid.
type Edit = fn(&mut Snapshot);

/// Bad snapshots of every kind are typed `InvalidInput` errors and write nothing.
pub async fn invalid_snapshots_are_rejected<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(1).await;
    let id = &new_id();
    let good = snapshot(id, ORDER, 3, 1);
    save(&store, &good).await;
    let edits: [(&str, Edit); 14] = [
        ("empty type", |s| s.aggregate_type.clear()),
        ("256-byte type", |s| s.aggregate_type = "x".repeat(256)),
        ("type with NUL", |s| s.aggregate_type = "Ord\0er".into()),
        ("version 0", |s| s.version = 0),
        ("version above i64::MAX", |s| {
            s.version = validate::MAX_VERSION + 1;
        }),
        ("version u64::MAX", |s| s.version = u64::MAX),
        ("schema version 0", |s| s.schema_version = 0),
        ("array state", |s| s.state = json!([1, 2])),
        ("string state", |s| s.state = json!("s")),
        ("null state", |s| s.state = Value::Null),
        ("NUL in a state string", |s| {
            s.state = json!({"text": "a\u{0}b"});
        }),
        ("NUL in a state key", |s| s.state = json!({"k\u{0}": 1})),
        ("created_at before year 1", |s| {
            s.created_at = datetime!(-0001-06-01 00:00 UTC);
        }),
        ("state too deep", |s| {
            for _ in 0..validate::MAX_JSON_DEPTH {
                s.state = json!({"child": s.state.take()});
            }
        }),
    ];
    let bad = edits.map(|(what, edit)| {
        let mut snapshot = snapshot(id, ORDER, 50, 1);
        edit(&mut snapshot);
        (what, snapshot)
    });
    for (what, snapshot) in bad {
        expect_invalid(store.save_snapshot(&snapshot).await, what);
    }
    assert_eq!(
        get(&store, id, ORDER).await,
        Some(good),
        "nothing was written"
    );
    assert_eq!(
        get_at(&store, id, ORDER, 2).await,
        None,
        "not even below the latest"
    );
    let mut unversioned = snapshot(id, ORDER, 9, 1);
    unversioned.schema_version = 0;
    let err = store.save_snapshot(&unversioned).await.unwrap_err();
    assert!(
        matches!(
            &err,
            SnapshotError::InvalidInput(InvalidInput::OutOfRange {
                field: "schema_version",
                ..
            })
        ),
        "the error names the field: {err:?}"
    );
}

/// Lookups and deletes with a bad type name are typed `InvalidInput` errors.
pub async fn invalid_lookups_are_rejected<H: SnapshotStoreHarness>(h: &H) {
    let store = h.open(1).await;
    let id = &new_id();
    for ty in [String::new(), "y".repeat(256), "a\0".to_owned()] {
        expect_invalid(store.get_snapshot(id, &ty).await, "get_snapshot");
        expect_invalid(store.get_snapshot_at(id, &ty, 1).await, "get_snapshot_at");
        expect_invalid(store.snapshot_exists(id, &ty).await, "snapshot_exists");
        expect_invalid(store.delete_snapshot(id, &ty).await, "delete_snapshot");
        expect_invalid(
            store.delete_snapshots_by_type(&ty, None).await,
            "delete_snapshots_by_type",
        );
    }
}
