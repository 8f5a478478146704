//! Model-based property tests: random operation sequences run against a store and against a
//! plain `BTreeMap` model of the contract; every result must match.

use std::collections::BTreeMap;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;
use snap_core::{AggregateId, EventStore, EventStoreError, NewEvent, Snapshot, SnapshotStore};
use uuid::Uuid;

use crate::fixtures::at_micros;
use crate::{EventStoreHarness, SnapshotStoreHarness};

const TYPES: [&str; 2] = ["Alpha", "Beta"];
const AGGREGATES: usize = 3;

/// The model's aggregates: even indexes have UUID ids, odd ones string ids.
fn aggregate_id(index: usize) -> AggregateId {
    if index % 2 == 1 {
        return AggregateId::parse(&format!("model aggregate {index}/é")).expect("a valid id");
    }
    Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0000 + index as u128).into()
}

pub(crate) fn config() -> Config {
    let cases = std::env::var("SNAP_PROPTEST_CASES").map_or(64, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("SNAP_PROPTEST_CASES must be a whole number, got {v:?}"))
    });
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the property test")
}

fn fail(context: &str, error: &dyn std::fmt::Debug) -> TestCaseError {
    TestCaseError::fail(format!("{context}: unexpected store error {error:?}"))
}

#[derive(Debug, Clone)]
enum SnapshotOp {
    Save {
        agg: usize,
        ty: usize,
        version: u64,
        schema: u32,
        tag: u8,
    },
    Get {
        agg: usize,
        ty: usize,
    },
    GetAt {
        agg: usize,
        ty: usize,
        max: u64,
    },
    Exists {
        agg: usize,
        ty: usize,
    },
    Delete {
        agg: usize,
        ty: usize,
    },
    DeleteByType {
        ty: usize,
        below: Option<u32>,
    },
}

fn snapshot_op() -> impl Strategy<Value = SnapshotOp> {
    let key = (0..AGGREGATES, 0..TYPES.len());
    prop_oneof![
        6 => (key.clone(), 1u64..=12, 1u32..=3, 0u8..4)
            .prop_map(|((agg, ty), version, schema, tag)| SnapshotOp::Save { agg, ty, version, schema, tag }),
        3 => key.clone().prop_map(|(agg, ty)| SnapshotOp::Get { agg, ty }),
        3 => (key.clone(), 0u64..=14).prop_map(|((agg, ty), max)| SnapshotOp::GetAt { agg, ty, max }),
        1 => key.clone().prop_map(|(agg, ty)| SnapshotOp::Exists { agg, ty }),
        1 => key.prop_map(|(agg, ty)| SnapshotOp::Delete { agg, ty }),
        1 => (0..TYPES.len(), proptest::option::of(1u32..=4))
            .prop_map(|(ty, below)| SnapshotOp::DeleteByType { ty, below }),
    ]
}

/// What an operation returned, in a form both the store and the model produce.
#[derive(Debug, PartialEq)]
enum Outcome {
    Done,
    Found(Option<Snapshot>),
    Flag(bool),
    Count(u64),
}

fn model_snapshot(agg: usize, ty: usize, version: u64, schema: u32, tag: u8) -> Snapshot {
    Snapshot::new(
        aggregate_id(agg),
        TYPES[ty],
        version,
        json!({"tag": tag, "version": version, "schema": schema}),
        schema,
    )
    .with_created_at(at_micros(
        i64::from(tag) * 1_000 + i64::try_from(version).unwrap_or(0),
    ))
}

/// The contract of DESIGN.md section 3, as plainly as it can be written.
struct SnapshotModel {
    keep: usize,
    rows: BTreeMap<(usize, usize), BTreeMap<u64, Snapshot>>,
}

