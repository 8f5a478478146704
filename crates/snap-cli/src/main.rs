//! `snap-es`, the standalone operator tool: apply or print the schema, see snapshot stats and
//! health, inspect a snapshot, prune old snapshots, on `sqlite://PATH` and `postgres://...`
//! databases and on NATS JetStream (`nats://HOST:PORT`, with `--prefix`).
//!
//! It knows no aggregate code, so `rebuild` and `verify` refuse every type: run them from the
//! application's own binary, which registers its types with `snap_es::admin::Admin`.

use std::process::ExitCode;

fn main() -> ExitCode {
    snap_cli::Admin::new("snap-es").main()
}
