//! Task `snapshot-weights`: read where the global name sends traffic before anything changes,
//! for compensation and the report. Input: `{"switch"?: "weights" | "health_check" |
//! "arc_routing_control", "run"}` (default `weights`); output: `{"switch", "weights": {set:
//! weight}}` (on/off switches report 100 for on, 0 for off).

use hapilot_adapters::journal::Journal;
use hapilot_adapters::traffic_switch::TrafficSwitch;
use hapilot_core::ErrorName;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
struct Input {
    #[serde(default = "crate::shift_traffic::weights")]
    switch: String,
    run: RunContext,
}

/// Snapshots the traffic switch `switch(kind)` gives.
pub async fn snapshot_weights<S: TrafficSwitch>(
    switch: impl FnOnce(&str) -> Result<S, FunctionError>,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input { switch: kind, run } = parse_input(input)?;
    let weights = switch(&kind)?
        .states()
        .await
        .map_err(FunctionError::from_adapter(ErrorName::TrafficShiftFailed))?;
    if weights.is_empty() {
        return Err(FunctionError::named(
            ErrorName::TrafficShiftFailed,
            format!("the {kind} traffic switch has no record or control: nothing to fail over"),
        ));
    }
    let out = json!({ "switch": kind, "weights": weights });
    record(journal, &run, json!({ "after": out })).await?;
    Ok(out)
}
