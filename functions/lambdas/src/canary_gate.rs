//! Task `canary-gate`: measure the primary region's error rate over the bake window and decide
//! whether the failback may go on. Input: `{"region", "baseline_region"?, "window_seconds",
//! "policy", "counters"?, "step", "run"}`; output: the [`hapilot_core::canary::GateOutcome`]
//! plus the raw measurements, so the journal shows why.

use hapilot_adapters::journal::Journal;
use hapilot_adapters::traffic::TrafficMetrics;
use hapilot_core::canary::{CanaryPolicy, GateCounters, judge_canary};
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
    let outcome = judge_canary(primary.clone(), baseline.clone(), &policy, counters);
    let mut out =
        serde_json::to_value(&outcome).map_err(|e| FunctionError::Setup(e.to_string()))?;
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
