//! `hapilot status`: where the deployment stands, read from AWS (or the local world) the way an
//! operator would look: which region serves (as the DNS data plane answers and as the records
//! say), what each vantage point sees, replication lag, the last run of each state machine,
//! pending approvals, the kill switch and the cool-down left.
//!
//! Every source is read on its own: one that does not answer (a dark region's APIs) is said in
//! `unreadable` and the rest is still shown.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use hapilot_adapters::orchestrator::{Orchestrator, StepFunctions};
use hapilot_core::alarm::TRAFFIC_MOVING_STATES;
use hapilot_functions::config::Settings;
use serde::Serialize;
use serde_json::{Value, json};

/// The state machines hapilot deploys, as the operator names them.
pub const MACHINES: [&str; 7] = [
    "failover",
    "failback",
    "reprotect",
    "dr-restore",
    "restore-test",
    "dr-drill",
    "backup-audit",
];

/// One region of the deployment.
#[derive(Debug, Clone, Serialize)]
pub struct RegionStatus {
    /// The region.
    pub region: String,
    /// Its record's SetIdentifier.
    pub set_identifier: String,
    /// What the records say: the weight of its record (None: unreadable or no record).
    pub weight: Option<i64>,
    /// The record's health check, if any.
    pub health_check: Option<String>,
    /// Which client regions the global name answers with this region now (the data plane).
    pub answered_to: Vec<String>,
    /// Serving as the data plane answers (None: the data plane could not be asked).
    pub serving: Option<bool>,
}

/// What one vantage point's alarm says about the region it watches.
#[derive(Debug, Clone, Serialize)]
pub struct VantageView {
    /// Where the vantage point is.
    pub vantage: String,
    /// The region it watches.
    pub watched: String,
    /// The alarm.
    pub alarm: String,
    /// `OK` (up), `ALARM` (down), `INSUFFICIENT_DATA`, or why it could not be read.
    pub state: String,
}

/// The newest replication lag published for a replica.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaLag {
    /// The replica's region.
    pub region: String,
    /// Seconds behind its primary.
    pub lag_secs: f64,
    /// When it was measured (RFC 3339).
    pub at: String,
}

/// The newest run of one state machine in one region.
#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    /// Region of the deployment that ran it.
    pub region: String,
    /// The state machine.
    pub machine: String,
    /// The execution's name.
    pub execution: String,
    /// RUNNING, SUCCEEDED, FAILED, ...
    pub status: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended, if it has.
    pub ended_at: Option<String>,
}

/// A run waiting for a human.
#[derive(Debug, Clone, Serialize)]
pub struct PendingApproval {
    /// The state machine.
    pub machine: String,
    /// The execution's name.
    pub execution: String,
    /// The step that waits.
    pub state: String,
    /// Why it asks.
    pub reason: String,
    /// When it asked.
    pub asked_at: String,
    /// Seconds of committed writes at risk, when the run measured them.
    pub data_at_risk_secs: Option<f64>,
    /// How to answer.
    pub answer: String,
}

/// An incident the alarm router paged about and did not act on.
#[derive(Debug, Clone, Serialize)]
pub struct OpenPage {
    /// The incident (`<primary>-to-<standby>`).
    pub incident: String,
    /// What the page said, in one line.
    pub subject: String,
    /// When.
    pub paged_at: String,
    /// The command that starts the failover by hand.
    pub command: String,
}

