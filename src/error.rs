//! The one error type of the CLI crate's library.

use std::path::PathBuf;

/// What can go wrong running hapilot's operator commands. Every message says what happened and
/// what to do about it, in one line.
#[derive(Debug, thiserror::Error)]
pub enum HapilotError {
    /// The local stack or its simulated world (`hapilot local up`, the drill) failed.
    #[error(transparent)]
    Local(#[from] hapilot_local::LocalError),
    /// An AWS API call failed.
    #[error("{operation} failed: {detail}")]
    Aws {
        /// The API operation, e.g. `StartExecution`.
        operation: &'static str,
        /// The service's answer.
        detail: String,
    },
    /// A run did not end in time.
    #[error("execution {execution} still {status} after {waited_s} s")]
    RunTimedOut {
        /// The execution ARN.
        execution: String,
        /// Its last status.
        status: String,
        /// How long we waited.
        waited_s: u64,
    },
    /// Local I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The CLI's settings file is unreadable or says something hapilot does not know.
    #[error("{path}: {detail}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        detail: String,
    },
    /// A file or argument hapilot was given does not say what it must; the text says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// A hapilot function run in process (e.g. by `hapilot audit`) failed.
    #[error("{function}: {error_type}: {message}")]
    Function {
        /// The function, e.g. `plan-backup-audit`.
        function: &'static str,
        /// Its named error, e.g. `hapilot.InvalidInput`.
        error_type: &'static str,
        /// What it said.
        message: String,
    },
}

impl HapilotError {
    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| HapilotError::Io { context, source }
    }

    /// Wraps an SDK error with the operation's name; the message keeps the service's error code
    /// and message (the SDK's own `Display` hides both behind "service error").
    pub fn aws<E: std::error::Error>(operation: &'static str) -> impl FnOnce(E) -> Self {
        move |e| HapilotError::Aws {
            operation,
            detail: hapilot_adapters::error_chain(&e),
        }
    }
}
