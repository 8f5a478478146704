//! Conversions between stored columns and snap-core values. Every decoding failure is a
//! typed error, never a panic: a row edited by hand must not crash a load.

use rusqlite::types::ValueRef;
use serde_json::Value;
use snap_core::BoxError;
use time::OffsetDateTime;
use uuid::Uuid;

/// A `u64` version as the signed column value; callers validated it fits.
pub(crate) fn version_to_sql(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

pub(crate) fn timestamp_to_sql(t: OffsetDateTime) -> i64 {
    // Normalised timestamps are whole microseconds within the `time` crate's range, which fits
    // an i64 count of microseconds many times over.
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

pub(crate) fn json_to_sql(value: &Value) -> String {
    // Serialising a `Value` to a string cannot fail: its keys are strings and it has no
    // non-finite numbers.
    serde_json::to_string(value).unwrap_or_default()
}

pub(crate) fn version_from_sql(value: ValueRef<'_>) -> Result<u64, BoxError> {
    let raw = value.as_i64()?;
    u64::try_from(raw).map_err(|_| format!("negative version {raw}").into())
}

pub(crate) fn schema_from_sql(value: ValueRef<'_>) -> Result<u32, BoxError> {
    let raw = value.as_i64()?;
    u32::try_from(raw).map_err(|_| format!("schema version {raw} out of range").into())
}

pub(crate) fn timestamp_from_sql(value: ValueRef<'_>) -> Result<OffsetDateTime, BoxError> {
    let micros = value.as_i64()?;
    Ok(OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(micros) * 1_000,
    )?)
}

pub(crate) fn json_from_sql(value: ValueRef<'_>) -> Result<Value, BoxError> {
    Ok(serde_json::from_slice(value.as_bytes()?)?)
}

/// A snapshot state: JSON that must be an object, as every store writes it.
pub(crate) fn object_from_sql(value: ValueRef<'_>) -> Result<Value, BoxError> {
    let state = json_from_sql(value)?;
    if state.is_object() {
        Ok(state)
    } else {
        Err(format!(
            "state is a JSON {}, not an object",
            snap_core::validate::json_kind(&state)
        )
        .into())
    }
}

pub(crate) fn uuid_from_sql(value: ValueRef<'_>) -> Result<Uuid, BoxError> {
    Ok(Uuid::try_parse(value.as_str()?)?)
}

pub(crate) fn text_from_sql(value: ValueRef<'_>) -> Result<String, BoxError> {
    Ok(value.as_str()?.to_owned())
}
