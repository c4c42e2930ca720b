//! The one error type of the adapter crate.

/// Failures talking to an outside system. Messages name the system and what it said; secrets
/// (tokens, passwords) never appear in them.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// An HTTP client could not be built (bad TLS setup and the like).
    #[error("could not set up the HTTP client: {0}")]
    HttpClient(String),
    /// An AWS API call failed.
    #[error("{operation} failed: {detail}")]
    Aws {
        /// The API operation, e.g. `ChangeResourceRecordSets`.
        operation: &'static str,
        /// The service's error code and message.
        detail: String,
    },
    /// A database could not be reached or refused a statement.
    #[error("database {target}: {detail}")]
    Database {
        /// Which database (host:port, never the password).
        target: String,
        /// What went wrong.
        detail: String,
    },
    /// An HTTP API (Patroni, Kubernetes, ...) answered with an error or not at all.
    #[error("{system} at {url}: {detail}")]
    Http {
        /// The system, e.g. `Patroni`.
        system: &'static str,
        /// The URL called.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// Something the adapter was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
}

impl AdapterError {
    /// Wraps an SDK error, keeping the service's error code and message.
    pub fn aws<E: std::error::Error>(operation: &'static str) -> impl FnOnce(E) -> Self {
        move |e| AdapterError::Aws {
            operation,
            detail: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
        }
    }
}
