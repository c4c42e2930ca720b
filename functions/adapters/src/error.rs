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
    /// A failure that trying again can cure: a timeout, a refused or reset connection, a
    /// throttle (429, `ThrottlingException`, `SlowDown`) or a 5xx. The run sees it as
    /// `hapilot.Transient`, which idempotent steps retry with jitter; the text is the failure as
    /// the system said it.
    #[error("{0} (transient: trying again may succeed)")]
    Transient(String),
    /// The system refused hapilot's credentials (a password, token or key that no longer
    /// works: typically a rotated secret). The function reads its secrets again and, where
    /// running twice is safe, tries once more.
    #[error("{0} (credentials refused: a rotated secret is read again)")]
    CredentialsRefused(String),
}

impl AdapterError {
    /// Wraps an AWS call's error, keeping the service's error code and message and the HTTP
    /// status when there was an answer (a dead or dark endpoint answers 5xx with no AWS error the
    /// SDK can read, and "HTTP 503" says more than "error parsing XML"). Failures that trying
    /// again can cure become [`AdapterError::Transient`] ([`AwsFailure::transient`]).
    pub fn aws<E: AwsFailure>(operation: &'static str) -> impl FnOnce(E) -> Self {
        move |e| {
            let detail = match e.status() {
                Some(status) if status >= 300 => format!("HTTP {status}: {}", error_chain(&e)),
                _ => error_chain(&e),
            };
            if e.transient() {
                AdapterError::Transient(format!("{operation} failed: {detail}"))
            } else {
                AdapterError::Aws { operation, detail }
            }
        }
    }

    /// This error as [`AdapterError::Transient`] when `transient` (its text kept).
    pub fn transient_if(self, transient: bool) -> Self {
        match self {
            AdapterError::Transient(_) => self,
            e if transient => AdapterError::Transient(e.to_string()),
            e => e,
        }
    }

    /// This error as [`AdapterError::CredentialsRefused`] when `refused` (its text kept).
    pub fn credentials_refused_if(self, refused: bool) -> Self {
        match self {
            e if refused => AdapterError::CredentialsRefused(e.to_string()),
            e => e,
        }
    }

    /// This error classified by the HTTP status an API answered: transient (429, 5xx) or
    /// credentials refused (401), else as it is.
    pub fn for_status(self, status: u16) -> Self {
        self.transient_if(status_is_transient(status))
            .credentials_refused_if(status_refuses_credentials(status))
    }

    /// Whether trying again may cure it.
    pub fn is_transient(&self) -> bool {
        matches!(self, AdapterError::Transient(_))
    }
}

/// Error codes AWS services use for throttling and for failures on their side that a retry
/// cures: the retryable codes of the AWS SDKs' standard retry strategy (`THROTTLING_ERRORS` and
/// `TRANSIENT_ERRORS` of `aws-runtime`'s retry classifiers, plus S3's `SlowDown` and Route53's
/// `PriorRequestNotComplete`, which the SDKs treat as throttles).
pub const RETRYABLE_AWS_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

/// Whether an HTTP status says "try again": throttled (429) or a failure on the server's side
/// or a gateway's (500, 502, 503, 504).
pub fn status_is_transient(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Whether an HTTP API's status says the credentials were refused: 401 (Kubernetes, Patroni,
/// Prometheus). Vault answers 403 "permission denied" for a token it does not know, so its
/// adapter also counts 403.
pub fn status_refuses_credentials(status: u16) -> bool {
    status == 401
}

/// Whether a request that got no usable answer may succeed when sent again: it timed out, the
/// connection was refused or reset, or the answer broke off. A request that could not be built,
/// or an answer that is not what was asked for, fails again the same way.
pub fn send_failure_is_transient(e: &reqwest::Error) -> bool {
    !e.is_builder()
        && !e.is_decode()
        && (e.is_timeout() || e.is_connect() || e.is_request() || e.is_body())
}

/// An AWS SDK failure, as [`AdapterError::aws`] classifies it.
pub trait AwsFailure: std::error::Error + 'static {
    /// The HTTP status of the answer, when there was one.
    fn status(&self) -> Option<u16> {
        None
    }
    /// Whether trying again may cure it.
    fn transient(&self) -> bool {
        false
    }
}

