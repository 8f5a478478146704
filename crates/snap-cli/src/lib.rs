//! The snap-es operator commands, for the standalone `snap-es` tool and for an application's
//! own binary (through the facade: `snap_es::admin`, feature `cli`).
//!
//! The standalone tool knows no aggregate code: it can `migrate`, print the `schema`, show
//! `stats`, `prune`, `inspect` a snapshot and check `health`. The jobs that replay events
//! need the application's `apply`: register the aggregate types (and deciders) with an
//! [`Admin`] and its command tree adds `rebuild`, `verify`, and the replay diff of `inspect`.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use snap_cli::Admin;
//! use snap_core::Aggregate;
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Counter { value: i64 }
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! enum CounterEvent { Added(i64) }
//!
//! impl Aggregate for Counter {
//!     const TYPE: &'static str = "Counter";
//!     type Event = CounterEvent;
//!     fn apply(&mut self, event: &CounterEvent) {
//!         match event { CounterEvent::Added(n) => self.value += n }
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     // `counter-ops rebuild --database-url sqlite://app.db --type Counter`, and the rest.
//!     Admin::new("counter-ops").aggregate::<Counter>().main()
//! }
//! ```
//!
//! To mount the commands under a subcommand of an application's own clap tree, add
//! [`Admin::command`] and hand its matches to [`Admin::run`].
//!
//! Exit status: 0 when done; 1 when `verify` or `inspect` found a snapshot that differs from
//! a replay, or `health` found a threshold passed; 2 with one line on standard error for a
//! bad argument, a bad URL, an unknown type or id, an unreachable database, a database
//! without the snap-es schema, or a failure; 130 when Ctrl-C stopped a job (what was done is
//! reported). No message shows a password: a URL is shown with its password as `***`, and a
//! password given on the command line is replaced by `***` wherever a message would repeat
//! it. The JSON of `--json` is described in the operations guide (`docs/operations.md`).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool reports on its terminal"
)]

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "nats")))]
compile_error!("snap-cli needs at least one backend feature: sqlite, postgres or nats");

mod args;
mod commands;
mod diff;
mod health;
mod inspect;
mod jobs;
mod open;
mod progress;
mod redact;
mod registry;
mod show;

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory as _, FromArgMatches as _};
use snap_core::{Aggregate, Decider};
use snap_repo::{DeciderRepositoryBuilder, RepositoryBuilder};

/// The clap version [`Admin::command`] builds with, to mount it in an application's tree.
pub use clap;

use crate::args::Cli;
use crate::open::Failure;
use crate::redact::{scrub, url_in_argument};
use crate::registry::{AggregateKind, DeciderKind, Kind};

