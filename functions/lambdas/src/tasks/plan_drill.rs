//! Task `plan-drill`: validate a DR drill request and build its children's inputs (the
//! failover, then the canary failback) and its targets (the tier's, or stricter ones).
//! Input: `{"request": <statemachines/schemas/dr-drill.input.json>}`.

use hapilot_core::drill::{DrillRequest, plan_drill as plan};
use hapilot_core::tier::Tier;
use serde::Deserialize;
use serde_json::Value;

use crate::FunctionError;
use crate::config::Settings;
use crate::error::parse_input;

#[derive(Deserialize)]
struct Input {
    request: DrillRequest,
    run: crate::run::RunContext,
}

/// Plans the drill, then takes the platform's run lock for the whole drill: its failover and
/// failback children run under it, and no other run changes the platform between them.
pub async fn plan_drill(
    settings: &Settings,
    (journal, runs): (
        &impl hapilot_adapters::journal::Journal,
        &impl hapilot_adapters::orchestrator::Orchestrator,
    ),
    input: Value,
) -> Result<Value, FunctionError> {
    let Input { request, run } = parse_input(input)?;
    for region in [&request.primary_region, &request.standby_region] {
        settings.region(region)?;
    }
    let plan = plan(request, settings.tier.unwrap_or(Tier::Critical))?;
    let plan = serde_json::to_value(plan).map_err(|e| FunctionError::Setup(e.to_string()))?;
    crate::run::take_run_lock(journal, runs, &run).await?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::RunContext;
    use hapilot_adapters::journal::{Journal, MemoryJournal};
    use hapilot_adapters::orchestrator::{MemoryOrchestrator, Orchestrator};
    use hapilot_core::run_lock::LOCK_KEY;
    use serde_json::json;

    const MACHINE: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:hapilot-dr-drill";

    fn input(standby: &str) -> Value {
        let mut run = RunContext::fixture_json("dr-drill", "PlanDrill");
        run["execution_arn"] = format!(
            "{}:dr-drill-unit",
            MACHINE.replace(":stateMachine:", ":execution:")
        )
        .into();
        json!({
            "request": {
                "primary_region": "us-east-1", "standby_region": standby,
                "data_check": {"table": "spend", "column": "at"},
            },
            "run": run,
        })
    }

    #[tokio::test]
    async fn a_drill_is_planned_under_the_platform_lock() {
        let settings = Settings::fixture(&["us-east-1", "us-west-2"]);
        let (journal, runs) = (MemoryJournal::default(), MemoryOrchestrator::default());
        runs.start(MACHINE, "dr-drill-unit", &json!({}))
            .await
            .unwrap();
        let plan = plan_drill(&settings, (&journal, &runs), input("us-west-2"))
            .await
            .unwrap();
        assert_eq!(plan["standby_region"], "us-west-2", "{plan}");
        assert_eq!(
            plan["failover_input"]["standby_region"], "us-west-2",
            "{plan}"
        );
        let lock = journal.get(LOCK_KEY).await.unwrap().expect("the lock");
        assert_eq!(lock["execution"], "dr-drill-unit");
    }

    #[tokio::test]
    async fn a_region_the_deployment_lacks_is_refused_before_the_lock() {
        let settings = Settings::fixture(&["us-east-1", "us-west-2"]);
        let (journal, runs) = (MemoryJournal::default(), MemoryOrchestrator::default());
        let err = plan_drill(&settings, (&journal, &runs), input("ap-south-1"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("ap-south-1"), "{err}");
        assert_eq!(journal.get(LOCK_KEY).await.unwrap(), None);
    }
}
