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
}

/// Plans the drill; nothing is touched.
pub async fn plan_drill(settings: &Settings, input: Value) -> Result<Value, FunctionError> {
    let Input { request } = parse_input(input)?;
    for region in [&request.primary_region, &request.standby_region] {
        settings.region(region)?;
    }
    let plan = plan(request, settings.tier.unwrap_or(Tier::Critical))?;
    serde_json::to_value(plan).map_err(|e| FunctionError::Setup(e.to_string()))
}
