use snap_core::BackendError;

/// Whether the connection itself failed (killed by the server, network gone): the statement
/// may be tried again on another pooled connection.
pub(crate) fn is_disconnect(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            // admin_shutdown, crash_shutdown, cannot_connect_now, connection_failure,
            // connection_does_not_exist
            matches!(
                code.as_ref(),
                "57P01" | "57P02" | "57P03" | "08006" | "08003"
            )
        }),
        _ => false,
    }
}

/// Whether the database reported a unique violation.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("23505"))
}

/// Wraps a sqlx error; connection failures, pool timeouts, serialisation failures and
/// deadlocks are retryable.
pub(crate) fn pg_error(error: sqlx::Error, context: &'static str) -> BackendError {
    let retryable = is_disconnect(&error)
        || matches!(error, sqlx::Error::PoolTimedOut)
        || matches!(&error, sqlx::Error::Database(e)
            if matches!(e.code().as_deref(), Some("40001" | "40P01")));
    BackendError::new("postgres", error)
        .context(context)
        .retryable(retryable)
}
