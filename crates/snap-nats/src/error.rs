//! Driver errors as backend errors, transient ones marked retryable.

use snap_core::{BackendError, BoxError};

/// Wraps a driver error. A timeout, a server without responders (a stream leader being
/// elected) or a lost connection is retryable: the same call may succeed once the cluster has
/// settled.
pub(crate) fn backend(error: impl Into<BoxError>, context: &'static str) -> BackendError {
    let error = error.into();
    let retryable = transient(&*error);
    BackendError::new("nats", error)
        .context(context)
        .retryable(retryable)
}

/// Whether the error, or one it wraps, says the server did not answer in time or could not
/// be reached. The client's errors are one type per call, so their words are what they share.
fn transient(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        let text = error.to_string().to_lowercase();
        if [
            "timed out",
            "no responders",
            "broken pipe",
            "disconnected",
            "connection",
        ]
        .iter()
        .any(|word| text.contains(word))
        {
            return true;
        }
        next = error.source();
    }
    false
}
