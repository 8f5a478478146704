//! Bad-input properties: arbitrary names, versions, schema versions, JSON and timestamps fed
//! to a store either round-trip exactly or come back as `InvalidInput`: never a panic, never
//! another error, and never a change to another aggregate's data.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use serde_json::{Value, json};
use snap_core::{
    AggregateId, EventStore, EventStoreError, NewEvent, Snapshot, SnapshotError, SnapshotStore,
    normalize_timestamp, validate,
};
use time::OffsetDateTime;

use crate::fixtures::{at_micros, events, new_id};
use crate::model::{config, runtime};
use crate::{EventStoreHarness, SnapshotStoreHarness};

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Za-z][A-Za-z0-9_.:-]{0,20}",
        1 => Just(String::new()),
        1 => "\\PC{1,8}",
        1 => "[a-z]{0,4}\u{0}[a-z]{0,4}",
        1 => "[a-z]{250,260}",
        1 => "[é🦀]{60,70}",
        1 => "' OR 1=1; DROP TABLE snapshots; --",
    ]
}

fn version() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        1u64..1_000_000,
        Just(i64::MAX as u64),
        Just(i64::MAX as u64 + 1),
        Just(u64::MAX),
    ]
}

fn schema_version() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0), 1u32..10, Just(u32::MAX)]
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "\\PC{0,12}",
        1 => "[a-z]{0,3}\u{0}[a-z]{0,3}",
        1 => Just("\u{10FFFF}\u{1F980}\"\\\n\t".to_owned()),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        string().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(string(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON value nested `depth` levels deep.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!({ "a": inner }))
}

fn state() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => btree_map(string(), json_value(), 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => json_value(),
        1 => (95usize..110).prop_map(nested),
    ]
}

fn timestamp() -> impl Strategy<Value = OffsetDateTime> {
    prop_oneof![
        4 => (-1_000_000_000_000i64..1_000_000_000_000).prop_map(at_micros),
        1 => Just(OffsetDateTime::UNIX_EPOCH - time::Duration::days(800_000)),
        1 => Just(time::macros::datetime!(0000-12-31 23:59:59.999_999 UTC)),
        1 => Just(time::macros::datetime!(0001-01-01 00:00:00 UTC)),
        1 => Just(time::macros::datetime!(9999-12-31 23:59:59.999_999 UTC)),
    ]
}

fn fail(what: String) -> TestCaseError {
    TestCaseError::fail(what)
}

#[derive(Debug, Clone)]
struct HostileSnapshot {
    aggregate_type: String,
    version: u64,
    schema_version: u32,
    state: Value,
    created_at: OffsetDateTime,
}

fn hostile_snapshot() -> impl Strategy<Value = HostileSnapshot> {
    (name(), version(), schema_version(), state(), timestamp()).prop_map(
        |(aggregate_type, version, schema_version, state, created_at)| HostileSnapshot {
            aggregate_type,
            version,
            schema_version,
            state,
            created_at,
        },
    )
}

async fn snapshot_case<S: SnapshotStore>(
    store: &S,
    bystander: &Snapshot,
    input: HostileSnapshot,
) -> Result<(), TestCaseError> {
    let id = &new_id();
    let snapshot = Snapshot::new(
        id,
        input.aggregate_type.clone(),
        input.version,
        input.state,
        input.schema_version,
    )
    .with_created_at(input.created_at);
    let valid = validate::snapshot(&snapshot).is_ok();
    match store.save_snapshot(&snapshot).await {
        Ok(()) if valid => {
            let found = store
                .get_snapshot(id, &input.aggregate_type)
                .await
                .map_err(|e| fail(format!("get after a valid save: {e:?}")))?;
            let mut expected = snapshot.clone();
            expected.created_at = normalize_timestamp(snapshot.created_at);
            prop_assert_eq!(found, Some(expected), "exact round trip");
        }
        Ok(()) => return Err(fail(format!("invalid {snapshot} was accepted"))),
        Err(SnapshotError::InvalidInput(_)) if !valid => {}
        Err(e) => {
            return Err(fail(format!(
                "{snapshot}: expected {}, got {e:?}",
                if valid { "Ok" } else { "InvalidInput" }
            )));
        }
    }
    let still = store
        .get_snapshot(&bystander.aggregate_id, &bystander.aggregate_type)
        .await
        .map_err(|e| fail(format!("get the bystander: {e:?}")))?;
    prop_assert_eq!(
        still.as_ref(),
        Some(bystander),
        "another aggregate's snapshot changed"
    );
    Ok(())
}

