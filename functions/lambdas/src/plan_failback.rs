//! Task `plan-failback`: validate a failback input against the deployment and fill in defaults,
//! before anything is touched. Output: the [`hapilot_core::failback::FailbackPlan`].

use hapilot_aws::journal::Journal;
use hapilot_core::failback::{FailbackRequest, plan_failback as make_plan};
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

/// Plans one failback run.
pub async fn plan_failback(
    settings: &Settings,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input { request, run } = parse_input(input)?;
    let request: FailbackRequest = parse_input(request)?;
    let global = settings.get(&settings.global_health_url, "HAPILOT_GLOBAL_HEALTH_URL")?;
    let tier = settings.tier.unwrap_or(hapilot_core::tier::Tier::Critical);
    let plan = make_plan(&request, &settings.sites(), global, tier)?;
    let plan = serde_json::to_value(&plan).map_err(|e| FunctionError::Setup(e.to_string()))?;
    record(journal, &run, json!({ "request": request, "plan": plan })).await?;
    Ok(plan)
}
