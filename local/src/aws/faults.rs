//! Faults on demand, as AWS Fault Injection Service injects them: for a region and a service,
//! the next N calls fail with a 503, a throttle or a timeout, or are slowed down.
//!
//! The answers are each system's own (so the clients' parsers and our classification meet
//! what production sends):
//! - S3: `503 SlowDown` ("Please reduce your request rate.") for a throttle and
//!   `503 ServiceUnavailable` otherwise (S3 API reference, "Error responses").
//! - Lambda's Invoke: `429 TooManyRequestsException` ("Rate Exceeded.") and
//!   `500 ServiceException` (Lambda API reference, Invoke errors).
//! - JSON-protocol services (Step Functions, and CloudWatch when asked in JSON):
//!   `400 ThrottlingException` and `503 ServiceUnavailableException`, the type in `__type`
//!   and `x-amzn-ErrorType`.
//! - Query and REST-XML services (CloudWatch, SNS, IAM, Route53): `400 Throttling` ("Rate
//!   exceeded", CloudWatch's and Route53's throttle; SNS says `429 ThrottledException`) and
//!   `503 ServiceUnavailable`.
//! - The Kubernetes API: `429` with a `Status` of reason `TooManyRequests` and `Retry-After`
//!   (API Priority and Fairness), `503` with reason `ServiceUnavailable`.
//! - Patroni's REST API: `503` (what it answers when it cannot serve); a throttle is a `429`
//!   from whatever proxy stands before it.
//!
//! A timeout holds the request without an answer (the client's own timeout ends it); latency
//! answers normally after the delay.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::http::{Answer, answer};

/// What an injected fault does to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FaultKind {
    /// The service answers that it is unavailable (503; Lambda: 500).
    Unavailable,
    /// The service throttles the call (429 / `ThrottlingException` / `SlowDown`).
    Throttle,
    /// No answer: the call hangs until the client gives up.
    Timeout,
    /// The call is answered normally, `millis` later.
    Latency {
        /// The added delay.
        millis: u64,
    },
}

/// One fault armed for the next `count` matching calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// The region whose calls fail (the SigV4 scope's region for AWS; the simulated system's
    /// region otherwise).
    pub region: String,
    /// The service: the SigV4 name for AWS (`s3`, `states`, `lambda`, `monitoring`, `sns`,
    /// `route53`, ...), or `kubernetes` (also CloudNativePG's API) or `patroni`.
    pub service: String,
    /// What happens.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// How many calls it affects.
    #[serde(default = "one")]
    pub count: u32,
    /// Only calls whose method, path and target (`X-Amz-Target`) contain this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matching: Option<String>,
}

fn one() -> u32 {
    1
}

impl FaultSpec {
    /// Reads a fault as the control endpoint receives it, refusing fields it does not know (a
    /// typo must not arm a different fault than the one meant; serde cannot refuse them itself
    /// through the flattened kind).
    pub fn from_json(body: &[u8]) -> Result<Self, String> {
        const KNOWN: [&str; 6] = ["region", "service", "kind", "millis", "count", "matching"];
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        if let Some(unknown) = value
            .as_object()
            .and_then(|o| o.keys().find(|k| !KNOWN.contains(&k.as_str())))
        {
            return Err(format!(
                "unknown field `{unknown}`, expected one of {KNOWN:?}"
            ));
        }
        serde_json::from_value(value).map_err(|e| e.to_string())
    }
}

/// A call a fault hit, for the test's and the operator's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectedFault {
    /// The region.
    pub region: String,
    /// The service.
    pub service: String,
    /// What was done.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// The call (method, path, target).
    pub call: String,
}

/// The faults armed in a local stack, shared by the front door and the simulated systems.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    armed: Arc<Mutex<Vec<FaultSpec>>>,
    injected: Arc<Mutex<Vec<InjectedFault>>>,
}

