//! The one error type of the local stack and its simulated world.

use std::path::PathBuf;

/// What can go wrong starting and running the local stack and its simulated world. Every message
/// says what happened and what to do about it, in one line.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// Python (needed for moto) is not there.
    #[error(
        "python3 not found ({0}): install Python 3 with venv and pip (Debian: apt-get install -y python3 python3-venv) or point HAPILOT_PYTHON at one"
    )]
    PythonMissing(String),
    /// Creating the project-local venv failed.
    #[error(
        "could not create the venv at {path}: {detail}. Debian: apt-get install -y python3-venv"
    )]
    VenvFailed {
        /// Where the venv was being created.
        path: PathBuf,
        /// What python said.
        detail: String,
    },
    /// Installing moto into the venv failed.
    #[error(
        "could not install {package} into {venv}: {detail}. Check that PyPI is reachable, then run again"
    )]
    MotoInstallFailed {
        /// The pinned requirement.
        package: String,
        /// The venv.
        venv: PathBuf,
        /// The end of pip's output.
        detail: String,
    },
    /// moto did not start or did not answer.
    #[error("moto server did not start: {detail} (log: {log})")]
    MotoStartFailed {
        /// What went wrong, with the end of moto's log.
        detail: String,
        /// moto's full log.
        log: PathBuf,
    },
    /// A port the user asked for is in use.
    #[error(
        "port {port} on 127.0.0.1 is already in use: stop what holds it or choose another with --port"
    )]
    PortInUse {
        /// The port.
        port: u16,
    },
    /// A state machine definition could not be deployed.
    #[error("state machine {file}: {detail}")]
    StateMachine {
        /// The definition file.
        file: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// An AWS API call failed.
    #[error("{operation} failed: {detail}")]
    Aws {
        /// The API operation, e.g. `StartExecution`.
        operation: &'static str,
        /// The service's answer.
        detail: String,
    },
    /// Local I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file or argument hapilot was given does not say what it must; the text says what to fix.
    #[error("{0}")]
    Invalid(String),
}

impl LocalError {
    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| LocalError::Io { context, source }
    }

    /// Wraps an SDK error with the operation's name; the message keeps the service's error code
    /// and message (the SDK's own `Display` hides both behind "service error").
    pub fn aws<E: std::error::Error>(operation: &'static str) -> impl FnOnce(E) -> Self {
        move |e| LocalError::Aws {
            operation,
            detail: hapilot_adapters::error_chain(&e),
        }
    }
}
