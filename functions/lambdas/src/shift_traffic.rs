//! Task `shift-traffic`: set the weights of the global name's records in one change (health
//! checks kept). Used to move traffic to the standby and, with the snapshot, to restore it.
//! Input: `{"activate": "<set>"}` (that set 100, every other 0), `{"split": {"to": "<set>",
//! "percent": N}}` (that set N, every other 100 - N) or `{"weights": {set: weight}}`,
//! plus `"reason"` and `"run"`.

use std::collections::BTreeMap;

use hapilot_aws::dns::Dns;
use hapilot_aws::journal::Journal;
use hapilot_core::canary::weights_for_split;
use hapilot_core::failover::weights_for_active;
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
    run: RunContext,
}

/// Sets the weights.
pub async fn shift_traffic(
    dns: &impl Dns,
    settings: &Settings,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        split,
        weights,
        activate,
        reason,
        run,
    } = parse_input(input)?;
    let zone = settings.get(&settings.hosted_zone_id, "HAPILOT_HOSTED_ZONE_ID")?;
    let name = settings.get(&settings.record_name, "HAPILOT_RECORD_NAME")?;
    let before: BTreeMap<String, i64> = dns
        .weighted_records(zone, name)
        .await
        .map_err(FunctionError::from_adapter(ErrorName::TrafficShiftFailed))?
        .into_iter()
        .map(|r| (r.set_identifier, r.weight))
        .collect();
    let weights: BTreeMap<String, i64> = match (weights, activate, split) {
        (Some(w), None, None) => w,
        (None, None, Some(Split { to, percent })) => {
            if !before.contains_key(&to) || !(0..=100).contains(&percent) {
                return Err(CoreError::invalid(
                    "split",
                    format!("{to:?} must be a weighted record of {name} and percent 0 to 100"),
                )
                .into());
            }
            let sets: Vec<String> = before.keys().cloned().collect();
            weights_for_split(&sets, &to, percent).into_iter().collect()
        }
        (None, Some(active), None) => {
            if !before.contains_key(&active) {
                return Err(CoreError::invalid(
                    "activate",
                    format!("{active:?} is not a weighted record of {name}"),
                )
                .into());
            }
            let sets: Vec<String> = before.keys().cloned().collect();
            weights_for_active(&sets, &active).into_iter().collect()
        }
        _ => {
            return Err(CoreError::invalid(
                "weights",
                "give exactly one of `weights`, `activate` and `split`",
            )
            .into());
        }
    };
    if weights.is_empty() || weights.values().any(|w| !(0..=255).contains(w)) {
        return Err(CoreError::invalid(
            "weights",
            "must name at least one set, each weight 0 to 255",
        )
        .into());
    }
    let wanted: Vec<(String, i64)> = weights.clone().into_iter().collect();
    let change_id = dns
        .set_weights(
            zone,
            name,
            &wanted,
            &format!("hapilot {}: {reason}", run.execution),
        )
        .await
        .map_err(FunctionError::from_adapter(ErrorName::TrafficShiftFailed))?;
    let out =
        json!({ "change_id": change_id, "before": before, "after": weights, "reason": reason });
    record(
        journal,
        &run,
        json!({ "before": before, "after": weights, "change_id": change_id, "reason": reason }),
    )
    .await?;
    Ok(out)
}