impl Faults {
    /// Arms `fault`; refuses a fault that could never fire.
    pub fn inject(&self, fault: FaultSpec) -> Result<(), String> {
        if fault.count == 0 {
            return Err("count must be at least 1".into());
        }
        if fault.region.is_empty() || fault.service.is_empty() {
            return Err("a fault needs a region and a service".into());
        }
        if fault.kind == FaultKind::Throttle
            && CONNECTION_SERVICES.contains(&fault.service.as_str())
        {
            return Err(format!(
                "{} has no throttle a front can say (its refusal comes after TLS); use unavailable, timeout or latency",
                fault.service
            ));
        }
        self.armed.lock().expect("faults lock").push(fault);
        Ok(())
    }

    /// Disarms every fault.
    pub fn clear(&self) {
        self.armed.lock().expect("faults lock").clear();
    }

    /// The faults still armed, with the calls they have left.
    pub fn armed(&self) -> Vec<FaultSpec> {
        self.armed.lock().expect("faults lock").clone()
    }

    /// Every call a fault hit so far, in order.
    pub fn injected(&self) -> Vec<InjectedFault> {
        self.injected.lock().expect("faults lock").clone()
    }

    /// The fault for this call, if one is armed for it (using up one of its calls).
    pub fn take(&self, region: &str, service: &str, call: &str) -> Option<FaultKind> {
        let mut armed = self.armed.lock().expect("faults lock");
        let at = armed.iter().position(|f| {
            f.region == region
                && f.service == service
                && f.matching.as_deref().is_none_or(|m| call.contains(m))
        })?;
        let kind = armed[at].kind;
        armed[at].count -= 1;
        if armed[at].count == 0 {
            armed.remove(at);
        }
        drop(armed);
        tracing::info!(region, service, call, ?kind, "fault injected");
        self.injected
            .lock()
            .expect("faults lock")
            .push(InjectedFault {
                region: region.into(),
                service: service.into(),
                kind,
                call: call.into(),
            });
        Some(kind)
    }

    /// Applies the fault armed for this call, if any: waits for latency and timeouts, and
    /// returns the answer that replaces the system's (None: serve the call).
    pub async fn apply(
        &self,
        region: &str,
        service: &str,
        call: &str,
        protocol: Protocol,
    ) -> Option<Answer> {
        let kind = self.take(region, service, call)?;
        match kind {
            FaultKind::Latency { millis } => {
                tokio::time::sleep(Duration::from_millis(millis)).await;
                None
            }
            // Long past any client's timeout; the server's task ends it when the stack stops.
            FaultKind::Timeout => {
                tokio::time::sleep(Duration::from_secs(600)).await;
                Some(answer(
                    hyper::StatusCode::GATEWAY_TIMEOUT,
                    "text/plain",
                    "timed out\n",
                ))
            }
            FaultKind::Unavailable | FaultKind::Throttle => {
                Some(refusal(protocol, kind == FaultKind::Throttle))
            }
        }
    }
}

/// A loopback TCP front for a server that speaks its own protocol (PostgreSQL): every new
/// connection is a call of `region`'s `service` (`connect`), and a fault armed for it acts on
/// the connection: `unavailable` closes it at once (the client sees the connection end before
/// the server said anything, as when a server restarts), `timeout` accepts it and says nothing
/// (the client's own timeout ends it), `latency` delays the forward. A throttle is refused when
/// armed (the control endpoint says so): a PostgreSQL server refuses with `53300` only after
/// TLS, which a front that does not terminate TLS cannot speak. Stops when the task is aborted.
pub async fn tcp_front(
    faults: Faults,
    region: &str,
    service: &str,
    backend: std::net::SocketAddr,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let (region, service) = (region.to_string(), service.to_string());
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut client, _)) = listener.accept().await {
            let fault = faults.take(&region, &service, "connect");
            connections.spawn(async move {
                match fault {
                    Some(FaultKind::Unavailable | FaultKind::Throttle) => return,
                    Some(FaultKind::Timeout) => {
                        tokio::time::sleep(Duration::from_secs(600)).await;
                        return;
                    }
                    Some(FaultKind::Latency { millis }) => {
                        tokio::time::sleep(Duration::from_millis(millis)).await;
                    }
                    None => {}
                }
                if let Ok(mut server) = tokio::net::TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
            while connections.try_join_next().is_some() {}
        }
    });
    Ok((addr, task))
}

