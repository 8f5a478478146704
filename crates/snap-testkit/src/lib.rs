//! The conformance suite every snap-es backend runs.
//!
//! A backend proves it keeps the shared store contract (see the trait docs of
//! [`SnapshotStore`] and [`EventStore`], and `docs/conformance.md`) by implementing a
//! [`SnapshotStoreHarness`] and an [`EventStoreHarness`] and calling the two macros in an
//! integration test:
//!
//! ```ignore
//! // tests/conformance.rs of a backend crate
//! struct Harness;
//!
//! impl snap_testkit::SnapshotStoreHarness for Harness {
//!     type Store = MySnapshotStore;
//!     async fn open(&self, keep_history: usize) -> MySnapshotStore {
//!         MySnapshotStore::fresh_for_test().keep_history(keep_history)
//!     }
//! }
//! impl snap_testkit::EventStoreHarness for Harness {
//!     type Store = MyEventStore;
//!     async fn open(&self) -> MyEventStore { MyEventStore::fresh_for_test() }
//! }
//!
//! snap_testkit::snapshot_store_conformance!(Harness);
//! snap_testkit::event_store_conformance!(Harness);
//! ```
//!
//! Each macro expands to one `#[test]` per case, named after the case (the store cases run
//! again with string ids, in the modules `snapshot_store_named_ids` and
//! `event_store_named_ids`; see [`fixtures::new_id`]), plus a model-based
//! property test that runs random operation sequences against the store and a plain
//! `BTreeMap` model. The harness expression is evaluated once per test, and every
//! [`open`](SnapshotStoreHarness::open) must return an isolated, empty store (a fresh
//! database, schema or file), so tests can run in parallel.
//!
//! The cases are public functions in [`snapshot_store`] and [`event_store`], so a backend
//! can also call one directly, e.g. with a differently configured store.
//!
//! Set `SNAP_PROPTEST_CASES` to change how many random sequences the property tests try
//! (default 64).

#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    reason = "a conformance case reports a broken contract by panicking, like any test"
)]

use std::future::Future;

use snap_core::{EventStore, SnapshotStore};

pub mod accounts;
pub mod admin;
pub mod backend;
pub mod decider;
pub mod event_store;
pub mod faults;
pub mod fixtures;
pub mod hardening;
pub mod history;
mod hostile;
mod invariant;
mod model;
mod native;
pub mod repository;
pub mod services;
pub mod snapshot_store;
pub mod spans;
pub mod upgrade;

pub use hostile::{event_store_survives_hostile_input, snapshot_store_survives_hostile_input};
pub use invariant::{
    decider_core_matches_full_replay, decider_repository_matches_full_replay,
    repository_matches_full_replay,
};
pub use model::{event_store_matches_model, snapshot_store_matches_model};
pub use native::{FaultyBackend, Native};
#[doc(hidden)]
pub use snap_core;

/// How many times longer the fault and load cases run: `SNAP_SOAK` (default 1). `cargo xtask
/// soak` sets it to 10.
pub fn soak_factor() -> usize {
    std::env::var("SNAP_SOAK").map_or(1, |v| {
        v.parse::<usize>()
            .unwrap_or_else(|_| panic!("SNAP_SOAK must be a whole number, got {v:?}"))
            .max(1)
    })
}

/// Opens fresh snapshot stores for the conformance suite.
pub trait SnapshotStoreHarness: Send + Sync {
    /// The store under test.
    type Store: SnapshotStore;

    /// An empty store that no other test sees, keeping the `keep_history` highest versions per
    /// aggregate (1 is the store's default retention).
    fn open(&self, keep_history: usize) -> impl Future<Output = Self::Store> + Send;

