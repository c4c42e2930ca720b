//! Readiness: the HA document's pre-production checklist and its section 6.1 alerts, judged
//! continuously from what hapilot can see inside each region (Kubernetes, databases, Redis,
//! Vault) and from its own records (drills, audits, restores), so a standby that cannot take
//! the traffic is found before the outage, not during it.
//!
//! Every check is a pure function of an observation; a source that could not be read is a
//! failed check of its own ([`unreadable`]), never a pass.

use serde::{Deserialize, Serialize};

pub mod capacity;
pub mod platform;
pub mod traffic;

pub use capacity::{NodeCapacity, Resources, ScaleNeed, capacity_check};
pub use platform::{
    PatroniMemberView, SentinelMaster, SentinelView, VaultReplicationView, patroni_check,
    sentinel_check, vault_replication_check,
};
pub use traffic::{ExpectedWiring, HealthCheckView, RecordView, health_status_check, record_check};

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// As the document asks.
    Pass,
    /// Works, but weaker than the document asks.
    Warn,
    /// A failover into this would fail or lose what the tier promises.
    Fail,
}

/// One check of one thing in one region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadinessCheck {
    /// Which check, e.g. `kubernetes.zones` (stable: alarms and notices key on it).
    pub check: String,
    /// The region it is about (`global` for what is not a region's).
    pub region: String,
    /// What it looked at, e.g. the workload `litellm`.
    pub subject: String,
    /// The verdict.
    pub status: CheckStatus,
    /// What was seen.
    pub seen: String,
    /// What to do (empty on a pass).
    pub fix: String,
}

fn check(
    check: &str,
    region: &str,
    subject: &str,
    status: CheckStatus,
    seen: String,
    fix: &str,
) -> ReadinessCheck {
    ReadinessCheck {
        check: check.to_string(),
        region: region.to_string(),
        subject: subject.to_string(),
        status,
        seen,
        fix: if status == CheckStatus::Pass {
            String::new()
        } else {
            fix.to_string()
        },
    }
}

/// A source that could not be read: the check fails, saying why.
pub fn unreadable(id: &str, region: &str, subject: &str, error: &str) -> ReadinessCheck {
    check(
        id,
        region,
        subject,
        CheckStatus::Fail,
        format!("could not be read: {error}"),
        "give hapilot's readiness function access (URL, credentials, network path) or fix the source",
    )
}

/// A probe's timings (Kubernetes defaults where unset: period 10 s, failure threshold 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// `initialDelaySeconds`.
    pub initial_delay_secs: i64,
    /// `periodSeconds`.
    pub period_secs: i64,
    /// `failureThreshold`.
    pub failure_threshold: i64,
}

impl Probe {
    /// Seconds from a failure to Kubernetes acting on it.
    pub fn detection_secs(&self) -> i64 {
        self.period_secs * self.failure_threshold
    }
}

/// The HA document's section 2.3 probes: (name, detection seconds = period x failureThreshold).
pub const DOCUMENT_PROBES: [(&str, i64); 3] = [
    ("liveness", 10 * 3),
    ("readiness", 5 * 2),
    ("startup", 5 * 30),
];

/// What the Kubernetes API says about one gateway workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadView {
    /// Deployment name.
    pub name: String,
    /// `spec.replicas`.
    pub spec_replicas: i64,
    /// `status.availableReplicas`.
    pub available_replicas: i64,
    /// The zone of each running pod's node (`topology.kubernetes.io/zone`; None: unlabelled).
    pub pod_zones: Vec<Option<String>>,
    /// `podAntiAffinity` or `topologySpreadConstraints` on the zone key in the pod template.
    pub spread_by_zone: bool,
    /// PodDisruptionBudgets whose selector matches the pods.
    pub disruption_budgets: Vec<String>,
    /// Per container probe kinds present, worst container decides: (kind, probe).
    pub probes: Vec<(String, Option<Probe>)>,
    /// The containers' images (`image:tag` or digest), in container order.
    #[serde(default)]
    pub images: Vec<String>,
    /// One pod's requests (sum over the template's containers), for the capacity check.
    #[serde(default)]
    pub pod_requests: Resources,
}

