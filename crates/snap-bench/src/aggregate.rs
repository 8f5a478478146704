//! The aggregate the benchmark replays: a small account whose snapshot is about 200 bytes of
//! JSON, the row size the floors are quoted for.

use serde::{Deserialize, Serialize};
use snap_es::{Aggregate, NewEvent};

/// An account with a few fields, so a snapshot is a realistic ~200-byte JSON object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct BenchAccount {
    owner: String,
    currency: String,
    balance: i64,
    deposits: u64,
    withdrawals: u64,
    largest: i64,
    last_reference: String,
}

/// What happens to a [`BenchAccount`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum BenchEvent {
    /// Money in.
    Deposited { amount: i64, reference: String },
    /// Money out.
    Withdrawn { amount: i64, reference: String },
}

impl Aggregate for BenchAccount {
    const TYPE: &'static str = "BenchAccount";
    type Event = BenchEvent;

    fn apply(&mut self, event: &BenchEvent) {
        match event {
            BenchEvent::Deposited { amount, reference } => {
                self.balance += amount;
                self.deposits += 1;
                self.largest = self.largest.max(*amount);
                self.last_reference.clone_from(reference);
            }
            BenchEvent::Withdrawn { amount, reference } => {
                self.balance -= amount;
                self.withdrawals += 1;
                self.last_reference.clone_from(reference);
            }
        }
    }
}

/// The state a snapshot of the benchmark stores (about 200 bytes as JSON).
pub(crate) fn sample_state() -> serde_json::Value {
    serde_json::to_value(BenchAccount {
        owner: "Ada Lovelace, Analytical Engines Ltd., 12 St James's Square".into(),
        currency: "EUR".into(),
        balance: 1_234_567,
        deposits: 99_000,
        withdrawals: 900,
        largest: 50_000,
        last_reference: "invoice 2026-11-0042".into(),
    })
    .unwrap_or_default()
}

/// A deposit numbered `n`, as a command would record it.
pub(crate) fn deposit(n: u64) -> BenchEvent {
    BenchEvent::Deposited {
        amount: i64::try_from(n % 1_000).unwrap_or(0) + 1,
        reference: format!("invoice {n}"),
    }
}

/// `count` events numbered from `first`, as the application would append them.
pub(crate) fn events(first: u64, count: u64) -> Vec<NewEvent> {
    (first..first + count)
        .map(|n| {
            let amount = i64::try_from(n % 1_000).unwrap_or(0) + 1;
            let event = if n % 10 == 0 {
                BenchEvent::Withdrawn {
                    amount,
                    reference: format!("payout {n}"),
                }
            } else {
                BenchEvent::Deposited {
                    amount,
                    reference: format!("invoice {n}"),
                }
            };
            NewEvent::from_event(&event)
                .unwrap_or_else(|_| NewEvent::new("Invalid", serde_json::json!({})))
        })
        .collect()
}