/// Where the deployment stands.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// When this was read.
    pub checked_at: String,
    /// The global name.
    pub record_name: Option<String>,
    /// Per region.
    pub regions: Vec<RegionStatus>,
    /// Each vantage point's view.
    pub vantage: Vec<VantageView>,
    /// Replication lag per replica.
    pub replication: Vec<ReplicaLag>,
    /// The newest run of each state machine, per region.
    pub runs: Vec<LastRun>,
    /// Runs waiting for a human.
    pub approvals: Vec<PendingApproval>,
    /// Outages hapilot paged about without acting (automatic failover off, another run holding
    /// the lock), open until the vantage points see the primary up again.
    pub pages: Vec<OpenPage>,
    /// The run that holds the platform's run lock, if one does.
    pub run_lock: Option<hapilot_core::run_lock::LockHolder>,
    /// The kill switch: alarms start failovers only when true.
    pub automatic_failover: bool,
    /// The configured cool-down.
    pub cooldown_secs: u64,
    /// Seconds until an alarm may start another failover (0: none left).
    pub cooldown_left_secs: Option<i64>,
    /// The newest readiness report's score and what fails (None: never evaluated).
    pub readiness: Option<ReadinessSummary>,
    /// What could not be read, and why.
    pub unreadable: Vec<String>,
}

/// The newest readiness evaluation, in short.
#[derive(Debug, Clone, Serialize)]
pub struct ReadinessSummary {
    /// Over every check.
    pub score: f64,
    /// `ready` or `not_ready`.
    pub verdict: String,
    /// When (RFC 3339).
    pub evaluated_at: String,
    /// `region/check/subject` of each failed check.
    pub failed: Vec<String>,
}

/// The newest readiness report in the audit bucket, if any.
pub async fn latest_readiness(
    sdk: &SdkConfig,
    bucket: &str,
) -> Result<Option<hapilot_core::readiness::ReadinessReport>, crate::HapilotError> {
    use hapilot_adapters::journal::Journal;
    let journal = hapilot_adapters::journal::S3Journal::from_sdk(sdk, bucket);
    let found = journal
        .get(hapilot_functions::evaluate_readiness::LATEST_KEY)
        .await
        .map_err(|e| crate::HapilotError::Aws {
            operation: "GetObject",
            detail: e.to_string(),
        })?;
    found.map(serde_json::from_value).transpose().map_err(|e| {
        crate::HapilotError::Invalid(format!("the readiness report does not parse: {e}"))
    })
}

/// The region an ARN names (`arn:aws:<service>:<region>:...`).
fn arn_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

/// An SDK error in one line, with the HTTP status when there was an answer (a dark region's
/// endpoint answers 503 with nothing the SDK can parse).
fn said<E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &'static str,
    e: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> String {
    hapilot_adapters::AdapterError::aws(operation)(e).to_string()
}

fn in_region(sdk: &SdkConfig, region: &str) -> SdkConfig {
    sdk.to_builder()
        .region(aws_config::Region::new(region.to_string()))
        .build()
}

