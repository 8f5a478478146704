//! `inspect`: one aggregate's snapshot, stream head and lag, and how the snapshot differs from
//! a replay when its type is registered.

use std::fmt::Write as _;

use serde_json::{Value, json};
use snap_core::{AggregateId, Snapshot, SnapshotError};
use snap_repo::SnapshotCheck;

use crate::Admin;
use crate::args::Target;
use crate::commands::parse_id;
use crate::diff::{Difference, diff};
use crate::open::{Failure, fail, open};
use crate::show::{rfc3339, when};

pub(crate) async fn inspect(
    admin: &Admin,
    target: &Target,
    ty: &str,
    id_text: &str,
    json: bool,
) -> Result<u8, Failure> {
    let id = parse_id(id_text)?;
    snap_core::validate::admin_type("operator", Some(ty))?;
    let database = open(target, false).await?;
    let backend = database.backend();
    let head = backend.event_store().current_version(&id, ty).await?;
    let stored = database.snapshots().get_snapshot(&id, ty).await;
    let (snapshot, unreadable) = match stored {
        Ok(snapshot) => (snapshot, None),
        Err(SnapshotError::Deserialization { .. }) => {
            (None, Some("the stored snapshot cannot be read"))
        }
        Err(e) => return Err(e.into()),
    };
    if head == 0 && snapshot.is_none() && unreadable.is_none() {
        return Err(fail(format!(
            "no events and no snapshot for aggregate {id} of type {ty}"
        )));
    }
    let check = match admin.kinds.get(ty) {
        Some(kind) => Some(kind.open(backend)?.verify(id.clone()).await?),
        None => None,
    };
    let differences = match &check {
        Some(SnapshotCheck::Mismatch {
            snapshot, replayed, ..
        }) => diff(snapshot, replayed),
        _ => Vec::new(),
    };
    let (result, reason) = match &check {
        None => ("not_registered", None),
        Some(SnapshotCheck::Matches { .. }) => ("matches", None),
        Some(SnapshotCheck::Mismatch { .. }) => ("differs", None),
        Some(SnapshotCheck::Unusable { reason }) => ("unusable", Some(reason.as_str())),
        Some(_) => ("no_snapshot", None),
    };
    let found = Found {
        id: &id,
        ty,
        head,
        snapshot: snapshot.as_ref(),
        unreadable,
        result,
        reason,
        differences: &differences,
    };
    if json {
        println!("{}", found.json());
    } else {
        print!("{}", found.lines());
    }
    Ok(u8::from(result == "differs"))
}

/// What `inspect` found.
struct Found<'a> {
    id: &'a AggregateId,
    ty: &'a str,
    head: u64,
    snapshot: Option<&'a Snapshot>,
    unreadable: Option<&'static str>,
    result: &'static str,
    reason: Option<&'static str>,
    differences: &'a [Difference],
}

impl Found<'_> {
    fn version(&self) -> u64 {
        self.snapshot.map_or(0, |s| s.version)
    }

    fn json(&self) -> Value {
        let shown = self.snapshot.map(|s| {
            json!({
                "version": s.version,
                "schema_version": s.schema_version,
                "state_bytes": state_bytes(&s.state),
                "created_at": rfc3339(s.created_at),
                "updated_at": rfc3339(s.updated_at),
            })
        });
        json!({
            "aggregate_type": self.ty,
            "aggregate_id": self.id,
            "head": self.head,
            "snapshot": shown,
            "unreadable": self.unreadable,
            "behind": self.head.saturating_sub(self.version()),
            "check": {
                "result": self.result,
                "reason": self.reason,
                "differences": self.differences,
            },
        })
    }

    fn lines(&self) -> String {
        let now = time::OffsetDateTime::now_utc();
        let version = self.version();
        let mut out = format!(
            "aggregate  {} ({})\nevents     {}\n",
            self.id, self.ty, self.head
        );
        match (self.snapshot, self.unreadable) {
            (Some(s), _) => {
                let _ = writeln!(
                    out,
                    "snapshot   version {}, schema {}, {} bytes of state",
                    s.version,
                    s.schema_version,
                    state_bytes(&s.state)
                );
                let _ = writeln!(out, "written    {}", when(s.updated_at, now));
                let _ = writeln!(out, "first      {}", when(s.created_at, now));
            }
            (None, Some(why)) => {
                let _ = writeln!(out, "snapshot   {why}");
            }
            (None, None) => out.push_str("snapshot   none\n"),
        }
        let _ = writeln!(
            out,
            "behind     {} events (what a load replays)",
            self.head.saturating_sub(version)
        );
        let line = match self.result {
            "not_registered" => "not made: the type is not registered in this binary".to_owned(),
            "matches" => format!("matches a replay to version {version}"),
            "differs" => format!("DIFFERS from a replay to version {version}:"),
            "unusable" => format!(
                "unusable ({}): loads replay in full",
                self.reason.unwrap_or_default()
            ),
            _ => "no snapshot to compare".to_owned(),
        };
        let _ = writeln!(out, "check      {line}");
        for difference in self.differences {
            let _ = writeln!(out, "  {difference}");
        }
        out
    }
}

/// The size of a state as its JSON text.
fn state_bytes(state: &Value) -> usize {
    serde_json::to_vec(state).map_or(0, |bytes| bytes.len())
}
