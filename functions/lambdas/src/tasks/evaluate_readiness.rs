//! Task `evaluate-readiness`: the `readiness` state machine's one step. Looks inside every
//! configured region (the gateway workloads and the standby's capacity through Kubernetes, the
//! standby database's replication and Patroni members, Redis and its Sentinels, Vault's raft
//! and performance replication), at the global name's records and health checks, and at
//! hapilot's own records (drills, audits, restores, the drill schedule); asks core for the
//! verdicts, writes `reports/readiness/<time>.{json,md}` and `reports/readiness/latest.json`,
//! puts `hapilot/Readiness` metrics per region and notifies when a check newly fails. Input:
//! `{"request": {"now"?: epoch seconds}, "run"}`.

use hapilot_adapters::cluster::ClusterReader;
use hapilot_adapters::database::Database;
use hapilot_adapters::journal::Journal;
use hapilot_adapters::monitoring::{MetricValue, Metrics};
use hapilot_adapters::notifier::Notifier;
use hapilot_adapters::permissions::PermissionSimulator;
use hapilot_adapters::redis::RedisReader;
use hapilot_adapters::route53_health::TrafficReader;
use hapilot_adapters::schedules::ScheduleReader;
use hapilot_adapters::traffic_switch::TrafficSwitchConfig;
use hapilot_adapters::vault::Vault;
use hapilot_core::backup::audit::epoch_text;
use hapilot_core::readiness::{
    CheckStatus, ExpectedWiring, PracticeView, ReadinessCheck, ReadinessReport, ReplicationView,
    ScaleNeed, WorkloadView, capacity_check, drill_schedule_check, health_status_check,
    parity_check, patroni_check, permissions_check, practice_checks, record_check, redis_check,
    replication_check, sentinel_check, unreadable, vault_check, vault_replication_check,
    workload_checks,
};
use std::collections::BTreeMap;

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

/// What readiness reads once for the whole deployment.
pub struct GlobalSources<'a, P, T, S, A> {
    /// The vantage points' alarms, each read in its own region.
    pub alarms: &'a A,
    /// IAM's policy simulator, for the emergency path's roles.
    pub simulator: &'a P,
    /// Where this deployment (and its emergency-path roles) runs.
    pub own_region: &'a str,
    /// The global name's records and Route53's health-check status.
    pub traffic: &'a T,
    /// EventBridge Scheduler (the DR drill's schedule).
    pub schedules: &'a S,
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
    // A DR restore that restored, or a restore test that passed, proves the backups.
    for (prefix, proven) in [
        ("reports/dr-restore/", "restored"),
        ("reports/restore-test/", "passed"),
    ] {
        for key in journal.list(prefix).await.map_err(read)? {
            if let Some(report) = journal.get(&key).await.map_err(read)?
                && report["outcome"] == proven
                && let Some(at) = epoch_of(&report["finished_at"])
            {
                view.last_restore = view.last_restore.max(Some(at));
            }
        }
    }
    Ok(view)
}