/// Parity: the standby runs the same images as the primary, so a failover does not also
/// deploy a different version.
pub fn parity_check(
    standby_region: &str,
    workload: &str,
    primary: &[String],
    standby: &[String],
) -> ReadinessCheck {
    let same = primary == standby;
    check(
        "parity.images",
        standby_region,
        workload,
        if same {
            CheckStatus::Pass
        } else {
            CheckStatus::Fail
        },
        if same {
            format!("same images as the primary: {}", standby.join(", "))
        } else {
            format!(
                "standby runs {}, the primary {}",
                standby.join(", "),
                primary.join(", ")
            )
        },
        "deploy the primary's images to the standby (one release, both regions)",
    )
}

/// The document's section 2 and 6.1 checks of one workload: InsufficientReplicas, SingleAZ,
/// spread, PDB, and the three probes.
pub fn workload_checks(region: &str, w: &WorkloadView) -> Vec<ReadinessCheck> {
    let mut out = Vec::new();
    let name = w.name.as_str();
    let enough = w.spec_replicas > 0 && w.available_replicas * 2 >= w.spec_replicas;
    out.push(check(
        "kubernetes.replicas",
        region,
        name,
        if enough { CheckStatus::Pass } else { CheckStatus::Fail },
        format!("{} of {} replicas available", w.available_replicas, w.spec_replicas),
        "InsufficientReplicas: find why pods are not available (kubectl describe deployment); the standby must run at least half its replicas",
    ));
    let zones: std::collections::BTreeSet<&str> =
        w.pod_zones.iter().flatten().map(String::as_str).collect();
    out.push(check(
        "kubernetes.zones",
        region,
        name,
        if zones.len() >= 2 { CheckStatus::Pass } else { CheckStatus::Fail },
        format!(
            "{} pod(s) in {} zone(s){}",
            w.pod_zones.len(),
            zones.len(),
            if zones.is_empty() {
                String::new()
            } else {
                format!(": {}", zones.into_iter().collect::<Vec<_>>().join(", "))
            }
        ),
        "SingleAZDeployment: spread the pods over at least two zones (nodes in several zones, section 2.1's anti-affinity)",
    ));
    out.push(check(
        "kubernetes.zone_spread",
        region,
        name,
        if w.spread_by_zone { CheckStatus::Pass } else { CheckStatus::Warn },
        if w.spread_by_zone {
            "the pod template spreads by topology.kubernetes.io/zone".into()
        } else {
            "no podAntiAffinity or topologySpreadConstraints on topology.kubernetes.io/zone".into()
        },
        "add section 2.1's podAntiAffinity / topologySpreadConstraints on topology.kubernetes.io/zone",
    ));
    out.push(check(
        "kubernetes.pdb",
        region,
        name,
        if w.disruption_budgets.is_empty() {
            CheckStatus::Fail
        } else {
            CheckStatus::Pass
        },
        if w.disruption_budgets.is_empty() {
            "no PodDisruptionBudget selects its pods".into()
        } else {
            format!("PodDisruptionBudget {}", w.disruption_budgets.join(", "))
        },
        "add section 2.2's PodDisruptionBudget (minAvailable: 2) selecting the pods",
    ));
    for (kind, document_secs) in DOCUMENT_PROBES {
        let id = format!("kubernetes.probe.{kind}");
        let probes: Vec<&Option<Probe>> = w
            .probes
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, p)| p)
            .collect();
        let missing = probes.is_empty() || probes.iter().any(|p| p.is_none());
        let slowest = probes
            .iter()
            .filter_map(|p| p.map(|p| p.detection_secs()))
            .max();
        let (status, seen) = match (missing, slowest) {
            (true, _) if kind == "startup" => (
                CheckStatus::Warn,
                "no startup probe (a slow start is judged by liveness)".to_string(),
            ),
            (true, _) => (CheckStatus::Fail, format!("no {kind} probe")),
            (false, Some(secs)) if secs > document_secs * 2 => (
                CheckStatus::Warn,
                format!(
                    "{kind} probe acts after {secs} s; section 2.3 acts after {document_secs} s"
                ),
            ),
            (false, secs) => (
                CheckStatus::Pass,
                format!("{kind} probe acts after {} s", secs.unwrap_or(0)),
            ),
        };
        out.push(check(
            &id,
            region,
            name,
            status,
            seen,
            "add or tighten the probe as in section 2.3 (readiness: period 5 s, failureThreshold 2)",
        ));
    }
    out
}

