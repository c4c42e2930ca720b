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
    #[serde(default = "crate::run::default_switch")]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> Value {
        json!({"machine": "failover", "execution": "f-1", "state": "S", "entered": "2026-12-01T09:00:00Z"})
    }
    use hapilot_adapters::journal::MemoryJournal;
    use hapilot_adapters::traffic_switch::MemoryTrafficSwitch;

    /// The weights before any move are journaled; a switch with nothing to switch is refused.
    #[tokio::test]
    async fn the_weights_before_are_kept_and_an_empty_switch_is_refused() {
        let journal = MemoryJournal::default();
        let switch = MemoryTrafficSwitch::with(&[("primary", 100), ("secondary", 0)]);
        let out = snapshot_weights(|_| Ok(switch), &journal, json!({"run": run()}))
            .await
            .unwrap();
        assert_eq!(out["switch"], "weights");
        assert_eq!(out["weights"], json!({"primary": 100, "secondary": 0}));
        let e = snapshot_weights(
            |_| Ok(MemoryTrafficSwitch::default()),
            &journal,
            json!({"run": run()}),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("nothing to fail over"), "{e}");
    }
}