/// Services whose calls are connections, not requests: a throttle cannot be said there.
pub const CONNECTION_SERVICES: &[&str] = &["postgres"];

/// The faults attached to a simulated system, with the region it plays (`None`: none).
pub type Attached = Option<(Faults, String)>;

/// A simulated HTTP system's fault hook: applies the fault armed for this request, if any.
pub async fn apply_attached<B>(
    attached: Attached,
    service: &str,
    req: &hyper::Request<B>,
    protocol: Protocol,
) -> Option<Answer> {
    let (faults, region) = attached?;
    faults
        .apply(&region, service, &call_of(req), protocol)
        .await
}

/// How a service says its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// S3's REST-XML.
    S3,
    /// Lambda's Invoke (REST-JSON).
    Lambda,
    /// AWS JSON 1.0 / 1.1 (`X-Amz-Target`).
    AwsJson,
    /// AWS query and REST-XML (CloudWatch, IAM, Route53).
    AwsXml,
    /// SNS (query; its throttle is its own).
    Sns,
    /// The Kubernetes API.
    Kubernetes,
    /// A plain HTTP API (Patroni).
    Plain,
}

impl Protocol {
    /// The protocol of an AWS call to `service`, `json` when it carries `X-Amz-Target` or a
    /// JSON content type.
    pub fn of_aws(service: &str, json: bool) -> Self {
        match service {
            "s3" => Protocol::S3,
            "lambda" => Protocol::Lambda,
            "sns" => Protocol::Sns,
            _ if json => Protocol::AwsJson,
            _ => Protocol::AwsXml,
        }
    }
}

/// The system's own refusal: a throttle or "unavailable".
pub fn refusal(protocol: Protocol, throttle: bool) -> Answer {
    use hyper::StatusCode as S;
    let request_id = uuid::Uuid::new_v4().to_string();
    let xml = |status: S, code: &str, message: &str| {
        answer(
            status,
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>{}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
                if status.is_server_error() {
                    "Receiver"
                } else {
                    "Sender"
                }
            ),
        )
    };
    let mut a = match (protocol, throttle) {
        (Protocol::S3, true) => answer(
            S::SERVICE_UNAVAILABLE,
            "application/xml",
            format!(
                "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>{request_id}</RequestId></Error>"
            ),
        ),
        (Protocol::S3, false) => answer(
            S::SERVICE_UNAVAILABLE,
            "application/xml",
            format!(
                "<Error><Code>ServiceUnavailable</Code><Message>Service is unable to handle request.</Message><RequestId>{request_id}</RequestId></Error>"
            ),
        ),
        (Protocol::Lambda, true) => json_error(
            S::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            r#"{"Reason":"ReservedFunctionConcurrentInvocationLimitExceeded","Type":"User","message":"Rate Exceeded."}"#,
        ),
        (Protocol::Lambda, false) => json_error(
            S::INTERNAL_SERVER_ERROR,
            "ServiceException",
            r#"{"Type":"Service","message":"The AWS Lambda service encountered an internal error."}"#,
        ),
        (Protocol::AwsJson, true) => json_error(
            S::BAD_REQUEST,
            "ThrottlingException",
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        ),
        (Protocol::AwsJson, false) => json_error(
            S::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            r#"{"__type":"ServiceUnavailableException","message":"Service is unavailable"}"#,
        ),
        (Protocol::AwsXml, true) => xml(S::BAD_REQUEST, "Throttling", "Rate exceeded"),
        (Protocol::Sns, true) => xml(S::TOO_MANY_REQUESTS, "ThrottledException", "Rate exceeded"),
        (Protocol::AwsXml | Protocol::Sns, false) => xml(
            S::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "Service is unavailable",
        ),
        (Protocol::Kubernetes, throttle) => {
            let (status, reason, message) = if throttle {
                (
                    S::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "Too many requests, please try again later.",
                )
            } else {
                (
                    S::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request",
                )
            };
            answer(
                status,
                "application/json",
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure", "message": message, "reason": reason,
                    "code": status.as_u16()})
                .to_string(),
            )
        }
        (Protocol::Plain, true) => {
            answer(S::TOO_MANY_REQUESTS, "text/plain", "too many requests\n")
        }
        (Protocol::Plain, false) => answer(
            S::SERVICE_UNAVAILABLE,
            "text/plain",
            "service unavailable\n",
        ),
    };
    if throttle && protocol == Protocol::Kubernetes {
        a.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("1"),
        );
    }
    if let Ok(id) = hyper::header::HeaderValue::from_str(&request_id) {
        a.headers_mut().insert("x-amzn-requestid", id);
    }
    a
}

