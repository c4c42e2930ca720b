//! Task `plan-failover`: validate the run's input against the deployment and fill in defaults,
//! before anything is touched. Input: `{"request": <failover input>, "run": ...}`; output: the
//! [`hapilot_core::failover::FailoverPlan`].

use hapilot_adapters::journal::Journal;
use hapilot_core::failover::{FailoverRequest, plan_failover as make_plan};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::config::Settings;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
struct Input {
    request: Value,
    run: RunContext,
}

/// Plans one failover run.
pub async fn plan_failover(
    settings: &Settings,
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
    let plan = serde_json::to_value(&plan).map_err(|e| FunctionError::Setup(e.to_string()))?;
    record(journal, &run, json!({ "request": request, "plan": plan })).await?;
    Ok(plan)
}
