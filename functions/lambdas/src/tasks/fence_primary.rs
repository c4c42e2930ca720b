//! Task `fence-primary`: stop traffic and writes reaching the failing primary before the
//! standby is promoted: its share of traffic to 0 through the run's traffic switch (its weight,
//! or its control metric / routing control off), and its database read-only where reachable.

use hapilot_adapters::database::Database;
use hapilot_adapters::journal::Journal;
use hapilot_adapters::traffic_switch::TrafficSwitch;
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
    #[serde(default = "crate::run::default_switch")]
    switch: String,
    /// The standby of a planned switchover (CloudNativePG demotes toward it); absent in a
    /// failover.
    #[serde(default)]
    toward_region: Option<String>,
    run: RunContext,
}

/// Fences `region`.
pub async fn fence_primary<D: Database, S: TrafficSwitch>(
    switch: impl FnOnce(&str) -> Result<S, FunctionError>,
    database: impl FnOnce(&str) -> Result<D, FunctionError>,
    settings: &Settings,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        region,
        set_identifier,
        switch: kind,
        toward_region,
        run,
    } = parse_input(input)?;
    let toward = match &toward_region {
        Some(r) => settings.region(r)?.database.clone(),
        None => None,
    };
    let change_id = switch(&kind)?
        .apply(
            &[(set_identifier.clone(), 0)],
            &format!("hapilot {}: fence {region}", run.execution),
        )
        .await
        .map_err(FunctionError::from_adapter(ErrorName::TrafficShiftFailed))?;
    let database = match settings.region(&region)?.database {
        Some(_) => Some(database(&region)?.fence(toward.as_ref()).await),
        None => None,
    };
    let out = json!({ "region": region, "switch": kind, "change_id": change_id, "weight": { set_identifier: 0 }, "database": database });
    record(journal, &run, json!({ "after": out })).await?;
    Ok(out)
}