fn json_error(status: hyper::StatusCode, error_type: &'static str, body: &'static str) -> Answer {
    let mut a = answer(status, "application/x-amz-json-1.0", body);
    a.headers_mut().insert(
        "x-amzn-errortype",
        hyper::header::HeaderValue::from_static(error_type),
    );
    a
}

/// The call's description faults match against: method, path and query, and the AWS JSON
/// target when there is one.
pub fn call_of<B>(req: &hyper::Request<B>) -> String {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(|t| format!(" {t}"))
        .unwrap_or_default();
    format!("{} {}{target}", req.method(), req.uri())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(service: &str, count: u32, matching: Option<&str>) -> FaultSpec {
        FaultSpec {
            region: "us-west-2".into(),
            service: service.into(),
            kind: FaultKind::Throttle,
            count,
            matching: matching.map(str::to_string),
        }
    }

    /// A fault hits exactly the next `count` calls of its region and service that match, and
    /// no other call; each hit is recorded.
    #[test]
    fn a_fault_hits_the_next_matching_calls_and_then_is_spent() {
        let faults = Faults::default();
        faults.inject(spec("s3", 2, Some("reports/"))).unwrap();
        assert_eq!(faults.take("us-east-1", "s3", "PUT /b/reports/x"), None);
        assert_eq!(faults.take("us-west-2", "states", "PUT /b/reports/x"), None);
        assert_eq!(faults.take("us-west-2", "s3", "PUT /b/runs/x"), None);
        assert_eq!(
            faults.take("us-west-2", "s3", "PUT /b/reports/x"),
            Some(FaultKind::Throttle)
        );
        assert_eq!(
            faults.take("us-west-2", "s3", "PUT /b/reports/y"),
            Some(FaultKind::Throttle)
        );
        assert_eq!(faults.take("us-west-2", "s3", "PUT /b/reports/z"), None);
        assert!(faults.armed().is_empty());
        assert_eq!(faults.injected().len(), 2);
        assert!(faults.inject(spec("s3", 0, None)).is_err());
    }

    #[test]
    fn specs_read_as_the_control_endpoint_and_the_cli_send_them() {
        let read: FaultSpec = serde_json::from_str(
            r#"{"region":"us-west-2","service":"kubernetes","kind":"latency","millis":200}"#,
        )
        .unwrap();
        assert_eq!(read.kind, FaultKind::Latency { millis: 200 });
        assert_eq!(read.count, 1);
        assert!(
            serde_json::from_str::<FaultSpec>(r#"{"region":"r","service":"s","kind":"explode"}"#)
                .is_err()
        );
    }

    #[test]
    fn each_system_refuses_in_its_own_words() {
        let s3 = refusal(Protocol::S3, true);
        assert_eq!(s3.status(), 503);
        let k8s = refusal(Protocol::Kubernetes, true);
        assert_eq!(k8s.status(), 429);
        assert!(k8s.headers().contains_key(hyper::header::RETRY_AFTER));
        let sfn = refusal(Protocol::AwsJson, true);
        assert_eq!(sfn.headers()["x-amzn-errortype"], "ThrottlingException");
        assert_eq!(refusal(Protocol::Lambda, true).status(), 429);
        assert_eq!(refusal(Protocol::AwsXml, false).status(), 503);
    }
}