    /// Why the backend cannot be tested here (say, no database server), or `None`. The cases
    /// then pass after printing the reason; a harness that must not be skipped panics instead.
    fn unavailable(&self) -> Option<String> {
        None
    }
    /// The most bytes one write may carry, if the backend has such a limit (a NATS server's
    /// `max_payload`). The cases then expect a larger write to be refused with
    /// `InvalidInput::TooLong` and nothing written, instead of stored. `None` (the default):
    /// no limit below the suite's largest value (about 2 MiB).
    fn max_payload(&self) -> Option<usize> {
        None
    }
}

/// Opens fresh event stores for the conformance suite.
pub trait EventStoreHarness: Send + Sync {
    /// The store under test.
    type Store: EventStore;

    /// An empty store that no other test sees.
    fn open(&self) -> impl Future<Output = Self::Store> + Send;

    /// Why the backend cannot be tested here, or `None`; see
    /// [`SnapshotStoreHarness::unavailable`].
    fn unavailable(&self) -> Option<String> {
        None
    }
    /// The most bytes one append may carry, if the backend has such a limit; see
    /// [`SnapshotStoreHarness::max_payload`].
    fn max_payload(&self) -> Option<usize> {
        None
    }
}

/// Opens fresh pairs of stores for the repository cases.
pub trait RepositoryHarness: Send + Sync {
    /// The event store under test.
    type Events: EventStore;
    /// The snapshot store under test.
    type Snapshots: SnapshotStore;

    /// An empty event store and an empty snapshot store keeping `keep_history` snapshots per
    /// aggregate, seen by no other test.
    fn open(
        &self,
        keep_history: usize,
    ) -> impl Future<Output = (Self::Events, Self::Snapshots)> + Send;

    /// The backend's own [`Backend`](snap_core::Backend) on the data of `stores` (as `open`
    /// returned them), keeping `keep_history` snapshots per aggregate; `None` (the default)
    /// when the backend has none. [`Native`] runs the cases on it.
    fn native(
        &self,
        stores: &(Self::Events, Self::Snapshots),
        keep_history: usize,
    ) -> Option<std::sync::Arc<snap_core::DynBackend>> {
        let _ = (stores, keep_history);
        None
    }

    /// Whether the cases run on [`native`](Self::native) rather than on the pair of stores;
    /// [`Native`] says yes.
    fn use_native(&self) -> bool {
        false
    }

    /// Why the backend cannot be tested here, or `None`; see
    /// [`SnapshotStoreHarness::unavailable`].
    fn unavailable(&self) -> Option<String> {
        None
    }
}

#[doc(hidden)]
pub fn __skip(case: &str, unavailable: Option<String>) -> Option<String> {
    let reason = unavailable?;
    #[allow(clippy::print_stderr, reason = "a skipped test says so loudly")]
    {
        eprintln!("SKIPPED {case}: {reason}");
    }
    Some(reason)
}

/// Runs a future on a fresh two-worker runtime, as every case expects: concurrency cases need
/// real parallelism.
pub fn run<F: Future<Output = ()>>(future: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the test")
        .block_on(future);
}

#[doc(hidden)]
#[macro_export]
macro_rules! __async_cases {
    ($module:ident, $harness_trait:ident, $harness:expr; $($case:ident),* $(,)?) => {
        $crate::__async_cases!(@ids Uuid, $module, $harness_trait, $harness; $($case),*);
    };
    (@ids $kind:ident, $module:ident, $harness_trait:ident, $harness:expr; $($case:ident),* $(,)?) => {$(
        #[test]
        fn $case() {
            $crate::fixtures::with_id_kind($crate::fixtures::IdKind::$kind, || $crate::run(async {
                let harness = $harness;
                if $crate::__skip(stringify!($case), $crate::$harness_trait::unavailable(&harness)).is_some() {
                    return;
                }
                $crate::$module::$case(&harness).await;
            }));
        }
    )*};
}

