//! The servers that database tests reach, and whether they must: a test that finds no server
//! is skipped loudly, unless `SNAP_REQUIRE_POSTGRES=1` / `SNAP_REQUIRE_NATS=1` (as in CI) make
//! that a failure. Only loopback addresses are probed by default.

#![allow(clippy::print_stderr, reason = "a skipped test says so")]

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// `DATABASE_URL`, or the local test server `postgres://postgres@127.0.0.1:5432/test`.
pub fn postgres_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The local NATS server with JetStream, `nats://127.0.0.1:4222`.
pub const NATS_URL: &str = "nats://127.0.0.1:4222";

fn answers(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .is_ok()
}

fn required(variable: &str) -> bool {
    std::env::var(variable).is_ok_and(|v| v == "1")
}

/// Whether to run a PostgreSQL test: with `DATABASE_URL` set, always (a wrong URL then fails
/// the test loudly); otherwise when the local server answers. Panics when it does not and
/// `SNAP_REQUIRE_POSTGRES=1`.
pub fn postgres_available() -> bool {
    let available = std::env::var("DATABASE_URL").is_ok() || answers(5432);
    assert!(
        available || !required("SNAP_REQUIRE_POSTGRES"),
        "SNAP_REQUIRE_POSTGRES=1 but no PostgreSQL server answers at 127.0.0.1:5432"
    );
    if !available {
        eprintln!("SKIPPED: no PostgreSQL server at 127.0.0.1:5432");
    }
    available
}

/// Whether to run a NATS test: when the local server answers. Panics when it does not and
/// `SNAP_REQUIRE_NATS=1`.
pub fn nats_available() -> bool {
    let available = answers(4222);
    assert!(
        available || !required("SNAP_REQUIRE_NATS"),
        "SNAP_REQUIRE_NATS=1 but no NATS server answers at 127.0.0.1:4222"
    );
    if !available {
        eprintln!("SKIPPED: no NATS server at 127.0.0.1:4222");
    }
    available
}