impl SnapshotModel {
    fn apply(&mut self, op: &SnapshotOp) -> Outcome {
        match *op {
            SnapshotOp::Save {
                agg,
                ty,
                version,
                schema,
                tag,
            } => {
                let history = self.rows.entry((ty, agg)).or_default();
                let latest = history.keys().next_back().copied().unwrap_or(0);
                if version >= latest {
                    let mut new = model_snapshot(agg, ty, version, schema, tag);
                    // A replacement keeps when the aggregate was first snapshotted.
                    if let Some(kept) = history.values().next_back() {
                        new.created_at = kept.created_at;
                    }
                    history.insert(version, new);
                    while history.len() > self.keep {
                        history.pop_first();
                    }
                }
                Outcome::Done
            }
            SnapshotOp::Get { agg, ty } => Outcome::Found(
                self.rows
                    .get(&(ty, agg))
                    .and_then(|h| h.values().next_back().cloned()),
            ),
            SnapshotOp::GetAt { agg, ty, max } => Outcome::Found(
                self.rows
                    .get(&(ty, agg))
                    .and_then(|h| h.range(..=max).next_back().map(|(_, s)| s.clone())),
            ),
            SnapshotOp::Exists { agg, ty } => {
                Outcome::Flag(self.rows.get(&(ty, agg)).is_some_and(|h| !h.is_empty()))
            }
            SnapshotOp::Delete { agg, ty } => {
                Outcome::Flag(self.rows.remove(&(ty, agg)).is_some_and(|h| !h.is_empty()))
            }
            SnapshotOp::DeleteByType { ty, below } => {
                let mut removed = 0;
                for ((row_ty, _), history) in &mut self.rows {
                    if *row_ty == ty {
                        let before = history.len();
                        history.retain(|_, s| below.is_some_and(|b| s.schema_version >= b));
                        removed += (before - history.len()) as u64;
                    }
                }
                self.rows.retain(|_, h| !h.is_empty());
                Outcome::Count(removed)
            }
        }
    }
}

async fn run_snapshot_op(
    store: &impl SnapshotStore,
    op: &SnapshotOp,
) -> Result<Outcome, TestCaseError> {
    let context = format!("{op:?}");
    let outcome = match *op {
        SnapshotOp::Save {
            agg,
            ty,
            version,
            schema,
            tag,
        } => store
            .save_snapshot(&model_snapshot(agg, ty, version, schema, tag))
            .await
            .map(|()| Outcome::Done),
        SnapshotOp::Get { agg, ty } => store
            .get_snapshot(&aggregate_id(agg), TYPES[ty])
            .await
            .map(Outcome::Found),
        SnapshotOp::GetAt { agg, ty, max } => store
            .get_snapshot_at(&aggregate_id(agg), TYPES[ty], max)
            .await
            .map(Outcome::Found),
        SnapshotOp::Exists { agg, ty } => store
            .snapshot_exists(&aggregate_id(agg), TYPES[ty])
            .await
            .map(Outcome::Flag),
        SnapshotOp::Delete { agg, ty } => store
            .delete_snapshot(&aggregate_id(agg), TYPES[ty])
            .await
            .map(Outcome::Flag),
        SnapshotOp::DeleteByType { ty, below } => store
            .delete_snapshots_by_type(TYPES[ty], below)
            .await
            .map(Outcome::Count),
    };
    outcome.map_err(|e| fail(&context, &e))
}

/// Random sequences of snapshot store operations, with a random retention of 1 to 3
/// versions, give the same results as the model.
pub fn snapshot_store_matches_model<H: SnapshotStoreHarness>(harness: &H) {
    if crate::__skip(
        "snapshot_store_matches_model",
        SnapshotStoreHarness::unavailable(harness),
    )
    .is_some()
    {
        return;
    }
    let rt = runtime();
    let mut runner = TestRunner::new(config());
    let result = runner.run(&(1usize..=3, vec(snapshot_op(), 1..40)), |(keep, ops)| {
        rt.block_on(async {
            let store = harness.open(keep).await;
            let mut model = SnapshotModel {
                keep,
                rows: BTreeMap::new(),
            };
            for (step, op) in ops.iter().enumerate() {
                let actual = run_snapshot_op(&store, op).await?;
                let expected = model.apply(op);
                prop_assert_eq!(
                    actual,
                    expected,
                    "step {} of {:?} (keep {})",
                    step,
                    ops,
                    keep
                );
            }
            Ok(())
        })
    });
    if let Err(error) = result {
        panic!("snapshot store diverged from the model: {error}");
    }
}

#[derive(Debug, Clone)]
enum EventOp {
    Append {
        agg: usize,
        ty: usize,
        skew: i8,
        count: u8,
    },
    Load {
        agg: usize,
        ty: usize,
        from: u64,
        to: Option<u64>,
    },
    Current {
        agg: usize,
        ty: usize,
    },
}

fn event_op() -> impl Strategy<Value = EventOp> {
    let key = (0..AGGREGATES, 0..TYPES.len());
    prop_oneof![
        5 => (key.clone(), prop_oneof![4 => Just(0i8), 1 => -2i8..=2], 0u8..4)
            .prop_map(|((agg, ty), skew, count)| EventOp::Append { agg, ty, skew, count }),
        3 => (key.clone(), 0u64..14, proptest::option::of(0u64..14))
            .prop_map(|((agg, ty), from, to)| EventOp::Load { agg, ty, from, to }),
        1 => key.prop_map(|(agg, ty)| EventOp::Current { agg, ty }),
    ]
}

