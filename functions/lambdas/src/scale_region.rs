//! Task `scale-region`: scale the region taking over to carry all traffic (the HA document:
//! litellm 5 replicas, agentgateway 3; `HAPILOT_SCALE_TARGETS`). A region without a Kubernetes
//! API in the configuration is skipped and says so.

use hapilot_adapters::journal::Journal;
use hapilot_adapters::scaler::Scaler;
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
    run: RunContext,
}

/// Scales `region`'s deployments.
pub async fn scale_region<S: Scaler>(
    scaler: impl FnOnce(&str) -> Result<Option<S>, FunctionError>,
    settings: &Settings,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input { region, run } = parse_input(input)?;
    let Some(scaler) = scaler(&region)? else {
        let out =
            json!({ "region": region, "skipped": "no Kubernetes API configured for this region" });
        record(journal, &run, json!({ "after": out })).await?;
        return Ok(out);
    };
    let mut changes = Vec::new();
    for (deployment, replicas) in &settings.scale_targets {
        let change = scaler
            .scale(deployment, *replicas)
            .await
            .map_err(FunctionError::from_adapter(ErrorName::ScaleFailed))?;
        changes.push(change);
    }
    let out = json!({ "region": region, "changes": changes });
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
    use hapilot_adapters::scaler::MemoryScaler;

    /// The failover's replica counts over a fake cluster; a region without a Kubernetes API
    /// is skipped with its reason, and both are journaled.
    #[tokio::test]
    async fn the_standby_is_scaled_to_the_failover_counts() {
        let settings = Settings::with_defaults();
        let journal = MemoryJournal::default();
        let cluster = MemoryScaler::with(&[("litellm", 2), ("agentgateway", 1)]);
        let input = json!({"region": "us-west-2", "run": run()});
        let out = scale_region(
            |_| Ok(Some(cluster.clone())),
            &settings,
            &journal,
            input.clone(),
        )
        .await
        .unwrap();
        assert_eq!(cluster.replicas("litellm"), Some(5));
        assert_eq!(cluster.replicas("agentgateway"), Some(3));
        assert_eq!(out["changes"].as_array().unwrap().len(), 2);
        let skipped = scale_region(|_| Ok(None::<MemoryScaler>), &settings, &journal, input)
            .await
            .unwrap();
        assert!(
            skipped["skipped"]
                .as_str()
                .unwrap()
                .contains("no Kubernetes API")
        );
        assert_eq!(
            journal.list("runs/failover/f-1/").await.unwrap().len(),
            1,
            "one step, one entry"
        );
        let missing = MemoryScaler::with(&[("litellm", 2)]);
        let e = scale_region(
            |_| Ok(Some(missing)),
            &settings,
            &journal,
            json!({"region": "us-west-2", "run": run()}),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("agentgateway"), "{e}");
    }
}
