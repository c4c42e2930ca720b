//! Task `start-run`: start a child run (the DR drill's failover or failback) through the
//! Step Functions API - the local engine cannot run `states:startExecution` integrations, and a
//! Task + Wait + DescribeExecution loop works the same in AWS. Idempotent: a run of that name
//! that exists already is the one returned.
//! Input: `{"machine": "failover"|"failback", "name", "input"}`.

use hapilot_adapters::orchestrator::{Orchestrator, StartOutcome};
use hapilot_core::{CoreError, ErrorName};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::config::Settings;
use crate::error::parse_input;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    machine: String,
    name: String,
    input: Value,
}

/// Starts the child.
pub async fn start_run(
    settings: &Settings,
    runs: &impl Orchestrator,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        machine,
        name,
        input,
    } = parse_input(input)?;
    let arn = match machine.as_str() {
        "failover" => settings.get(
            &settings.failover_state_machine_arn,
            "HAPILOT_FAILOVER_STATE_MACHINE_ARN",
        )?,
        "failback" => settings.get(
            &settings.failback_state_machine_arn,
            "HAPILOT_FAILBACK_STATE_MACHINE_ARN",
        )?,
        other => {
            return Err(CoreError::invalid(
                "machine",
                format!("{other:?} is not a child hapilot starts (failover, failback)"),
            )
            .into());
        }
    };
    let execution_arn = match runs
        .start(arn, &name, &input)
        .await
        .map_err(FunctionError::from_adapter(ErrorName::SetupFailed))?
    {
        StartOutcome::Started(arn) => arn,
        StartOutcome::AlreadyExists => format!(
            "{}:{name}",
            arn.replacen(":stateMachine:", ":execution:", 1)
        ),
    };
    Ok(json!({ "machine": machine, "execution_arn": execution_arn }))
}
