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

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::orchestrator::{MemoryOrchestrator, StartOutcome};
    use serde_json::json;

    /// A child run followed over a fake orchestrator: running, then ended, the poll counted.
    #[tokio::test]
    async fn a_child_run_is_followed_until_it_ends() {
        let runs = MemoryOrchestrator::default();
        let machine = "arn:aws:states:us-west-2:123456789012:stateMachine:failover";
        let StartOutcome::Started(arn) = runs.start(machine, "child", &json!({})).await.unwrap()
        else {
            panic!("started");
        };
        let first = describe_run(&runs, json!({"execution_arn": arn, "polls": 0}))
            .await
            .unwrap();
        assert_eq!(
            (first["running"].clone(), first["polls"].clone()),
            (json!(true), json!(1))
        );
        runs.finish("child", "SUCCEEDED");
        let done = describe_run(&runs, json!({"execution_arn": arn, "polls": 1}))
            .await
            .unwrap();
        assert_eq!(done["running"], false);
        assert_eq!(done["status"], "SUCCEEDED");
    }
}
