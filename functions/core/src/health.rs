//! Health probing rules: what counts as a healthy answer from a regional `/health` endpoint,
//! and when a series of probes says a region is up.
//!
//! The runbook's check (`curl -sf .../health`, body contains `healthy`) is the model, with two
//! fixes an on-call engineer would want: the marker must stand as a whole word (a body saying
//! `unhealthy` is not healthy), and one probe is never the verdict (N samples, a quorum).

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Samples taken when the input does not say.
pub const DEFAULT_SAMPLES: u32 = 3;
/// Per-probe timeout when the input does not say: a healthy gateway answers well within it.
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;
/// Pause between samples when the input does not say.
pub const DEFAULT_INTERVAL_MS: u64 = 1_000;
/// The word a healthy `/health` body contains (the runbook greps for it).
pub const DEFAULT_MARKER: &str = "healthy";
/// Upper bound on the time one check may take, so a check always ends inside a Lambda timeout.
pub const MAX_CHECK_MS: u64 = 600_000;

/// What a state machine asks the `check-health` task to do (its JSON input).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckRequest {
    /// The endpoint to probe, e.g. `https://gateway.us-west-2.internal/health`.
    pub url: String,
    /// What the operator calls this endpoint in messages (`primary`, `standby`, a region).
    #[serde(default)]
    pub label: Option<String>,
    /// How many probes to send (1-20).
    #[serde(default)]
    pub samples: Option<u32>,
    /// How long one probe may take before it counts as failed (50-30000 ms).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Pause between probes (0-60000 ms).
    #[serde(default)]
    pub interval_ms: Option<u64>,
    /// The word a healthy body must contain as a whole word.
    #[serde(default)]
    pub expect_body: Option<String>,
    /// How many samples must be healthy for a healthy verdict; default: a majority.
    #[serde(default)]
    pub min_healthy: Option<u32>,
    /// Fail the task with `hapilot.EndpointUnhealthy` when the verdict is unhealthy.
    #[serde(default)]
    pub require_healthy: bool,
}

/// A validated [`HealthCheckRequest`] with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheckPlan {
    /// The endpoint to probe.
    pub url: String,
    /// The name used in messages.
    pub label: String,
    /// Number of probes.
    pub samples: u32,
    /// Per-probe timeout in milliseconds.
    pub timeout_ms: u64,
    /// Pause between probes in milliseconds.
    pub interval_ms: u64,
    /// Whole word a healthy body contains.
    pub marker: String,
    /// Healthy samples needed for a healthy verdict.
    pub min_healthy: u32,
    /// Whether an unhealthy verdict fails the task.
    pub require_healthy: bool,
}

impl HealthCheckRequest {
    /// Checks every field and fills in defaults. Nothing is probed on bad input.
    pub fn plan(&self) -> Result<HealthCheckPlan, CoreError> {
        let url = self.url.trim();
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| {
                CoreError::invalid(
                    "url",
                    format!("must start with http:// or https:// (got {url:?})"),
                )
            })?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(CoreError::invalid(
                "url",
                format!("has no host (got {url:?})"),
            ));
        }
        let samples = self.samples.unwrap_or(DEFAULT_SAMPLES);
        if !(1..=20).contains(&samples) {
            return Err(CoreError::invalid(
                "samples",
                format!("must be 1 to 20 (got {samples})"),
            ));
        }
        let timeout_ms = self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(50..=30_000).contains(&timeout_ms) {
            return Err(CoreError::invalid(
                "timeout_ms",
                format!("must be 50 to 30000 (got {timeout_ms})"),
            ));
        }
        let interval_ms = self.interval_ms.unwrap_or(DEFAULT_INTERVAL_MS);
        if interval_ms > 60_000 {
            return Err(CoreError::invalid(
                "interval_ms",
                format!("must be 0 to 60000 (got {interval_ms})"),
            ));
        }
        let marker = self
            .expect_body
            .clone()
            .unwrap_or_else(|| DEFAULT_MARKER.to_string());
        if marker.trim().is_empty() || marker.len() > 256 {
            return Err(CoreError::invalid(
                "expect_body",
                "must be 1 to 256 characters",
            ));
        }
        let min_healthy = self.min_healthy.unwrap_or(samples / 2 + 1);
        if !(1..=samples).contains(&min_healthy) {
            return Err(CoreError::invalid(
                "min_healthy",
                format!("must be 1 to samples ({samples}) (got {min_healthy})"),
            ));
        }
        let worst_case = u64::from(samples) * timeout_ms + u64::from(samples - 1) * interval_ms;
        if worst_case > MAX_CHECK_MS {
            return Err(CoreError::invalid(
                "samples",
                format!(
                    "x (timeout_ms + interval_ms) may take {worst_case} ms, over the {MAX_CHECK_MS} ms limit"
                ),
            ));
        }
        Ok(HealthCheckPlan {
            url: url.to_string(),
            label: self.label.clone().unwrap_or_else(|| "endpoint".to_string()),
            samples,
            timeout_ms,
            interval_ms,
            marker,
            min_healthy,
            require_healthy: self.require_healthy,
        })
    }
}

