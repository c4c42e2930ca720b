//! Task `scale-region`: scale the region taking over to carry all traffic (the HA document:
//! litellm 5 replicas, agentgateway 3; `HAPILOT_SCALE_TARGETS`), and, with `"check": true`,
//! look at whether those replicas are ready yet (capacity before traffic,
//! [`hapilot_core::capacity`]). A region without a Kubernetes API in the configuration is
//! skipped and says so (and counts as ready: there is nothing to wait for).

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
    /// Only look at the ready replicas (the failover's capacity wait), change nothing.
    #[serde(default)]
    check: bool,
    /// Looks so far (the state machine counts them).
    #[serde(default)]
    polls: u64,
    /// When the wait started (RFC 3339), for the seconds waited.
    #[serde(default)]
    started_at: Option<String>,
    run: RunContext,
}

/// Scales `region`'s deployments.
pub async fn scale_region<S: Scaler>(
    scaler: impl FnOnce(&str) -> Result<Option<S>, FunctionError>,
    settings: &Settings,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        region,
        check,
        polls,
        started_at,
        run,
    } = parse_input(input)?;
    let Some(scaler) = scaler(&region)? else {
        let mut out =
            json!({ "region": region, "skipped": "no Kubernetes API configured for this region" });
        if check {
            out["ready"] = true.into();
            out["polls"] = (polls + 1).into();
            out["summary"] = "no Kubernetes API configured: nothing to wait for".into();
        }
        record(journal, &run, json!({ "after": out })).await?;
        return Ok(out);
    };
    if check {
        let out =
            look_at_capacity(&scaler, settings, &region, polls, started_at.as_deref()).await?;
        record(journal, &run, json!({ "measurements": out })).await?;
        return Ok(out);
    }
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

/// One look at the ready replicas of every deployment the failover scales.
async fn look_at_capacity(
    scaler: &impl Scaler,
    settings: &Settings,
    region: &str,
    polls: u64,
    started_at: Option<&str>,
) -> Result<Value, FunctionError> {
    let mut observed = Vec::new();
    for (deployment, wanted) in &settings.scale_targets {
        let ready = scaler
            .ready_replicas(deployment)
            .await
            .map_err(FunctionError::from_adapter(ErrorName::ScaleFailed))?;
        observed.push(hapilot_core::capacity::DeploymentCapacity {
            deployment: deployment.clone(),
            wanted: *wanted,
            ready,
        });
    }
    let check = hapilot_core::capacity::judge(&observed);
    let waited_secs = started_at
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0
        });
    Ok(json!({
        "region": region,
        "ready": check.ready,
        "ready_fraction": check.ready_fraction,
        "short": check.short,
        "deployments": observed,
        "summary": check.summary,
        "polls": polls + 1,
        "started_at": started_at,
        "waited_secs": waited_secs,
    }))
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

    /// The capacity look: short while pods start, ready once they are, counting the looks.
    #[tokio::test]
    async fn the_capacity_look_says_what_is_short_and_changes_nothing() {
        let settings = Settings::with_defaults();
        let journal = MemoryJournal::default();
        let cluster = MemoryScaler::with(&[("litellm", 5), ("agentgateway", 3)]);
        cluster.cap_ready("litellm", 2);
        let input = json!({"region": "us-west-2", "check": true, "polls": 2,
                           "started_at": "2026-12-01T09:00:00Z", "run": run()});
        let out = scale_region(|_| Ok(Some(cluster.clone())), &settings, &journal, input)
            .await
            .unwrap();
        assert_eq!(out["ready"], false, "{out:#}");
        assert_eq!(out["polls"], 3);
        assert_eq!(out["short"][0]["deployment"], "litellm");
        assert!(
            out["summary"]
                .as_str()
                .unwrap()
                .contains("litellm 2 of 5 ready")
        );
        assert!(out["waited_secs"].as_f64().unwrap() > 0.0);
        assert_eq!(
            cluster.replicas("litellm"),
            Some(5),
            "a look scales nothing"
        );
        cluster.cap_ready("litellm", 5);
        let out = scale_region(
            |_| Ok(Some(cluster.clone())),
            &settings,
            &journal,
            json!({"region": "us-west-2", "check": true, "run": run()}),
        )
        .await
        .unwrap();
        assert_eq!(out["ready"], true, "{out:#}");
        let none = scale_region(
            |_| Ok(None::<MemoryScaler>),
            &settings,
            &journal,
            json!({"region": "us-west-2", "check": true, "run": run()}),
        )
        .await
        .unwrap();
        assert_eq!(none["ready"], true, "nothing to wait for");
    }
}
