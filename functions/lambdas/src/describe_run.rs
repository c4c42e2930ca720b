//! Task `describe-run`: one look at a child run (DescribeExecution), for the parent's Wait +
//! Choice loop. Input: `{"execution_arn", "polls"?}`.

use hapilot_adapters::orchestrator::Orchestrator;
use hapilot_core::ErrorName;
use serde::Deserialize;
use serde_json::Value;

use crate::FunctionError;
use crate::error::parse_input;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    execution_arn: String,
    #[serde(default)]
    polls: u64,
}

/// Looks once.
pub async fn describe_run(runs: &impl Orchestrator, input: Value) -> Result<Value, FunctionError> {
    let Input {
        execution_arn,
        polls,
    } = parse_input(input)?;
    let status = runs
        .describe(&execution_arn)
        .await
        .map_err(FunctionError::from_adapter(ErrorName::SetupFailed))?;
    let mut out = serde_json::to_value(&status).map_err(|e| FunctionError::Setup(e.to_string()))?;
    out["execution_arn"] = execution_arn.into();
    out["polls"] = (polls + 1).into();
    out["running"] = (status.status == "RUNNING").into();
    out["duration_secs"] = status.stopped.map(|s| s - status.started).into();
    Ok(out)
}