fn rfc3339(t: &aws_sdk_cloudwatch::primitives::DateTime) -> String {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Reads the status. `data_plane` answers "which SetIdentifier does the global name give a
/// client in each region" (the local world's control endpoint); without it the CLI resolves
/// the name itself and shows the addresses it got.
pub async fn read_status(sdk: &SdkConfig, settings: &Settings, data_plane: Option<&str>) -> Status {
    let mut unreadable = Vec::new();
    let mut regions: Vec<RegionStatus> = settings
        .regions
        .iter()
        .map(|(name, r)| RegionStatus {
            region: name.clone(),
            set_identifier: r.set_identifier.clone(),
            weight: None,
            health_check: None,
            answered_to: Vec::new(),
            serving: None,
        })
        .collect();
    // The records (Route53's control plane, global, signed for us-east-1).
    if let (Some(zone), Some(name)) = (&settings.hosted_zone_id, &settings.record_name) {
        let route53 = aws_sdk_route53::Client::new(&in_region(sdk, "us-east-1"));
        match route53
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .send()
            .await
        {
            Ok(out) => {
                for set in out.resource_record_sets() {
                    if set.name().trim_end_matches('.') != name.trim_end_matches('.') {
                        continue;
                    }
                    if let Some(region) = regions
                        .iter_mut()
                        .find(|r| Some(r.set_identifier.as_str()) == set.set_identifier())
                    {
                        region.weight = set.weight();
                        region.health_check = set.health_check_id().map(str::to_string);
                    }
                }
            }
            Err(e) => unreadable.push(format!("records: {}", said("ListResourceRecordSets", e))),
        }
    }
    // The data plane.
    if let Some(url) = data_plane {
        match reqwest::get(format!("{url}/dns")).await {
            Ok(answer) => match answer.json::<BTreeMap<String, Value>>().await {
                Ok(answers) => {
                    for region in regions.iter_mut() {
                        region.answered_to = answers
                            .iter()
                            .filter(|(_, set)| set.as_str() == Some(&region.set_identifier))
                            .map(|(client, _)| client.clone())
                            .collect();
                        region.serving = Some(!region.answered_to.is_empty());
                    }
                }
                Err(e) => unreadable.push(format!("DNS answers: {e}")),
            },
            Err(e) => unreadable.push(format!("DNS answers ({url}): {e}")),
        }
    } else if let Some(name) = &settings.record_name {
        match tokio::net::lookup_host((name.as_str(), 443)).await {
            Ok(addrs) => {
                let addrs: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
                unreadable.push(format!(
                    "DNS: {name} resolves here to {} (map them to regions with your records)",
                    addrs.join(", ")
                ));
            }
            Err(e) => unreadable.push(format!("DNS: {name} does not resolve here: {e}")),
        }
    }
    // Each vantage point's alarm, read in the region its ARN names.
    let mut vantage = Vec::new();
    for trigger in &settings.triggers {
        for arn in &trigger.vantage_alarms {
            let region = arn_region(arn).unwrap_or("?").to_string();
            let name = arn.rsplit(':').next().unwrap_or(arn).to_string();
            let cloudwatch = aws_sdk_cloudwatch::Client::new(&in_region(sdk, &region));
            let state = match cloudwatch.describe_alarms().alarm_names(&name).send().await {
                Ok(out) => out
                    .metric_alarms()
                    .first()
                    .and_then(|a| a.state_value())
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "no such alarm".into()),
                Err(e) => format!("unreadable: {}", said("DescribeAlarms", e)),
            };
            vantage.push(VantageView {
                vantage: region,
                watched: trigger.primary_region.clone(),
                alarm: name,
                state,
            });
        }
    }
    // Replication lag, as publish-replication-lag puts it (from whichever region ran it).
    let mut replication: Vec<ReplicaLag> = Vec::new();
    let now = chrono::Utc::now();
    for (source, replica) in settings
        .regions
        .keys()
        .flat_map(|s| settings.regions.keys().map(move |r| (s, r)))
    {
        let cloudwatch = aws_sdk_cloudwatch::Client::new(&in_region(sdk, source));
        let answer = cloudwatch
            .get_metric_statistics()
            .namespace("hapilot/Database")
            .metric_name("ReplicationLagSeconds")
            .dimensions(
                aws_sdk_cloudwatch::types::Dimension::builder()
                    .name("Region")
                    .value(replica)
                    .build(),
            )
            .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
                now.timestamp() - 900,
            ))
            .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
                now.timestamp() + 10,
            ))
            .period(10)
            .statistics(aws_sdk_cloudwatch::types::Statistic::Maximum)
            .send()
            .await;
        match answer {
            Ok(out) => {
                let Some(newest) = out
                    .datapoints()
                    .iter()
                    .filter(|d| d.timestamp().is_some())
                    .max_by_key(|d| d.timestamp().map(|t| t.secs()))
                else {
                    continue;
                };
                let at = newest.timestamp().map(rfc3339).unwrap_or_default();
                match replication.iter_mut().find(|l| &l.region == replica) {
                    Some(known) if known.at >= at => {}
                    Some(known) => {
                        known.lag_secs = newest.maximum().unwrap_or_default();
                        known.at = at;
                    }
                    None => replication.push(ReplicaLag {
                        region: replica.clone(),
                        lag_secs: newest.maximum().unwrap_or_default(),
                        at,
                    }),
                }
            }
            // Said once per region, not once per replica asked about.
            Err(e) if replica == settings.regions.keys().next().unwrap_or(replica) => unreadable
                .push(format!(
                    "replication lag in {source}: {}",
                    said("GetMetricStatistics", e)
                )),
            Err(_) => {}
        }
    }
    // The newest run of each machine in each region, and the runs waiting for a human.
    let mut runs = Vec::new();
    let mut approvals = Vec::new();
    let mut cooldown_left = None;
    let journal = settings
        .audit_bucket
        .as_deref()
        .map(|b| hapilot_adapters::journal::S3Journal::from_sdk(sdk, b));
    let mut deployment_regions: Vec<String> = settings.regions.keys().cloned().collect();
    if let Some(dr) = &settings.dr_region
        && !deployment_regions.contains(dr)
    {
        deployment_regions.push(dr.clone());
    }
    for region in &deployment_regions {
        let config = in_region(sdk, region);
        let sfn = aws_sdk_sfn::Client::new(&config);
        let machines = match sfn.list_state_machines().send().await {
            Ok(out) => out.state_machines().to_vec(),
            Err(e) => {
                unreadable.push(format!(
                    "runs in {region}: {}",
                    said("ListStateMachines", e)
                ));
                continue;
            }
        };
        for item in machines {
            let Some(machine) = MACHINES
                .iter()
                .find(|m| item.name() == **m || item.name().ends_with(&format!("-{m}")))
            else {
                continue;
            };
            let executions = match sfn
                .list_executions()
                .state_machine_arn(item.state_machine_arn())
                .send()
                .await
            {
                Ok(out) => out.executions().to_vec(),
                Err(e) => {
                    unreadable.push(format!(
                        "{machine} runs in {region}: {}",
                        said("ListExecutions", e)
                    ));
                    continue;
                }
            };
            if *machine == "failover"
                && settings
                    .triggers
                    .iter()
                    .any(|t| &t.standby_region == region)
            {
                let orchestrator = StepFunctions::from_sdk(&config);
                if let Ok(ended) = orchestrator
                    .last_traffic_move_ended_at(item.state_machine_arn(), &TRAFFIC_MOVING_STATES)
                    .await
                {
                    cooldown_left = Some(
                        ended
                            .map(|t| (t + settings.cooldown_secs as i64 - now.timestamp()).max(0))
                            .unwrap_or(0),
                    );
                }
            }
            for running in executions
                .iter()
                .filter(|e| e.status().as_str() == "RUNNING")
            {
                let Some(journal) = &journal else { break };
                if let Some(pending) = waiting_approval(journal, machine, running.name()).await {
                    approvals.push(pending);
                }
            }
            if let Some(newest) = executions.iter().max_by_key(|e| e.start_date().secs()) {
                runs.push(LastRun {
                    region: region.clone(),
                    machine: machine.to_string(),
                    execution: newest.name().to_string(),
                    status: newest.status().as_str().to_string(),
                    started_at: rfc3339(newest.start_date()),
                    ended_at: newest.stop_date().map(rfc3339),
                });
            }
        }
    }
    let readiness = match settings.audit_bucket.as_deref() {
        Some(bucket) => match latest_readiness(sdk, bucket).await {
            Ok(report) => report.map(|r| ReadinessSummary {
                score: r.score,
                verdict: r.verdict.clone(),
                evaluated_at: chrono::DateTime::from_timestamp(r.evaluated_at, 0)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default(),
                failed: r.failed_keys(),
            }),
            Err(e) => {
                unreadable.push(format!("readiness: {e}"));
                None
            }
        },
        None => None,
    };
    let (pages, run_lock) = match &journal {
        Some(journal) => open_pages_and_lock(journal, &mut unreadable).await,
        None => (Vec::new(), None),
    };
    Status {
        checked_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        readiness,
        record_name: settings.record_name.clone(),
        regions,
        vantage,
        replication,
        runs,
        approvals,
        pages,
        run_lock,
        automatic_failover: settings.automatic_failover,
        cooldown_secs: settings.cooldown_secs,
        cooldown_left_secs: cooldown_left,
        unreadable,
    }
}

