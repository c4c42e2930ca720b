//! Task `check-dns-sync`: one look at a Route53 change. The state machine loops over it with a
//! Wait state (no sleeping Lambda) and gives up after the plan's `dns_max_polls`.
//! Input: `{"change_id", "polls"}`; output: `{"change_id", "in_sync", "polls": polls + 1}`.

use hapilot_aws::dns::Dns;
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
}

/// Looks at the change once.
pub async fn check_dns_sync(dns: &impl Dns, input: Value) -> Result<Value, FunctionError> {
    let Input { change_id, polls } = parse_input(input)?;
    let in_sync = dns
        .change_in_sync(&change_id)
        .await
        .map_err(FunctionError::from_adapter(ErrorName::TrafficShiftFailed))?;
    Ok(json!({ "change_id": change_id, "in_sync": in_sync, "polls": polls + 1 }))
}
