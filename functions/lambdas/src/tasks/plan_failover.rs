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