/// A replica's replication as the database reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicationView {
    /// In recovery (a replica) at all.
    pub in_recovery: bool,
    /// A WAL receiver is streaming from the primary.
    pub streaming: bool,
    /// Seconds behind the primary, when known.
    pub lag_secs: Option<f64>,
}

/// The standby's database: a streaming replica within the tier's RPO (the replica the failover
/// would promote).
pub fn replication_check(region: &str, view: &ReplicationView, rpo_secs: u64) -> ReadinessCheck {
    let (status, seen) = if !view.in_recovery {
        (
            CheckStatus::Fail,
            "not a replica: it accepts writes (split brain, or the failover already happened)"
                .to_string(),
        )
    } else if !view.streaming {
        (
            CheckStatus::Fail,
            "a replica, but not streaming from the primary (no WAL receiver)".to_string(),
        )
    } else {
        match view.lag_secs {
            Some(lag) if lag <= rpo_secs as f64 => (
                CheckStatus::Pass,
                format!("streaming, {lag:.1} s behind (RPO {rpo_secs} s)"),
            ),
            Some(lag) => (
                CheckStatus::Fail,
                format!("streaming, but {lag:.1} s behind: over the RPO of {rpo_secs} s"),
            ),
            None => (
                CheckStatus::Warn,
                "streaming, lag not measurable yet (nothing replayed)".to_string(),
            ),
        }
    };
    check(
        "database.replication",
        region,
        "standby database",
        status,
        seen,
        "re-protect it (hapilot reprotect) or find why the WAL receiver stopped (primary_conninfo, slots, network)",
    )
}

/// `INFO replication` of a region's Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedisView {
    /// `role`: master or slave.
    pub role: String,
    /// `connected_slaves` (a master's).
    pub connected_replicas: i64,
    /// `master_link_status` (a replica's): up or down.
    pub master_link_up: Option<bool>,
}

/// Redis HA: a master has a connected replica; a replica's link to its master is up.
pub fn redis_check(region: &str, view: &RedisView) -> ReadinessCheck {
    let (status, seen) = match view.role.as_str() {
        "master" if view.connected_replicas >= 1 => (
            CheckStatus::Pass,
            format!(
                "master with {} connected replica(s)",
                view.connected_replicas
            ),
        ),
        "master" => (
            CheckStatus::Fail,
            "master with no connected replica".to_string(),
        ),
        "slave" if view.master_link_up == Some(true) => (
            CheckStatus::Pass,
            "replica, link to its master up".to_string(),
        ),
        role => (
            CheckStatus::Fail,
            format!("role {role}, link to master {:?}", view.master_link_up),
        ),
    };
    check(
        "redis.replication",
        region,
        "redis",
        status,
        seen,
        "run Redis with a replica (and Sentinel) as the checklist's \"Redis HA\" asks",
    )
}

/// One server of Vault's raft configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftServer {
    /// `node_id`.
    pub node_id: String,
    /// `leader`.
    pub leader: bool,
    /// `voter`.
    pub voter: bool,
}

/// Vault HA: at least three voters (a quorum survives one loss) and a leader.
pub fn vault_check(region: &str, servers: &[RaftServer]) -> ReadinessCheck {
    let voters = servers.iter().filter(|s| s.voter).count();
    let leader = servers.iter().find(|s| s.leader).map(|s| s.node_id.clone());
    let status = if voters >= 3 && leader.is_some() {
        CheckStatus::Pass
    } else {
        CheckStatus::Fail
    };
    check(
        "vault.raft",
        region,
        "vault",
        status,
        format!(
            "{voters} voter(s) of {} server(s), leader {}",
            servers.len(),
            leader.as_deref().unwrap_or("none")
        ),
        "run Vault's integrated storage with at least 3 voters (one per zone)",
    )
}

