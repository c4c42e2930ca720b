//! Task `evaluate-readiness`: the `readiness` state machine's one step. Looks inside every
//! configured region (the gateway workloads through Kubernetes, the standby database's
//! replication, Redis, Vault's raft) and at hapilot's own records (drills, audits, restores),
//! asks core for the verdicts, writes `reports/readiness/<time>.{json,md}` and
//! `reports/readiness/latest.json`, puts `hapilot/Readiness` metrics per region and notifies
//! when a check newly fails. Input: `{"request": {"now"?: epoch seconds}, "run"}`.

use hapilot_aws::cluster::ClusterReader;
use hapilot_aws::database::Database;
use hapilot_aws::journal::Journal;
use hapilot_aws::monitoring::{MetricValue, Metrics};
use hapilot_aws::notifier::Notifier;
use hapilot_aws::permissions::PermissionSimulator;
use hapilot_aws::redis::RedisReader;
use hapilot_aws::vault::Vault;
use hapilot_core::backup::audit::epoch_text;
use hapilot_core::readiness::{
    CheckStatus, PracticeView, ReadinessCheck, ReadinessReport, ReplicationView, parity_check,
    permissions_check, practice_checks, redis_check, replication_check, unreadable, vault_check,
    workload_checks,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::config::Settings;
use crate::error::parse_input;
use crate::publish::{MetricBatch, Publication, publish};
use crate::run::RunContext;

/// Metrics namespace of readiness.
pub const NAMESPACE: &str = "hapilot/Readiness";

/// Where the newest report is kept (its failed checks are the next run's "previous").
pub const LATEST_KEY: &str = "reports/readiness/latest.json";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    /// The clock, for tests and replays (default: now).
    #[serde(default)]
    now: Option<i64>,
}

#[derive(Deserialize)]
struct Input {
    #[serde(default)]
    request: Option<Request>,
    #[allow(dead_code)]
    run: Option<RunContext>,
}

/// Finds one kind of outside system by region: `Ok(None)` where it is not configured.
pub type FindInRegion<T> = Box<dyn Fn(&str) -> Result<Option<T>, FunctionError> + Send + Sync>;

/// The outside systems of each region, found by region name (`None`: not configured there).
pub struct RegionSources<C, D, V, R> {
    /// The region's Kubernetes API.
    pub cluster: FindInRegion<C>,
    /// The region's database.
    pub database: FindInRegion<D>,
    /// The region's Vault.
    pub vault: FindInRegion<V>,
    /// The region's Redis.
    pub redis: FindInRegion<R>,
}

fn epoch_of(rfc3339: &Value) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339.as_str()?)
        .ok()
        .map(|t| t.timestamp())
}

/// hapilot's own records of practice, from the audit bucket's reports.
async fn practice(journal: &impl Journal, now: i64) -> Result<PracticeView, FunctionError> {
    let read = |e| FunctionError::from_adapter(hapilot_core::ErrorName::SetupFailed)(e);
    let mut view = PracticeView {
        now,
        ..PracticeView::default()
    };
    for key in journal.list("reports/dr-drill/").await.map_err(read)? {
        if !key.ends_with(".json") {
            continue;
        }
        if let Some(report) = journal.get(&key).await.map_err(read)?
            && report["verdict"] == "PASSED"
            && let Some(at) = epoch_of(&report["finished_at"])
        {
            view.last_drill_passed = view.last_drill_passed.max(Some(at));
        }
    }
    // Named by time (`reports/backup-audit/<YYYY-MM-DDTHH:MM:SSZ>.json`): the newest is last.
    let mut audits: Vec<String> = journal
        .list("reports/backup-audit/")
        .await
        .map_err(read)?
        .into_iter()
        .filter(|k| k.ends_with(".json"))
        .collect();
    audits.sort();
    if let Some(key) = audits.last()
        && let Some(report) = journal.get(key).await.map_err(read)?
        && let Some(at) = report["now"].as_i64()
    {
        view.last_audit = Some((at, report["verdict"] == "PASSED"));
    }
    for key in journal.list("reports/dr-restore/").await.map_err(read)? {
        if let Some(report) = journal.get(&key).await.map_err(read)?
            && report["outcome"] == "restored"
            && let Some(at) = epoch_of(&report["finished_at"])
        {
            view.last_restore = view.last_restore.max(Some(at));
        }
    }
    Ok(view)
}

