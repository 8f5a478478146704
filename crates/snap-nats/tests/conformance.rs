//! The conformance suite against the machine's JetStream server (`nats://127.0.0.1:4222`, or
//! `NATS_URL`). Every store is a stream and a bucket of their own, deleted afterwards. With
//! `SNAP_REQUIRE_NATS=1` an unreachable server fails the run instead of skipping it.

use std::sync::{Mutex, OnceLock};

use snap_nats::{NatsDatabase, NatsEventStore, NatsOptions, NatsSnapshotStore};
use snap_testkit::{EventStoreHarness, RepositoryHarness, SnapshotStoreHarness};

fn url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// Opens fresh stores on the server and deletes them when dropped.
struct Harness {
    /// The prefixes of the streams it created.
    opened: Mutex<Vec<String>>,
    max_payload: OnceLock<usize>,
}

impl Harness {
    fn new() -> Self {
        Self {
            opened: Mutex::new(Vec::new()),
            max_payload: OnceLock::new(),
        }
    }

    async fn database(&self, keep_history: usize) -> NatsDatabase {
        let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..24]);
        let database = NatsOptions::new(url())
            .prefix(prefix.clone())
            .connect()
            .await
            .expect("a JetStream server")
            .keep_history(keep_history);
        let _ = self.max_payload.set(database.max_payload());
        self.opened
            .lock()
            .expect("the list of opened stores")
            .push(prefix);
        database
    }

    fn unreachable() -> Option<String> {
        let address = url()
            .trim_start_matches("nats://")
            .split(',')
            .next()
            .unwrap_or_default()
            .to_owned();
        match std::net::TcpStream::connect(&address) {
            Ok(_) => None,
            Err(e) if std::env::var("SNAP_REQUIRE_NATS").is_ok_and(|v| v == "1") => {
                panic!("NATS at {address} is required (SNAP_REQUIRE_NATS=1): {e}")
            }
            Err(e) => Some(format!("no NATS server at {address}: {e}")),
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let opened = std::mem::take(&mut *self.opened.lock().expect("the list of opened stores"));
        if opened.is_empty() {
            return;
        }
        // Deleting needs a runtime of its own: the harness may be dropped inside another.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the clean-up");
            // A connection of its own: the handles the tests used ran their connection on the
            // test's runtime, which no longer runs (their requests would only time out).
            runtime.block_on(async {
                for prefix in opened {
                    let database = NatsOptions::new(url())
                        .prefix(prefix)
                        .migrate(false)
                        .connect()
                        .await;
                    if let Ok(database) = database {
                        let _ = database.destroy().await;
                    }
                }
            });
        })
        .join();
    }
}

impl SnapshotStoreHarness for Harness {
    type Store = NatsSnapshotStore;

    async fn open(&self, keep_history: usize) -> NatsSnapshotStore {
        self.database(keep_history).await.snapshot_store()
    }

    fn max_payload(&self) -> Option<usize> {
        self.max_payload.get().copied()
    }

    fn unavailable(&self) -> Option<String> {
        Harness::unreachable()
    }
}

impl EventStoreHarness for Harness {
    type Store = NatsEventStore;

    async fn open(&self) -> NatsEventStore {
        self.database(1).await.event_store()
    }

    fn max_payload(&self) -> Option<usize> {
        self.max_payload.get().copied()
    }

    fn unavailable(&self) -> Option<String> {
        Harness::unreachable()
    }
}

impl RepositoryHarness for Harness {
    type Events = NatsEventStore;
    type Snapshots = NatsSnapshotStore;

    async fn open(&self, keep_history: usize) -> (NatsEventStore, NatsSnapshotStore) {
        let database = self.database(keep_history).await;
        (database.event_store(), database.snapshot_store())
    }

    /// The database handle itself, on the same streams.
    fn native(
        &self,
        (events, _): &(NatsEventStore, NatsSnapshotStore),
        keep_history: usize,
    ) -> Option<std::sync::Arc<snap_core::DynBackend>> {
        Some(std::sync::Arc::new(
            events.database().clone().keep_history(keep_history),
        ))
    }

    fn unavailable(&self) -> Option<String> {
        Harness::unreachable()
    }
}

snap_testkit::snapshot_store_conformance!(Harness::new());
snap_testkit::event_store_conformance!(Harness::new());
snap_testkit::repository_conformance!(Harness::new());

/// The repository cases on the database handle as the backend: the snapshot and the stream's
/// last save read at once, the tail from the save the snapshot notes.
mod native {
    use super::*;
    snap_testkit::repository_conformance!(snap_testkit::Native(Harness::new()));
}

/// The operator's queries (stats, lag, prune counts) on the database handle: one pass over
/// the snapshots stream, and over the last save of each subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_queries_report_stats_lag_and_prune_counts() {
    if Harness::unreachable().is_some() {
        return;
    }
    let harness = Harness::new();
    let database = harness.database(3).await;
    snap_testkit::admin::admin_reports_stats_lag_and_prune_counts(
        &database,
        &database.snapshot_store(),
        &database.event_store(),
    )
    .await;
}

/// Every harness deletes the streams it created when it is dropped, after the test's runtime
/// has ended as it does under the conformance macros (so the clean-up connects anew).
#[test]
fn a_harness_leaves_no_streams_behind() {
    if Harness::unreachable().is_some() {
        return;
    }
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    };
    let harness = Harness::new();
    let test = runtime();
    test.block_on(harness.database(1));
    drop(test);
    let prefix = harness.opened.lock().expect("the list")[0].clone();
    drop(harness);
    let reopened = runtime().block_on(
        NatsOptions::new(url())
            .prefix(prefix.clone())
            .migrate(false)
            .connect(),
    );
    assert!(reopened.is_err(), "the streams of {prefix} are still there");
}