/// The emergency path's permissions: `function`'s role may make every call the failover makes
/// (`denied`: the actions IAM's simulator refused, out of `checked`).
pub fn permissions_check(
    region: &str,
    function: &str,
    denied: &[String],
    checked: usize,
) -> ReadinessCheck {
    check(
        "permissions.emergency_path",
        region,
        function,
        if denied.is_empty() {
            CheckStatus::Pass
        } else {
            CheckStatus::Fail
        },
        if denied.is_empty() {
            format!("its role may make all {checked} calls the failover makes")
        } else {
            format!("its role may not: {}", denied.join(", "))
        },
        "grant the denied actions to the function's role (infra/template.yaml; a boundary or SCP may also deny them)",
    )
}

/// What hapilot's own records say about practice (epoch seconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PracticeView {
    /// Now.
    pub now: i64,
    /// When the newest passed DR drill ended.
    pub last_drill_passed: Option<i64>,
    /// When the newest backup audit ran, and whether it passed.
    pub last_audit: Option<(i64, bool)>,
    /// When the newest successful DR restore ended.
    pub last_restore: Option<i64>,
}

/// The document's quarterly drill, the audit every 2 h, a restore test every 30 days.
pub const DRILL_MAX_AGE_SECS: i64 = 90 * 86_400;
/// See [`DRILL_MAX_AGE_SECS`].
pub const AUDIT_MAX_AGE_SECS: i64 = 2 * 3_600;
/// See [`DRILL_MAX_AGE_SECS`].
pub const RESTORE_MAX_AGE_SECS: i64 = 30 * 86_400;

/// Practice: recent passed drill, recent passed audit, recent restore test.
pub fn practice_checks(view: &PracticeView) -> Vec<ReadinessCheck> {
    let age = |t: i64| view.now - t;
    let days = |secs: i64| secs as f64 / 86_400.0;
    let mut out = Vec::new();
    let (status, seen) = match view.last_drill_passed {
        Some(t) if age(t) <= DRILL_MAX_AGE_SECS => (
            CheckStatus::Pass,
            format!("last passed DR drill {:.0} days ago", days(age(t))),
        ),
        Some(t) => (
            CheckStatus::Fail,
            format!(
                "last passed DR drill {:.0} days ago (quarterly: 90)",
                days(age(t))
            ),
        ),
        None => (
            CheckStatus::Fail,
            "no passed DR drill on record".to_string(),
        ),
    };
    out.push(check(
        "practice.drill",
        "global",
        "dr-drill",
        status,
        seen,
        "run the DR drill (hapilot start dr-drill) and keep its schedule enabled",
    ));
    let (status, seen) = match view.last_audit {
        Some((t, true)) if age(t) <= AUDIT_MAX_AGE_SECS => (
            CheckStatus::Pass,
            format!("backup audit passed {} min ago", age(t) / 60),
        ),
        Some((t, passed)) => (
            CheckStatus::Fail,
            format!(
                "newest backup audit {} min ago {}",
                age(t) / 60,
                if passed {
                    "passed, but is older than 2 h"
                } else {
                    "FAILED"
                }
            ),
        ),
        None => (CheckStatus::Fail, "no backup audit on record".to_string()),
    };
    out.push(check(
        "practice.backup_audit",
        "global",
        "backup-audit",
        status,
        seen,
        "fix the audit's findings (hapilot audit) and check its schedule",
    ));
    let (status, seen) = match view.last_restore {
        Some(t) if age(t) <= RESTORE_MAX_AGE_SECS => (
            CheckStatus::Pass,
            format!("last passed restore test {:.0} days ago", days(age(t))),
        ),
        // A backup is proven only by restoring it: an unproven one fails as a missing drill does.
        Some(t) => (
            CheckStatus::Fail,
            format!(
                "last passed restore test {:.0} days ago (monthly: 30)",
                days(age(t))
            ),
        ),
        None => (
            CheckStatus::Fail,
            "no passed restore test or DR restore on record".to_string(),
        ),
    };
    out.push(check(
        "practice.restore",
        "global",
        "dr-restore",
        status,
        seen,
        "run a restore test (hapilot restore-test --region <dr region>) or set the stack's RestoreTestRegion for the weekly one",
    ));
    out
}