/// What one probe saw, as the prober adapter reports it: facts, no judgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeObservation {
    /// HTTP status, when an answer arrived.
    pub status: Option<u16>,
    /// The start of the body (adapters keep at most a few KiB).
    pub body: String,
    /// Time from sending to the end of the body, or to the failure.
    pub latency_ms: u64,
    /// Why no complete answer arrived, if none did.
    pub failure: Option<ProbeFailure>,
}

/// Why a probe got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum ProbeFailure {
    /// Nothing (or not all of the body) within the timeout.
    Timeout,
    /// The connection could not be made (refused, reset, DNS).
    Connect(String),
    /// Any other transport error.
    Other(String),
}

/// The judgement of one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleResult {
    /// Whether this probe counts as healthy.
    pub healthy: bool,
    /// HTTP status, when one arrived.
    pub status: Option<u16>,
    /// Latency in milliseconds.
    pub latency_ms: u64,
    /// Why, in plain words (shown in reports).
    pub reason: String,
}

/// The verdict over all samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// At least `min_healthy` samples were healthy.
    Healthy,
    /// Fewer than `min_healthy` samples were healthy.
    Unhealthy,
}

/// The output of a health check: what a state machine branches on and a report shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The probed endpoint.
    pub url: String,
    /// The name used in messages.
    pub label: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Convenience for `Choice` states: `verdict == healthy`.
    pub healthy: bool,
    /// Healthy samples.
    pub healthy_samples: u32,
    /// Healthy samples that were needed.
    pub min_healthy: u32,
    /// Every sample, in order.
    pub samples: Vec<SampleResult>,
    /// One line for humans, e.g. `standby http://... unhealthy: 0/3 healthy (need 2): HTTP 503`.
    pub summary: String,
}

/// Judges one probe: healthy = a 2xx answer within the timeout whose body holds the marker
/// as a whole word.
pub fn judge_sample(observation: &ProbeObservation, plan: &HealthCheckPlan) -> SampleResult {
    let ProbeObservation {
        status,
        body,
        latency_ms,
        failure,
    } = observation;
    let (healthy, reason) = match (failure, status) {
        (Some(ProbeFailure::Timeout), _) => {
            (false, format!("no answer within {} ms", plan.timeout_ms))
        }
        (Some(ProbeFailure::Connect(e)), _) => (false, format!("connection failed: {e}")),
        (Some(ProbeFailure::Other(e)), _) => (false, format!("request failed: {e}")),
        (None, None) => (false, "no HTTP status".to_string()),
        (None, Some(code)) if !(200..300).contains(code) => (false, format!("HTTP {code}")),
        (None, Some(_)) if *latency_ms > plan.timeout_ms => (
            false,
            format!(
                "answered in {latency_ms} ms, over the {} ms timeout",
                plan.timeout_ms
            ),
        ),
        (None, Some(code)) if !contains_word(body, &plan.marker) => (
            false,
            format!("HTTP {code} but the body lacks the word {:?}", plan.marker),
        ),
        (None, Some(code)) => (true, format!("HTTP {code} in {latency_ms} ms")),
    };
    SampleResult {
        healthy,
        status: *status,
        latency_ms: *latency_ms,
        reason,
    }
}

/// Combines sample results into the verdict and its one-line summary.
pub fn judge(plan: &HealthCheckPlan, samples: Vec<SampleResult>) -> HealthReport {
    let healthy_samples = samples.iter().filter(|s| s.healthy).count() as u32;
    let verdict = if healthy_samples >= plan.min_healthy {
        Verdict::Healthy
    } else {
        Verdict::Unhealthy
    };
    let word = match verdict {
        Verdict::Healthy => "healthy",
        Verdict::Unhealthy => "unhealthy",
    };
    let mut summary = format!(
        "{} {} {word}: {healthy_samples}/{} samples healthy (need {})",
        plan.label,
        plan.url,
        samples.len(),
        plan.min_healthy
    );
    let failures = distinct_failure_reasons(&samples);
    if !failures.is_empty() {
        summary.push_str(": ");
        summary.push_str(&failures.join("; "));
    }
    HealthReport {
        url: plan.url.clone(),
        label: plan.label.clone(),
        verdict,
        healthy: verdict == Verdict::Healthy,
        healthy_samples,
        min_healthy: plan.min_healthy,
        samples,
        summary,
    }
}

/// Failure reasons, each once with a count, in order of first appearance.
fn distinct_failure_reasons(samples: &[SampleResult]) -> Vec<String> {
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for s in samples.iter().filter(|s| !s.healthy) {
        match seen.iter_mut().find(|(r, _)| *r == s.reason) {
            Some((_, n)) => *n += 1,
            None => seen.push((&s.reason, 1)),
        }
    }
    seen.into_iter()
        .map(|(r, n)| {
            if n > 1 {
                format!("{r} (x{n})")
            } else {
                r.to_string()
            }
        })
        .collect()
}

