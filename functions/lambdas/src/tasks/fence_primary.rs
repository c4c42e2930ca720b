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

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::database::MemoryDatabase;
    use hapilot_adapters::journal::MemoryJournal;
    use hapilot_adapters::traffic_switch::MemoryTrafficSwitch;

    fn input() -> Value {
        json!({
            "region": "us-east-1", "set_identifier": "us-east-1", "switch": "health_check",
            "run": RunContext::fixture_json("failover", "FencePrimary"),
        })
    }

    #[tokio::test]
    async fn traffic_goes_to_zero_and_the_database_turns_read_only() {
        let switch = MemoryTrafficSwitch::with(&[("us-east-1", 100), ("us-west-2", 0)]);
        let primary = MemoryDatabase::new(Default::default());
        let journal = MemoryJournal::default();
        let settings = Settings::fixture(&["us-east-1", "us-west-2"]);
        let (s, db) = (switch.clone(), primary.clone());
        let out = fence_primary(
            |kind: &str| {
                assert_eq!(kind, "health_check", "the run's switch is built");
                Ok(s)
            },
            |region: &str| {
                assert_eq!(region, "us-east-1");
                Ok(db)
            },
            &settings,
            &journal,
            input(),
        )
        .await
        .unwrap();
        assert_eq!(switch.states().await.unwrap()["us-east-1"], 0);
        assert_eq!(switch.changes(), ["hapilot failover-unit: fence us-east-1"]);
        assert!(primary.is_read_only());
        assert_eq!(out["weight"], json!({"us-east-1": 0}));
        let step = RunContext::fixture("failover", "FencePrimary").key();
        assert_eq!(journal.get(&step).await.unwrap().unwrap()["after"], out);
    }

    #[tokio::test]
    async fn a_switch_that_cannot_move_fences_no_database() {
        // No record for the set identifier: the switch refuses, the database stays writable.
        let switch = MemoryTrafficSwitch::with(&[("us-west-2", 100)]);
        let primary = MemoryDatabase::new(Default::default());
        let journal = MemoryJournal::default();
        let settings = Settings::fixture(&["us-east-1", "us-west-2"]);
        let db = primary.clone();
        let err = fence_primary(
            |_: &str| Ok(switch),
            |_: &str| Ok(db),
            &settings,
            &journal,
            input(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), "hapilot.TrafficShiftFailed", "{err}");
        assert!(!primary.is_read_only());
    }
}
