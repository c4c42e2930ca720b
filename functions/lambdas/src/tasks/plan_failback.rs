//! Task `plan-failback`: validate a failback input against the deployment and fill in defaults,
//! before anything is touched, then take the platform's run lock (`hapilot.RunInProgress` when
//! another run holds it). Output: the [`hapilot_core::failback::FailbackPlan`].

use hapilot_adapters::database::DatabaseTarget;
use hapilot_adapters::dns::Dns;
use hapilot_adapters::journal::Journal;
use hapilot_adapters::orchestrator::Orchestrator;
use hapilot_core::CoreError;
use hapilot_core::failback::{FailbackRequest, plan_failback as make_plan};
use hapilot_core::weights::check_canary_records;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::config::Settings;
use crate::error::parse_input;
use crate::run::{RunContext, global_records, record, take_run_lock};

#[derive(Deserialize)]
struct Input {
    request: Value,
    run: RunContext,
}

/// Plans one failback run: its canary moves weights, so the global name's records must be
/// weighted records (read here, before anything changes).
pub async fn plan_failback(
    settings: &Settings,
    dns: &impl Dns,
    runs: &impl Orchestrator,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input { request, run } = parse_input(input)?;
    let request: FailbackRequest = parse_input(request)?;
    let global = settings.get(&settings.global_health_url, "HAPILOT_GLOBAL_HEALTH_URL")?;
    let tier = settings.tier.unwrap_or(hapilot_core::tier::Tier::Critical);
    let plan = make_plan(&request, &settings.sites(), global, tier)?;
    // Promoting the primary region's PostgreSQL replica while the active one still accepts
    // writes would make two primaries. Patroni switches over safely; the postgres backend gets
    // its planned switchover with the graceful-switchover work, until then it is refused.
    if plan.switch_database_first
        && matches!(
            settings.region(&request.primary_region)?.database,
            Some(DatabaseTarget::Postgres { .. })
        )
    {
        return Err(CoreError::invalid(
            "switch_database_first",
            "is not available for the postgres backend yet (it would create two primaries); switch the database by hand or leave it off",
        )
        .into());
    }
    let (name, records) = global_records(settings, dns).await?;
    check_canary_records(name, &records)?;
    // The plan is valid: take the platform's run lock before anything changes.
    let lock = take_run_lock(journal, runs, &run).await?;
    let plan = serde_json::to_value(&plan).map_err(|e| FunctionError::Setup(e.to_string()))?;
    record(
        journal,
        &run,
        json!({ "request": request, "plan": plan, "run_lock": lock }),
    )
    .await?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RegionConfig;

    /// The guard refuses before anything is written, so no journal is ever reached.
    struct Unreachable;

    impl Dns for Unreachable {
        async fn weighted_records(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Vec<hapilot_adapters::dns::WeightedRecord>, hapilot_adapters::AdapterError>
        {
            unreachable!()
        }
        async fn set_weights(
            &self,
            _: &str,
            _: &str,
            _: &[(String, i64)],
            _: &str,
        ) -> Result<String, hapilot_adapters::AdapterError> {
            unreachable!("a refused plan changes nothing")
        }
        async fn record_routing(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Vec<hapilot_core::weights::GlobalRecord>, hapilot_adapters::AdapterError>
        {
            unreachable!("the database guard comes first")
        }
        async fn change_in_sync(&self, _: &str) -> Result<bool, hapilot_adapters::AdapterError> {
            unreachable!()
        }
    }

    impl Journal for Unreachable {
        async fn put(&self, _: &str, _: &Value) -> Result<(), hapilot_adapters::AdapterError> {
            unreachable!("nothing may be journalled for refused input")
        }
        async fn get(&self, _: &str) -> Result<Option<Value>, hapilot_adapters::AdapterError> {
            unreachable!()
        }
        async fn list(&self, _: &str) -> Result<Vec<String>, hapilot_adapters::AdapterError> {
            unreachable!()
        }
        async fn put_text(
            &self,
            _: &str,
            _: &str,
            _: &str,
        ) -> Result<(), hapilot_adapters::AdapterError> {
            unreachable!()
        }
    }

    #[tokio::test]
    async fn switching_a_postgres_database_first_is_refused() {
        let mut settings = Settings::with_defaults();
        settings.global_health_url = Some("http://g/health".into());
        for (region, set) in [("us-east-1", "primary"), ("us-west-2", "secondary")] {
            settings.regions.insert(
                region.into(),
                RegionConfig {
                    health_url: format!("http://{region}/health"),
                    set_identifier: set.into(),
                    database: Some(DatabaseTarget::Postgres {
                        dsn: "host=127.0.0.1".into(),
                        agent_url: None,
                    }),
                    kubernetes: None,
                    vault: None,
                    redis: None,
                    restore: None,
                    restore_test: None,
                    restore_test_vault: None,
                },
            );
        }
        let input = json!({
            "request": {"primary_region": "us-east-1", "standby_region": "us-west-2", "switch_database_first": true},
            "run": {"machine": "failback", "execution": "x", "state": "PlanFailback", "entered": "2026-11-25T00:00:00Z"}
        });
        let runs = hapilot_adapters::orchestrator::MemoryOrchestrator::default();
        let e = plan_failback(&settings, &Unreachable, &runs, &Unreachable, input)
            .await
            .unwrap_err();
        assert_eq!(e.error_type(), "hapilot.InvalidInput");
        assert!(e.to_string().contains("two primaries"), "{e}");
    }
}