impl<E> AwsFailure for aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    fn status(&self) -> Option<u16> {
        self.raw_response().map(|r| r.status().as_u16())
    }

    fn transient(&self) -> bool {
        use aws_sdk_s3::error::SdkError;
        match self {
            SdkError::TimeoutError(_) => true,
            SdkError::DispatchFailure(d) => !d.is_user(),
            SdkError::ResponseError(_) => self.status().is_none_or(status_is_transient),
            SdkError::ServiceError(_) => {
                self.status().is_some_and(status_is_transient)
                    || aws_sdk_s3::error::ProvideErrorMetadata::code(self)
                        .is_some_and(|c| RETRYABLE_AWS_CODES.contains(&c))
            }
            _ => false,
        }
    }
}

impl AwsFailure for aws_sdk_s3::primitives::ByteStreamError {
    /// A body that broke off mid-way.
    fn transient(&self) -> bool {
        true
    }
}

impl AwsFailure for aws_sdk_s3::presigning::PresigningConfigError {}

/// A request the SDK could not build (a required field missing): never cured by trying again.
impl AwsFailure for aws_sdk_s3::error::BuildError {}

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

    type S3Error = aws_sdk_s3::error::SdkError<
        aws_sdk_s3::operation::put_object::PutObjectError,
        aws_sdk_s3::config::http::HttpResponse,
    >;

    fn answered(status: u16, code: &str) -> S3Error {
        use aws_sdk_s3::error::ErrorMetadata;
        let meta = ErrorMetadata::builder().code(code).message("said").build();
        let response = aws_sdk_s3::config::http::HttpResponse::new(
            status.try_into().unwrap(),
            aws_sdk_s3::primitives::SdkBody::empty(),
        );
        S3Error::service_error(
            aws_sdk_s3::operation::put_object::PutObjectError::generic(meta),
            response,
        )
    }

    /// Throttles and failures on the service's side are worth another try; a refusal of the
    /// request itself is not. The run sees which by the error's kind.
    #[test]
    fn aws_failures_are_transient_when_throttled_or_on_the_services_side() {
        for (status, code, transient) in [
            (503, "SlowDown", true),
            (400, "ThrottlingException", true),
            (400, "Throttling", true),
            (429, "TooManyRequestsException", true),
            (500, "InternalError", true),
            (400, "PriorRequestNotComplete", true),
            (403, "AccessDenied", false),
            (412, "PreconditionFailed", false),
            (400, "InvalidChangeBatch", false),
        ] {
            let e = AdapterError::aws("PutObject")(answered(status, code));
            assert_eq!(e.is_transient(), transient, "{status} {code}: {e}");
            assert!(e.to_string().contains(&format!("HTTP {status}")), "{e}");
        }
        let timeout = S3Error::timeout_error("no answer in 3 s");
        assert!(AdapterError::aws("PutObject")(timeout).is_transient());
    }

    #[test]
    fn http_statuses_that_say_try_again() {
        let transient: Vec<u16> = (100..600).filter(|s| status_is_transient(*s)).collect();
        assert_eq!(transient, vec![429, 500, 502, 503, 504]);
    }

    /// A refused connection passes (a restarting server); a refused password does not.
    #[tokio::test]
    async fn a_refused_connection_is_transient_and_a_bad_dsn_is_not() {
        let closed = crate::database::PostgresDatabase::new(
            "host=127.0.0.1 port=1 user=u connect_timeout=2",
        );
        let e = closed.connect().await.unwrap_err();
        assert!(e.is_transient(), "{e}");
        let bad = crate::database::PostgresDatabase::new("host=127.0.0.1 port=nope");
        let e = bad.connect().await.unwrap_err();
        assert!(!e.is_transient(), "{e}");
    }

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