/// The pages the alarm router sent without acting, and the run lock's holder.
async fn open_pages_and_lock(
    journal: &hapilot_adapters::journal::S3Journal,
    unreadable: &mut Vec<String>,
) -> (Vec<OpenPage>, Option<hapilot_core::run_lock::LockHolder>) {
    use hapilot_adapters::journal::Journal;
    let mut pages = Vec::new();
    match journal.list("pages/").await {
        Ok(keys) => {
            for key in keys {
                let Ok(Some(marker)) = journal.get(&key).await else {
                    continue;
                };
                let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
                pages.push(OpenPage {
                    incident: text(&marker["page"]["incident"]),
                    subject: text(&marker["page"]["subject"]),
                    paged_at: text(&marker["paged_at"]),
                    command: text(&marker["page"]["command"]),
                });
            }
        }
        Err(e) => unreadable.push(format!("pages: {e}")),
    }
    let lock = match hapilot_functions::run::lock_holder(journal).await {
        Ok(lock) => lock,
        Err(e) => {
            unreadable.push(format!("run lock: {e}"));
            None
        }
    };
    (pages, lock)
}

/// The approval a running execution waits for, if it asked and nobody answered yet.
async fn waiting_approval(
    journal: &hapilot_adapters::journal::S3Journal,
    machine: &str,
    execution: &str,
) -> Option<PendingApproval> {
    use hapilot_adapters::journal::Journal;
    let prefix = format!("runs/{machine}/{execution}");
    let asked = journal
        .get(&format!("{prefix}/approval.json"))
        .await
        .ok()
        .flatten()?;
    let answered = journal
        .get(&format!("{prefix}/approval-answer.json"))
        .await
        .ok()
        .flatten();
    // An answered approval whose answer is older than the question belongs to an earlier ask.
    if answered.is_some_and(|a| a["answered_at"].as_str() >= asked["asked_at"].as_str()) {
        return None;
    }
    let at_risk = asked["details"]["replication"]["assessment"]["at_risk_secs"].as_f64();
    Some(PendingApproval {
        machine: machine.to_string(),
        execution: execution.to_string(),
        state: asked["state"].as_str().unwrap_or("?").to_string(),
        reason: asked["reason"].as_str().unwrap_or("").to_string(),
        asked_at: asked["asked_at"].as_str().unwrap_or("?").to_string(),
        data_at_risk_secs: at_risk,
        answer: format!(
            "hapilot approve {execution} --machine {machine} --comment \"...\"   (or: hapilot deny {execution} --machine {machine} --comment \"...\")"
        ),
    })
}

