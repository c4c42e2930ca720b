//! Probing regional `/health` endpoints over HTTP(S).

use std::future::Future;
use std::time::{Duration, Instant};

use hapilot_core::health::{ProbeFailure, ProbeObservation};

use crate::AdapterError;

/// How much of a body a probe keeps: enough for the marker, bounded for misbehaving servers.
const MAX_BODY_BYTES: usize = 4 * 1024;

/// Sends one probe to a health endpoint and reports what it saw.
pub trait Prober: Send + Sync {
    /// Sends `GET url`, waits at most `timeout` for status and body, never errors: every
    /// failure is an observation.
    fn probe(&self, url: &str, timeout: Duration) -> impl Future<Output = ProbeObservation> + Send;
}

/// The real prober: reqwest over rustls, no redirects (as the runbook's `curl -sf`), no proxy.
#[derive(Debug, Clone)]
pub struct HttpProber {
    client: reqwest::Client,
}

impl HttpProber {
    /// Builds the client once; reuse it for every probe.
    pub fn new() -> Result<Self, AdapterError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("hapilot/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AdapterError::HttpClient(e.to_string()))?;
        Ok(Self { client })
    }
}

impl Prober for HttpProber {
    async fn probe(&self, url: &str, timeout: Duration) -> ProbeObservation {
        let started = Instant::now();
        let outcome = tokio::time::timeout(timeout, fetch_head_of_body(&self.client, url)).await;
        let latency_ms = started.elapsed().as_millis() as u64;
        match outcome {
            Err(_elapsed) => ProbeObservation {
                status: None,
                body: String::new(),
                latency_ms,
                failure: Some(ProbeFailure::Timeout),
            },
            Ok(Err(e)) => ProbeObservation {
                status: None,
                body: String::new(),
                latency_ms,
                failure: Some(classify(&e)),
            },
            Ok(Ok((status, body))) => ProbeObservation {
                status: Some(status),
                body,
                latency_ms,
                failure: None,
            },
        }
    }
}

async fn fetch_head_of_body(
    client: &reqwest::Client,
    url: &str,
) -> Result<(u16, String), reqwest::Error> {
    let mut response = client.get(url).send().await?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while body.len() < MAX_BODY_BYTES {
        match response.chunk().await? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    body.truncate(MAX_BODY_BYTES);
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn classify(e: &reqwest::Error) -> ProbeFailure {
    // The innermost cause is what an operator can act on ("Connection refused").
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if e.is_timeout() {
        ProbeFailure::Timeout
    } else if e.is_connect() {
        ProbeFailure::Connect(detail)
    } else {
        ProbeFailure::Other(detail)
    }
}

/// In-memory [`Prober`]: a fixed observation per URL (no answer for an unknown one).
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone, Default)]
pub struct MemoryProber {
    /// URL -> what a probe sees.
    pub answers: std::collections::BTreeMap<String, ProbeObservation>,
}

#[cfg(any(test, feature = "fakes"))]
impl Prober for MemoryProber {
    async fn probe(&self, url: &str, _timeout: Duration) -> ProbeObservation {
        self.answers.get(url).cloned().unwrap_or(ProbeObservation {
            status: None,
            body: String::new(),
            latency_ms: 0,
            failure: Some(hapilot_core::health::ProbeFailure::Connect(
                "connection refused".into(),
            )),
        })
    }
}
