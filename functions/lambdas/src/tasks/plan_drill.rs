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
