//! Task `fence-primary`: stop traffic and writes reaching the failing primary before the
//! standby is promoted: its weighted record to 0, and its database read-only where reachable.

use hapilot_aws::database::Database;
use hapilot_aws::dns::Dns;
use hapilot_aws::journal::Journal;
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
    set_identifier: String,
    run: RunContext,
}

/// Fences `region`.
pub async fn fence_primary<D: Database>(
    dns: &impl Dns,
    database: impl FnOnce(&str) -> Result<D, FunctionError>,
    settings: &Settings,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        region,
        set_identifier,
        run,
    } = parse_input(input)?;
    let zone = settings.get(&settings.hosted_zone_id, "HAPILOT_HOSTED_ZONE_ID")?;
    let name = settings.get(&settings.record_name, "HAPILOT_RECORD_NAME")?;
    let change_id = dns
        .set_weights(
            zone,
            name,
            &[(set_identifier.clone(), 0)],
            &format!("hapilot {}: fence {region}", run.execution),
        )
        .await
        .map_err(FunctionError::from_adapter(ErrorName::TrafficShiftFailed))?;
    let database = match settings.region(&region)?.database {
        Some(_) => Some(database(&region)?.fence().await),
        None => None,
    };
    let out = json!({ "region": region, "change_id": change_id, "weight": { set_identifier: 0 }, "database": database });
    record(journal, &run, json!({ "after": out })).await?;
    Ok(out)
}
