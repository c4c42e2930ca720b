//! Task `scale-region`: scale the region taking over to carry all traffic (the HA document:
//! litellm 5 replicas, agentgateway 3; `HAPILOT_SCALE_TARGETS`). A region without a Kubernetes
//! API in the configuration is skipped and says so.

use hapilot_adapters::journal::Journal;
use hapilot_adapters::scaler::Scaler;
use hapilot_core::ErrorName;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::config::Settings;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
struct Input {
    region: String,
    run: RunContext,
}

/// Scales `region`'s deployments.
pub async fn scale_region<S: Scaler>(
    scaler: impl FnOnce(&str) -> Result<Option<S>, FunctionError>,
    settings: &Settings,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input { region, run } = parse_input(input)?;
    let Some(scaler) = scaler(&region)? else {
        let out =
            json!({ "region": region, "skipped": "no Kubernetes API configured for this region" });
        record(journal, &run, json!({ "after": out })).await?;
        return Ok(out);
    };
    let mut changes = Vec::new();
    for (deployment, replicas) in &settings.scale_targets {
        let change = scaler
            .scale(deployment, *replicas)
            .await
            .map_err(FunctionError::from_adapter(ErrorName::ScaleFailed))?;
        changes.push(change);
    }
    let out = json!({ "region": region, "changes": changes });
    record(journal, &run, json!({ "after": out })).await?;
    Ok(out)
}
