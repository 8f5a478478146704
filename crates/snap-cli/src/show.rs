//! What operators read: tables, and times as RFC 3339 with their age.

use std::fmt::Write as _;

use snap_core::{SnapshotLag, SnapshotTypeStats};

/// A time as an operator reads it: RFC 3339 to the second, and how long ago.
pub(crate) fn when(at: time::OffsetDateTime, now: time::OffsetDateTime) -> String {
    let stamp = rfc3339(at.replace_nanosecond(0).unwrap_or(at));
    format!("{stamp} ({})", age(now - at))
}

/// A time in RFC 3339, as the JSON of every command shows it.
pub(crate) fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// `elapsed` in the largest whole unit: "12 s ago", "5 min ago", "3 h ago", "2 d ago".
pub(crate) fn age(elapsed: time::Duration) -> String {
    match u64::try_from(elapsed.whole_seconds()) {
        Ok(seconds) => format!("{} ago", span(seconds)),
        Err(_) => "in the future".to_owned(),
    }
}

/// `seconds` in the largest whole unit: "12 s", "5 min", "3 h", "2 d".
pub(crate) fn span(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3_600 => format!("{} min", seconds / 60),
        3_600..86_400 => format!("{} h", seconds / 3_600),
        _ => format!("{} d", seconds / 86_400),
    }
}

/// A table with a rule under its header and the columns `numbers` aligned right.
pub(crate) fn table(header: &[&str], rows: Vec<Vec<String>>, numbers: &[usize]) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::ASCII_HORIZONTAL_ONLY)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    for &index in numbers {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    table.to_string()
}

pub(crate) fn stats_table(stats: &[SnapshotTypeStats], lag: &[SnapshotLag]) -> String {
    let now = time::OffsetDateTime::now_utc();
    let mut out = String::new();
    if stats.is_empty() {
        out.push_str("(no snapshots)\n");
    } else {
        let rows = stats
            .iter()
            .map(|s| {
                vec![
                    s.aggregate_type.clone(),
                    s.schema_version.to_string(),
                    s.snapshots.to_string(),
                    s.total_state_bytes.to_string(),
                    s.largest_state_bytes.to_string(),
                    when(s.oldest, now),
                    when(s.newest, now),
                ]
            })
            .collect();
        let header = [
            "type",
            "schema",
            "snapshots",
            "state bytes",
            "largest",
            "oldest",
            "newest",
        ];
        let _ = writeln!(out, "{}", table(&header, rows, &[1, 2, 3, 4]));
    }
    let _ = writeln!(out, "\nfurthest behind their latest snapshot:");
    if lag.is_empty() {
        out.push_str("(no events)\n");
    } else {
        let rows = lag
            .iter()
            .map(|l| {
                vec![
                    l.aggregate_type.clone(),
                    l.aggregate_id.to_string(),
                    l.head.to_string(),
                    l.snapshot_version.to_string(),
                    l.behind().to_string(),
                ]
            })
            .collect();
        let header = ["type", "aggregate", "events", "snapshot", "behind"];
        let _ = writeln!(out, "{}", table(&header, rows, &[2, 3, 4]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{age, stats_table, when};

    #[test]
    fn times_read_as_rfc_3339_and_an_age() {
        let now = time::OffsetDateTime::from_unix_timestamp(1_796_205_600).expect("a time")
            + time::Duration::microseconds(753_632);
        assert_eq!(
            when(now - time::Duration::minutes(5), now),
            "2026-12-02T09:55:00Z (5 min ago)"
        );
        assert_eq!(age(time::Duration::seconds(59)), "59 s ago");
        assert_eq!(age(time::Duration::hours(3)), "3 h ago");
        assert_eq!(age(time::Duration::days(2)), "2 d ago");
        assert_eq!(age(time::Duration::seconds(-1)), "in the future");
    }

    #[test]
    fn long_type_names_keep_the_columns_aligned() {
        let at = time::OffsetDateTime::now_utc();
        let long = "BillingAccountWithAVeryLongTypeName".to_owned();
        let stats = [
            snap_core::SnapshotTypeStats::new(long.clone(), 1, 3, 300, 120, at, at),
            snap_core::SnapshotTypeStats::new("User".into(), 12, 1, 40, 40, at, at),
        ];
        let lag = [snap_core::SnapshotLag::new(
            long,
            snap_core::AggregateId::parse("account 7").expect("an id"),
            9,
            5,
        )];
        let text = stats_table(&stats, &lag);
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("BillingAccount") || l.contains("User"))
            .collect();
        assert_eq!(rows.len(), 3, "{text}");
        // The schema column ends at the same place on every row of the first table.
        let end = |row: &str, cell: &str| row.find(cell).map(|at| at + cell.len());
        assert_eq!(end(rows[0], " 1 "), end(rows[1], " 12 "), "{text}");
        assert!(text.contains("s ago)"), "{text}");
    }
}
