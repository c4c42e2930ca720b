//! The one error type of the handlers, and how it reaches a state machine.

use hapilot_core::{CoreError, ErrorName};

/// Why a handler failed. Its [`FunctionError::error_type`] becomes the Lambda `errorType`, which
/// the ASL matches in `Retry`/`Catch`.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    /// The input was rejected before anything was touched.
    #[error("{0}")]
    Core(#[from] CoreError),
    /// The input could not be read as the task's input type at all.
    #[error("invalid input: {0}")]
    Unreadable(String),
    /// A domain outcome the state machine branches on (e.g. `hapilot.EndpointUnhealthy`).
    #[error("{message}")]
    Named {
        /// The error name.
        name: ErrorName,
        /// A plain-language message saying what was seen and what to do.
        message: String,
    },
    /// The handler could not get going (configuration, client setup).
    #[error("{0}")]
    Setup(String),
    /// A system refused the credentials the function read from its secrets (rotated since it
    /// read them): the step's error name, and the function reads its secrets again.
    #[error("{message}")]
    CredentialsRefused {
        /// The step's error name.
        name: ErrorName,
        /// What was refused.
        message: String,
    },
}

impl FunctionError {
    /// A named failure with a message.
    pub fn named(name: ErrorName, message: impl Into<String>) -> Self {
        FunctionError::Named {
            name,
            message: message.into(),
        }
    }

    /// Maps an adapter failure to the step's error name, keeping the adapter's message.
    pub fn from_adapter(name: ErrorName) -> impl FnOnce(hapilot_adapters::AdapterError) -> Self {
        move |e| match e {
            // The adapter's own name wins: it knows why it refused.
            hapilot_adapters::AdapterError::Refused { name, detail } => {
                FunctionError::named(name, detail)
            }
            // A blip is a blip whatever the step: the state machine retries it by this name.
            e @ hapilot_adapters::AdapterError::Transient(_) => {
                FunctionError::named(ErrorName::Transient, e.to_string())
            }
            e @ hapilot_adapters::AdapterError::CredentialsRefused(_) => {
                FunctionError::CredentialsRefused {
                    name,
                    message: e.to_string(),
                }
            }
            e => FunctionError::named(name, e.to_string()),
        }
    }

    /// The Lambda `errorType` of this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            FunctionError::Core(e) => e.name().as_str(),
            FunctionError::Unreadable(_) => ErrorName::InvalidInput.as_str(),
            FunctionError::Named { name, .. } => name.as_str(),
            FunctionError::Setup(_) => ErrorName::SetupFailed.as_str(),
            FunctionError::CredentialsRefused { name, .. } => name.as_str(),
        }
    }

    /// Whether a system refused the function's credentials (see
    /// [`FunctionError::CredentialsRefused`]).
    pub fn is_credentials_refused(&self) -> bool {
        matches!(self, FunctionError::CredentialsRefused { .. })
    }
}

impl From<FunctionError> for lambda_runtime::Diagnostic {
    fn from(e: FunctionError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.error_type().to_string(),
            error_message: e.to_string(),
        }
    }
}

/// Reads a task input, turning serde's complaint into an `hapilot.InvalidInput` that names the
/// field.
pub fn parse_input<T: serde::de::DeserializeOwned>(
    input: serde_json::Value,
) -> Result<T, FunctionError> {
    serde_json::from_value(input).map_err(|e| FunctionError::Unreadable(e.to_string()))
}