/// The DR drill's schedule (EventBridge Scheduler): `name` as configured (None: not
/// configured), `state` its `State` (`ENABLED`, `DISABLED`), None when no schedule by that
/// name exists.
pub fn drill_schedule_check(name: Option<&str>, state: Option<&str>) -> ReadinessCheck {
    let Some(name) = name else {
        return check(
            "practice.drill_schedule",
            "global",
            "dr-drill schedule",
            CheckStatus::Fail,
            "HAPILOT_DRILL_SCHEDULE names no schedule: nothing is known to run the quarterly drill"
                .into(),
            "set HAPILOT_DRILL_SCHEDULE to the DR drill's schedule (the template sets it)",
        );
    };
    let (status, seen) = match state {
        Some("ENABLED") => (CheckStatus::Pass, format!("schedule {name} is enabled")),
        Some(other) => (
            CheckStatus::Warn,
            format!("schedule {name} exists but is {other}: no quarterly drill runs"),
        ),
        None => (
            CheckStatus::Fail,
            format!("no schedule named {name}: nothing runs the quarterly drill"),
        ),
    };
    check(
        "practice.drill_schedule",
        "global",
        name,
        status,
        seen,
        "enable the DR drill schedule (infra/template.yaml DrDrillSchedule State: ENABLED) once the drill has been rehearsed by hand",
    )
}

/// Whether a vantage point votes: its alarm (`arn`, re-read in its own region) has data in its
/// last evaluation periods. CloudWatch says `INSUFFICIENT_DATA` when it has not (a stopped
/// prober, a disabled schedule, a secret it cannot read): the quorum is then a vote short, and
/// nobody would know until the outage. `state` is the alarm's state (`None`: no such alarm).
pub fn vantage_data_check(arn: &str, state: Option<&str>) -> ReadinessCheck {
    let mut parts = arn.splitn(7, ':');
    let region = parts.nth(3).filter(|r| !r.is_empty()).unwrap_or("global");
    let name = arn.rsplit(':').next().unwrap_or(arn);
    let (status, seen) = match state {
        Some(s @ ("OK" | "ALARM")) => (
            CheckStatus::Pass,
            format!("state {s}: it has data in its evaluation periods"),
        ),
        Some(other) => (
            CheckStatus::Fail,
            format!(
                "state {other}: no data in its evaluation periods, so this vantage point does not vote and the quorum is a vote short"
            ),
        ),
        None => (
            CheckStatus::Fail,
            "no such alarm: the quorum counts a vote that does not exist".to_string(),
        ),
    };
    check(
        "detection.vantage_data",
        region,
        name,
        status,
        seen,
        "look at that region's prober (its schedule, the function's errors and logs, the regions secret it reads) or deploy the stack that creates the alarm",
    )
}

/// Score of a set of checks: 100 x (passes + half the warnings) / checks.
pub fn score(checks: &[&ReadinessCheck]) -> f64 {
    if checks.is_empty() {
        return 0.0;
    }
    let points: f64 = checks
        .iter()
        .map(|c| match c.status {
            CheckStatus::Pass => 1.0,
            CheckStatus::Warn => 0.5,
            CheckStatus::Fail => 0.0,
        })
        .sum();
    (points * 1000.0 / checks.len() as f64).round() / 10.0
}

/// One region's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionReadiness {
    /// The region (`global` for practice).
    pub region: String,
    /// [`score`] of its checks.
    pub score: f64,
    /// How many failed.
    pub failed: usize,
    /// How many warned.
    pub warnings: usize,
}

/// The readiness report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadinessReport {
    /// When it was evaluated (epoch seconds).
    pub evaluated_at: i64,
    /// `ready` when nothing failed, else `not_ready`.
    pub verdict: String,
    /// Over every check.
    pub score: f64,
    /// Per region.
    pub regions: Vec<RegionReadiness>,
    /// Every check.
    pub checks: Vec<ReadinessCheck>,
    /// Checks that fail now and did not in the previous report (what a notice is about).
    pub newly_failed: Vec<String>,
    /// One line.
    pub summary: String,
}

/// A check's identity across reports.
pub fn check_key(c: &ReadinessCheck) -> String {
    format!("{}/{}/{}", c.region, c.check, c.subject)
}

