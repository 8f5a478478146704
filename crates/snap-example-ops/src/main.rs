//! `bank-ops`: the example application's operator binary. `bank-ops seed` fills a database
//! (SQLite, PostgreSQL or NATS JetStream) with accounts and wallets; `bank-ops snapshots ...` is the snap-es operator command tree
//! mounted under a subcommand of the application's own clap tree.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool"
)]

use std::process::ExitCode;

use snap_es::admin::clap::{Arg, ArgMatches, Command, value_parser};
use snap_es::admin::hide_passwords;
use snap_es::prelude::*;
use snap_es::{nats::NatsOptions, postgres::PostgresOptions, sqlite::SqliteOptions};
use snap_example_ops::{Account, AccountEvent, Wallet, WalletCommand, admin};

fn cli(snapshots: Command) -> Command {
    Command::new("bank-ops")
        .about("The example bank's operator binary.")
        .subcommand_required(true)
        .subcommand(
            Command::new("seed")
                .about("Open ACCOUNTS accounts with EVENTS events each, and 10 wallets.")
                .arg(Arg::new("database-url").long("database-url").required(true))
                .arg(
                    Arg::new("schema")
                        .long("schema")
                        .default_value("public")
                        .help("The PostgreSQL schema."),
                )
                .arg(
                    Arg::new("prefix")
                        .long("prefix")
                        .default_value("snap")
                        .help("The NATS streams' prefix."),
                )
                .arg(
                    Arg::new("accounts")
                        .long("accounts")
                        .default_value("1000")
                        .value_parser(value_parser!(u32)),
                )
                .arg(
                    Arg::new("events")
                        .long("events")
                        .default_value("20")
                        .value_parser(value_parser!(u32).range(1..)),
                ),
        )
        .subcommand(snapshots.name("snapshots"))
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Accounts `account-00000` .. and wallets `wallet-0` .., one save each, no snapshots.
async fn seed(matches: &ArgMatches) -> Result<(), Error> {
    let url = matches
        .get_one::<String>("database-url")
        .map_or("", String::as_str);
    let accounts = matches.get_one::<u32>("accounts").copied().unwrap_or(0);
    let events = matches.get_one::<u32>("events").copied().unwrap_or(1);
    let schema = matches
        .get_one::<String>("schema")
        .map_or("public", String::as_str);
    let prefix = matches
        .get_one::<String>("prefix")
        .map_or("snap", String::as_str);
    let backend: std::sync::Arc<dyn Backend> = if let Some(path) = url.strip_prefix("sqlite://") {
        std::sync::Arc::new(SqliteOptions::file(path).open().await?)
    } else if url.starts_with("nats://") {
        std::sync::Arc::new(NatsOptions::new(url).prefix(prefix).connect().await?)
    } else {
        std::sync::Arc::new(PostgresOptions::new(url).schema(schema).connect().await?)
    };
    let repo = AggregateRepository::<Account>::builder(backend.clone())
        .strategy(Never)
        .build()?;
    for n in 0..accounts {
        let mut account = repo.create_new(AggregateId::parse(&format!("account-{n:05}"))?);
        account.record(AccountEvent::Opened {
            owner: format!("owner {n}"),
        });
        for cents in 1..events {
            account.record(AccountEvent::Deposited {
                cents: i64::from(cents),
            });
        }
        repo.save(&mut account).await?;
    }
    let wallets = DeciderRepository::<Wallet>::builder(backend)
        .strategy(Never)
        .build()?;
    for n in 0..10 {
        let id = AggregateId::parse(&format!("wallet-{n}"))?;
        wallets.handle(id.clone(), &WalletCommand::Add(10)).await?;
        wallets.handle(id, &WalletCommand::Spend(3)).await?;
    }
    println!("seeded {accounts} accounts of {events} events and 10 wallets");
    Ok(())
}

fn main() -> ExitCode {
    let admin = admin();
    // Bad arguments are refused as the operator commands refuse them: one line, exit 2.
    let matches = match admin.matches(cli(admin.command())) {
        Ok(matches) => matches,
        Err(status) => return status,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bank-ops: cannot start a runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match matches.subcommand() {
        Some(("seed", seed_matches)) => match runtime.block_on(seed(seed_matches)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                // The operator commands' rule for every message: no password shown.
                let urls: Vec<String> = seed_matches
                    .get_one::<String>("database-url")
                    .into_iter()
                    .cloned()
                    .collect();
                eprintln!("bank-ops: seed: {}", hide_passwords(&e.to_string(), &urls));
                ExitCode::from(2)
            }
        },
        Some(("snapshots", snapshots)) => runtime.block_on(admin.run(snapshots)),
        _ => ExitCode::from(2),
    }
}
