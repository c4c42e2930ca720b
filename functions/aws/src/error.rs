//! The one error type of the adapter crate.

/// Failures talking to an outside system.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// An HTTP client could not be built (bad TLS setup and the like).
    #[error("could not set up the HTTP client: {0}")]
    HttpClient(String),
}