impl Status {
    /// The status as an operator reads it.
    pub fn render(&self) -> String {
        let mut out = format!(
            "hapilot status at {}{}\n\nregions\n",
            self.checked_at,
            self.record_name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
        for r in &self.regions {
            let serving = match r.serving {
                Some(true) => format!(
                    "SERVING (DNS answers clients in {})",
                    r.answered_to.join(", ")
                ),
                Some(false) => "not serving (DNS answers no client with it)".to_string(),
                None => "serving: unknown (DNS not asked)".to_string(),
            };
            let records = match r.weight {
                Some(w) => format!(
                    "record weight {w}{}",
                    r.health_check
                        .as_deref()
                        .map(|h| format!(", health check {h}"))
                        .unwrap_or_default()
                ),
                None => "record: unreadable or missing".to_string(),
            };
            out.push_str(&format!(
                "  {:<10} {:<10} {serving}; {records}\n",
                r.region, r.set_identifier
            ));
        }
        out.push_str("vantage points\n");
        for v in &self.vantage {
            let verdict = match v.state.as_str() {
                "OK" => "up",
                "ALARM" => "DOWN",
                _ => "unknown",
            };
            out.push_str(&format!(
                "  {:<10} sees {:<10} {verdict:<8} ({}: {})\n",
                v.vantage, v.watched, v.alarm, v.state
            ));
        }
        out.push_str("replication lag\n");
        if self.replication.is_empty() {
            out.push_str("  no measurement in the last 15 min (publish-replication-lag puts it)\n");
        }
        for l in &self.replication {
            let age = chrono::DateTime::parse_from_rfc3339(&l.at)
                .ok()
                .zip(chrono::DateTime::parse_from_rfc3339(&self.checked_at).ok())
                .map(|(at, now)| format!(" ({} s ago)", (now - at).num_seconds().max(0)))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {:<10} {:.1} s behind its primary, measured {}{age}\n",
                l.region, l.lag_secs, l.at
            ));
        }
        out.push_str("last runs\n");
        if self.runs.is_empty() {
            out.push_str("  none\n");
        }
        for r in &self.runs {
            out.push_str(&format!(
                "  {:<10} {:<13} {:<10} {} (started {}{})\n",
                r.region,
                r.machine,
                r.status,
                r.execution,
                r.started_at,
                r.ended_at
                    .as_deref()
                    .map(|e| format!(", ended {e}"))
                    .unwrap_or_default()
            ));
        }
        out.push_str("pending approvals\n");
        if self.approvals.is_empty() {
            out.push_str("  none\n");
        }
        for a in &self.approvals {
            out.push_str(&format!(
                "  {} {} waits at {} since {}: {}\n    data at risk: {}\n    answer: {}\n",
                a.machine,
                a.execution,
                a.state,
                a.asked_at,
                a.reason,
                a.data_at_risk_secs
                    .map(|s| format!("{s:.1} s"))
                    .unwrap_or_else(|| "not measured".into()),
                a.answer
            ));
        }
        out.push_str("paged, not acted on\n");
        if self.pages.is_empty() {
            out.push_str("  none\n");
        }
        for p in &self.pages {
            out.push_str(&format!(
                "  {} since {}: {}\n    to act: {}\n",
                p.incident, p.paged_at, p.subject, p.command
            ));
        }
        out.push_str(&format!(
            "run lock            {}\n",
            match &self.run_lock {
                Some(h) => format!(
                    "held by {} ({}) since {}",
                    h.execution, h.machine, h.taken_at
                ),
                None => "free".into(),
            }
        ));
        out.push_str(&format!(
            "automatic failover  {}\ncool-down           {}\n",
            if self.automatic_failover {
                "on"
            } else {
                "OFF (kill switch: alarms start nothing)"
            },
            match self.cooldown_left_secs {
                Some(0) => format!("none left (cool-down {} s)", self.cooldown_secs),
                Some(left) => format!(
                    "{left} s left of {} s: an alarm now starts no failover",
                    self.cooldown_secs
                ),
                None => format!("unknown (cool-down {} s)", self.cooldown_secs),
            }
        ));
        out.push_str(&match &self.readiness {
            Some(r) => format!(
                "readiness           score {} ({}) at {}{}\n",
                r.score,
                if r.verdict == "ready" {
                    "ready"
                } else {
                    "NOT READY"
                },
                r.evaluated_at,
                if r.failed.is_empty() {
                    String::new()
                } else {
                    format!("; failing: {}", r.failed.join(", "))
                }
            ),
            None => "readiness           never evaluated (hapilot readiness)\n".to_string(),
        });
        if !self.unreadable.is_empty() {
            out.push_str("unreadable\n");
            for u in &self.unreadable {
                out.push_str(&format!("  {u}\n"));
            }
        }
        out
    }

    /// The status as JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|e| json!({"error": e.to_string()}))
    }
}
