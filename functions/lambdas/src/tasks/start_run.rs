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

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::orchestrator::MemoryOrchestrator;

    const FAILOVER: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:hapilot-failover";

    fn settings() -> Settings {
        let mut settings = Settings::fixture(&["us-east-1", "us-west-2"]);
        settings.failover_state_machine_arn = Some(FAILOVER.into());
        settings
    }

    #[tokio::test]
    async fn a_child_started_twice_is_the_same_run() {
        let runs = MemoryOrchestrator::default();
        let input = json!({"machine": "failover", "name": "drill-1-failover", "input": {"mode": "graceful"}});
        let first = start_run(&settings(), &runs, input.clone()).await.unwrap();
        let again = start_run(&settings(), &runs, input).await.unwrap();
        assert_eq!(
            again["execution_arn"],
            "arn:aws:states:us-east-1:123456789012:execution:hapilot-failover:drill-1-failover"
        );
        assert_eq!(first["execution_arn"], again["execution_arn"]);
        assert_eq!(runs.started().len(), 1, "started once");
        assert_eq!(runs.started()[0].2, json!({"mode": "graceful"}));
    }

    #[tokio::test]
    async fn only_the_drills_children_may_be_started_and_only_when_deployed() {
        let runs = MemoryOrchestrator::default();
        let err = start_run(
            &settings(),
            &runs,
            json!({"machine": "dr-restore", "name": "x", "input": {}}),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), "hapilot.InvalidInput", "{err}");
        let err = start_run(
            &settings(),
            &runs,
            json!({"machine": "failback", "name": "x", "input": {}}),
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("HAPILOT_FAILBACK_STATE_MACHINE_ARN"),
            "{err}"
        );
        assert!(runs.started().is_empty());
    }
}
