//! Task `canary-gate`: measure the primary region's error rate over the bake window and decide
//! whether the failback may go on. With `policy.judge`, the canary is also compared with the
//! baseline region metric by metric ([`hapilot_core::canary_judge`]: error counts and the
//! provider's latency series over the same window), and the worse verdict decides.
//! Input: `{"region", "baseline_region"?, "window_seconds", "policy", "counters"?, "step",
//! "run"}`; output: the [`hapilot_core::canary::GateOutcome`] plus the raw measurements and the
//! judge's table (`judgement`), so the journal and the report show why.

use hapilot_adapters::journal::Journal;
use hapilot_adapters::traffic::TrafficMetrics;
use hapilot_core::canary::{CanaryPolicy, GateCounters, judge_canary, with_judgement};
use hapilot_core::canary_judge::{ErrorCounts, LatencySamples, judge};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
struct Input {
    region: String,
    #[serde(default)]
    baseline_region: Option<String>,
    window_seconds: u64,
    policy: CanaryPolicy,
    #[serde(default)]
    counters: GateCounters,
    step: i64,
    run: RunContext,
}

/// Measures and judges once.
pub async fn canary_gate(
    traffic: &impl TrafficMetrics,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        region,
        baseline_region,
        window_seconds,
        policy,
        counters,
        step,
        run,
    } = parse_input(input)?;
    policy.validate()?;
    let primary = traffic
        .measure(&region, window_seconds)
        .await
        .map_err(|e| e.to_string());
    let baseline = match &baseline_region {
        Some(b) => Some(
            traffic
                .measure(b, window_seconds)
                .await
                .map_err(|e| e.to_string()),
        ),
        None => None,
    };
    let mut outcome = judge_canary(primary.clone(), baseline.clone(), &policy, counters);
    let judgement = match (&policy.judge, &baseline_region) {
        (Some(judge_policy), Some(baseline_region)) => {
            let counts = |m: &Result<hapilot_core::canary::TrafficMeasurement, String>| {
                m.as_ref().ok().map(|m| (m.errors, m.requests))
            };
            let errors = ErrorCounts {
                canary: counts(&primary),
                baseline: baseline.as_ref().and_then(counts),
            };
            let (canary, base) = (
                traffic.latency(&region, window_seconds).await,
                traffic.latency(baseline_region, window_seconds).await,
            );
            let latencies: Vec<LatencySamples> = canary
                .into_iter()
                .map(|(metric, samples)| LatencySamples {
                    baseline: base
                        .iter()
                        .find(|(m, _)| *m == metric)
                        .and_then(|(_, s)| s.clone()),
                    canary: samples,
                    metric,
                })
                .collect();
            let judgement = judge(
                &errors,
                &latencies,
                policy.min_requests,
                policy.max_error_rate,
                judge_policy,
            );
            outcome = with_judgement(outcome, &judgement, &policy, counters);
            Some(judgement)
        }
        (Some(_), None) => {
            return Err(FunctionError::Core(hapilot_core::CoreError::invalid(
                "baseline_region",
                "the judge compares the canary with a baseline: name the region carrying the traffic now",
            )));
        }
        _ => None,
    };
    let mut out =
        serde_json::to_value(&outcome).map_err(|e| FunctionError::Setup(e.to_string()))?;
    out["judgement"] = json!(judgement);
    out["step"] = json!(step);
    out["region"] = json!(region);
    out["measurement"] = match &primary {
        Ok(m) => json!(m),
        Err(e) => json!({ "error": e }),
    };
    out["baseline"] = match &baseline {
        Some(Ok(m)) => json!(m),
        Some(Err(e)) => json!({ "error": e }),
        None => Value::Null,
    };
    tracing::info!(step, verdict = ?outcome.verdict, decision = ?outcome.decision, summary = %outcome.summary, "canary gate");
    record(journal, &run, json!({ "measurements": out })).await?;
    Ok(out)
}
