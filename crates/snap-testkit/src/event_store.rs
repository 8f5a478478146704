//! Event store cases: DESIGN.md section 4 and CONFORMANCE.md B17.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};
use snap_core::{
    AggregateId, EventStore, EventStoreError, InvalidInput, NewEvent, RecordedEvent, validate,
};
use uuid::Uuid;

use crate::EventStoreHarness;
use crate::fixtures::{events, new_id};

const ACCOUNT: &str = "Account";

async fn load_all(store: &impl EventStore, id: &AggregateId, ty: &str) -> Vec<RecordedEvent> {
    store.load(id, ty, 0, None).await.expect("load")
}

fn versions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.version).collect()
}

fn expect_conflict(result: Result<u64, EventStoreError>, expected: u64, actual: u64) {
    match result {
        Err(EventStoreError::Concurrency {
            expected: e,
            actual: a,
            ..
        }) if (e, a) == (expected, actual) => {}
        other => panic!(
            "expected Concurrency {{ expected: {expected}, actual: {actual} }}, got {other:?}"
        ),
    }
}

fn expect_invalid<T: std::fmt::Debug>(result: Result<T, EventStoreError>, what: &str) {
    match result {
        Err(EventStoreError::InvalidInput(_)) => {}
        other => panic!("{what}: expected EventStoreError::InvalidInput, got {other:?}"),
    }
}