/// Evaluates readiness and publishes the report.
pub async fn evaluate_readiness<C, D, V, R, P, T, S, A>(
    settings: &Settings,
    sources: &RegionSources<C, D, V, R>,
    global: GlobalSources<'_, P, T, S, A>,
    (journal, metrics, notifier): (&impl Journal, &impl Metrics, &impl Notifier),
    input: Value,
) -> Result<Value, FunctionError>
where
    C: ClusterReader,
    D: Database,
    V: Vault,
    R: RedisReader,
    P: PermissionSimulator,
    T: TrafficReader,
    S: ScheduleReader,
    A: hapilot_adapters::monitoring::AlarmReader,
{
    let Input { request, .. } = parse_input(input)?;
    let now = request
        .and_then(|r| r.now)
        .unwrap_or_else(|| chrono::Utc::now().timestamp());
    let mut checks: Vec<ReadinessCheck> = Vec::new();
    let mut workloads: BTreeMap<(String, String), WorkloadView> = BTreeMap::new();
    for region in settings.regions.keys() {
        if let Some(cluster) = (sources.cluster)(region)? {
            checks.extend(cluster_checks(settings, region, &cluster, &mut workloads).await);
        }
        if let Some(database) = (sources.database)(region)? {
            checks.extend(database_checks(settings, region, &database).await);
        }
        if let Some(redis) = (sources.redis)(region)? {
            checks.extend(redis_checks(region, &redis).await);
        }
        if let Some(vault) = (sources.vault)(region)? {
            checks.extend(vault_checks(region, &vault).await);
        }
    }
    checks.extend(parity_checks(settings, &workloads));
    checks.extend(traffic_checks(settings, global.traffic).await);
    checks.extend(vantage_checks(settings, global.alarms).await);
    checks.extend(permission_checks(settings, global.simulator, global.own_region).await);
    checks.extend(practice_checks(&practice(journal, now).await?));
    let schedule = settings.drill_schedule.as_deref();
    checks.push(match schedule {
        Some(name) => match global.schedules.schedule_state(name).await {
            Ok(state) => drill_schedule_check(Some(name), state.as_deref()),
            Err(e) => unreadable("practice.drill_schedule", "global", name, &e.to_string()),
        },
        None => drill_schedule_check(None, None),
    });
    let previous: Vec<String> = match journal.get(LATEST_KEY).await {
        Ok(Some(report)) => serde_json::from_value::<ReadinessReport>(report)
            .map(|r| r.failed_keys())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    publish_report(
        journal,
        metrics,
        notifier,
        &ReadinessReport::new(now, checks, &previous),
    )
    .await
}

/// One region's workloads and, in a standby, whether the failover's scale fits.
async fn cluster_checks(
    settings: &Settings,
    region: &str,
    cluster: &impl ClusterReader,
    workloads: &mut BTreeMap<(String, String), WorkloadView>,
) -> Vec<ReadinessCheck> {
    let mut checks = Vec::new();
    for name in &settings.readiness_workloads {
        match cluster.workload(name).await {
            Ok(view) => {
                checks.extend(workload_checks(region, &view));
                workloads.insert((region.to_string(), name.clone()), view);
            }
            Err(e) => checks.push(unreadable(
                "kubernetes.workload",
                region,
                name,
                &e.to_string(),
            )),
        }
    }
    if !is_standby(settings, region) {
        return checks;
    }
    let mut needs = Vec::new();
    for (name, target) in &settings.scale_targets {
        let view = match workloads.get(&(region.to_string(), name.clone())) {
            Some(view) => view.clone(),
            None => match cluster.workload(name).await {
                Ok(view) => view,
                Err(e) => {
                    checks.push(unreadable(
                        "kubernetes.capacity",
                        region,
                        name,
                        &e.to_string(),
                    ));
                    continue;
                }
            },
        };
        needs.push(ScaleNeed {
            workload: name.clone(),
            current: view.spec_replicas,
            target: *target,
            per_pod: view.pod_requests,
        });
    }
    checks.push(match cluster.capacity().await {
        Ok(nodes) => capacity_check(region, &nodes, &needs),
        Err(e) => unreadable("kubernetes.capacity", region, "nodes", &e.to_string()),
    });
    checks
}

/// A standby database's replication and, under Patroni, its member list.
async fn database_checks(
    settings: &Settings,
    region: &str,
    database: &impl Database,
) -> Vec<ReadinessCheck> {
    let rpo = settings
        .tier
        .unwrap_or(hapilot_core::tier::Tier::Critical)
        .rpo_secs();
    let standby = is_standby(settings, region);
    let mut checks = Vec::new();
    match database.replication_status().await {
        // The primary region's database is judged by its replica's check.
        Ok(status) if !status.in_recovery && !standby => {}
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
    if standby {
        match database.cluster_members().await {
            Ok(Some(m)) => checks.push(patroni_check(region, &m.candidate, &m.members)),
            Ok(None) => {}
            Err(e) => checks.push(unreadable(
                "database.patroni",
                region,
                "patroni",
                &e.to_string(),
            )),
        }
    }
    checks
}

/// Redis' replication and its Sentinels' view.
async fn redis_checks(region: &str, redis: &impl RedisReader) -> Vec<ReadinessCheck> {
    let mut checks = vec![match redis.replication().await {
        Ok(view) => redis_check(region, &view),
        Err(e) => unreadable("redis.replication", region, "redis", &e.to_string()),
    }];
    if let Some((master, views)) = redis.sentinels().await {
        checks.push(sentinel_check(region, &master, &views));
    }
    checks
}

/// Vault's raft quorum and, where configured, its performance replication.
async fn vault_checks(region: &str, vault: &impl Vault) -> Vec<ReadinessCheck> {
    let mut checks = vec![match vault.raft_servers().await {
        Ok(servers) => vault_check(region, &servers),
        Err(e) => unreadable("vault.raft", region, "vault", &e.to_string()),
    }];
    match vault.performance_replication().await {
        Ok(Some(view)) => checks.push(vault_replication_check(region, &view)),
        Ok(None) => {}
        Err(e) => checks.push(unreadable(
            "vault.replication",
            region,
            "vault",
            &e.to_string(),
        )),
    }
    checks
}

/// The standby runs the primary's images, per trigger and workload.
fn parity_checks(
    settings: &Settings,
    workloads: &BTreeMap<(String, String), WorkloadView>,
) -> Vec<ReadinessCheck> {
    let mut checks = Vec::new();
    for trigger in &settings.triggers {
        for name in &settings.readiness_workloads {
            let of = |r: &str| workloads.get(&(r.to_string(), name.clone()));
            if let (Some(primary), Some(standby)) =
                (of(&trigger.primary_region), of(&trigger.standby_region))
            {
                checks.push(parity_check(
                    &trigger.standby_region,
                    name,
                    &primary.images,
                    &standby.images,
                ));
            }
        }
    }
    checks
}

/// Each region's record of the global name, its health check's wiring and health now.
async fn traffic_checks(settings: &Settings, traffic: &impl TrafficReader) -> Vec<ReadinessCheck> {
    let (Some(zone), Some(name)) = (&settings.hosted_zone_id, &settings.record_name) else {
        return Vec::new();
    };
    let records = match traffic.records(zone, name).await {
        Ok(records) => records,
        Err(e) => return vec![unreadable("traffic.record", "global", name, &e.to_string())],
    };
    let mut checks = Vec::new();
    for (region, config) in &settings.regions {
        let set = &config.set_identifier;
        let expected = match &settings.traffic_switch {
            TrafficSwitchConfig::Weights {} => ExpectedWiring::Weights,
            TrafficSwitchConfig::HealthCheck { .. } => ExpectedWiring::HealthCheck,
            TrafficSwitchConfig::ArcRoutingControl { controls, .. } => {
                ExpectedWiring::RoutingControl {
                    control_arn: controls.get(set).cloned().unwrap_or_default(),
                }
            }
        };
        let record = records.get(set);
        checks.push(record_check(region, set, &expected, record));
        if let Some(id) =
            record.and_then(|r| r.health_check.as_ref().and(r.health_check_id.as_ref()))
        {
            checks.push(match traffic.health_status(id).await {
                Ok(latest) => health_status_check(region, set, id, latest),
                Err(e) => unreadable("traffic.health", region, set, &e.to_string()),
            });
        }
    }
    checks
}

/// Each vantage point of a quorum trigger has data, read in its own region.
async fn vantage_checks(
    settings: &Settings,
    alarms: &impl hapilot_adapters::monitoring::AlarmReader,
) -> Vec<ReadinessCheck> {
    let vantages: std::collections::BTreeSet<&String> = settings
        .triggers
        .iter()
        .flat_map(|t| &t.vantage_alarms)
        .collect();
    let mut checks = Vec::new();
    for arn in vantages {
        let Some(alarm) = hapilot_core::alarm::AlarmRef::parse(arn) else {
            continue;
        };
        checks.push(
            match alarms.alarm_state_in(&alarm.region, &alarm.name).await {
                Ok(state) => hapilot_core::readiness::vantage_data_check(arn, state.as_deref()),
                Err(e) => unreadable(
                    "detection.vantage_data",
                    &alarm.region,
                    &alarm.name,
                    &e.to_string(),
                ),
            },
        );
    }
    checks
}

/// The emergency path's roles, each simulated against the calls its code makes.
async fn permission_checks(
    settings: &Settings,
    simulator: &impl PermissionSimulator,
    own_region: &str,
) -> Vec<ReadinessCheck> {
    let mut checks = Vec::new();
    // What the calls carry that the template's conditions test: the data-plane switch writes
    // its control metric in one namespace, and the roles may write there only.
    let context = vec![(
        "cloudwatch:namespace".to_string(),
        match &settings.traffic_switch {
            hapilot_adapters::traffic_switch::TrafficSwitchConfig::HealthCheck {
                namespace,
                ..
            } => namespace.clone(),
            _ => "hapilot/Traffic".to_string(),
        },
    )];
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
        checks.push(match simulator.denied(role, &actions, &context).await {
            Ok(denied) => permissions_check(own_region, function, &denied, actions.len()),
            Err(e) => unreadable(
                "permissions.emergency_path",
                own_region,
                function,
                &e.to_string(),
            ),
        });
    }
    checks
}

/// Writes the report (JSON, Markdown, latest), its metrics and, when a check newly failed,
/// the notice; answers the state machine.
async fn publish_report(
    journal: &impl Journal,
    metrics: &impl Metrics,
    notifier: &impl Notifier,
    report: &ReadinessReport,
) -> Result<Value, FunctionError> {
    let value = serde_json::to_value(report).map_err(|e| FunctionError::Setup(e.to_string()))?;
    let stem = format!("reports/readiness/{}", epoch_text(report.evaluated_at));
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
        // Sent only for what a human must fix.
        urgency: hapilot_core::paging::Urgency::ActNow,
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

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::cluster::MemoryCluster;
    use hapilot_adapters::database::MemoryDatabase;
    use hapilot_adapters::journal::MemoryJournal;
    use hapilot_adapters::monitoring::MemoryMonitoring;
    use hapilot_adapters::notifier::MemoryNotifier;
    use hapilot_adapters::permissions::MemoryPermissions;
    use hapilot_adapters::redis::MemoryRedis;
    use hapilot_adapters::route53_health::MemoryTraffic;
    use hapilot_adapters::schedules::MemorySchedules;
    use hapilot_adapters::vault::MemoryVault;
    use hapilot_core::alarm::FailoverTrigger;
    use hapilot_core::failover::ReplicationStatus;
    use hapilot_core::readiness::{
        HealthCheckView, NodeCapacity, RaftServer, RecordView, RedisView, Resources,
        document_workload,
    };

    const NOW: i64 = 1_796_100_000;

    fn settings() -> Settings {
        let region = |set: &str| crate::config::RegionConfig {
            health_url: format!("https://{set}.example.com/health"),
            set_identifier: set.into(),
            database: None,
            kubernetes: None,
            vault: None,
            redis: None,
            restore: None,
            restore_test: None,
            restore_test_vault: None,
        };
        let mut s = Settings::with_defaults();
        s.regions = [
            ("us-east-1".to_string(), region("primary")),
            ("us-west-2".to_string(), region("secondary")),
        ]
        .into();
        s.triggers = vec![FailoverTrigger {
            alarm_name: "primary-down".into(),
            primary_region: "us-east-1".into(),
            standby_region: "us-west-2".into(),
            tier: hapilot_core::tier::Tier::Critical,
            vantage_alarms: vec![
                "arn:aws:cloudwatch:us-west-2:111122223333:alarm:watch".into(),
                "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:watch".into(),
            ],
            quorum: Some(2),
            standby_candidates: Vec::new(),
        }];
        s.hosted_zone_id = Some("Z1".into());
        s.record_name = Some("gateway.example.com".into());
        s.drill_schedule = Some("dr-drill".into());
        s.emergency_roles = [(
            "promote-database".to_string(),
            "arn:role/promote".to_string(),
        )]
        .into();
        s
    }

    fn cluster() -> MemoryCluster {
        MemoryCluster {
            workloads: ["litellm", "agentgateway", "vllm"]
                .iter()
                .map(|n| (n.to_string(), document_workload(n, 2)))
                .collect(),
            nodes: (0..3)
                .map(|i| NodeCapacity {
                    name: format!("node-{i}"),
                    allocatable: Resources {
                        cpu_millis: 4000,
                        memory_bytes: 16 << 30,
                    },
                    requested: Resources {
                        cpu_millis: 1000,
                        memory_bytes: 2 << 30,
                    },
                })
                .collect(),
        }
    }

    fn vault(voters: usize) -> MemoryVault {
        let mut vault = MemoryVault::default();
        vault.servers = (0..voters)
            .map(|i| RaftServer {
                node_id: format!("vault-{i}"),
                leader: i == 0,
                voter: true,
            })
            .collect();
        vault
    }

    fn sources(
        vault: MemoryVault,
    ) -> RegionSources<MemoryCluster, MemoryDatabase, MemoryVault, MemoryRedis> {
        let database = MemoryDatabase::new(ReplicationStatus {
            in_recovery: true,
            replay_lag_secs: Some(0.5),
            unreplayed_bytes: Some(0),
            streaming: Some(true),
            ..Default::default()
        });
        let redis = MemoryRedis {
            replication: RedisView {
                role: "master".into(),
                connected_replicas: 1,
                master_link_up: None,
            },
            sentinels: None,
        };
        RegionSources {
            cluster: Box::new(|_| Ok(Some(cluster()))),
            database: Box::new(move |r| Ok((r == "us-west-2").then(|| database.clone()))),
            vault: Box::new(move |r| Ok((r == "us-west-2").then(|| vault.clone()))),
            redis: Box::new(move |r| Ok((r == "us-west-2").then(|| redis.clone()))),
        }
    }

    fn traffic() -> MemoryTraffic {
        let record = |id: &str| RecordView {
            weight: Some(0),
            health_check_id: Some(id.into()),
            health_check: Some(HealthCheckView {
                kind: "HTTPS".into(),
                children: Vec::new(),
                routing_control_arn: None,
            }),
        };
        MemoryTraffic {
            records: [
                ("primary".to_string(), record("hc-east")),
                ("secondary".to_string(), record("hc-west")),
            ]
            .into(),
            statuses: [("hc-east".to_string(), 1.0), ("hc-west".to_string(), 1.0)].into(),
        }
    }

    async fn practiced() -> MemoryJournal {
        let journal = MemoryJournal::default();
        let at = |age: i64| {
            chrono::DateTime::from_timestamp(NOW - age, 0)
                .unwrap()
                .to_rfc3339()
        };
        journal
            .put(
                "reports/dr-drill/d.json",
                &json!({"verdict": "PASSED", "finished_at": at(86_400)}),
            )
            .await
            .unwrap();
        journal
            .put(
                &format!("reports/backup-audit/{}.json", epoch_text(NOW - 600)),
                &json!({"now": NOW - 600, "verdict": "PASSED"}),
            )
            .await
            .unwrap();
        journal
            .put(
                "reports/dr-restore/r.json",
                &json!({"outcome": "restored", "finished_at": at(86_400)}),
            )
            .await
            .unwrap();
        journal
    }

    /// The readiness rules run over in-memory fakes: a healthy deployment is ready; a Vault
    /// with one voter fails exactly its check, notifies once and counts in the metrics.
    #[tokio::test]
    async fn a_healthy_deployment_is_ready_and_one_defect_fails_exactly_its_check() {
        let settings = settings();
        let journal = practiced().await;
        let monitoring = MemoryMonitoring::default();
        let notifier = MemoryNotifier::default();
        let actions = crate::catalog::find("promote-database")
            .unwrap()
            .role_actions();
        let permissions = MemoryPermissions {
            allowed: [(
                "arn:role/promote".to_string(),
                actions.iter().map(|a| a.to_string()).collect(),
            )]
            .into(),
        };
        let schedules = MemorySchedules {
            schedules: [("dr-drill".to_string(), "ENABLED".to_string())].into(),
        };
        let traffic = traffic();
        let mut alarms = MemoryMonitoring::default();
        for region in ["us-west-2", "eu-west-1"] {
            alarms
                .alarms
                .insert((region.into(), "watch".into()), "OK".into());
        }
        let global = || GlobalSources {
            alarms: &alarms,
            simulator: &permissions,
            own_region: "us-west-2",
            traffic: &traffic,
            schedules: &schedules,
        };
        let input = json!({"request": {"now": NOW}});
        let ok = evaluate_readiness(
            &settings,
            &sources(vault(3)),
            global(),
            (&journal, &monitoring, &notifier),
            input.clone(),
        )
        .await
        .unwrap();
        assert_eq!(ok["verdict"], "ready", "{ok:#}");
        assert_eq!(ok["score"], 100.0, "{ok:#}");
        assert!(notifier.sent().is_empty());
        let report: ReadinessReport =
            serde_json::from_value(journal.get(LATEST_KEY).await.unwrap().unwrap()).unwrap();
        let ids: std::collections::BTreeSet<&str> =
            report.checks.iter().map(|c| c.check.as_str()).collect();
        for id in [
            "kubernetes.capacity",
            "database.replication",
            "redis.replication",
            "vault.raft",
            "traffic.record",
            "traffic.health",
            "parity.images",
            "permissions.emergency_path",
            "practice.drill_schedule",
            "detection.vantage_data",
        ] {
            assert!(ids.contains(id), "{id} missing: {ids:?}");
        }

        let failed = evaluate_readiness(
            &settings,
            &sources(vault(1)),
            global(),
            (&journal, &monitoring, &notifier),
            input,
        )
        .await
        .unwrap();
        assert_eq!(failed["verdict"], "not_ready");
        assert_eq!(
            failed["newly_failed"],
            json!(["us-west-2/vault.raft/vault"])
        );
        assert_eq!(
            notifier.sent().len(),
            1,
            "one notice for the newly failed check"
        );

        assert_eq!(monitoring.last("FailedChecks"), Some(1.0));
        let markdown = journal
            .text(&format!("reports/readiness/{}.md", epoch_text(NOW)))
            .unwrap();
        assert!(
            markdown.contains("| **FAIL** | us-west-2 | vault.raft | vault |"),
            "{markdown}"
        );

        // The witness's prober stopped: its alarm has no data, the quorum is a vote short.
        let mut silent_witness = alarms.clone();
        silent_witness.alarms.insert(
            ("eu-west-1".into(), "watch".into()),
            "INSUFFICIENT_DATA".into(),
        );
        let silent = evaluate_readiness(
            &settings,
            &sources(vault(3)),
            GlobalSources {
                alarms: &silent_witness,
                ..global()
            },
            (&journal, &monitoring, &notifier),
            json!({"request": {"now": NOW}}),
        )
        .await
        .unwrap();
        assert_eq!(
            silent["newly_failed"],
            json!(["eu-west-1/detection.vantage_data/watch"]),
            "{silent:#}"
        );
    }
}