impl ReadinessReport {
    /// Builds the report; `previous_failed` are the keys that failed in the previous report.
    pub fn new(evaluated_at: i64, checks: Vec<ReadinessCheck>, previous_failed: &[String]) -> Self {
        let mut regions: Vec<String> = checks.iter().map(|c| c.region.clone()).collect();
        regions.sort();
        regions.dedup();
        let regions: Vec<RegionReadiness> = regions
            .into_iter()
            .map(|region| {
                let mine: Vec<&ReadinessCheck> =
                    checks.iter().filter(|c| c.region == region).collect();
                RegionReadiness {
                    score: score(&mine),
                    failed: mine
                        .iter()
                        .filter(|c| c.status == CheckStatus::Fail)
                        .count(),
                    warnings: mine
                        .iter()
                        .filter(|c| c.status == CheckStatus::Warn)
                        .count(),
                    region,
                }
            })
            .collect();
        let all: Vec<&ReadinessCheck> = checks.iter().collect();
        let failed: Vec<&ReadinessCheck> = checks
            .iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .collect();
        let newly_failed: Vec<String> = failed
            .iter()
            .map(|c| check_key(c))
            .filter(|k| !previous_failed.contains(k))
            .collect();
        let score = score(&all);
        let summary = match failed.first() {
            None => format!("ready: score {score}, {} checks, none failed", checks.len()),
            Some(first) => format!(
                "NOT READY: score {score}, {} of {} checks failed; first: {} {} {}: {}",
                failed.len(),
                checks.len(),
                first.region,
                first.check,
                first.subject,
                first.seen
            ),
        };
        Self {
            evaluated_at,
            verdict: if failed.is_empty() {
                "ready"
            } else {
                "not_ready"
            }
            .into(),
            score,
            regions,
            checks,
            newly_failed,
            summary,
        }
    }

    /// Keys of the checks that fail in this report.
    pub fn failed_keys(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .map(check_key)
            .collect()
    }

    /// The report as Markdown: summary, per-region scores, then every check that is not a
    /// pass (with its fix) and the passes.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "# Readiness: {}\n\n{}\n\n| region | score | failed | warnings |\n| --- | ---: | ---: | ---: |\n",
            if self.verdict == "ready" {
                "READY"
            } else {
                "NOT READY"
            },
            self.summary
        );
        for r in &self.regions {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                r.region, r.score, r.failed, r.warnings
            ));
        }
        out.push_str("\n| status | region | check | subject | seen | fix |\n| --- | --- | --- | --- | --- | --- |\n");
        let mut ordered: Vec<&ReadinessCheck> = self.checks.iter().collect();
        ordered.sort_by_key(|c| match c.status {
            CheckStatus::Fail => 0,
            CheckStatus::Warn => 1,
            CheckStatus::Pass => 2,
        });
        for c in ordered {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                match c.status {
                    CheckStatus::Fail => "**FAIL**",
                    CheckStatus::Warn => "warn",
                    CheckStatus::Pass => "pass",
                },
                c.region,
                c.check,
                c.subject,
                c.seen.replace('|', "/"),
                c.fix.replace('|', "/")
            ));
        }
        out
    }
}