/// True when `word` occurs in `text` with no letter, digit or `_` right before or after it.
pub fn contains_word(text: &str, word: &str) -> bool {
    let is_word_char = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plan() -> HealthCheckPlan {
        HealthCheckRequest {
            url: "http://127.0.0.1:9/health".into(),
            label: Some("standby".into()),
            samples: None,
            timeout_ms: None,
            interval_ms: None,
            expect_body: None,
            min_healthy: None,
            require_healthy: false,
        }
        .plan()
        .unwrap()
    }

    fn answer(status: u16, body: &str, latency_ms: u64) -> ProbeObservation {
        ProbeObservation {
            status: Some(status),
            body: body.into(),
            latency_ms,
            failure: None,
        }
    }

    #[test]
    fn defaults_are_filled_in() {
        let p = plan();
        assert_eq!((p.samples, p.timeout_ms, p.min_healthy), (3, 2_000, 2));
        assert_eq!(p.marker, "healthy");
    }

    #[test]
    fn bad_input_names_the_field() {
        let mut r = HealthCheckRequest {
            url: "ftp://x".into(),
            label: None,
            samples: None,
            timeout_ms: None,
            interval_ms: None,
            expect_body: None,
            min_healthy: None,
            require_healthy: false,
        };
        assert!(matches!(r.plan(), Err(CoreError::InvalidInput { field, .. }) if field == "url"));
        r.url = "http:///health".into();
        assert!(matches!(r.plan(), Err(CoreError::InvalidInput { field, .. }) if field == "url"));
        r.url = "http://h/health".into();
        r.samples = Some(0);
        assert!(
            matches!(r.plan(), Err(CoreError::InvalidInput { field, .. }) if field == "samples")
        );
        r.samples = Some(3);
        r.min_healthy = Some(4);
        assert!(
            matches!(r.plan(), Err(CoreError::InvalidInput { field, .. }) if field == "min_healthy")
        );
        r.min_healthy = None;
        r.timeout_ms = Some(30_000);
        r.samples = Some(20);
        r.interval_ms = Some(60_000);
        let err = r.plan().unwrap_err();
        assert_eq!(err.name(), crate::ErrorName::InvalidInput);
        assert!(err.to_string().contains("limit"), "{err}");
    }

    #[test]
    fn unhealthy_body_is_not_healthy() {
        let p = plan();
        assert!(judge_sample(&answer(200, r#"{"status":"healthy"}"#, 5), &p).healthy);
        let s = judge_sample(&answer(200, r#"{"status":"unhealthy"}"#, 5), &p);
        assert!(!s.healthy);
        assert!(s.reason.contains("lacks"), "{}", s.reason);
    }

    #[test]
    fn sample_failures_say_why() {
        let p = plan();
        assert_eq!(
            judge_sample(&answer(503, "healthy", 5), &p).reason,
            "HTTP 503"
        );
        let timeout = ProbeObservation {
            status: None,
            body: String::new(),
            latency_ms: 2_000,
            failure: Some(ProbeFailure::Timeout),
        };
        assert_eq!(
            judge_sample(&timeout, &p).reason,
            "no answer within 2000 ms"
        );
        assert!(!judge_sample(&answer(200, "healthy", 2_001), &p).healthy);
    }

    #[test]
    fn summary_counts_repeated_reasons() {
        let p = plan();
        let samples = (0..3)
            .map(|_| judge_sample(&answer(503, "", 1), &p))
            .collect();
        let report = judge(&p, samples);
        assert_eq!(report.verdict, Verdict::Unhealthy);
        assert_eq!(
            report.summary,
            "standby http://127.0.0.1:9/health unhealthy: 0/3 samples healthy (need 2): HTTP 503 (x3)"
        );
    }

    proptest! {
        #[test]
        fn verdict_is_quorum(flags in proptest::collection::vec(any::<bool>(), 1..20), min in 1u32..20) {
            let mut p = plan();
            p.samples = flags.len() as u32;
            p.min_healthy = min.min(p.samples);
            let samples: Vec<_> = flags
                .iter()
                .map(|&ok| judge_sample(&answer(if ok { 200 } else { 500 }, "ok healthy", 1), &p))
                .collect();
            let report = judge(&p, samples);
            let healthy = flags.iter().filter(|&&b| b).count() as u32;
            prop_assert_eq!(report.healthy_samples, healthy);
            prop_assert_eq!(report.healthy, healthy >= p.min_healthy);
        }

        #[test]
        fn word_match_agrees_with_tokenising(prefix in "[a-z _{}\":]{0,8}", suffix in "[a-z _{}\":]{0,8}") {
            let text = format!("{prefix}healthy{suffix}");
            let tokens_have_word = text
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|t| t == "healthy");
            prop_assert_eq!(contains_word(&text, "healthy"), tokens_have_word);
        }
    }
}
