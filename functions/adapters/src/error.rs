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
    /// The system refused the request for a reason the operator must act on, named for the
    /// state machine (a CloudNativePG promotion token that does not fit the standby).
    #[error("{detail}")]
    Refused {
        /// The error name the run sees.
        name: hapilot_core::ErrorName,
        /// What was refused and what to do.
        detail: String,
    },
}

impl AdapterError {
    /// Wraps an SDK error, keeping the service's error code and message.
    pub fn aws<E: std::error::Error>(operation: &'static str) -> impl FnOnce(E) -> Self {
        move |e| AdapterError::Aws {
            operation,
            detail: error_chain(&e),
        }
    }
}

/// Wraps an SDK call's error like [`AdapterError::aws`], giving also the HTTP status when there
/// was an answer: a dead or dark endpoint answers 5xx with no AWS error the SDK can read, and
/// "HTTP 503" says more than "error parsing XML".
pub fn sdk_error<E: std::error::Error + 'static>(
    operation: &'static str,
) -> impl FnOnce(aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> AdapterError
{
    move |e| {
        let detail = match e.raw_response().map(|r| r.status().as_u16()) {
            Some(status) if status >= 300 => format!("HTTP {status}: {}", error_chain(&e)),
            _ => error_chain(&e),
        };
        AdapterError::Aws { operation, detail }
    }
}

/// An error and its causes in one line, each said once: what an operator reads. Unlike the
/// SDK's `DisplayErrorContext`, no debug dump of the raw HTTP response (kilobytes of headers and
/// body that bury the cause, and that end up in run histories and notifications).
pub fn error_chain(e: &(dyn std::error::Error + '_)) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !said.is_empty() && !line.contains(&said) {
            line.push_str(": ");
            line.push_str(&said);
        }
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("service error")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("ExecutionAlreadyExists: a run named x exists")]
    struct Inner;

    #[test]
    fn the_chain_is_one_line_of_displays_without_debug_dumps() {
        let line = error_chain(&Outer(Inner));
        assert_eq!(
            line,
            "service error: ExecutionAlreadyExists: a run named x exists"
        );
        assert!(!line.contains("Inner"));
    }
}