/// The operator commands, with the aggregate types of an application.
///
/// Built once at start-up; [`main`](Self::main) runs it as a program,
/// [`command`](Self::command) and [`run`](Self::run) mount it in another clap tree.
pub struct Admin {
    name: String,
    kinds: BTreeMap<&'static str, Arc<dyn Kind>>,
    /// Types registered twice: reported by every command that would use the registry.
    twice: Vec<&'static str>,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("name", &self.name)
            .field("types", &self.kinds.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// Commands named `name` (the binary's name, shown in help and messages).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kinds: BTreeMap::new(),
            twice: Vec::new(),
        }
    }

    fn register(mut self, kind: Arc<dyn Kind>) -> Self {
        let name = kind.type_name();
        if self.kinds.insert(name, kind).is_some() {
            self.twice.push(name);
        }
        self
    }

    /// Registers the aggregate type `A` with a repository configured by default (the serde
    /// codec, no schema migrations).
    #[must_use]
    pub fn aggregate<A: Aggregate>(self) -> Self {
        self.aggregate_with::<A>(|builder| builder)
    }

    /// Registers the aggregate type `A`, its repository configured by `configure` as the
    /// application configures it (codec, migration chain): rebuild and verify must read
    /// snapshots the way loads do. Strategies and modes do not matter here.
    #[must_use]
    pub fn aggregate_with<A: Aggregate>(
        self,
        configure: impl Fn(RepositoryBuilder<A>) -> RepositoryBuilder<A> + Send + Sync + 'static,
    ) -> Self {
        self.register(Arc::new(AggregateKind::<A> {
            configure: Box::new(configure),
            marker: PhantomData,
        }))
    }

    /// Registers the decider `D` with a repository configured by default.
    #[must_use]
    pub fn decider<D: Decider>(self) -> Self {
        self.decider_with::<D>(|builder| builder)
    }

    /// Registers the decider `D`, its repository configured by `configure`.
    #[must_use]
    pub fn decider_with<D: Decider>(
        self,
        configure: impl Fn(DeciderRepositoryBuilder<D>) -> DeciderRepositoryBuilder<D>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.register(Arc::new(DeciderKind::<D> {
            configure: Box::new(configure),
            marker: PhantomData,
        }))
    }

    /// The registered aggregate type names, in order.
    pub fn types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }

    /// The command tree, named as given to [`new`](Self::new): mount it with
    /// `clap::Command::subcommand` and pass what it matched to [`run`](Self::run).
    pub fn command(&self) -> clap::Command {
        let types = if self.kinds.is_empty() {
            "No aggregate types are registered: rebuild and verify need an application's binary."
                .to_owned()
        } else {
            format!(
                "Aggregate types: {}.",
                self.types().collect::<Vec<_>>().join(", ")
            )
        };
        Cli::command()
            .name(self.name.clone())
            .bin_name(self.name.clone())
            .after_help(types)
    }

    /// Runs the command `matches` holds (matched by [`command`](Self::command), or by the
    /// subcommand it was mounted as) and returns its exit status; results go to standard
    /// output, progress and the one-line failures to standard error.
    pub async fn run(&self, matches: &clap::ArgMatches) -> ExitCode {
        let urls = urls_in(matches);
        let cli = match Cli::from_arg_matches(matches) {
            Ok(cli) => cli,
            Err(error) => return self.refuse(&error, &urls),
        };
        match commands::run(self, cli).await {
            Ok(status) => ExitCode::from(status),
            Err(Failure(line)) => {
                eprintln!("{}: {}", self.name, scrub(&line, &urls));
                ExitCode::from(2)
            }
        }
    }

    /// Parses the process's arguments and runs the command on a runtime of its own: the whole
    /// `main` of an operator binary.
    pub fn main(&self) -> ExitCode {
        let matches = match self.matches(self.command()) {
            Ok(matches) => matches,
            Err(status) => return status,
        };
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                eprintln!("{}: cannot start a runtime: {e}", self.name);
                return ExitCode::from(2);
            }
        };
        runtime.block_on(self.run(&matches))
    }

    /// Parses the process's arguments with `command` (an application's tree with this one
    /// mounted, or [`command`](Self::command) itself) the way these commands refuse bad
    /// input: one line on standard error, passwords hidden, exit status 2 (`--help` and
    /// `--version` print and exit 0). `Err` holds the status to exit with.
    pub fn matches(&self, command: clap::Command) -> Result<clap::ArgMatches, ExitCode> {
        // The URLs on the command line, whose passwords no message may show.
        let urls: Vec<String> = std::env::args_os()
            .skip(1)
            .filter_map(|argument| url_in_argument(&argument.to_string_lossy()).map(str::to_owned))
            .collect();
        command
            .try_get_matches()
            .map_err(|error| self.refuse(&error, &urls))
    }

    /// clap's refusal as one line (or its help and version text, with status 0).
    fn refuse(&self, error: &clap::Error, urls: &[String]) -> ExitCode {
        if !error.use_stderr() {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        if error.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            // No command given: the help, which holds no argument, and status 2.
            let _ = error.print();
            return ExitCode::from(2);
        }
        // clap's message, on one line: the error and, after a colon, what it names.
        let rendered = error.to_string();
        let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
        let mut line = lines
            .next()
            .unwrap_or("bad arguments")
            .trim_start_matches("error: ")
            .to_owned();
        if line.ends_with(':')
            && let Some(detail) = lines.next()
        {
            line = format!("{line} {detail}");
        }
        eprintln!(
            "{name}: {} (see `{name} --help`)",
            scrub(&line, urls),
            name = self.name
        );
        ExitCode::from(2)
    }

    /// The registered type `name`, or the line saying which ones are.
    fn kind(&self, name: &str) -> Result<&Arc<dyn Kind>, Failure> {
        if let Some(twice) = self.twice.first() {
            return Err(open::fail(format!(
                "aggregate type {twice:?} is registered twice in this binary"
            )));
        }
        self.kinds.get(name).ok_or_else(|| {
            if self.kinds.is_empty() {
                open::fail(format!(
                    "unknown aggregate type {name:?}: {} registers no aggregate types (run this \
                     from the application's binary, which registers them)",
                    self.name
                ))
            } else {
                open::fail(format!(
                    "unknown aggregate type {name:?}: this binary registers {}",
                    self.types().collect::<Vec<_>>().join(", ")
                ))
            }
        })
    }
}

/// `message` fit to print: each of `urls` shown with its password as `***`, and their
/// passwords (as written and percent-decoded) replaced by `***` wherever else they appear. What
/// every operator command does to its messages, for an application's own commands beside them.
pub fn hide_passwords(message: &str, urls: &[String]) -> String {
    scrub(message, urls)
}

/// The URLs among the matched arguments (their passwords are hidden in every message).
fn urls_in(matches: &clap::ArgMatches) -> Vec<String> {
    let mut urls = Vec::new();
    let mut current = Some(matches);
    while let Some(matches) = current {
        if let Ok(Some(url)) = matches.try_get_one::<String>("database_url") {
            urls.push(url.clone());
        }
        current = matches.subcommand().map(|(_, sub)| sub);
    }
    urls
}
