//! The repository's tracing spans and metrics, captured by a test subscriber and recorder.

#![allow(clippy::unwrap_used, reason = "test helpers panic on a poisoned lock")]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use serde::{Deserialize, Serialize};
use snap_core::{Aggregate, AggregateId};
use snap_memory::{InMemoryEventStore, InMemorySnapshotStore};
use snap_repo::{AggregateRepository, StorePair};
use snap_strategy::Threshold;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use uuid::Uuid;

#[derive(Default, Serialize, Deserialize)]
struct Tally {
    n: i64,
}

#[derive(Clone, Serialize, Deserialize)]
struct Add(i64);

impl Aggregate for Tally {
    const TYPE: &'static str = "Counter";
    type Event = Add;
    fn apply(&mut self, Add(n): &Add) {
        self.n += n;
    }
}

/// Span name -> the fields of the last span of that name, as text.
type Spans = Arc<Mutex<BTreeMap<String, BTreeMap<String, String>>>>;

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

struct Capture(Spans);

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        self.0
            .lock()
            .unwrap()
            .insert(attrs.metadata().name().to_owned(), fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut spans = self.0.lock().unwrap();
        let fields = spans.entry(span.name().to_owned()).or_default();
        values.record(&mut Fields(fields));
    }
}

/// Counter and histogram totals by metric name and labels.
#[derive(Default)]
struct Totals(Mutex<BTreeMap<String, Arc<AtomicU64>>>);

impl Totals {
    fn handle(&self, key: &Key) -> Arc<AtomicU64> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        Arc::clone(self.0.lock().unwrap().entry(name).or_default())
    }

    fn get(&self, name: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |v| v.load(Ordering::SeqCst))
    }
}

struct Sum(Arc<AtomicU64>);

impl metrics::CounterFn for Sum {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::SeqCst);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::SeqCst);
    }
}

impl metrics::HistogramFn for Sum {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "test values are small counts"
    )]
    fn record(&self, value: f64) {
        self.0.fetch_add(value as u64, Ordering::SeqCst);
    }
}

struct TestRecorder(Arc<Totals>);

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Sum(self.0.handle(key))))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Sum(self.0.handle(key))))
    }
}

#[test]
fn loads_and_saves_are_traced_and_counted() {
    let spans = Spans::default();
    let totals = Arc::new(Totals::default());
    let subscriber = tracing_subscriber::registry().with(Capture(Arc::clone(&spans)));
    let recorder = TestRecorder(Arc::clone(&totals));
    let id = &AggregateId::from(Uuid::new_v4());
    tracing::subscriber::with_default(subscriber, || {
        metrics::with_local_recorder(&recorder, || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(async {
                    let repo = AggregateRepository::<Tally>::builder(StorePair::new(
                        InMemoryEventStore::new(),
                        InMemorySnapshotStore::new(),
                    ))
                    .strategy(Threshold(10))
                    .build()
                    .unwrap();
                    let mut root = repo.create_new(id);
                    for n in 1..=12 {
                        root.record(Add(n));
                    }
                    repo.save(&mut root).await.unwrap();
                    for n in 13..=15 {
                        root.record(Add(n));
                    }
                    repo.save(&mut root).await.unwrap();
                    repo.load(id).await.unwrap();
                });
        });
    });

    let spans = spans.lock().unwrap();
    let save = &spans["snap.repo.save"];
    assert_eq!(save["aggregate_id"], id.to_string());
    assert_eq!(save["aggregate_type"], "\"Counter\"");
    assert_eq!(save["version"], "15");
    assert!(
        !save.contains_key("snapshot"),
        "no snapshot at 15: {save:?}"
    );
    let load = &spans["snap.repo.load"];
    assert_eq!(load["version"], "15");
    assert_eq!(load["snapshot_used"], "true");
    assert_eq!(load["events_replayed"], "3");

    assert_eq!(
        totals.get("snap_repo_saves_total{aggregate_type=Counter}"),
        2
    );
    assert_eq!(
        totals.get("snap_repo_loads_total{aggregate_type=Counter,source=snapshot}"),
        1
    );
    assert_eq!(
        totals.get("snap_repo_snapshot_writes_total{aggregate_type=Counter,mode=sync,outcome=ok}"),
        1
    );
    assert_eq!(
        totals.get("snap_repo_events_replayed{aggregate_type=Counter}"),
        3
    );
}
