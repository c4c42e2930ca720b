//! Task `check-health`: probe a `/health` endpoint N times and return the verdict.
//!
//! Input: [`hapilot_core::health::HealthCheckRequest`]; output:
//! [`hapilot_core::health::HealthReport`]. With `require_healthy`, an unhealthy verdict fails the
//! task as `hapilot.EndpointUnhealthy` so the ASL can `Catch` it; otherwise the state machine
//! branches on `$.healthy` with a `Choice`.

use std::time::Duration;

use hapilot_adapters::Prober;
use hapilot_core::ErrorName;
use hapilot_core::health::{
    HealthCheckPlan, HealthCheckRequest, HealthReport, judge, judge_sample,
};
use serde_json::Value;

use crate::FunctionError;
use crate::error::parse_input;

/// Runs one health check.
pub async fn check_health(prober: &impl Prober, input: Value) -> Result<Value, FunctionError> {
    let request: HealthCheckRequest = parse_input(input)?;
    let plan = request.plan()?;
    let report = probe_endpoint(prober, &plan).await;
    tracing::info!(url = %report.url, verdict = ?report.verdict, summary = %report.summary, "health check");
    if plan.require_healthy && !report.healthy {
        return Err(FunctionError::Named {
            name: ErrorName::EndpointUnhealthy,
            message: report.summary,
        });
    }
    serde_json::to_value(report).map_err(|e| FunctionError::Setup(e.to_string()))
}

/// Probes `plan.url` `plan.samples` times and judges the samples.
pub async fn probe_endpoint(prober: &impl Prober, plan: &HealthCheckPlan) -> HealthReport {
    let timeout = Duration::from_millis(plan.timeout_ms);
    let mut samples = Vec::with_capacity(plan.samples as usize);
    for i in 0..plan.samples {
        if i > 0 && plan.interval_ms > 0 {
            tokio::time::sleep(Duration::from_millis(plan.interval_ms)).await;
        }
        let observation = prober.probe(&plan.url, timeout).await;
        samples.push(judge_sample(&observation, plan));
    }
    judge(plan, samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::prober::MemoryProber;
    use hapilot_core::health::ProbeObservation;
    use serde_json::json;

    /// The runbook's health check over a fake prober: a healthy body passes; an endpoint that
    /// does not answer fails by name only when the run requires it healthy.
    #[tokio::test]
    async fn healthy_passes_and_an_unanswered_required_check_fails_by_name() {
        let mut prober = MemoryProber::default();
        prober.answers.insert(
            "https://east.example.com/health".into(),
            ProbeObservation {
                status: Some(200),
                body: r#"{"status": "healthy"}"#.into(),
                latency_ms: 3,
                failure: None,
            },
        );
        let ok = check_health(
            &prober,
            json!({"url": "https://east.example.com/health", "interval_ms": 0}),
        )
        .await
        .unwrap();
        assert_eq!(ok["healthy"], true, "{ok:#}");
        let quiet = json!({"url": "https://west.example.com/health", "interval_ms": 0});
        let report = check_health(&prober, quiet.clone()).await.unwrap();
        assert_eq!(report["healthy"], false);
        let mut required = quiet;
        required["require_healthy"] = json!(true);
        let e = check_health(&prober, required).await.unwrap_err();
        assert!(
            matches!(
                e,
                FunctionError::Named {
                    name: ErrorName::EndpointUnhealthy,
                    ..
                }
            ),
            "{e}"
        );
    }
}
