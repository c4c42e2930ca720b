//! Task `check-dns-sync`: one look at a traffic change (a Route53 change reaching `INSYNC`, or
//! the control alarms / routing controls reaching the wanted states). The state machine loops
//! over it with a Wait state (no sleeping Lambda) and gives up after the plan's `dns_max_polls`.
//! Input: `{"change_id", "polls", "switch"?}`; output: `{"change_id", "in_sync", "polls": polls + 1}`.

use hapilot_adapters::traffic_switch::TrafficSwitch;
use hapilot_core::ErrorName;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;

#[derive(Deserialize)]
struct Input {
    change_id: String,
    #[serde(default)]
    polls: u64,
    #[serde(default = "crate::run::default_switch")]
    switch: String,
}

/// Looks at the change once.
pub async fn check_dns_sync<S: TrafficSwitch>(
    switch: impl FnOnce(&str) -> Result<S, FunctionError>,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        change_id,
        polls,
        switch: kind,
    } = parse_input(input)?;
    let in_sync = switch(&kind)?
        .in_sync(&change_id)
        .await
        .map_err(FunctionError::from_adapter(ErrorName::TrafficShiftFailed))?;
    Ok(json!({ "change_id": change_id, "in_sync": in_sync, "polls": polls + 1, "switch": kind }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::traffic_switch::MemoryTrafficSwitch;

    #[tokio::test]
    async fn one_look_counts_the_poll_and_names_the_switch() {
        let out = check_dns_sync(
            |kind: &str| {
                assert_eq!(kind, "weights", "weights unless the run says otherwise");
                Ok(MemoryTrafficSwitch::default())
            },
            json!({"change_id": "C1", "polls": 4}),
        )
        .await
        .unwrap();
        assert_eq!(
            out,
            json!({"change_id": "C1", "in_sync": true, "polls": 5, "switch": "weights"})
        );
    }

    #[tokio::test]
    async fn a_change_without_its_id_is_refused() {
        let err = check_dns_sync(
            |_: &str| Ok(MemoryTrafficSwitch::default()),
            json!({"polls": 1}),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), "hapilot.InvalidInput", "{err}");
    }
}