/// An event as the model keeps it and as a load is compared: version and what was appended.
#[derive(Debug, PartialEq)]
struct Seen {
    version: u64,
    aggregate_id: AggregateId,
    aggregate_type: String,
    event: NewEvent,
}

#[derive(Debug, PartialEq)]
enum EventOutcome {
    Appended(u64),
    Conflict { expected: u64, actual: u64 },
    Loaded(Vec<Seen>),
    Version(u64),
}

fn expected_version(current: u64, skew: i8) -> u64 {
    current.saturating_add_signed(i64::from(skew))
}

fn new_events(step: usize, count: u8) -> Vec<NewEvent> {
    (0..count)
        .map(|i| {
            NewEvent::new(format!("E{i}"), json!({"step": step, "i": i}))
                .with_metadata(json!({"i": i}))
        })
        .collect()
}

async fn run_event_op(
    store: &impl EventStore,
    model: &mut BTreeMap<(usize, usize), Vec<NewEvent>>,
    step: usize,
    op: &EventOp,
) -> Result<(EventOutcome, EventOutcome), TestCaseError> {
    let context = format!("{op:?}");
    match *op {
        EventOp::Append {
            agg,
            ty,
            skew,
            count,
        } => {
            let stream = model.entry((ty, agg)).or_default();
            let current = stream.len() as u64;
            let expected = expected_version(current, skew);
            let batch = new_events(step, count);
            let modelled = if expected == current {
                stream.extend(batch.iter().cloned());
                EventOutcome::Appended(stream.len() as u64)
            } else {
                EventOutcome::Conflict {
                    expected,
                    actual: current,
                }
            };
            let actual = match store
                .append(&aggregate_id(agg), TYPES[ty], expected, batch)
                .await
            {
                Ok(version) => EventOutcome::Appended(version),
                Err(EventStoreError::Concurrency {
                    expected, actual, ..
                }) => EventOutcome::Conflict { expected, actual },
                Err(e) => return Err(fail(&context, &e)),
            };
            Ok((actual, modelled))
        }
        EventOp::Load { agg, ty, from, to } => {
            let stream = model.get(&(ty, agg)).map(Vec::as_slice).unwrap_or_default();
            let modelled = (1..)
                .zip(stream)
                .filter(|(v, _)| *v > from && to.is_none_or(|to| *v <= to))
                .map(|(version, event)| Seen {
                    version,
                    aggregate_id: aggregate_id(agg),
                    aggregate_type: TYPES[ty].to_owned(),
                    event: event.clone(),
                })
                .collect();
            let loaded = store
                .load(&aggregate_id(agg), TYPES[ty], from, to)
                .await
                .map_err(|e| fail(&context, &e))?;
            let actual = loaded
                .into_iter()
                .map(|e| Seen {
                    version: e.version,
                    aggregate_id: e.aggregate_id,
                    aggregate_type: e.aggregate_type,
                    event: NewEvent::new(e.event_type, e.payload)
                        .with_metadata(e.metadata)
                        .with_event_id(e.event_id),
                })
                .collect();
            Ok((EventOutcome::Loaded(actual), EventOutcome::Loaded(modelled)))
        }
        EventOp::Current { agg, ty } => {
            let modelled = model.get(&(ty, agg)).map_or(0, |s| s.len() as u64);
            let actual = store
                .current_version(&aggregate_id(agg), TYPES[ty])
                .await
                .map_err(|e| fail(&context, &e))?;
            Ok((
                EventOutcome::Version(actual),
                EventOutcome::Version(modelled),
            ))
        }
    }
}

/// Random sequences of appends (some at a wrong expected version), range loads and version
/// reads give the same results as a model of one `Vec` per stream.
pub fn event_store_matches_model<H: EventStoreHarness>(harness: &H) {
    if crate::__skip(
        "event_store_matches_model",
        EventStoreHarness::unavailable(harness),
    )
    .is_some()
    {
        return;
    }
    let rt = runtime();
    let mut runner = TestRunner::new(config());
    let result = runner.run(&vec(event_op(), 1..40), |ops| {
        rt.block_on(async {
            let store = harness.open().await;
            let mut model = BTreeMap::new();
            for (step, op) in ops.iter().enumerate() {
                let (actual, expected) = run_event_op(&store, &mut model, step, op).await?;
                prop_assert_eq!(actual, expected, "step {} of {:?}", step, ops);
            }
            Ok(())
        })
    });
    if let Err(error) = result {
        panic!("event store diverged from the model: {error}");
    }
}
