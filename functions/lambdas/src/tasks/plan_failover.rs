//! Task `plan-failover`: validate the run's input against the deployment and fill in defaults,
//! before anything is touched, then take the platform's run lock (`hapilot.RunInProgress` when
//! another run holds it). Input: `{"request": <failover input>, "run": ...}` (the run with
//! `execution_arn`); output: the [`hapilot_core::failover::FailoverPlan`].

use hapilot_adapters::dns::Dns;
use hapilot_adapters::journal::Journal;
use hapilot_adapters::orchestrator::Orchestrator;
use hapilot_core::failover::{FailoverMode, FailoverRequest, plan_failover as make_plan};
use hapilot_core::weights::planned_move_switch;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::config::Settings;
use crate::error::parse_input;
use crate::run::{RunContext, global_records, record, take_run_lock};

#[derive(Deserialize)]
struct Input {
    request: Value,
    run: RunContext,
}

/// Plans one failover run. A graceful switchover reads the global name's records (both regions
/// are up, Route53's control plane is reachable) to pick how it moves traffic; the emergency
/// path never calls Route53's control plane.
pub async fn plan_failover(
    settings: &Settings,
    dns: &impl Dns,
    runs: &impl Orchestrator,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input { request, run } = parse_input(input)?;
    let request: FailoverRequest = parse_input(request)?;
    let global = settings.get(&settings.global_health_url, "HAPILOT_GLOBAL_HEALTH_URL")?;
    let plan = make_plan(
        &request,
        &settings.sites(),
        global,
        settings.tier.unwrap_or(hapilot_core::tier::Tier::Critical),
    )?
    .with_traffic_switch(settings.traffic_switch.kind());
    let plan = if plan.mode == FailoverMode::Graceful {
        let (name, records) = global_records(settings, dns).await?;
        let mut plan = plan;
        plan.traffic_switch = planned_move_switch(name, &records, settings.traffic_switch.kind())?;
        plan
    } else {
        plan
    };
    // The plan is valid: take the platform's run lock before anything changes.
    let lock = take_run_lock(journal, runs, &run).await?;
    let plan = serde_json::to_value(&plan).map_err(|e| FunctionError::Setup(e.to_string()))?;
    record(
        journal,
        &run,
        json!({ "request": request, "plan": plan, "run_lock": lock }),
    )
    .await?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::AdapterError;
    use hapilot_adapters::journal::MemoryJournal;
    use hapilot_adapters::orchestrator::MemoryOrchestrator;

    /// The emergency path never reads Route53's control plane.
    struct NoControlPlane;

    impl Dns for NoControlPlane {
        async fn weighted_records(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Vec<hapilot_adapters::dns::WeightedRecord>, AdapterError> {
            unreachable!("an ungraceful plan reads no records")
        }
        async fn set_weights(
            &self,
            _: &str,
            _: &str,
            _: &[(String, i64)],
            _: &str,
        ) -> Result<String, AdapterError> {
            unreachable!("a plan changes no weights")
        }
        async fn record_routing(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Vec<hapilot_core::weights::GlobalRecord>, AdapterError> {
            unreachable!("an ungraceful plan reads no records")
        }
        async fn change_in_sync(&self, _: &str) -> Result<bool, AdapterError> {
            unreachable!()
        }
    }

    const MACHINE: &str = "arn:aws:states:us-west-2:123456789012:stateMachine:hapilot-failover";

    fn input(execution: &str) -> Value {
        let mut run = RunContext::fixture_json("failover", "PlanFailover");
        run["execution"] = execution.into();
        run["execution_arn"] = format!(
            "{}:{execution}",
            MACHINE.replace(":stateMachine:", ":execution:")
        )
        .into();
        json!({
            "request": {"primary_region": "us-east-1", "standby_region": "us-west-2", "mode": "ungraceful"},
            "run": run,
        })
    }

    fn settings() -> Settings {
        let mut settings = Settings::fixture(&["us-east-1", "us-west-2"]);
        settings.global_health_url = Some("http://global/health".into());
        settings
    }

    #[tokio::test]
    async fn a_plan_takes_the_run_lock_and_a_second_run_is_refused_while_the_first_runs() {
        let (journal, runs) = (MemoryJournal::default(), MemoryOrchestrator::default());
        runs.start(MACHINE, "first", &json!({})).await.unwrap();
        let plan = plan_failover(
            &settings(),
            &NoControlPlane,
            &runs,
            &journal,
            input("first"),
        )
        .await
        .unwrap();
        assert_eq!(plan["standby"]["region"], "us-west-2", "{plan}");
        let step = RunContext {
            execution: "first".into(),
            ..RunContext::fixture("failover", "PlanFailover")
        }
        .key();
        assert_eq!(journal.get(&step).await.unwrap().unwrap()["plan"], plan);

        runs.start(MACHINE, "second", &json!({})).await.unwrap();
        let refused = plan_failover(
            &settings(),
            &NoControlPlane,
            &runs,
            &journal,
            input("second"),
        )
        .await
        .unwrap_err();
        assert_eq!(refused.error_type(), "hapilot.RunInProgress", "{refused}");

        // Once the first run has ended, the lock is taken over.
        runs.finish("first", "SUCCEEDED");
        plan_failover(
            &settings(),
            &NoControlPlane,
            &runs,
            &journal,
            input("second"),
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn an_unknown_standby_is_refused_before_the_lock_is_taken() {
        let (journal, runs) = (MemoryJournal::default(), MemoryOrchestrator::default());
        let mut bad = input("first");
        bad["request"]["standby_region"] = "ap-south-1".into();
        let refused = plan_failover(&settings(), &NoControlPlane, &runs, &journal, bad)
            .await
            .unwrap_err();
        assert_eq!(refused.error_type(), "hapilot.InvalidInput", "{refused}");
        let lock = hapilot_core::run_lock::LOCK_KEY;
        assert_eq!(
            journal.get(lock).await.unwrap(),
            None,
            "no lock taken on bad input"
        );
    }
}