/// Store cases, run once with UUID ids and again, in the module `$named`, with string ids.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_cases {
    ($named:ident, $module:ident, $harness_trait:ident, $harness:expr; $($case:ident),* $(,)?) => {
        $crate::__async_cases!(@ids Uuid, $module, $harness_trait, $harness; $($case),*);

        mod $named {
            #[allow(unused_imports, reason = "the harness expression may name items of the parent")]
            use super::*;
            $crate::__async_cases!(@ids Named, $module, $harness_trait, $harness; $($case),*);
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __async_model_cases {
    ($module:ident, $harness_trait:ident, $harness:expr, $model:ty; $($case:ident),* $(,)?) => {$(
        #[test]
        fn $case() {
            $crate::run(async {
                let harness = $harness;
                if $crate::__skip(stringify!($case), $crate::$harness_trait::unavailable(&harness)).is_some() {
                    return;
                }
                $crate::$module::$case::<_, $model>(&harness).await;
            });
        }
    )*};
}

/// The repository cases about one account model, run for the aggregate and again, in a
/// `through_decider` module, for the decider repository's `Decided<AccountDecider>`.
#[doc(hidden)]
#[macro_export]
macro_rules! __repository_model_cases {
    ($harness:expr; $($case:ident),* $(,)?) => {
        $crate::__async_model_cases!(repository, RepositoryHarness, $harness,
            $crate::accounts::AccountV1; $($case),*);

        mod through_decider {
            use super::*;
            $crate::__async_model_cases!(repository, RepositoryHarness, $harness,
                $crate::snap_core::Decided<$crate::accounts::AccountDecider>; $($case),*);
        }
    };
}

/// Expands to one `#[test]` per snapshot store case, plus the model-based property test.
/// The argument is an expression that builds a [`SnapshotStoreHarness`].
#[macro_export]
macro_rules! snapshot_store_conformance {
    ($harness:expr) => {
        $crate::__store_cases!(snapshot_store_named_ids, snapshot_store, SnapshotStoreHarness, $harness;
            empty_store_has_nothing,
            round_trip_is_exact,
            timestamps_are_normalised,
            a_replacement_keeps_when_the_aggregate_was_first_snapshotted,
            newer_version_replaces_older,
            equal_version_replaces,
            lower_version_is_ignored,
            ids_are_scoped_by_type,
            delete_reports_whether_it_existed,
            delete_by_type_counts_and_isolates,
            delete_by_type_schema_bound_is_strict,
            delete_by_type_without_match_is_zero,
            edge_case_states_round_trip,
            large_floats_stay_floats,
            stored_copies_are_independent,
            retention_keeps_the_highest_versions,
            retention_never_takes_older_versions,
            retention_after_deleting_the_latest_by_schema,
            version_and_schema_bounds_round_trip,
            hostile_type_names_round_trip,
            many_aggregates_stay_apart,
            concurrent_saves_keep_the_highest,
            delete_by_type_alongside_saves,
            invalid_snapshots_are_rejected,
            invalid_lookups_are_rejected,
        );

        #[test]
        fn snapshot_store_matches_model() {
            $crate::snapshot_store_matches_model(&$harness);
        }

        #[test]
        fn snapshot_store_survives_hostile_input() {
            $crate::snapshot_store_survives_hostile_input(&$harness);
        }
    };
}

/// Expands to one `#[test]` per repository case, plus the property test of the repository's
/// promise. The argument is an expression that builds a [`RepositoryHarness`].
#[macro_export]
macro_rules! repository_conformance {
    ($harness:expr) => {
        // Cases about one aggregate model: the account as an aggregate, and again as the
        // decider repository's `Decided<AccountDecider>`, through the same core.
        $crate::__repository_model_cases!($harness;
            corrupt_snapshot_falls_back_to_replay,
            snapshot_store_outage_falls_back_to_replay,
            failing_snapshot_write_keeps_the_save,
            missing_aggregate_is_not_found,
            snapshot_ahead_of_the_stream_is_ignored,
            archived_history_is_an_error,
            slow_snapshot_reads_time_out_into_replay,
            flaky_snapshot_store_never_breaks_loads_or_saves,
            concurrent_commands_lose_nothing,
            current_schema_needs_no_migration,
            undeserialisable_state_replays,
            load_reads_only_events_after_the_snapshot,
            threshold_snapshots_at_multiples,
            one_big_save_snapshots_once,
            crossing_a_boundary_snapshots_at_the_new_version,
            empty_save_writes_nothing,
            manual_mode_and_create_snapshot,
            conflict_writes_nothing,
            load_at_gives_historical_state,
            discarded_aggregate_is_not_found,
            background_save_does_not_wait_for_the_write,
            await_pending_waits_for_every_aggregate,
            background_failures_are_counted_not_returned,
            background_captures_state_when_scheduled,
            background_coalesces_rapid_saves,
            shutdown_and_drop_with_pending_writes,
        );

        // Cases that need several schema versions of the aggregate.
        $crate::__async_cases!(repository, RepositoryHarness, $harness;
            invalid_configuration_is_refused,
            migrated_snapshot_is_used,
            unused_migrated_snapshot_is_not_stored,
            incomplete_path_replays_then_snapshots_at_current_schema,
            newer_snapshot_schema_is_never_downgraded,
            failing_migration_replays,
            verify_snapshot_detects_drift,
            rebuild_snapshots_after_a_schema_bump,
        );

        $crate::__async_cases!(decider, RepositoryHarness, $harness;
            decider_rejected_command_appends_nothing,
            decider_concurrent_handles_both_succeed,
            decider_command_to_a_closed_account_is_refused_at_once,
        );

        $crate::__async_cases!(backend, RepositoryHarness, $harness;
            a_load_during_appends_equals_a_replay_at_its_version,
            a_failing_snapshot_in_the_commit_keeps_the_events,
            a_load_hands_the_events_as_stored,
            a_stream_of_large_saves_loads_whole,
        );

        $crate::__async_cases!(history, RepositoryHarness, $harness;
            the_eventsourcing_walk_reads_every_version,
            a_load_below_the_only_snapshot_is_counted,
        );

        $crate::__async_cases!(spans, RepositoryHarness, $harness;
            store_calls_are_traced,
        );

        $crate::__async_cases!(hardening, RepositoryHarness, $harness;
            a_snapshot_of_lossy_events_equals_a_full_replay,
            an_event_that_cannot_be_read_back_is_refused,
            a_failed_background_write_is_not_counted_as_a_snapshot,
            a_snapshot_older_than_the_stored_one_is_refused,
        );

        #[test]
        fn repository_matches_full_replay() {
            $crate::repository_matches_full_replay(&$harness);
        }

        #[test]
        fn decider_core_matches_full_replay() {
            $crate::decider_core_matches_full_replay(&$harness);
        }

        #[test]
        fn decider_repository_matches_full_replay() {
            $crate::decider_repository_matches_full_replay(&$harness);
        }
    };
}

/// Expands to one `#[test]` per event store case, plus the model-based property test.
/// The argument is an expression that builds an [`EventStoreHarness`].
#[macro_export]
macro_rules! event_store_conformance {
    ($harness:expr) => {
        $crate::__store_cases!(event_store_named_ids, event_store, EventStoreHarness, $harness;
            empty_stream_has_nothing,
            append_and_load_round_trip,
            load_ranges_are_half_open,
            expected_version_must_match,
            appends_continue_the_stream,
            empty_append_only_checks_version,
            streams_are_scoped_by_type_and_id,
            append_is_atomic_on_bad_event,
            invalid_input_is_rejected,
            payloads_round_trip,
            large_floats_in_events_stay_floats,
            large_append_is_one_batch,
            load_batches_match_load,
            list_aggregate_ids_pages_through_every_stream,
            concurrent_appends_have_one_winner,
            contended_appends_lose_nothing,
            hostile_names_round_trip,
        );

        #[test]
        fn event_store_matches_model() {
            $crate::event_store_matches_model(&$harness);
        }

        #[test]
        fn event_store_survives_hostile_input() {
            $crate::event_store_survives_hostile_input(&$harness);
        }
    };
}