/// Random, often invalid snapshots: each is stored and read back exactly, or refused with
/// `InvalidInput`; a bystander snapshot never changes.
pub fn snapshot_store_survives_hostile_input<H: SnapshotStoreHarness>(harness: &H) {
    if crate::__skip(
        "snapshot_store_survives_hostile_input",
        SnapshotStoreHarness::unavailable(harness),
    )
    .is_some()
    {
        return;
    }
    let rt = runtime();
    let (store, bystander) = rt.block_on(async {
        let store = harness.open(1).await;
        let bystander = Snapshot::new(new_id(), "Bystander", 7, json!({"safe": true}), 1)
            .with_created_at(at_micros(7));
        store
            .save_snapshot(&bystander)
            .await
            .expect("save the bystander");
        (store, bystander)
    });
    let mut runner = TestRunner::new(config());
    let result = runner.run(&hostile_snapshot(), |input| {
        rt.block_on(snapshot_case(&store, &bystander, input))
    });
    if let Err(error) = result {
        panic!("a hostile snapshot broke the store contract: {error}");
    }
}

#[derive(Debug, Clone)]
struct HostileEvent {
    aggregate_type: String,
    event_type: String,
    payload: Value,
    metadata: Value,
    expected_version: u64,
}

fn hostile_event() -> impl Strategy<Value = HostileEvent> {
    (
        name(),
        name(),
        json_value(),
        state(),
        prop_oneof![Just(0u64), version()],
    )
        .prop_map(
            |(aggregate_type, event_type, payload, metadata, expected_version)| HostileEvent {
                aggregate_type,
                event_type,
                payload,
                metadata,
                expected_version,
            },
        )
}

async fn event_case<E: EventStore>(
    store: &E,
    bystander: &AggregateId,
    input: HostileEvent,
) -> Result<(), TestCaseError> {
    let id = &new_id();
    let event = NewEvent::new(input.event_type.clone(), input.payload.clone())
        .with_metadata(input.metadata.clone());
    let batch = vec![event.clone()];
    let valid = validate::append(&input.aggregate_type, input.expected_version, &batch).is_ok();
    let result = store
        .append(id, &input.aggregate_type, input.expected_version, batch)
        .await;
    match result {
        Ok(1) if valid && input.expected_version == 0 => {
            let loaded = store
                .load(id, &input.aggregate_type, 0, None)
                .await
                .map_err(|e| fail(format!("load after a valid append: {e:?}")))?;
            prop_assert_eq!(loaded.len(), 1);
            prop_assert_eq!(&loaded[0].event_type, &input.event_type);
            prop_assert_eq!(&loaded[0].payload, &input.payload);
            prop_assert_eq!(&loaded[0].metadata, &input.metadata);
            prop_assert_eq!(loaded[0].event_id, event.event_id);
        }
        Err(EventStoreError::Concurrency { actual: 0, .. })
            if valid && input.expected_version != 0 => {}
        Err(EventStoreError::InvalidInput(_)) if !valid => {}
        other => {
            return Err(fail(format!("{input:?}: valid={valid}, got {other:?}")));
        }
    }
    let still = store
        .load(bystander, "Bystander", 0, None)
        .await
        .map_err(|e| fail(format!("load the bystander: {e:?}")))?;
    prop_assert_eq!(still.len(), 3, "another stream changed");
    Ok(())
}

/// Random, often invalid appends: each lands and loads back exactly, or is refused with
/// `InvalidInput` (or `Concurrency` for a wrong expected version); a bystander stream never
/// changes.
pub fn event_store_survives_hostile_input<H: EventStoreHarness>(harness: &H) {
    if crate::__skip(
        "event_store_survives_hostile_input",
        EventStoreHarness::unavailable(harness),
    )
    .is_some()
    {
        return;
    }
    let rt = runtime();
    let (store, bystander) = rt.block_on(async {
        let store = harness.open().await;
        let bystander = new_id();
        store
            .append(&bystander, "Bystander", 0, events(1, 3, "safe"))
            .await
            .expect("append the bystander");
        (store, bystander)
    });
    let mut runner = TestRunner::new(config());
    let result = runner.run(&hostile_event(), |input| {
        rt.block_on(event_case(&store, &bystander, input))
    });
    if let Err(error) = result {
        panic!("a hostile append broke the store contract: {error}");
    }
}
