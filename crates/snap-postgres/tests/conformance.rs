//! The whole snap-testkit conformance suite against the PostgreSQL server, each store in a
//! fresh schema.

mod support;

use support::PgHarness;

snap_testkit::snapshot_store_conformance!(PgHarness::new());
snap_testkit::event_store_conformance!(PgHarness::new());
snap_testkit::repository_conformance!(PgHarness::new());

/// The repository cases on the database handle as the backend: one statement per load, one
/// statement (or, with history, one transaction) per commit.
mod native {
    use super::*;
    snap_testkit::repository_conformance!(snap_testkit::Native(PgHarness::new()));
}
