//! Task `shift-traffic`: move the global name's traffic in one change through the run's traffic
//! switch (`"switch"`: `weights`, the default, or the deployment's `health_check` /
//! `arc_routing_control`). Used to move traffic to the standby and, with the snapshot, to
//! restore it. Input: `{"activate": "<set>"}` (that set 100, every other 0), `{"split": {"to":
//! "<set>", "percent": N}}` (that set N, every other 100 - N) or `{"weights": {set: weight}}`,
//! plus `"reason"` and `"run"`.
//!
//! A `weights` move in a deployment whose emergency path is a data-plane switch also turns
//! every region's control back on: weights are for planned moves with both regions up (a
//! failback after a data-plane failover must let the primary answer again).

use std::collections::BTreeMap;

use hapilot_adapters::journal::Journal;
use hapilot_adapters::traffic_switch::TrafficSwitch;
use hapilot_core::weights::{TrafficMove, target_weights};
use hapilot_core::{CoreError, ErrorName};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::config::Settings;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
struct Split {
    to: String,
    percent: i64,
}

#[derive(Deserialize)]
struct Input {
    #[serde(default)]
    split: Option<Split>,
    #[serde(default)]
    weights: Option<BTreeMap<String, i64>>,
    #[serde(default)]
    activate: Option<String>,
    #[serde(default)]
    reason: String,
    #[serde(default = "crate::run::default_switch")]
    switch: String,
    run: RunContext,
}

/// Sets the weights.
pub async fn shift_traffic<S: TrafficSwitch>(
    switch: impl Fn(&str) -> Result<S, FunctionError>,
    settings: &Settings,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        split,
        weights,
        activate,
        reason,
        switch: kind,
        run,
    } = parse_input(input)?;
    let moving = switch(&kind)?;
    let before: BTreeMap<String, i64> = moving
        .states()
        .await
        .map_err(FunctionError::from_adapter(ErrorName::TrafficShiftFailed))?;
    let wanted = match (weights, activate, split) {
        (Some(w), None, None) => TrafficMove::Weights(w),
        (None, Some(active), None) => TrafficMove::Activate(active),
        (None, None, Some(Split { to, percent })) => TrafficMove::Split { to, percent },
        _ => {
            return Err(CoreError::invalid(
                "weights",
                "give exactly one of `weights`, `activate` and `split`",
            )
            .into());
        }
    };
    let sets: Vec<String> = before.keys().cloned().collect();
    let weights = target_weights(&sets, &wanted)?;
    let wanted: Vec<(String, i64)> = weights.clone().into_iter().collect();
    let comment = format!("hapilot {}: {reason}", run.execution);
    let change_id = moving
        .apply(&wanted, &comment)
        .await
        .map_err(FunctionError::from_adapter(ErrorName::TrafficShiftFailed))?;
    let data_plane = settings.traffic_switch.kind();
    let controls_on = if kind == "weights" && data_plane != "weights" {
        let controls = switch(data_plane)?;
        let all_on: Vec<(String, i64)> = controls
            .states()
            .await
            .map_err(FunctionError::from_adapter(ErrorName::TrafficShiftFailed))?
            .into_keys()
            .map(|set| (set, 100))
            .collect();
        controls
            .apply(&all_on, &comment)
            .await
            .map_err(FunctionError::from_adapter(ErrorName::TrafficShiftFailed))?;
        Some(data_plane)
    } else {
        None
    };
    let out = json!({ "change_id": change_id, "switch": kind, "before": before, "after": weights,
                      "reason": reason, "controls_turned_on": controls_on });
    record(journal, &run, out.clone()).await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::journal::MemoryJournal;
    use hapilot_adapters::traffic_switch::MemoryTrafficSwitch;

    fn input(extra: Value) -> Value {
        let mut input = json!({
            "reason": "failover to us-west-2",
            "run": RunContext::fixture_json("failover", "ShiftTraffic"),
        });
        for (k, v) in extra.as_object().unwrap() {
            input[k] = v.clone();
        }
        input
    }

    #[tokio::test]
    async fn activate_moves_all_traffic_in_one_change_and_journals_before_and_after() {
        let switch = MemoryTrafficSwitch::with(&[("us-east-1", 100), ("us-west-2", 0)]);
        let journal = MemoryJournal::default();
        let settings = Settings::fixture(&["us-east-1", "us-west-2"]);
        let s = switch.clone();
        let out = shift_traffic(
            |_: &str| Ok(s.clone()),
            &settings,
            &journal,
            input(json!({"activate": "us-west-2"})),
        )
        .await
        .unwrap();
        let after = switch.states().await.unwrap();
        assert_eq!((after["us-east-1"], after["us-west-2"]), (0, 100));
        assert_eq!(switch.changes().len(), 1, "one change, never two halves");
        assert_eq!(out["before"], json!({"us-east-1": 100, "us-west-2": 0}));
        assert_eq!(out["after"], json!({"us-east-1": 0, "us-west-2": 100}));
        assert_eq!(out["controls_turned_on"], Value::Null);
        let step = RunContext::fixture("failover", "ShiftTraffic").key();
        assert_eq!(
            journal.get(&step).await.unwrap().unwrap()["change_id"],
            out["change_id"]
        );
    }

    #[tokio::test]
    async fn two_moves_at_once_are_refused_before_anything_changes() {
        let switch = MemoryTrafficSwitch::with(&[("us-east-1", 100), ("us-west-2", 0)]);
        let journal = MemoryJournal::default();
        let settings = Settings::fixture(&["us-east-1", "us-west-2"]);
        let s = switch.clone();
        let err = shift_traffic(
            |_: &str| Ok(s.clone()),
            &settings,
            &journal,
            input(json!({"activate": "us-west-2", "split": {"to": "us-west-2", "percent": 50}})),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), "hapilot.InvalidInput", "{err}");
        assert!(switch.changes().is_empty());
    }
}