/// A workload as the HA document deploys it (sections 2.1 to 2.3): every replica available,
/// its pods spread over zones `a`, `b`, `c` in turn, a PodDisruptionBudget, the three probes
/// with section 2.3's timings, one image, 500m CPU and 1 GiB per pod. For tests.
#[cfg(any(test, feature = "fixtures"))]
pub fn document_workload(name: &str, replicas: i64) -> WorkloadView {
    let probe = |period, threshold| {
        Some(Probe {
            initial_delay_secs: 10,
            period_secs: period,
            failure_threshold: threshold,
        })
    };
    WorkloadView {
        name: name.into(),
        spec_replicas: replicas,
        available_replicas: replicas,
        pod_zones: (0..replicas)
            .map(|i| Some(["a", "b", "c"][i as usize % 3].to_string()))
            .collect(),
        spread_by_zone: true,
        disruption_budgets: vec![format!("{name}-pdb")],
        probes: vec![
            ("liveness".into(), probe(10, 3)),
            ("readiness".into(), probe(5, 2)),
            ("startup".into(), probe(5, 30)),
        ],
        images: vec![format!("ghcr.io/example/{name}:1.0.0")],
        pod_requests: Resources {
            cpu_millis: 500,
            memory_bytes: 1 << 30,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vantage_point_without_data_does_not_vote_and_fails() {
        let arn = "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:hapilot-watch-us-east-1";
        for (state, status) in [
            (Some("OK"), CheckStatus::Pass),
            (Some("ALARM"), CheckStatus::Pass),
            (Some("INSUFFICIENT_DATA"), CheckStatus::Fail),
            (None, CheckStatus::Fail),
        ] {
            let c = vantage_data_check(arn, state);
            assert_eq!(c.status, status, "{state:?}: {c:?}");
            assert_eq!(
                (c.region.as_str(), c.subject.as_str()),
                ("eu-west-1", "hapilot-watch-us-east-1")
            );
        }
    }

    fn healthy(name: &str) -> WorkloadView {
        document_workload(name, 3)
    }

    fn failing(checks: &[ReadinessCheck]) -> Vec<&str> {
        checks
            .iter()
            .filter(|c| c.status != CheckStatus::Pass)
            .map(|c| c.check.as_str())
            .collect()
    }

    #[test]
    fn a_workload_as_the_document_asks_passes_every_check() {
        let checks = workload_checks("us-west-2", &healthy("litellm"));
        assert_eq!(checks.len(), 7);
        assert!(failing(&checks).is_empty(), "{checks:#?}");
        assert!(checks.iter().all(|c| c.fix.is_empty()));
    }

    #[test]
    fn each_workload_defect_fails_exactly_its_check() {
        type Defect = Box<dyn Fn(&mut WorkloadView)>;
        let cases: Vec<(&str, Defect)> = vec![
            (
                "kubernetes.replicas",
                Box::new(|w| {
                    w.spec_replicas = 6;
                    w.available_replicas = 2;
                    w.pod_zones.truncate(2);
                }),
            ),
            (
                "kubernetes.zones",
                Box::new(|w| w.pod_zones = vec![Some("a".into()); 3]),
            ),
            (
                "kubernetes.zone_spread",
                Box::new(|w| w.spread_by_zone = false),
            ),
            ("kubernetes.pdb", Box::new(|w| w.disruption_budgets.clear())),
            (
                "kubernetes.probe.readiness",
                Box::new(|w| w.probes.retain(|(k, _)| k != "readiness")),
            ),
            (
                "kubernetes.probe.liveness",
                Box::new(|w| w.probes[0].1 = None),
            ),
            (
                "kubernetes.probe.startup",
                Box::new(|w| w.probes.retain(|(k, _)| k != "startup")),
            ),
        ];
        for (expected, defect) in cases {
            let mut w = healthy("litellm");
            defect(&mut w);
            let checks = workload_checks("us-west-2", &w);
            assert_eq!(failing(&checks), [expected], "{checks:#?}");
            let bad = checks.iter().find(|c| c.check == expected).unwrap();
            assert!(!bad.fix.is_empty());
        }
    }

    #[test]
    fn exactly_half_the_replicas_is_enough_and_a_slow_probe_warns() {
        let mut w = healthy("vllm");
        w.spec_replicas = 4;
        w.available_replicas = 2;
        w.pod_zones.truncate(2);
        assert!(failing(&workload_checks("r", &w)).is_empty());
        w.probes[1].1 = Some(Probe {
            initial_delay_secs: 0,
            period_secs: 30,
            failure_threshold: 3,
        });
        let checks = workload_checks("r", &w);
        let slow = checks
            .iter()
            .find(|c| c.check == "kubernetes.probe.readiness")
            .unwrap();
        assert_eq!(slow.status, CheckStatus::Warn);
        assert!(
            slow.seen
                .contains("after 90 s; section 2.3 acts after 10 s"),
            "{}",
            slow.seen
        );
    }

    #[test]
    fn replication_redis_and_vault_judge_what_they_see() {
        let streaming = ReplicationView {
            in_recovery: true,
            streaming: true,
            lag_secs: Some(1.0),
        };
        assert_eq!(
            replication_check("r", &streaming, 300).status,
            CheckStatus::Pass
        );
        let stopped = ReplicationView {
            streaming: false,
            ..streaming.clone()
        };
        assert_eq!(
            replication_check("r", &stopped, 300).status,
            CheckStatus::Fail
        );
        let behind = ReplicationView {
            lag_secs: Some(400.0),
            ..streaming
        };
        assert!(
            replication_check("r", &behind, 300)
                .seen
                .contains("over the RPO")
        );
        let lonely = RedisView {
            role: "master".into(),
            connected_replicas: 0,
            master_link_up: None,
        };
        assert_eq!(redis_check("r", &lonely).status, CheckStatus::Fail);
        let voter = |id: &str, leader| RaftServer {
            node_id: id.into(),
            leader,
            voter: true,
        };
        assert_eq!(
            vault_check(
                "r",
                &[voter("a", true), voter("b", false), voter("c", false)]
            )
            .status,
            CheckStatus::Pass
        );
        assert_eq!(
            vault_check("r", &[voter("a", true)]).status,
            CheckStatus::Fail
        );
    }

    #[test]
    fn parity_compares_images() {
        let a = vec!["litellm:1.0".to_string()];
        let b = vec!["litellm:1.1".to_string()];
        assert_eq!(
            parity_check("w", "litellm", &a, &a).status,
            CheckStatus::Pass
        );
        let drift = parity_check("w", "litellm", &a, &b);
        assert_eq!(drift.status, CheckStatus::Fail);
        assert!(
            drift
                .seen
                .contains("standby runs litellm:1.1, the primary litellm:1.0")
        );
    }

    #[test]
    fn practice_ages_follow_the_document() {
        let now = 1_000_000_000;
        let fresh = PracticeView {
            now,
            last_drill_passed: Some(now - 10 * 86_400),
            last_audit: Some((now - 600, true)),
            last_restore: Some(now - 86_400),
        };
        assert!(failing(&practice_checks(&fresh)).is_empty());
        let stale = PracticeView {
            last_drill_passed: Some(now - 91 * 86_400),
            ..fresh.clone()
        };
        assert_eq!(failing(&practice_checks(&stale)), ["practice.drill"]);
        let failed_audit = PracticeView {
            last_audit: Some((now - 600, false)),
            ..fresh.clone()
        };
        assert_eq!(
            failing(&practice_checks(&failed_audit)),
            ["practice.backup_audit"]
        );
        let unproven = PracticeView {
            last_restore: Some(now - 31 * 86_400),
            ..fresh.clone()
        };
        assert_eq!(failing(&practice_checks(&unproven)), ["practice.restore"]);
        let never = PracticeView {
            last_restore: None,
            ..fresh
        };
        assert_eq!(failing(&practice_checks(&never)), ["practice.restore"]);
    }

    #[test]
    fn the_report_scores_regions_and_names_what_newly_failed() {
        let mut checks = workload_checks("us-west-2", &healthy("litellm"));
        checks[3].status = CheckStatus::Fail;
        checks.push(unreadable(
            "redis.replication",
            "us-east-1",
            "redis",
            "connection refused",
        ));
        let previous = vec!["us-east-1/redis.replication/redis".to_string()];
        let report = ReadinessReport::new(0, checks, &previous);
        assert_eq!(report.verdict, "not_ready");
        assert_eq!(report.newly_failed, ["us-west-2/kubernetes.pdb/litellm"]);
        let west = report
            .regions
            .iter()
            .find(|r| r.region == "us-west-2")
            .unwrap();
        assert_eq!((west.failed, west.score), (1, 85.7));
        assert!(
            report
                .summary
                .starts_with("NOT READY: score 75, 2 of 8 checks failed"),
            "{}",
            report.summary
        );
        assert!(report.markdown().contains("| **FAIL** | us-east-1 | redis.replication | redis | could not be read: connection refused |"));
    }

    #[test]
    fn the_drill_schedule_must_exist_and_run() {
        let s = |state| drill_schedule_check(Some("hapilot-dr-drill"), state);
        assert_eq!(s(Some("ENABLED")).status, CheckStatus::Pass);
        let disabled = s(Some("DISABLED"));
        assert_eq!(disabled.status, CheckStatus::Warn);
        assert!(disabled.fix.contains("State: ENABLED"));
        assert_eq!(s(None).status, CheckStatus::Fail);
        assert!(
            drill_schedule_check(None, None)
                .fix
                .contains("HAPILOT_DRILL_SCHEDULE")
        );
    }
}
