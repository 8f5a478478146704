//! Store spans: every call a repository makes on its backend is in a span that names the
//! backend, the aggregate and the version, nested in the repository's own span.

#![allow(clippy::unwrap_used, reason = "a poisoned lock fails the test")]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Once};

use snap_core::{EventStore, NewEvent, SnapshotStore};
use snap_strategy::{SnapshotMode, Threshold};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::fixtures::new_id;

use crate::RepositoryHarness;
use crate::accounts::{AccountEvent, AccountV1};
use crate::repository::{Rig, commit};

/// One span as a subscriber saw it: its name, its parent's name and its fields as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenSpan {
    /// The span's name.
    pub name: String,
    /// The enclosing span's name, if any.
    pub parent: Option<String>,
    /// The fields recorded so far, strings without quotes.
    pub fields: BTreeMap<String, String>,
}

/// The spans opened on a thread while it [captures](SpanLog::capture) into this log, in the
/// order they were opened.
///
/// The log hangs off one process-wide subscriber rather than a scoped one: tracing caches
/// whether a call site is of interest, and a call site first reached by a test running beside
/// this one, with no subscriber, would otherwise stay switched off.
#[derive(Debug, Clone, Default)]
pub struct SpanLog(Arc<Mutex<Vec<SeenSpan>>>);

thread_local! {
    static CURRENT: RefCell<Option<SpanLog>> = const { RefCell::new(None) };
}

/// Where a span's entry is, kept in the span's extensions.
struct Slot(SpanLog, usize);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// The process-wide layer: hands each new span to the log of the thread that opens it.
struct Router;

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Router {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(log) = CURRENT.with(|current| current.borrow().clone()) else {
            return;
        };
        let Some(span) = ctx.span(id) else { return };
        let mut seen = SeenSpan {
            name: attrs.metadata().name().to_owned(),
            parent: span.parent().map(|parent| parent.name().to_owned()),
            ..SeenSpan::default()
        };
        attrs.record(&mut Fields(&mut seen.fields));
        let slot = {
            let mut spans = log.0.lock().unwrap();
            spans.push(seen);
            spans.len() - 1
        };
        span.extensions_mut().insert(Slot(log, slot));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let extensions = span.extensions();
        let Some(Slot(log, slot)) = extensions.get::<Slot>() else {
            return;
        };
        values.record(&mut Fields(&mut log.0.lock().unwrap()[*slot].fields));
    }
}

/// Stops a thread's capture when dropped.
#[derive(Debug)]
pub struct Capturing(Option<SpanLog>);

impl Drop for Capturing {
    fn drop(&mut self) {
        CURRENT.with(|current| *current.borrow_mut() = self.0.take());
    }
}

impl SpanLog {
    /// Logs the spans this thread opens from now until the guard is dropped. Installs the
    /// process-wide subscriber on first use; panics if the process has another one.
    pub fn capture(&self) -> Capturing {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Router))
                .expect("no other global tracing subscriber in a test process");
        });
        let previous = CURRENT.with(|current| current.borrow_mut().replace(self.clone()));
        Capturing(previous)
    }

    /// The spans named `name`, oldest first.
    pub fn named(&self, name: &str) -> Vec<SeenSpan> {
        let log = self.0.lock().unwrap();
        log.iter().filter(|s| s.name == name).cloned().collect()
    }

    /// The last span named `name`; panics if there is none.
    pub fn last(&self, name: &str) -> SeenSpan {
        let all = self.named(name);
        let names: Vec<String> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.name.clone())
            .collect();
        all.last()
            .cloned()
            .unwrap_or_else(|| panic!("no span {name}; saw {names:?}"))
    }
}

fn field<'a>(span: &'a SeenSpan, name: &str) -> &'a str {
    span.fields.get(name).map_or_else(
        || panic!("{} has no field {name}: {span:?}", span.name),
        String::as_str,
    )
}

/// A save that writes a snapshot, a load, a snapshot read and a refused append, each in its
/// store span with the backend's name, the aggregate type and id and the version; the store
/// spans nest in the repository's spans, and a failed call records its error.
pub async fn store_calls_are_traced<H: RepositoryHarness>(h: &H) {
    let rig = Rig::<H>::open(h, 1).await;
    let backend = rig.stores().name();
    if rig.native.is_some() {
        assert_ne!(backend, "custom", "a backend names itself");
    }
    let repo = rig.repo::<AccountV1>(Threshold(2), SnapshotMode::Sync);
    let log = SpanLog::default();
    let _capturing = log.capture();
    let id = &new_id();
    let mut root = repo.create_new(id);
    let opened = AccountEvent::Opened {
        owner: "ada".into(),
    };
    commit(
        &repo,
        &mut root,
        [opened, AccountEvent::Deposited { amount: 5 }],
    )
    .await;
    let loaded = repo.load(id).await.expect("load");
    assert_eq!(loaded.version(), 2);

    let id_text = id.to_string();
    let commit_span = log.last("snap.backend.commit");
    assert_eq!(commit_span.parent.as_deref(), Some("snap.repo.save"));
    for (name, value) in [
        ("backend", backend),
        ("aggregate_type", "Account"),
        ("aggregate_id", id_text.as_str()),
        ("expected_version", "0"),
        ("events", "2"),
        ("version", "2"),
        ("snapshot", "written"),
    ] {
        assert_eq!(field(&commit_span, name), value, "commit span field {name}");
    }
    let load_span = log.last("snap.backend.load");
    assert_eq!(load_span.parent.as_deref(), Some("snap.repo.load"));
    for (name, value) in [
        ("backend", backend),
        ("aggregate_type", "Account"),
        ("aggregate_id", id_text.as_str()),
        ("version", "2"),
    ] {
        assert_eq!(field(&load_span, name), value, "load span field {name}");
    }

    let snapshots = repo.snapshot_store().expect("a snapshot store");
    snapshots.get_snapshot(id, "Account").await.expect("read");
    let get = log.last("snap.snapshot.get");
    assert_eq!(
        (field(&get, "backend"), field(&get, "version")),
        (backend, "2")
    );
    assert!(
        snapshots
            .snapshot_exists(id, "Account")
            .await
            .expect("exists")
    );
    assert_eq!(
        field(&log.last("snap.snapshot.exists"), "aggregate_id"),
        id_text
    );

    let refused = repo
        .event_store()
        .append(
            id,
            "Account",
            1,
            vec![NewEvent::new("Deposited", serde_json::json!({}))],
        )
        .await;
    assert!(refused.is_err(), "a stale expected version is a conflict");
    let append = log.last("snap.events.append");
    assert_eq!(field(&append, "expected_version"), "1");
    assert!(
        !field(&append, "error").is_empty(),
        "the failed call records its error"
    );
    assert!(
        !append.fields.contains_key("version"),
        "no version for a refused append: {append:?}"
    );
}
