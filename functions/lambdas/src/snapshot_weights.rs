//! Task `snapshot-weights`: read the global name's weighted records before anything changes,
//! for compensation and the report. Output: `{"records": [...], "weights": {set: weight}}`.

use hapilot_aws::dns::Dns;
use hapilot_aws::journal::Journal;
use hapilot_core::ErrorName;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::FunctionError;
use crate::config::Settings;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
struct Input {
    run: RunContext,
}

/// Snapshots the weights.
pub async fn snapshot_weights(
    dns: &impl Dns,
    settings: &Settings,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input { run } = parse_input(input)?;
    let zone = settings.get(&settings.hosted_zone_id, "HAPILOT_HOSTED_ZONE_ID")?;
    let name = settings.get(&settings.record_name, "HAPILOT_RECORD_NAME")?;
    let records = dns
        .weighted_records(zone, name)
        .await
        .map_err(FunctionError::from_adapter(ErrorName::TrafficShiftFailed))?;
    if records.is_empty() {
        return Err(FunctionError::named(
            ErrorName::TrafficShiftFailed,
            format!("{name} has no weighted records in zone {zone}: nothing to fail over"),
        ));
    }
    let weights: Map<String, Value> = records
        .iter()
        .map(|r| (r.set_identifier.clone(), json!(r.weight)))
        .collect();
    let out = json!({ "records": records, "weights": weights });
    record(journal, &run, json!({ "after": out })).await?;
    Ok(out)
}
