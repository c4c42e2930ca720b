//! Task `check-health`: probe a `/health` endpoint N times and return the verdict.
//!
//! Input: [`hapilot_core::health::HealthCheckRequest`]; output:
//! [`hapilot_core::health::HealthReport`]. With `require_healthy`, an unhealthy verdict fails the
//! task as `hapilot.EndpointUnhealthy` so the ASL can `Catch` it; otherwise the state machine
//! branches on `$.healthy` with a `Choice`.

use std::time::Duration;

use hapilot_adapters::Prober;
use hapilot_core::ErrorName;
use hapilot_core::health::{HealthCheckRequest, judge, judge_sample};
use serde_json::Value;

use crate::FunctionError;
use crate::error::parse_input;

/// Runs one health check.
pub async fn check_health(prober: &impl Prober, input: Value) -> Result<Value, FunctionError> {
    let request: HealthCheckRequest = parse_input(input)?;
    let plan = request.plan()?;
    let timeout = Duration::from_millis(plan.timeout_ms);
    let mut samples = Vec::with_capacity(plan.samples as usize);
    for i in 0..plan.samples {
        if i > 0 && plan.interval_ms > 0 {
            tokio::time::sleep(Duration::from_millis(plan.interval_ms)).await;
        }
        let observation = prober.probe(&plan.url, timeout).await;
        samples.push(judge_sample(&observation, &plan));
    }
    let report = judge(&plan, samples);
    tracing::info!(url = %report.url, verdict = ?report.verdict, summary = %report.summary, "health check");
    if plan.require_healthy && !report.healthy {
        return Err(FunctionError::Named {
            name: ErrorName::EndpointUnhealthy,
            message: report.summary,
        });
    }
    serde_json::to_value(report).map_err(|e| FunctionError::Setup(e.to_string()))
}