/// Evaluates readiness and publishes the report. `own_region` is where this deployment (and
/// its emergency-path roles) runs.
#[allow(clippy::too_many_arguments)]
pub async fn evaluate_readiness<C, D, V, R>(
    settings: &Settings,
    sources: &RegionSources<C, D, V, R>,
    (simulator, own_region): (&impl PermissionSimulator, &str),
    journal: &impl Journal,
    metrics: &impl Metrics,
    notifier: &impl Notifier,
    input: Value,
) -> Result<Value, FunctionError>
where
    C: ClusterReader,
    D: Database,
    V: Vault,
    R: RedisReader,
{
    let Input { request, .. } = parse_input(input)?;
    let now = request
        .and_then(|r| r.now)
        .unwrap_or_else(|| chrono::Utc::now().timestamp());
    let rpo = settings
        .tier
        .unwrap_or(hapilot_core::tier::Tier::Critical)
        .rpo_secs();
    let mut checks: Vec<ReadinessCheck> = Vec::new();
    // Each region's images per workload, for parity between primary and standby.
    let mut images: std::collections::BTreeMap<(String, String), Vec<String>> = Default::default();
    for region in settings.regions.keys() {
        if let Some(cluster) = (sources.cluster)(region)? {
            for name in &settings.readiness_workloads {
                match cluster.workload(name).await {
                    Ok(view) => {
                        images.insert((region.clone(), name.clone()), view.images.clone());
                        checks.extend(workload_checks(region, &view));
                    }
                    Err(e) => checks.push(unreadable(
                        "kubernetes.workload",
                        region,
                        name,
                        &e.to_string(),
                    )),
                }
            }
        }
        if let Some(database) = (sources.database)(region)? {
            match database.replication_status().await {
                // The primary region's database is judged by its replica's check.
                Ok(status) if !status.in_recovery && !is_standby(settings, region) => {}
                Ok(status) => checks.push(replication_check(
                    region,
                    &ReplicationView {
                        in_recovery: status.in_recovery,
                        streaming: status.streaming.unwrap_or(status.replay_lag_secs.is_some()),
                        lag_secs: status.replay_lag_secs,
                    },
                    rpo,
                )),
                Err(e) => checks.push(unreadable(
                    "database.replication",
                    region,
                    "database",
                    &e.to_string(),
                )),
            }
        }
        if let Some(redis) = (sources.redis)(region)? {
            checks.push(match redis.replication().await {
                Ok(view) => redis_check(region, &view),
                Err(e) => unreadable("redis.replication", region, "redis", &e.to_string()),
            });
        }
        if let Some(vault) = (sources.vault)(region)? {
            checks.push(match vault.raft_servers().await {
                Ok(servers) => vault_check(region, &servers),
                Err(e) => unreadable("vault.raft", region, "vault", &e.to_string()),
            });
        }
    }
    for trigger in &settings.triggers {
        for name in &settings.readiness_workloads {
            let of = |r: &str| images.get(&(r.to_string(), name.clone()));
            if let (Some(primary), Some(standby)) =
                (of(&trigger.primary_region), of(&trigger.standby_region))
            {
                checks.push(parity_check(
                    &trigger.standby_region,
                    name,
                    primary,
                    standby,
                ));
            }
        }
    }
    for (function, role) in &settings.emergency_roles {
        let Some(spec) = crate::catalog::find(function) else {
            checks.push(unreadable(
                "permissions.emergency_path",
                own_region,
                function,
                "HAPILOT_EMERGENCY_ROLES names no hapilot function by that name",
            ));
            continue;
        };
        let actions = spec.role_actions();
        if actions.is_empty() {
            checks.push(permissions_check(own_region, function, &[], 0));
            continue;
        }
        checks.push(match simulator.denied(role, &actions).await {
            Ok(denied) => permissions_check(own_region, function, &denied, actions.len()),
            Err(e) => unreadable(
                "permissions.emergency_path",
                own_region,
                function,
                &e.to_string(),
            ),
        });
    }
    checks.extend(practice_checks(&practice(journal, now).await?));
    let previous: Vec<String> = match journal.get(LATEST_KEY).await {
        Ok(Some(report)) => serde_json::from_value::<ReadinessReport>(report)
            .map(|r| r.failed_keys())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let report = ReadinessReport::new(now, checks, &previous);
    let value = serde_json::to_value(&report).map_err(|e| FunctionError::Setup(e.to_string()))?;
    let stem = format!("reports/readiness/{}", epoch_text(now));
    let count = |region: &str, check: &str| {
        report
            .checks
            .iter()
            .filter(|c| c.region == region && c.check == check && c.status == CheckStatus::Fail)
            .count() as f64
    };
    let metrics_batches = report
        .regions
        .iter()
        .map(|r| MetricBatch {
            namespace: NAMESPACE.into(),
            dimensions: vec![("Region".into(), r.region.clone())],
            values: vec![
                MetricValue::count("Score", r.score),
                MetricValue::count("FailedChecks", r.failed as f64),
                // The HA document's section 6.1 alerts, as alarms on these two.
                MetricValue::count(
                    "InsufficientReplicas",
                    count(&r.region, "kubernetes.replicas"),
                ),
                MetricValue::count("SingleAZDeployment", count(&r.region, "kubernetes.zones")),
            ],
        })
        .collect();
    let markdown = report.markdown();
    let publication = Publication {
        json_key: format!("{stem}.json"),
        report: value.clone(),
        markdown: Some((format!("{stem}.md"), markdown.clone())),
        metrics: metrics_batches,
        notification: (!report.newly_failed.is_empty()).then(|| {
            (
                format!(
                    "hapilot readiness: {} check(s) newly failed",
                    report.newly_failed.len()
                ),
                format!(
                    "Newly failed: {}\n\n{}",
                    report.newly_failed.join(", "),
                    markdown
                ),
            )
        }),
    };
    publish(journal, metrics, notifier, &publication).await?;
    journal
        .put(LATEST_KEY, &value)
        .await
        .map_err(FunctionError::from_adapter(
            hapilot_core::ErrorName::RecordFailed,
        ))?;
    Ok(json!({
        "verdict": report.verdict,
        "score": report.score,
        "summary": report.summary,
        "newly_failed": report.newly_failed,
        "report_key": format!("{stem}.json"),
        "markdown_key": format!("{stem}.md"),
    }))
}

/// Whether `region` is a standby of some failover trigger (its database must be a replica).
fn is_standby(settings: &Settings, region: &str) -> bool {
    settings.triggers.iter().any(|t| t.standby_region == region)
}
