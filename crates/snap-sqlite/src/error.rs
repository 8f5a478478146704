use rusqlite::ErrorCode;
use snap_core::BackendError;

/// Wraps a rusqlite error; a busy or locked database is retryable.
pub(crate) fn sqlite_error(error: rusqlite::Error, context: &'static str) -> BackendError {
    let retryable = matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    );
    BackendError::new("sqlite", error)
        .context(context)
        .retryable(retryable)
}