/// An unknown stream is at version 0 and has no events.
pub async fn empty_stream_has_nothing<H: EventStoreHarness>(h: &H) {
    let store = h.open().await;
    let id = &new_id();
    assert_eq!(store.current_version(id, ACCOUNT).await.unwrap(), 0);
    assert!(load_all(&store, id, ACCOUNT).await.is_empty());
    assert!(
        store
            .load(id, ACCOUNT, 0, Some(10))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Appended events come back with every field: ids, types, payloads, metadata, versions from
/// 1, one `recorded_at` per append (UTC, whole microseconds).
pub async fn append_and_load_round_trip<H: EventStoreHarness>(h: &H) {
    let store = h.open().await;
    let id = &new_id();
    let new = events(1, 3, "first");
    let before = snap_core::now();
    assert_eq!(store.append(id, ACCOUNT, 0, new.clone()).await.unwrap(), 3);
    let after = snap_core::now();
    let loaded = load_all(&store, id, ACCOUNT).await;
    assert_eq!(versions(&loaded), [1, 2, 3]);
    for (stored, given) in loaded.iter().zip(&new) {
        assert_eq!(stored.event_id, given.event_id);
        assert_eq!(&stored.aggregate_id, id);
        assert_eq!(stored.aggregate_type, ACCOUNT);
        assert_eq!(stored.event_type, given.event_type);
        assert_eq!(stored.payload, given.payload);
        assert_eq!(stored.metadata, given.metadata);
        assert_eq!(
            stored.recorded_at, loaded[0].recorded_at,
            "one timestamp per append"
        );
        assert_eq!(stored.recorded_at.offset(), time::UtcOffset::UTC);
        assert_eq!(
            stored.recorded_at.nanosecond() % 1_000,
            0,
            "whole microseconds"
        );
    }
    // A database clock may differ a little from this process's clock.
    let slack = time::Duration::seconds(5);
    assert!(loaded[0].recorded_at >= before - slack && loaded[0].recorded_at <= after + slack);
    assert_eq!(store.current_version(id, ACCOUNT).await.unwrap(), 3);
}

/// `load` returns `from < version <= to`, clamps bounds past the head, and is empty for an
/// empty or inverted range.
pub async fn load_ranges_are_half_open<H: EventStoreHarness>(h: &H) {
    let store = h.open().await;
    let id = &new_id();
    store
        .append(id, ACCOUNT, 0, events(1, 10, "a"))
        .await
        .unwrap();
    let range = |from, to| {
        let store = &store;
        async move { versions(&store.load(id, ACCOUNT, from, to).await.unwrap()) }
    };
    assert_eq!(range(0, None).await, (1..=10).collect::<Vec<_>>());
    assert_eq!(range(3, None).await, (4..=10).collect::<Vec<_>>());
    assert_eq!(range(3, Some(5)).await, [4, 5]);
    assert_eq!(range(0, Some(1)).await, [1]);
    assert_eq!(range(9, Some(10)).await, [10]);
    assert_eq!(range(5, Some(5)).await, Vec::<u64>::new());
    assert_eq!(range(7, Some(3)).await, Vec::<u64>::new());
    assert_eq!(range(10, None).await, Vec::<u64>::new());
    assert_eq!(range(0, Some(0)).await, Vec::<u64>::new());
    assert_eq!(range(0, Some(100)).await, (1..=10).collect::<Vec<_>>());
    assert_eq!(range(0, Some(u64::MAX)).await, (1..=10).collect::<Vec<_>>());
    assert_eq!(range(u64::MAX, None).await, Vec::<u64>::new());
    assert_eq!(
        range(validate::MAX_VERSION, Some(u64::MAX)).await,
        Vec::<u64>::new()
    );
}

/// An append at the wrong expected version is a `Concurrency` error with the actual version,
/// and writes nothing.
pub async fn expected_version_must_match<H: EventStoreHarness>(h: &H) {
    let store = h.open().await;
    let id = &new_id();
    expect_conflict(store.append(id, ACCOUNT, 1, events(1, 1, "x")).await, 1, 0);
    assert_eq!(store.current_version(id, ACCOUNT).await.unwrap(), 0);
    store
        .append(id, ACCOUNT, 0, events(1, 3, "a"))
        .await
        .unwrap();
    expect_conflict(
        store.append(id, ACCOUNT, 2, events(3, 2, "late")).await,
        2,
        3,
    );
    expect_conflict(
        store.append(id, ACCOUNT, 0, events(1, 1, "stale")).await,
        0,
        3,
    );
    expect_conflict(
        store.append(id, ACCOUNT, 5, events(6, 1, "ahead")).await,
        5,
        3,
    );
    let loaded = load_all(&store, id, ACCOUNT).await;
    assert_eq!(versions(&loaded), [1, 2, 3]);
    assert!(
        loaded.iter().all(|e| e.payload["batch"] == "a"),
        "nothing of the failed appends landed"
    );
    let err = store
        .append(id, ACCOUNT, 1, events(2, 1, "y"))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "a conflict is retryable after a reload");
}

/// Appends continue the stream densely and return the new version.
pub async fn appends_continue_the_stream<H: EventStoreHarness>(h: &H) {
    let store = h.open().await;
    let id = &new_id();
    assert_eq!(
        store
            .append(id, ACCOUNT, 0, events(1, 2, "a"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .append(id, ACCOUNT, 2, events(3, 1, "b"))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .append(id, ACCOUNT, 3, events(4, 4, "c"))
            .await
            .unwrap(),
        7
    );
    let loaded = load_all(&store, id, ACCOUNT).await;
    assert_eq!(versions(&loaded), (1..=7).collect::<Vec<_>>());
    let batches: Vec<&Value> = loaded.iter().map(|e| &e.metadata["batch"]).collect();
    assert_eq!(batches, ["a", "a", "b", "c", "c", "c", "c"]);
    assert!(loaded[0].recorded_at <= loaded[2].recorded_at);
}

/// An empty append writes nothing: it returns the version when it matches and a conflict when
/// it does not.
pub async fn empty_append_only_checks_version<H: EventStoreHarness>(h: &H) {
    let store = h.open().await;
    let id = &new_id();
    assert_eq!(store.append(id, ACCOUNT, 0, Vec::new()).await.unwrap(), 0);
    store
        .append(id, ACCOUNT, 0, events(1, 2, "a"))
        .await
        .unwrap();
    assert_eq!(store.append(id, ACCOUNT, 2, Vec::new()).await.unwrap(), 2);
    expect_conflict(store.append(id, ACCOUNT, 1, Vec::new()).await, 1, 2);
    assert_eq!(store.current_version(id, ACCOUNT).await.unwrap(), 2);
}

/// Streams are keyed by (type, id): one UUID under two types, and two UUIDs, are separate.
pub async fn streams_are_scoped_by_type_and_id<H: EventStoreHarness>(h: &H) {
    let store = h.open().await;
    let id = &new_id();
    let other = &new_id();
    store
        .append(id, ACCOUNT, 0, events(1, 2, "account"))
        .await
        .unwrap();
    store
        .append(id, "Ledger", 0, events(1, 1, "ledger"))
        .await
        .unwrap();
    store
        .append(other, ACCOUNT, 0, events(1, 3, "other"))
        .await
        .unwrap();
    assert_eq!(store.current_version(id, ACCOUNT).await.unwrap(), 2);
    assert_eq!(store.current_version(id, "Ledger").await.unwrap(), 1);
    assert_eq!(store.current_version(other, ACCOUNT).await.unwrap(), 3);
    assert_eq!(
        store.current_version(id, "account").await.unwrap(),
        0,
        "types are case-sensitive"
    );
    let ledger = load_all(&store, id, "Ledger").await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        (ledger[0].aggregate_type.as_str(), &ledger[0].aggregate_id),
        ("Ledger", id)
    );
    assert!(
        load_all(&store, id, ACCOUNT)
            .await
            .iter()
            .all(|e| e.metadata["batch"] == "account")
    );
}

/// An append whose third event is invalid writes none of its events.
pub async fn append_is_atomic_on_bad_event<H: EventStoreHarness>(h: &H) {
    let store = h.open().await;
    let id = &new_id();
    let mut batch = events(1, 5, "a");
    batch[2].event_type = String::new();
    expect_invalid(
        store.append(id, ACCOUNT, 0, batch).await,
        "empty event type in a batch",
    );
    assert_eq!(store.current_version(id, ACCOUNT).await.unwrap(), 0);
    assert!(load_all(&store, id, ACCOUNT).await.is_empty());
}

/// Bad names and out-of-range versions are typed `InvalidInput` errors.
pub async fn invalid_input_is_rejected<H: EventStoreHarness>(h: &H) {
    let store = h.open().await;
    let id = &new_id();
    for ty in [String::new(), "z".repeat(256), "A\0".to_owned()] {
        expect_invalid(
            store.append(id, &ty, 0, events(1, 1, "a")).await,
            "append with a bad type",
        );
        expect_invalid(store.load(id, &ty, 0, None).await, "load with a bad type");
        expect_invalid(
            store.current_version(id, &ty).await,
            "current_version with a bad type",
        );
    }
    let top = validate::MAX_VERSION;
    expect_invalid(
        store.append(id, ACCOUNT, top + 1, events(1, 1, "a")).await,
        "expected version above i64::MAX",
    );
    expect_invalid(
        store.append(id, ACCOUNT, top, events(1, 1, "a")).await,
        "resulting version above i64::MAX",
    );
    expect_invalid(
        store.append(id, ACCOUNT, u64::MAX, Vec::new()).await,
        "expected version u64::MAX",
    );
    let long_type = NewEvent::new("e".repeat(256), json!({}));
    expect_invalid(
        store.append(id, ACCOUNT, 0, vec![long_type]).await,
        "256-byte event type",
    );
    let mut deep = json!(1);
    for _ in 0..=validate::MAX_JSON_DEPTH {
        deep = json!([deep]);
    }
    expect_invalid(
        store
            .append(id, ACCOUNT, 0, vec![NewEvent::new("Deep", deep)])
            .await,
        "payload too deep",
    );
    assert_eq!(
        store.current_version(id, ACCOUNT).await.unwrap(),
        0,
        "nothing was written"
    );
}

/// Payloads and metadata of every JSON kind round-trip, including the edge-case states of the
/// snapshot suite.
pub async fn payloads_round_trip<H: EventStoreHarness>(h: &H) {
    let store = h.open().await;
    let id = &new_id();
    let mut payloads = vec![
        json!(null),
        json!(true),
        json!(-7),
        json!(2.5),
        json!("text"),
        json!([1, [2]]),
    ];
    payloads.extend(
        crate::snapshot_store::edge_case_states()
            .into_iter()
            .map(|(_, state)| state),
    );
    // Payload and metadata carry the value twice: over a backend's limit, one is refused.
    let size = |p: &Value| 2 * serde_json::to_vec(p).map_or(0, |json| json.len());
    let (payloads, too_big): (Vec<Value>, Vec<Value>) = payloads
        .into_iter()
        .partition(|p| h.max_payload().is_none_or(|max| size(p) < max));
    for p in too_big {
        let event = NewEvent::new("Edge", p.clone()).with_metadata(p);
        match store.append(id, ACCOUNT, 0, vec![event]).await {
            Err(EventStoreError::InvalidInput(InvalidInput::TooLong { .. })) => {}
            other => panic!("a save over the backend's limit: {other:?}"),
        }
    }
    assert_eq!(store.current_version(id, ACCOUNT).await.unwrap(), 0);
    let new: Vec<NewEvent> = payloads
        .into_iter()
        .map(|p| NewEvent::new("Edge", p.clone()).with_metadata(p))
        .collect();
    let head = store.append(id, ACCOUNT, 0, new.clone()).await.unwrap();
    assert_eq!(head, new.len() as u64);
    let loaded = load_all(&store, id, ACCOUNT).await;
    assert_eq!(loaded.len(), new.len());
    for (stored, given) in loaded.iter().zip(&new) {
        assert!(
            stored.payload == given.payload,
            "payload of event {} changed",
            stored.version
        );
        assert!(
            stored.metadata == given.metadata,
            "metadata of event {} changed",
            stored.version
        );
    }
}

/// One append of 2,500 events lands whole and loads back in order (backends that batch
/// parameters must split and still commit once).
pub async fn large_append_is_one_batch<H: EventStoreHarness>(h: &H) {
    let store = h.open().await;
    let id = &new_id();
    let batch = events(1, 2_500, "big");
    assert_eq!(
        store.append(id, ACCOUNT, 0, batch.clone()).await.unwrap(),
        2_500
    );
    let loaded = load_all(&store, id, ACCOUNT).await;
    assert_eq!(versions(&loaded), (1..=2_500).collect::<Vec<_>>());
    assert!(
        loaded
            .iter()
            .zip(&batch)
            .all(|(s, g)| s.event_id == g.event_id)
    );
    let tail = store.load(id, ACCOUNT, 2_401, None).await.unwrap();
    assert_eq!(versions(&tail), (2_402..=2_500).collect::<Vec<_>>());
}

/// `load_batches` hands over exactly what `load` returns, in order, in non-empty batches,
/// for every range and past any batch or page size; a sink that breaks is called no more.
pub async fn load_batches_match_load<H: EventStoreHarness>(h: &H) {
    let store = h.open().await;
    let id = &new_id();
    for first in (1..=3_000).step_by(500) {
        store
            .append(id, ACCOUNT, first - 1, events(first, 500, "bulk"))
            .await
            .unwrap();
    }
    let ranges = [
        (0, None),
        (0, Some(10)),
        (100, Some(2_500)),
        (255, Some(257)),
        (1_000, Some(2_049)),
        (2_999, None),
        (3_000, None),
        (5, Some(5)),
        (9, Some(3)),
        (0, Some(u64::MAX)),
    ];
    for (from, to) in ranges {
        let mut batches: Vec<Vec<RecordedEvent>> = Vec::new();
        store
            .load_batches(id, ACCOUNT, from, to, &mut |batch| {
                batches.push(batch);
                std::ops::ControlFlow::Continue(())
            })
            .await
            .unwrap();
        assert!(
            batches.iter().all(|b| !b.is_empty()),
            "empty batch for {from}..{to:?}"
        );
        let streamed: Vec<RecordedEvent> = batches.into_iter().flatten().collect();
        let loaded = store.load(id, ACCOUNT, from, to).await.unwrap();
        assert_eq!(
            versions(&streamed),
            versions(&loaded),
            "range {from}..{to:?}"
        );
        assert_eq!(streamed, loaded, "range {from}..{to:?}");
    }
    let mut calls = 0;
    store
        .load_batches(id, ACCOUNT, 0, None, &mut |_| {
            calls += 1;
            std::ops::ControlFlow::Break(())
        })
        .await
        .unwrap();
    assert_eq!(calls, 1, "a sink that breaks is not called again");
    let mut nothing = 0;
    store
        .load_batches(&new_id(), ACCOUNT, 0, None, &mut |_| {
            nothing += 1;
            std::ops::ControlFlow::Continue(())
        })
        .await
        .unwrap();
    assert_eq!(nothing, 0, "an empty stream hands over no batch");
    assert!(matches!(
        store
            .load_batches(
                id,
                "",
                0,
                None,
                &mut |_| std::ops::ControlFlow::Continue(())
            )
            .await,
        Err(EventStoreError::InvalidInput(_))
    ));
}

/// Large floats in payloads and metadata come back as the same floats (see the snapshot
/// case `large_floats_stay_floats`).
pub async fn large_floats_in_events_stay_floats<H: EventStoreHarness>(h: &H) {
    let store = h.open().await;
    let id = &new_id();
    let floats = crate::snapshot_store::large_floats();
    let event = NewEvent::new("Measured", json!({ "floats": floats.clone() }))
        .with_metadata(json!({ "floats": floats.clone() }));
    store.append(id, ACCOUNT, 0, vec![event]).await.unwrap();
    let loaded = load_all(&store, id, ACCOUNT).await;
    assert_eq!(loaded[0].payload["floats"], floats);
    assert_eq!(loaded[0].metadata["floats"], floats);
    for value in [&loaded[0].payload["floats"], &loaded[0].metadata["floats"]] {
        assert!(
            value.as_array().unwrap().iter().all(Value::is_f64),
            "{value}"
        );
    }
}

/// `list_aggregate_ids` pages through every stream of a type, in ascending id order, once
/// each; other types, empty pages and bad input behave.
pub async fn list_aggregate_ids_pages_through_every_stream<H: EventStoreHarness>(h: &H) {
    let store = h.open().await;
    // With string ids, every third is a UUID: the two kinds list in one order, by their text.
    let mut accounts: Vec<AggregateId> = (0..25)
        .map(|i| {
            if i % 3 == 0 {
                AggregateId::from(Uuid::new_v4())
            } else {
                new_id()
            }
        })
        .collect();
    for id in &accounts {
        store
            .append(id, ACCOUNT, 0, events(1, 2, "listed"))
            .await
            .unwrap();
    }
    let other = &new_id();
    store
        .append(other, "Order", 0, events(1, 1, "other"))
        .await
        .unwrap();
    accounts.sort_unstable();
    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_aggregate_ids(ACCOUNT, after.as_ref(), 7)
            .await
            .unwrap();
        assert!(page.len() <= 7);
        let Some(last) = page.last().cloned() else {
            break;
        };
        listed.extend(page);
        after = Some(last);
    }
    assert_eq!(listed, accounts, "every account once, in order");
    assert_eq!(
        store.list_aggregate_ids("Order", None, 10).await.unwrap(),
        vec![other.clone()]
    );
    assert!(
        store
            .list_aggregate_ids("Nothing", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_aggregate_ids(ACCOUNT, None, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .list_aggregate_ids(ACCOUNT, Some(&accounts[23]), 10)
            .await
            .unwrap(),
        vec![accounts[24].clone()]
    );
    assert!(matches!(
        store.list_aggregate_ids("", None, 10).await,
        Err(EventStoreError::InvalidInput(_))
    ));
}

/// B17: sixteen concurrent appends with the same expected version: exactly one succeeds, the
/// others get `Concurrency` with the winner's version, and only the winner's events are stored.
pub async fn concurrent_appends_have_one_winner<H: EventStoreHarness>(h: &H) {
    let store = Arc::new(h.open().await);
    let id = &new_id();
    store
        .append(id, ACCOUNT, 0, events(1, 1, "setup"))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let (store, id) = (Arc::clone(&store), id.clone());
            let batch = events(2, 2, &format!("task-{t}"));
            tokio::spawn(async move { (t, store.append(&id, ACCOUNT, 1, batch).await) })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (t, result) = task.await.expect("task");
        match result {
            Ok(version) => {
                assert_eq!(version, 3);
                winners.push(t);
            }
            Err(e) => expect_conflict(Err(e), 1, 3),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one append wins, got {winners:?}");
    let loaded = load_all(&store, id, ACCOUNT).await;
    assert_eq!(versions(&loaded), [1, 2, 3]);
    let winner = format!("task-{}", winners[0]);
    assert!(
        loaded[1..]
            .iter()
            .all(|e| e.metadata["batch"] == winner.as_str())
    );
}

/// Eight tasks each append ten times to one stream, re-reading the version after every
/// conflict: all 80 appends land exactly once, in a dense stream.
pub async fn contended_appends_lose_nothing<H: EventStoreHarness>(h: &H) {
    let store = Arc::new(h.open().await);
    let id = &new_id();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (store, id) = (Arc::clone(&store), id.clone());
            tokio::spawn(async move {
                let mut conflicts = 0u32;
                for i in 0..10 {
                    loop {
                        let head = store.current_version(&id, ACCOUNT).await?;
                        let event = NewEvent::new("Tick", json!({"task": t, "i": i}));
                        match store.append(&id, ACCOUNT, head, vec![event]).await {
                            Ok(_) => break,
                            Err(EventStoreError::Concurrency { .. }) => {
                                conflicts += 1;
                                // A correct store lets every task through long before this.
                                assert!(
                                    conflicts < 10_000,
                                    "task {t} starved: {conflicts} conflicts"
                                );
                            }
                            Err(e) => return Err(e),
                        }
                        tokio::task::yield_now().await;
                    }
                }
                Ok::<_, EventStoreError>(conflicts)
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("append under contention");
    }
    let loaded = load_all(&store, id, ACCOUNT).await;
    assert_eq!(versions(&loaded), (1..=80).collect::<Vec<_>>());
    let distinct: BTreeSet<(i64, i64)> = loaded
        .iter()
        .map(|e| {
            (
                e.payload["task"].as_i64().unwrap(),
                e.payload["i"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(distinct.len(), 80, "every append landed exactly once");
}

/// Hostile type names (see [`crate::snapshot_store::HOSTILE_TYPES`]) keep their streams
/// apart, and hostile event types round-trip.
pub async fn hostile_names_round_trip<H: EventStoreHarness>(h: &H) {
    let store = h.open().await;
    let id = &new_id();
    for (n, ty) in (1..).zip(crate::snapshot_store::HOSTILE_TYPES) {
        let batch: Vec<NewEvent> = (0..n)
            .map(|_| NewEvent::new(ty, json!({"type": ty})))
            .collect();
        store.append(id, ty, 0, batch).await.unwrap();
    }
    for (n, ty) in (1..).zip(crate::snapshot_store::HOSTILE_TYPES) {
        let loaded = load_all(&store, id, ty).await;
        assert_eq!(loaded.len(), n, "stream {ty:?}");
        assert!(
            loaded
                .iter()
                .all(|e| e.event_type == ty && e.aggregate_type == ty && e.payload["type"] == ty)
        );
    }
    assert_eq!(
        store.current_version(id, "per_cent_under").await.unwrap(),
        0
    );
}
