//! Task `scale-region`: scale the region taking over to carry all traffic (the HA document:
//! litellm 5 replicas, agentgateway 3; `HAPILOT_SCALE_TARGETS`), and, with `"check": true`,
//! look at whether those replicas are ready yet (capacity before traffic,
//! [`hapilot_core::capacity`]). A region without a Kubernetes API in the configuration is
//! skipped and says so (and counts as ready: there is nothing to wait for). The look also
//! reads the region's Redis where one is configured: not a writable master is not ready; a
//! Sentinel without quorum and the region-local cache the gateway loses are reported before
//! the traffic moves.

use hapilot_adapters::journal::Journal;
use hapilot_adapters::redis::RedisReader;
use hapilot_adapters::scaler::Scaler;
use hapilot_core::ErrorName;
use hapilot_core::capacity::CacheCheck;
use hapilot_core::readiness::sentinel_check;
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

/// Scales `region`'s deployments, or (`check`) looks at whether the region can carry the
/// traffic: its scaled deployments' ready replicas and, where configured, its Redis.
pub async fn scale_region<S: Scaler, R: RedisReader>(
    scaler: impl FnOnce(&str) -> Result<Option<S>, FunctionError>,
    redis: impl FnOnce(&str) -> Result<Option<R>, FunctionError>,
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
    let scaler = scaler(&region)?;
    if check {
        let mut out = match &scaler {
            Some(scaler) => {
                look_at_capacity(scaler, settings, &region, polls, started_at.as_deref()).await?
            }
            None => json!({
                "region": region,
                "skipped": "no Kubernetes API configured for this region",
                "ready": true,
                "polls": polls + 1,
                "summary": "no Kubernetes API configured: nothing to wait for",
            }),
        };
        if let Some(redis) = redis(&region)? {
            let cache = look_at_cache(&redis, &region).await;
            if !cache.usable {
                out["ready"] = false.into();
                out["summary"] = format!(
                    "{}; {}",
                    out["summary"].as_str().unwrap_or_default(),
                    cache.summary
                )
                .into();
            }
            out["cache"] = json!(cache);
        }
        record(journal, &run, json!({ "measurements": out })).await?;
        return Ok(out);
    }
    let Some(scaler) = scaler else {
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

/// The standby's Redis as the gateway will meet it: a writable master, and its Sentinels'
/// quorum ([`hapilot_core::capacity::judge_cache`]). Nothing is changed.
async fn look_at_cache(redis: &impl RedisReader, region: &str) -> CacheCheck {
    let replication = redis.replication().await.map_err(|e| e.to_string());
    let sentinel = redis
        .sentinels()
        .await
        .map(|(master, views)| sentinel_check(region, &master, &views));
    hapilot_core::capacity::judge_cache(
        replication.as_ref().map_err(String::as_str),
        sentinel.as_ref(),
    )
}

/// The ready replicas of every deployment the failover scales (`HAPILOT_SCALE_TARGETS`),
/// beside how many it wants.
pub(crate) async fn ready_replicas(
    scaler: &impl Scaler,
    settings: &Settings,
) -> Result<Vec<hapilot_core::capacity::DeploymentCapacity>, hapilot_adapters::AdapterError> {
    let mut observed = Vec::new();
    for (deployment, wanted) in &settings.scale_targets {
        observed.push(hapilot_core::capacity::DeploymentCapacity {
            deployment: deployment.clone(),
            wanted: *wanted,
            ready: scaler.ready_replicas(deployment).await?,
        });
    }
    Ok(observed)
}

/// One look at the ready replicas of every deployment the failover scales.
async fn look_at_capacity(
    scaler: &impl Scaler,
    settings: &Settings,
    region: &str,
    polls: u64,
    started_at: Option<&str>,
) -> Result<Value, FunctionError> {
    let observed = ready_replicas(scaler, settings)
        .await
        .map_err(FunctionError::from_adapter(ErrorName::ScaleFailed))?;
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
    use hapilot_adapters::redis::MemoryRedis;
    use hapilot_adapters::scaler::MemoryScaler;

    fn no_redis(_: &str) -> Result<Option<MemoryRedis>, FunctionError> {
        Ok(None)
    }

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
            no_redis,
            &settings,
            &journal,
            input.clone(),
        )
        .await
        .unwrap();
        assert_eq!(cluster.replicas("litellm"), Some(5));
        assert_eq!(cluster.replicas("agentgateway"), Some(3));
        assert_eq!(out["changes"].as_array().unwrap().len(), 2);
        let skipped = scale_region(
            |_| Ok(None::<MemoryScaler>),
            no_redis,
            &settings,
            &journal,
            input,
        )
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
            no_redis,
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
        let out = scale_region(
            |_| Ok(Some(cluster.clone())),
            no_redis,
            &settings,
            &journal,
            input,
        )
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
            no_redis,
            &settings,
            &journal,
            json!({"region": "us-west-2", "check": true, "run": run()}),
        )
        .await
        .unwrap();
        assert_eq!(out["ready"], true, "{out:#}");
        let none = scale_region(
            |_| Ok(None::<MemoryScaler>),
            no_redis,
            &settings,
            &journal,
            json!({"region": "us-west-2", "check": true, "run": run()}),
        )
        .await
        .unwrap();
        assert_eq!(none["ready"], true, "nothing to wait for");
    }

    /// The look reads the standby's Redis: a read-only replica holds the traffic back; a
    /// Sentinel without quorum is reported and does not.
    #[tokio::test]
    async fn the_capacity_look_reads_the_standbys_redis() {
        use hapilot_core::readiness::{RedisView, SentinelMaster, SentinelView};
        let settings = Settings::with_defaults();
        let journal = MemoryJournal::default();
        let cluster = MemoryScaler::with(&[("litellm", 5), ("agentgateway", 3)]);
        let sentinel = |name: &str, up: bool| SentinelView {
            sentinel: name.into(),
            answer: if up {
                Ok(SentinelMaster {
                    address: "10.0.0.1:6379".into(),
                    flags: "master".into(),
                    replicas: 1,
                    other_sentinels: 2,
                    quorum: 2,
                })
            } else {
                Err("connection refused".into())
            },
        };
        let redis = |role: &str, up: usize| MemoryRedis {
            replication: RedisView {
                role: role.into(),
                connected_replicas: 1,
                master_link_up: None,
            },
            sentinels: Some((
                "gateway".into(),
                (0..3).map(|i| sentinel(&format!("s{i}"), i < up)).collect(),
            )),
        };
        let look = |r: MemoryRedis| {
            let cluster = cluster.clone();
            let journal = journal.clone();
            let settings = settings.clone();
            async move {
                scale_region(
                    |_| Ok(Some(cluster)),
                    |_| Ok(Some(r)),
                    &settings,
                    &journal,
                    json!({"region": "us-west-2", "check": true, "run": run()}),
                )
                .await
                .unwrap()
            }
        };
        let quorum_lost = look(redis("master", 1)).await;
        assert_eq!(quorum_lost["ready"], true, "{quorum_lost:#}");
        assert_eq!(quorum_lost["cache"]["sentinel_quorum"], false);
        let findings = quorum_lost["cache"]["findings"].to_string();
        assert!(
            findings.contains("quorum is 2") && findings.contains("empty cache"),
            "{findings}"
        );
        let replica = look(redis("slave", 3)).await;
        assert_eq!(replica["ready"], false, "{replica:#}");
        assert!(replica["summary"].as_str().unwrap().contains("read-only"));
    }
}
