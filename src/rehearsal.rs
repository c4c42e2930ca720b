//! The local rehearsal (`./scripts/drill`, `hapilot rehearsal`), the README's main job: the HA
//! document's failover, executed for real on the local stack and measured ("drill" is the DR
//! drill state machine's word).
//!
//! Two simulated regions with a real PostgreSQL streaming pair, Route53 records, health checks
//! and an alarm in moto, a writer committing rows to the primary continuously. Then the primary
//! region dies (gateway down, database killed). A health checker plays Route53 (probe every
//! interval, unhealthy after `threshold` failures), sets the alarm and delivers its state change
//! to the alarm router as EventBridge would. The failover run is followed live, and the report
//! gives the timeline, RTO (failure -> verified), RPO measured in rows (committed on the old
//! primary, missing on the promoted one) and seconds, DNS before/after, per-step times, and
//! PASSED/FAILED against the tier's targets.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hapilot_adapters::database::PostgresDatabase;
use hapilot_core::failover::FailoverMode;
use hapilot_core::tier::Tier;
use serde::Serialize;
use serde_json::{Value, json};

use crate::HapilotError;
use crate::local::aws::front_door::invoke;
use crate::local::systems::gateway::GatewayMode;
use crate::local::world::deployment::{
    DR_BACKUP_BUCKET, DatabaseSetup, Databases, LocalDeployment, PRIMARY_ALARM, PRIMARY_REGION,
    PRIMARY_SET, RecordRouting, STANDBY_REGION, WITNESS_REGION, WorldOptions, alarm_event,
};
use crate::local::{LocalStack, StackOptions};
use crate::runs::follow;

/// How the drill runs.
#[derive(Debug, Clone)]
pub struct RehearsalOptions {
    /// Seconds the writer commits before the primary region is killed.
    pub warmup: Duration,
    /// The simulated Route53 health check's interval.
    pub check_interval: Duration,
    /// Failed checks before the alarm fires (the HA document: 3).
    pub failure_threshold: u32,
    /// Pause between two writes of the writer.
    pub write_interval: Duration,
    /// `ungraceful` (the primary region dies; alarm-driven) or `graceful` (a planned
    /// switchover started like an operator would; must lose nothing).
    pub mode: FailoverMode,
    /// What dies in an ungraceful drill.
    pub outage: Outage,
    /// The database backend: the real pair as plain PostgreSQL (`postgres`, host agents) or as
    /// CloudNativePG replica clusters (`cloudnativepg`, the operator stand-in).
    pub database: DatabaseSetup,
    /// How fast AWS's clock runs (`check_interval` is its health-check interval).
    pub pace: crate::local::world::pace::Pace,
    /// The parameters file whose stacks are deployed.
    pub parameters: std::path::PathBuf,
    /// eu-west-1 is a second secondary the failover may choose (the HA document's section 3;
    /// a region-dark drill on the postgres backend).
    pub second_secondary: bool,
    /// A secondary whose gateway fails its health checks from before the outage: the
    /// failover must choose another.
    pub degraded: Option<String>,
}

/// What dies in an ungraceful drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outage {
    /// us-east-1 goes dark: every API signed for it (Route53's control plane too) refuses,
    /// its gateway and database die. Detection by quorum from the standby and the witness,
    /// DNS moved through Route53's data plane (control alarms behind `CALCULATED` checks).
    RegionDark,
    /// The gentler outage: the primary's gateway fails and its database dies; the region's
    /// APIs keep answering and the drill plays Route53's health checker itself.
    GatewayDown,
}

impl Default for RehearsalOptions {
    fn default() -> Self {
        Self {
            warmup: Duration::from_secs(2),
            check_interval: Duration::from_secs(1),
            failure_threshold: 3,
            write_interval: Duration::from_millis(10),
            mode: FailoverMode::Ungraceful,
            outage: Outage::RegionDark,
            database: DatabaseSetup::Postgres,
            pace: crate::local::world::pace::Pace::compressed(),
            parameters: crate::local::aws::template::local_parameters_file(),
            second_secondary: false,
            degraded: None,
        }
    }
}

impl RehearsalOptions {
    /// Whether this drill darkens a whole region (the quorum world, data plane running).
    pub fn region_dark(&self) -> bool {
        self.mode == FailoverMode::Ungraceful && self.outage == Outage::RegionDark
    }

    /// Refuses combinations the local world cannot build, before anything starts.
    pub fn check(&self) -> Result<(), HapilotError> {
        let refuse = |why: &str| {
            Err(HapilotError::Invalid(format!(
                "{why}; run without --secondaries 2 / --degrade, or with the region-dark postgres drill"
            )))
        };
        if self.second_secondary && !self.region_dark() {
            return refuse(
                "two secondaries are drilled with us-east-1 dark (--outage region-dark, ungraceful)",
            );
        }
        if self.second_secondary && self.database != DatabaseSetup::Postgres {
            return refuse(
                "eu-west-1's replica is a plain PostgreSQL server (--database postgres)",
            );
        }
        match self.degraded.as_deref() {
            None => Ok(()),
            Some(_) if !self.second_secondary => {
                refuse("a degraded secondary needs another to choose (--secondaries 2)")
            }
            Some(r) if r == STANDBY_REGION || r == WITNESS_REGION => Ok(()),
            Some(r) => refuse(&format!("{r} is not a secondary of the local world")),
        }
    }
}

/// The drill's report.
#[derive(Debug, Clone, Serialize)]
pub struct RehearsalReport {
    /// Local seconds per AWS second (1 at AWS's pace).
    pub pace_scale: f64,
    /// The tier judged against.
    pub tier: Tier,
    /// The database backend the failover used (`postgres` or `cloudnativepg`).
    pub database: String,
    /// The failover run's execution name.
    pub execution: String,
    /// How the run ended.
    pub run_status: String,
    /// Seconds from the primary's death to the alarm (detection; Route53 + CloudWatch in AWS).
    pub detection_secs: f64,
    /// Seconds from the alarm event to the run's end (verified through the global name).
    pub orchestration_secs: f64,
    /// Seconds from the alarm event to the DNS switch (ShiftTraffic done).
    pub alarm_to_dns_secs: f64,
    /// Configured waits inside alarm -> DNS (probe intervals); overhead = the rest.
    pub configured_waits_secs: f64,
    /// RTO: seconds from the primary's death to the verified failover.
    pub rto_secs: f64,
    /// Rows the writer had committed on the old primary.
    pub rows_committed: u64,
    /// Of those, rows missing on the promoted database.
    pub rows_lost: u64,
    /// RPO in seconds: commit time of the newest lost row minus that of the newest kept row.
    pub rpo_secs: f64,
    /// Weights before.
    pub dns_before: Value,
    /// Weights after.
    pub dns_after: Value,
    /// Seconds per state of the run.
    pub steps: Vec<(String, f64)>,
    /// The alarm router's decision record.
    pub decision: Value,
    /// The canary failback that followed, if the failover succeeded.
    pub failback: Option<FailbackSummary>,
    /// The restore-to-DR check of the latest backups that followed the failover.
    pub restore: Option<RestoreSummary>,
    /// Failed checks before the alarm.
    pub failure_threshold: u32,
    /// Seconds between checks.
    pub check_interval_secs: f64,
    /// Graceful or ungraceful.
    pub mode: FailoverMode,
    /// Graceful: seconds from the fence to the promoted standby (writes refused meanwhile).
    pub fence_secs: Option<f64>,
    /// Writes the old primary refused (read-only) while fenced.
    pub writes_refused: u64,
    /// What died (ungraceful drills).
    pub outage: Option<Outage>,
    /// Seconds from the primary's death to the global name answering the standby to a client
    /// in the primary's region (region-dark drills).
    pub global_name_secs: Option<f64>,
    /// Seconds from the primary's death to the first user request the standby served through
    /// the global name, as users resolve it (their resolvers keep answers for the TTL).
    pub users_served_secs: Option<f64>,
    /// What the emergency path asked of the dark region and of Route53's control plane.
    pub emergency_calls: Option<EmergencyCalls>,
    /// The failover's wait for the standby's capacity before the traffic moved (its last look:
    /// `ready`, `polls`, `waited_secs`, `summary`).
    #[serde(default)]
    pub capacity: Value,
    /// The failover's Vault step (`vault_promotion`: the calls decided and made, the check).
    #[serde(default)]
    pub vault: Value,
    /// The failover's choice of standby (every candidate's numbers when there were several).
    #[serde(default)]
    pub choice: Value,
    /// The region whose database the failover promoted.
    pub took_over: String,
    /// The other secondaries after the promotion (following the new primary, or what they
    /// need).
    #[serde(default)]
    pub followers: Value,
    /// The secondary degraded before the outage, if the drill degraded one.
    pub degraded: Option<String>,
    /// The data-loss guard's bound before the promotion (bytes, seconds, sources), shown
    /// beside the rows actually lost (null when the run had no guard: graceful).
    #[serde(default)]
    pub data_at_risk: Value,
}

/// How the restore-to-DR check went (the dr-restore state machine, latest backups).
#[derive(Debug, Clone, Serialize)]
pub struct RestoreSummary {
    /// The run's execution name.
    pub execution: String,
    /// How it ended.
    pub status: String,
    /// Its error, if it failed.
    pub error: Option<String>,
    /// Seconds from start to a restored, promoted server (the restore's RTO).
    pub duration_secs: f64,
    /// Rows of the writer's table in the restored database.
    pub rows: Option<i64>,
    /// The table and column checked (the template's `DrillDataTable`.`DrillDataColumn`).
    pub data_check: String,
    /// Seconds between the newest restored row and the restore's start (its RPO).
    pub rpo_secs: Option<f64>,
    /// What was restored.
    pub summary: String,
}

/// How the canary failback of the drill went.
#[derive(Debug, Clone, Serialize)]
pub struct FailbackSummary {
    /// The run's execution name.
    pub execution: String,
    /// How it ended.
    pub status: String,
    /// Its error, if it failed.
    pub error: Option<String>,
    /// Seconds from re-protection done to the end of the run.
    pub duration_secs: f64,
    /// Seconds to rebuild the old primary as a replica (re-protection) before the failback.
    pub reprotect_secs: f64,
    /// How it was re-protected (`pg_rewind`, `pg_basebackup`).
    pub reprotect_method: String,
    /// Re-protection's Vault step (the old cluster re-joined as a secondary).
    pub reprotect_vault: Value,
    /// Per step: primary share, gate verdict, measured error rate.
    pub steps: Vec<(i64, String, Option<f64>)>,
    /// The other secondaries pointed at the primary region again.
    #[serde(default)]
    pub followers: Value,
    /// Weights at the end.
    pub dns_after: Value,
}

impl RehearsalReport {
    /// Whether the failover succeeded within the tier's RTO and RPO, and the failback succeeded.
    pub fn passed(&self) -> bool {
        self.run_status == "SUCCEEDED"
            && (self.mode == FailoverMode::Ungraceful || self.rows_lost == 0)
            && self.rto_secs <= self.tier.rto_secs() as f64
            && self.rpo_secs <= self.tier.rpo_secs() as f64
            && self
                .failback
                .as_ref()
                .is_some_and(|f| f.status == "SUCCEEDED")
            && self
                .restore
                .as_ref()
                .is_some_and(|r| r.status == "SUCCEEDED")
            && self.emergency_path_clean()
            && self.followers["attention"] != true
    }

    /// In a region-dark drill: the emergency path got nothing from the dark region and made
    /// no call to Route53's control plane, and the global name moved to the standby.
    pub fn emergency_path_clean(&self) -> bool {
        match (&self.outage, &self.emergency_calls) {
            (Some(Outage::RegionDark), Some(calls)) => {
                calls.primary_region_served == 0
                    && calls.route53_control_plane == 0
                    && self.global_name_secs.is_some()
            }
            (Some(Outage::RegionDark), None) => false,
            _ => true,
        }
    }

    /// The report for a terminal.
    pub fn render(&self) -> String {
        let verdict = |ok: bool| if ok { "PASSED" } else { "FAILED" };
        let mut out = String::new();
        out.push_str(&format!(
            "\n=== hapilot local drill: {} failover us-east-1 -> us-west-2 ===\n",
            match self.mode {
                FailoverMode::Graceful => "graceful (planned switchover)",
                FailoverMode::Ungraceful => "ungraceful (regional outage)",
            }
        ));
        out.push_str(&format!(
            "run            {} ({}), database backend {}\n",
            self.execution, self.run_status, self.database
        ));
        out.push_str(&format!(
            "pace           {}\n",
            if (self.pace_scale - 1.0).abs() < f64::EPSILON {
                "AWS's own (checks every 10 s, alarm periods as the template sets them, DNS kept for the records' 60 s TTL); \
                 shortened: the DR restore's waits, re-protection and the canary bakes (1 s per step)"
                    .to_string()
            } else {
                format!(
                    "compressed: every AWS timing x {} (a 10 s check period takes {:.1} s, the 60 s TTL {:.1} s)",
                    self.pace_scale,
                    10.0 * self.pace_scale,
                    60.0 * self.pace_scale
                )
            }
        ));
        out.push_str("timeline\n");
        if let Some(fence) = self.fence_secs {
            out.push_str(&format!(
                "  fence -> standby promoted      {fence:>8.2} s  (writes refused meanwhile: {})\n",
                self.writes_refused
            ));
        }
        match (self.mode, self.outage) {
            (FailoverMode::Ungraceful, Some(Outage::RegionDark)) => {
                out.push_str(&format!(
                    "  us-east-1 dark -> quorum alarm {:>8.2} s  (detection: probers and Route53 check every period, 3 of 3 periods to ALARM; one period = {:.1} s here, 10 s in AWS)\n",
                    self.detection_secs, self.check_interval_secs
                ));
                if let Some(secs) = self.users_served_secs {
                    out.push_str(&format!(
                        "  us-east-1 dark -> users served by us-west-2 {secs:>8.2} s  (through their resolvers, which keep an answer for the records' TTL, {:.0} s here)\n",
                        60.0 * self.pace_scale
                    ));
                }
                if let Some(secs) = self.global_name_secs {
                    out.push_str(&format!(
                        "  us-east-1 dark -> global name answers us-west-2 {secs:>8.2} s  (a client in us-east-1; {:.1} periods)\n",
                        secs / self.check_interval_secs.max(f64::EPSILON)
                    ));
                } else {
                    out.push_str("  us-east-1 dark -> global name answers us-west-2: never (FAILED)\n");
                }
            }
            (FailoverMode::Ungraceful, _) => out.push_str(&format!(
                "  primary killed -> alarm        {:>8.2} s  (detection: {} failed checks, {:.1} s apart)\n",
                self.detection_secs, self.failure_threshold, self.check_interval_secs
            )),
            (FailoverMode::Graceful, _) => {}
        }
        let from = match self.mode {
            FailoverMode::Graceful => "start",
            FailoverMode::Ungraceful => "alarm",
        };
        out.push_str(&format!("  {from} -> DNS switched          {:>8.2} s  (of which configured probe waits {:.2} s; overhead {:.2} s)\n",
            self.alarm_to_dns_secs, self.configured_waits_secs, (self.alarm_to_dns_secs - self.configured_waits_secs).max(0.0)));
        out.push_str(&format!(
            "  {from} -> verified              {:>8.2} s\n",
            self.orchestration_secs
        ));
        out.push_str("steps\n");
        for (state, secs) in &self.steps {
            out.push_str(&format!("  {state:<28} {secs:>8.3} s\n"));
        }
        out.push_str(&format!(
            "DNS before     {}\nDNS after      {}\n",
            self.dns_before, self.dns_after
        ));
        if let Some(votes) = self.decision["votes"].as_array() {
            out.push_str(&format!(
                "votes          {} -> {}\n",
                votes
                    .iter()
                    .map(|v| format!(
                        "{}: {} ({})",
                        vantage_label(v["vantage"].as_str().unwrap_or("?")),
                        v["vote"].as_str().unwrap_or("?"),
                        v["detail"].as_str().unwrap_or("")
                    ))
                    .collect::<Vec<_>>()
                    .join("; "),
                self.decision["decision"].as_str().unwrap_or("?")
            ));
        }
        if let Some(calls) = &self.emergency_calls {
            out.push_str(&format!(
                "emergency path calls to us-east-1: {} answered, {} refused ({})  {}\n\
                 emergency path calls to Route53's control plane: {}  {}\n",
                calls.primary_region_served,
                calls.primary_region_refused.values().sum::<u64>(),
                if calls.primary_region_refused.is_empty() {
                    "none tried".to_string()
                } else {
                    calls
                        .primary_region_refused
                        .iter()
                        .map(|(service, n)| {
                            format!("{service} x{n}: reading the vantage alarm there")
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                verdict(calls.primary_region_served == 0),
                calls.route53_control_plane,
                verdict(calls.route53_control_plane == 0)
            ));
        }
        if let Some(region) = &self.degraded {
            out.push_str(&format!(
                "degraded       {region} (its gateway failing its checks before the outage)\n"
            ));
        }
        if let Some(summary) = self.choice["summary"].as_str() {
            out.push_str(&format!("standby        {summary}\n"));
            for score in self.choice["scores"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "  candidate    {:<10} {}\n",
                    score["region"].as_str().unwrap_or("?"),
                    score["reason"].as_str().unwrap_or("")
                ));
            }
        }
        if let Some(summary) = self.followers["summary"].as_str() {
            out.push_str(&format!(
                "followers      {summary}  {}\n",
                verdict(self.followers["attention"] == false)
            ));
        }
        if let Some(summary) = self.capacity["summary"].as_str() {
            out.push_str(&format!(
                "capacity       {summary} after waiting {:.2} s for the pods ({} look(s)); then the traffic moved\n",
                self.capacity["waited_secs"].as_f64().unwrap_or(0.0),
                self.capacity["polls"].as_u64().unwrap_or(0)
            ));
        }
        if let Some(line) = vault_line(&self.vault) {
            out.push_str(&format!("vault          {line}\n"));
        }
        if let Some(cache) = self.capacity["cache"].as_object() {
            out.push_str(&format!(
                "redis          {}\n",
                cache
                    .get("summary")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            ));
            for finding in cache
                .get("findings")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                out.push_str(&format!("               {finding}\n"));
            }
        }
        out.push_str(&format!(
            "RTO            {:>8.2} s  target {:>5} s  {}\n",
            self.rto_secs,
            self.tier.rto_secs(),
            verdict(self.rto_secs <= self.tier.rto_secs() as f64)
        ));
        out.push_str(&format!(
            "RPO            {:>8.2} s  target {:>5} s  {}  ({} of {} committed rows lost)\n",
            self.rpo_secs,
            self.tier.rpo_secs(),
            verdict(self.rpo_secs <= self.tier.rpo_secs() as f64),
            self.rows_lost,
            self.rows_committed
        ));
        if let Some(summary) = self.data_at_risk["summary"].as_str() {
            let secs = self.data_at_risk["secs"].as_f64();
            out.push_str(&format!(
                "data at risk   bound before the promotion: {summary}\n               measured: {} rows lost, RPO {:.2} s{}\n",
                self.rows_lost,
                self.rpo_secs,
                secs.map_or(String::new(), |b| format!(
                    " ({} the {b:.0} s bound)",
                    if self.rpo_secs <= b { "within" } else { "OVER" }
                )),
            ));
        }
        if self.mode == FailoverMode::Graceful {
            out.push_str(&format!(
                "rows lost      {:>8}    target     0    {}  (graceful must lose nothing)\n",
                self.rows_lost,
                verdict(self.rows_lost == 0)
            ));
        }
        if let Some(r) = &self.restore {
            out.push_str(&format!(
                "DR restore     {} ({}{}) in {:.2} s: {} rows of {}, RPO {} (latest backups: {})\n",
                r.execution,
                r.status,
                r.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default(),
                r.duration_secs,
                r.rows.map_or("-".into(), |n| n.to_string()),
                r.data_check,
                r.rpo_secs.map_or("-".into(), |s| format!("{s:.2} s")),
                r.summary
            ));
        }
        match &self.failback {
            Some(f) => {
                out.push_str(&format!(
                    "re-protect     old primary made a replica by {} in {:.2} s (reprotect state machine)\n\
                     failback       {} ({}{}) in {:.2} s\n",
                    f.reprotect_method,
                    f.reprotect_secs,
                    f.execution,
                    f.status,
                    f.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default(),
                    f.duration_secs
                ));
                if let Some(line) = vault_line(&f.reprotect_vault) {
                    out.push_str(&format!("  vault        {line}\n"));
                }
                if let Some(summary) = f.followers["summary"].as_str() {
                    out.push_str(&format!("  followers    {summary}\n"));
                }
                for (percent, verdict, rate) in &f.steps {
                    out.push_str(&format!(
                        "  step {percent:>3} %  gate {verdict:<12} error rate {}\n",
                        rate.map(|r| format!("{:.2} %", r * 100.0))
                            .unwrap_or_else(|| "-".into())
                    ));
                }
                out.push_str(&format!("  DNS after    {}\n", f.dns_after));
            }
            None => out.push_str("failback       not run (the failover did not succeed)\n"),
        }
        out.push_str(&format!(
            "result         {} (tier {})\n",
            verdict(self.passed()),
            self.tier.as_str()
        ));
        out
    }
}

/// The region whose database the failover promoted: the run's standby after its choice.
fn took_over(outcome: &crate::runs::RunOutcome) -> String {
    outcome
        .output
        .as_ref()
        .and_then(|o| o["plan"]["standby"]["region"].as_str())
        .unwrap_or(STANDBY_REGION)
        .to_string()
}

/// The pair's server in `region`.
fn server_in<'a>(
    pair: &'a crate::local::systems::postgres::PostgresPair,
    region: &str,
) -> Result<&'a crate::local::systems::postgres::PostgresServer, HapilotError> {
    match region {
        PRIMARY_REGION => Some(&pair.primary),
        STANDBY_REGION => Some(&pair.replica),
        WITNESS_REGION => pair.third.as_ref(),
        _ => None,
    }
    .ok_or_else(|| HapilotError::Invalid(format!("the drill has no PostgreSQL server in {region}")))
}

/// `us-west-2/hapilot-watch-us-east-1` for an alarm ARN, the ARN itself otherwise.
fn vantage_label(arn: &str) -> String {
    hapilot_core::alarm::AlarmRef::parse(arn)
        .map(|a| format!("{}/{}", a.region, a.name))
        .unwrap_or_else(|| arn.to_string())
}

/// One acknowledged write: its id and commit time (epoch seconds, from the server).
pub type Ack = (i64, f64);

/// Runs the drill on a fresh local stack; `say` hears every progress line.
pub async fn run_rehearsal(
    stack_options: StackOptions,
    options: RehearsalOptions,
    say: impl Fn(&str) + Send + Sync + Clone + 'static,
) -> Result<RehearsalReport, HapilotError> {
    options.check()?;
    say("starting the local stack (moto + Lambda host) ...");
    // The deployment below brings the product's machines with its templates.
    let stack =
        LocalStack::start(stack_options.leaving_machines_to_templates(), say.clone()).await?;
    say(&format!("local stack up at {}", stack.endpoint_url()));
    let world = if options.region_dark() {
        say(
            "creating the three-region deployment: PostgreSQL primary (us-east-1) + streaming replica (us-west-2), \
             weighted records behind CALCULATED health checks (endpoint AND control alarm in us-west-2), \
             probers in us-west-2 and the witness eu-west-1, quorum 2 of 3 ...",
        );
        WorldOptions::regional(options.database, RecordRouting::Weighted)
    } else {
        say(
            "creating the two-region deployment (PostgreSQL primary + streaming replica, Route53, alarm) ...",
        );
        WorldOptions::classic(options.database)
    };
    let world = WorldOptions {
        pace: options.pace,
        third_region: options.second_secondary,
        ..world
    };
    say(&format!(
        "deploying the stacks of {} (templates through the SAM transform) ...",
        options.parameters.display()
    ));
    let deploying = Instant::now();
    let mut deployment = LocalDeployment::create_from(&stack, world, &options.parameters).await?;
    if options.second_secondary {
        say(
            "eu-west-1 is a second secondary (its gateway, its record, a PostgreSQL replica of the primary); us-west-2's alarm router offers it to the failover as a candidate",
        );
        deployment.offer_third_region_as_candidate(&stack)?;
    }
    // New pods pass their startup and readiness probes in a while, not at once (20 s in AWS
    // for a warm image, at this pace): the failover must wait for them before moving traffic.
    let ready_delay = Duration::from_secs_f64(20.0 * options.pace.scale());
    deployment.standby_kube.set_ready_delay(ready_delay);
    if let Some(third) = &deployment.third {
        third.kube.set_ready_delay(ready_delay);
    }
    say(&format!(
        "deployed {} (and the world around them) in {:.1} s",
        deployment
            .templates
            .stacks
            .values()
            .map(|s| format!(
                "{} in {} ({} resources, {} recorded only)",
                s.name,
                s.region,
                s.types.len(),
                s.recorded.len()
            ))
            .collect::<Vec<_>>()
            .join(", "),
        deploying.elapsed().as_secs_f64()
    ));
    // AWS's own machinery (health checkers, alarm evaluation, schedules, EventBridge) runs
    // from now on in the region-dark world; every vantage point sees the primary up first.
    let data_plane = if options.region_dark() {
        let data_plane = deployment.start_data_plane(&stack, options.check_interval);
        let deadline = Instant::now() + options.check_interval * 30;
        while !deployment.vantage_points_see_primary_up(&stack).await? {
            if Instant::now() > deadline {
                return Err(HapilotError::Aws {
                    operation: "local data plane",
                    detail: "the vantage points never saw the primary up".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        say("every vantage point (us-west-2, eu-west-1, Route53) sees us-east-1 up");
        Some(data_plane)
    } else {
        None
    };
    let mut result = drill_on(
        &stack,
        &deployment,
        data_plane.as_ref(),
        &options,
        say.clone(),
    )
    .await;
    if let Ok(report) = &mut result
        && report.run_status == "SUCCEEDED"
    {
        if stack.is_dark(PRIMARY_REGION) {
            say(
                "us-east-1 comes back (its APIs answer again) for the restore check, re-protection and failback",
            );
            stack.revive(PRIMARY_REGION);
            deployment.primary_kube.set_down(false);
            // Its Vault comes back still the performance primary it was: re-protection
            // demotes it and re-joins it as the new primary's secondary.
            deployment.primary_vault.set_down(false);
        }
        report.restore = Some(restore_check(&stack, &deployment, say.clone()).await?);
        let took_over = report.took_over.clone();
        report.failback = Some(failback_after(&stack, &deployment, &took_over, say).await?);
    }
    drop(data_plane);
    drop(deployment);
    stack.shutdown().await;
    result
}

async fn drill_on(
    stack: &LocalStack,
    deployment: &LocalDeployment,
    data_plane: Option<&crate::local::aws::data_plane::DataPlane>,
    options: &RehearsalOptions,
    say: impl Fn(&str) + Send + Sync + Clone + 'static,
) -> Result<RehearsalReport, HapilotError> {
    let Databases::Postgres { pair, .. } = &deployment.databases else {
        unreachable!("the drill creates a PostgreSQL deployment")
    };
    let db_error = |e: hapilot_adapters::AdapterError| HapilotError::Aws {
        operation: "PostgreSQL",
        detail: e.to_string(),
    };
    let primary_db = PostgresDatabase::new(pair.primary.dsn());
    let writer_client = primary_db.connect().await.map_err(db_error)?;
    // The application's table, as LiteLLM creates it, under the names the deployed template's
    // DR drill reads (DrillDataTable / DrillDataColumn).
    let (table, column) = deployment.drill_data_check()?;
    writer_client
        .batch_execute(&crate::local::systems::litellm::create_spend_logs(
            &table, &column,
        ))
        .await
        .map_err(|e| HapilotError::Aws {
            operation: "PostgreSQL",
            detail: e.to_string(),
        })?;
    drop(writer_client);
    let acks: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (acks, refused, stop) = (acks.clone(), refused.clone(), stop.clone());
        let interval = options.write_interval;
        let dsn = pair.primary.dsn();
        let insert = crate::local::systems::litellm::insert_spend_log(&table, &column);
        // An application's writer: reconnects after errors; a fenced primary refuses writes
        // (read-only), a dead one refuses connections.
        tokio::spawn(async move {
            let mut client: Option<tokio_postgres::Client> = None;
            let mut request: i64 = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if client.as_ref().is_none_or(|c| c.is_closed()) {
                    client = PostgresDatabase::new(&dsn).connect().await.ok();
                }
                if let Some(c) = &client {
                    request += 1;
                    let row = c.query_one(insert.as_str(), &[&request.to_string()]).await;
                    match row {
                        Ok(row) => acks.lock().expect("acks").push((request, row.get(0))),
                        Err(e)
                            if e.code()
                                == Some(
                                    &tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION,
                                ) =>
                        {
                            refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(_) => client = None,
                    }
                }
                tokio::time::sleep(interval).await;
            }
        })
    };
    let stop_writer = || async {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let dns_before = dns_view(stack, deployment, options).await?;
    say(&format!(
        "writer committing to the primary every {} ms; DNS {dns_before}",
        options.write_interval.as_millis()
    ));
    // The backup job (barman-cloud for CNPG): a base backup now, WAL archived continuously,
    // all copied to the DR region's bucket; the DR restore check below restores from it.
    say(
        "backup job: base backup + archived WAL + a Vault snapshot into s3://hapilot-backups-dr (barman-cloud layout)",
    );
    let s3 = hapilot_adapters::sdk::s3(stack.sdk_config());
    let backup = crate::local::systems::barman::back_up_once(
        &s3,
        pair,
        (&[DR_BACKUP_BUCKET], Some((table.as_str(), column.as_str()))),
        options.warmup,
    )
    .await?;
    say(&format!(
        "backup job: {} WAL file(s) archived to the DR bucket before the failover",
        backup.wal_files
    ));

    // Users: a client in us-east-1 asks the global name every quarter second through its
    // resolver, which keeps an answer for the records' TTL; the first healthy answer from the
    // standby after the outage is when users are served again.
    if let Some(region) = &options.degraded {
        say(&format!(
            "{region} degraded: its gateway fails its health checks from now on (the failover must choose another secondary)"
        ));
        if let Some(gateway) = deployment.gateway_in(region) {
            gateway.set_mode(GatewayMode::Failing);
        }
    }
    // Scheduler's every-minute lag publisher, its last run before the outage: the primary's
    // WAL position the failover's data-at-risk bound starts from.
    match stack
        .deliver(STANDBY_REGION, "publish-replication-lag", json!({}))
        .await
    {
        Some(Ok(out)) => say(&format!(
            "lag publisher: the primary's WAL position {} kept for the data-at-risk bound",
            out["primary_position"]["lsn_text"]
                .as_str()
                .unwrap_or("(none)")
        )),
        other => say(&format!("lag publisher did not run: {other:?}")),
    }
    let users = UserTraffic::start(deployment.global.health_url());
    let mut failover_run: Option<FailoverRun> = None;
    let (outcome, execution_arn, decision, detection_secs, orchestration_secs, rto_secs) =
        match options.mode {
            FailoverMode::Ungraceful => {
                let killed = Instant::now();
                users.mark_outage(killed);
                let run = match options.outage {
                    Outage::GatewayDown => {
                        say(
                            "killing the primary region: gateway down, PostgreSQL stopped (immediate)",
                        );
                        deployment.primary.set_mode(GatewayMode::Failing);
                        tokio::task::block_in_place(|| pair.primary.kill())?;
                        stop_writer().await;
                        let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
                        gateway_down_failover(stack, deployment, options, killed, say.clone())
                            .await?
                    }
                    Outage::RegionDark => {
                        say(
                            "us-east-1 goes dark: every API signed for it refused (Route53's control plane too), its gateway and PostgreSQL dead",
                        );
                        // With a secondary degraded, the writer stops and both replicas
                        // replay everything first: on a busy machine one WAL sender can trail
                        // the other by a few records, and the degraded secondary, ahead of the
                        // chosen one, cannot follow it (the run says so and names the fix:
                        // reprotect), which is not what this drill measures.
                        if options.degraded.is_some() && pair.third.is_some() {
                            stop_writer().await;
                            pair.wait_replicas_caught_up().await;
                        }
                        let calls_before = CallCounts::now(stack);
                        let dark_since = chrono::Utc::now();
                        stack.black_out(PRIMARY_REGION);
                        // Its Kubernetes API and Vault go with it: a CloudNativePG fence is
                        // skipped, its Vault cannot be demoted.
                        deployment.primary_kube.set_down(true);
                        deployment.primary_vault.set_down(true);
                        deployment.primary.set_mode(GatewayMode::Failing);
                        tokio::task::block_in_place(|| pair.primary.kill())?;
                        stop_writer().await;
                        let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
                        let data_plane = data_plane.ok_or_else(|| HapilotError::Aws {
                            operation: "local data plane",
                            detail: "a region-dark drill needs the data plane running".into(),
                        })?;
                        let mut run = region_dark_failover(
                            stack,
                            deployment,
                            data_plane,
                            options,
                            (killed, dark_since),
                            say.clone(),
                        )
                        .await?;
                        run.emergency_calls = Some(calls_before.emergency_calls_since(stack));
                        run
                    }
                };
                failover_run = Some(run);
                let run = failover_run.as_ref().expect("just set");
                (
                    run.outcome.clone(),
                    run.execution_arn.clone(),
                    run.decision.clone(),
                    run.detection_secs,
                    run.alarmed.elapsed().as_secs_f64(),
                    killed.elapsed().as_secs_f64(),
                )
            }
            FailoverMode::Graceful => {
                let mut input = Value::Object(deployment.settings.failover_input_defaults.clone());
                input["primary_region"] = crate::local::world::deployment::PRIMARY_REGION.into();
                input["standby_region"] = crate::local::world::deployment::STANDBY_REGION.into();
                input["mode"] = "graceful".into();
                let name = run_name("drill-graceful");
                say(&format!(
                    "graceful switchover {name}: started like an operator would, while the writer keeps writing"
                ));
                let started = Instant::now();
                let outcome =
                    start_and_follow(stack, "failover", &name, &input, 600, say.clone()).await?;
                let execution_arn = outcome.execution_arn.clone();
                stop_writer().await;
                let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
                let secs = started.elapsed().as_secs_f64();
                (
                    outcome,
                    execution_arn,
                    json!({"decision": "operator", "mode": "graceful"}),
                    0.0,
                    secs,
                    secs,
                )
            }
        };
    let committed: Vec<Ack> = acks.lock().expect("acks").clone();
    let at = |kind: &str, state: &str| {
        outcome
            .events
            .iter()
            .find(|e| e.kind.ends_with(kind) && e.state.as_deref() == Some(state))
            .map(|e| e.at)
    };
    let fence_secs = match (
        at("StateEntered", "FenceForSwitchover"),
        at("StateExited", "PromoteStandby"),
    ) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };

    let first_event = outcome.events.first().map(|e| e.at).unwrap_or(0.0);
    let shift_done = outcome
        .events
        .iter()
        .find(|e| e.kind.ends_with("StateExited") && e.state.as_deref() == Some("ShiftTraffic"))
        .map(|e| e.at - first_event)
        .unwrap_or(0.0);
    let run_started_after_alarm = orchestration_secs - outcome.duration_s;
    let probe = &deployment.settings.failover_input_defaults;
    let samples = probe
        .get("probe_samples")
        .and_then(Value::as_f64)
        .unwrap_or(3.0);
    let interval = probe
        .get("probe_interval_ms")
        .and_then(Value::as_f64)
        .unwrap_or(1000.0)
        / 1000.0;
    // Two checks (primary, standby) before the shift, each with (samples - 1) pauses.
    let configured_waits_secs = 2.0 * (samples - 1.0) * interval;

    // RPO, measured: which committed rows survived on the promoted database (the chosen
    // secondary's)?
    let took_over = took_over(&outcome);
    let promoted = PostgresDatabase::new(server_in(pair, &took_over)?.dsn())
        .connect()
        .await
        .map_err(db_error)?;
    let max_acked = committed.last().map(|a| a.0).unwrap_or(0);
    let kept: Vec<i64> = promoted
        .query(
            crate::local::systems::litellm::request_ids(&table).as_str(),
            &[],
        )
        .await
        .map_err(|e| HapilotError::Aws {
            operation: "PostgreSQL",
            detail: e.to_string(),
        })?
        .iter()
        .filter_map(|r| r.get::<_, String>(0).parse::<i64>().ok())
        .filter(|id| *id <= max_acked)
        .collect();
    let kept: std::collections::HashSet<i64> = kept.into_iter().collect();
    let lost: Vec<&Ack> = committed
        .iter()
        .filter(|(id, _)| !kept.contains(id))
        .collect();
    let rpo_secs = rpo_seconds(&committed, &kept);

    Ok(RehearsalReport {
        pace_scale: options.pace.scale(),
        database: match options.database {
            DatabaseSetup::Cloudnativepg => "cloudnativepg",
            DatabaseSetup::Postgres | DatabaseSetup::Patroni => "postgres",
        }
        .into(),
        tier: deployment.settings.tier.unwrap_or(Tier::Critical),
        execution: execution_arn
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_string(),
        run_status: outcome.status.clone(),
        detection_secs,
        orchestration_secs,
        alarm_to_dns_secs: run_started_after_alarm + shift_done,
        configured_waits_secs,
        rto_secs,
        rows_committed: committed.len() as u64,
        rows_lost: lost.len() as u64,
        rpo_secs,
        dns_before,
        dns_after: dns_view(stack, deployment, options).await?,
        steps: outcome.state_durations(),
        decision,
        failback: None,
        restore: None,
        failure_threshold: options.failure_threshold,
        check_interval_secs: options.check_interval.as_secs_f64(),
        mode: options.mode,
        fence_secs,
        writes_refused: refused.load(std::sync::atomic::Ordering::Relaxed),
        outage: (options.mode == FailoverMode::Ungraceful).then_some(options.outage),
        global_name_secs: failover_run.as_ref().and_then(|r| r.global_name_secs),
        users_served_secs: users.served_after_outage(),
        emergency_calls: failover_run.and_then(|r| r.emergency_calls),
        capacity: outcome
            .output
            .as_ref()
            .map(|o| o["capacity"].clone())
            .unwrap_or_default(),
        vault: outcome
            .output
            .as_ref()
            .map(|o| o["vault_promotion"].clone())
            .unwrap_or_default(),
        choice: outcome
            .output
            .as_ref()
            .map(|o| o["choice"].clone())
            .unwrap_or_default(),
        followers: outcome
            .output
            .as_ref()
            .map(|o| o["followers"].clone())
            .unwrap_or_default(),
        data_at_risk: outcome
            .output
            .as_ref()
            .map(|o| o["replication"]["data_at_risk"].clone())
            .unwrap_or_default(),
        took_over,
        degraded: options.degraded.clone(),
    })
}

/// One line for a run's Vault step: what was decided, the calls made, what was verified.
fn vault_line(vault: &Value) -> Option<String> {
    if let Some(skipped) = vault["skipped"].as_str() {
        return Some(format!("skipped: {skipped}"));
    }
    let summary = vault["summary"].as_str()?;
    let calls: Vec<&str> = vault["done"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let secret = match vault["after"]["known_secret"]["keys"].as_u64() {
        Some(keys) => format!(
            "; {} serves {} ({keys} key(s))",
            vault["after"]["mode"].as_str().unwrap_or("?"),
            vault["after"]["known_secret"]["path"]
                .as_str()
                .unwrap_or("?")
        ),
        None => String::new(),
    };
    // The other secondaries' clusters: re-joined, already following, or left (and why).
    let followers: Vec<String> = vault["followers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let region = f["region"].as_str().unwrap_or("?");
            match (
                f["follows"].as_bool(),
                f["pending"].as_str(),
                f["left"].as_str(),
            ) {
                (Some(true), _, _) if f["done"].as_array().is_some_and(|d| d.is_empty()) => {
                    format!("{region} already follows it")
                }
                (Some(true), _, _) => format!("{region} re-joined it"),
                (_, Some(why), _) | (_, _, Some(why)) => format!("{region}: {why}"),
                _ => format!(
                    "{region}: {}",
                    f["error"]["message"].as_str().unwrap_or("?")
                ),
            }
        })
        .collect();
    let followers = match followers.is_empty() {
        true => String::new(),
        false => format!("; {}", followers.join("; ")),
    };
    Some(format!(
        "{summary} [calls: {}]{secret}{followers}",
        if calls.is_empty() {
            "none".to_string()
        } else {
            calls.join(", ")
        }
    ))
}

/// Requests of users through the global name, as they resolve it.
struct UserTraffic {
    task: tokio::task::JoinHandle<()>,
    outage: Arc<Mutex<Option<Instant>>>,
    served: Arc<Mutex<Option<Instant>>>,
}

impl UserTraffic {
    fn start(url: String) -> Self {
        let outage: Arc<Mutex<Option<Instant>>> = Arc::default();
        let served: Arc<Mutex<Option<Instant>>> = Arc::default();
        let (since, first) = (outage.clone(), served.clone());
        let task = tokio::spawn(async move {
            let Ok(http) = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(2))
                .build()
            else {
                return;
            };
            loop {
                let answered_by_standby = match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => r
                        .json::<Value>()
                        .await
                        .is_ok_and(|b| b["region"].as_str().is_some_and(|r| r != PRIMARY_REGION)),
                    _ => false,
                };
                let outage_started = since.lock().expect("outage").is_some();
                if outage_started && answered_by_standby {
                    first
                        .lock()
                        .expect("served")
                        .get_or_insert_with(Instant::now);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Self {
            task,
            outage,
            served,
        }
    }

    fn mark_outage(&self, at: Instant) {
        *self.outage.lock().expect("outage") = Some(at);
    }

    /// Seconds from the outage to the first request the standby served, if one was.
    fn served_after_outage(&self) -> Option<f64> {
        let outage = (*self.outage.lock().expect("outage"))?;
        let served = (*self.served.lock().expect("served"))?;
        Some(served.duration_since(outage).as_secs_f64())
    }
}

impl Drop for UserTraffic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where the global name sends traffic: the weights, or (region-dark drills, where the
/// weights do not move and us-east-1's API may be dark) what Route53's data plane answers a
/// client in each region.
async fn dns_view(
    stack: &LocalStack,
    deployment: &LocalDeployment,
    options: &RehearsalOptions,
) -> Result<Value, HapilotError> {
    if !options.region_dark() {
        return Ok(json!(deployment.weights(stack).await?));
    }
    let mut answers = serde_json::Map::new();
    for client in stack.regions() {
        let set = deployment.dns_answer(stack, &client).await?;
        answers.insert(client, json!(set));
    }
    Ok(Value::Object(answers))
}

/// What one alarm-driven failover of the drill gave.
struct FailoverRun {
    outcome: crate::runs::RunOutcome,
    execution_arn: String,
    decision: Value,
    /// Seconds from the primary's death to the alarm that started the run.
    detection_secs: f64,
    /// When that alarm fired.
    alarmed: Instant,
    /// Seconds from the primary's death to the global name answering the standby (a client
    /// in the primary's region), when it did.
    global_name_secs: Option<f64>,
    /// What the emergency path asked of the dark region and of Route53's control plane.
    emergency_calls: Option<EmergencyCalls>,
}

/// The gentle outage: the gateway fails and the database dies, the region's APIs stay up. A
/// health checker plays Route53 (probe every interval, unhealthy after `threshold` failures),
/// sets the alarm and delivers its state change to the alarm router as EventBridge would.
async fn gateway_down_failover(
    stack: &LocalStack,
    deployment: &LocalDeployment,
    options: &RehearsalOptions,
    killed: Instant,
    say: impl Fn(&str) + Send + Sync + Clone + 'static,
) -> Result<FailoverRun, HapilotError> {
    let prober = hapilot_adapters::HttpProber::new()
        .map_err(|e| HapilotError::io("prober")(std::io::Error::other(e)))?;
    let mut failures = 0;
    while failures < options.failure_threshold {
        tokio::time::sleep(options.check_interval).await;
        let seen = hapilot_adapters::Prober::probe(
            &prober,
            &deployment.primary.health_url(),
            Duration::from_secs(2),
        )
        .await;
        let healthy =
            seen.failure.is_none() && seen.status.is_some_and(|s| (200..300).contains(&s));
        failures = if healthy { 0 } else { failures + 1 };
        say(&format!(
            "health check {}: {failures}/{} failed",
            if healthy { "ok" } else { "FAILED" },
            options.failure_threshold
        ));
    }
    let detection_secs = killed.elapsed().as_secs_f64();
    deployment
        .set_alarm(
            stack,
            "ALARM",
            "Threshold Crossed: health check status < 1 for 3 datapoints",
        )
        .await?;
    let alarmed = Instant::now();
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    say(&format!(
        "alarm {PRIMARY_ALARM} -> ALARM; delivering the state change to alarm-router"
    ));
    let decision = invoke(
        &stack.endpoint_url(),
        "alarm-router",
        &alarm_event(PRIMARY_ALARM, "ALARM", &at),
    )
    .await
    .map_err(|(kind, message)| HapilotError::Aws {
        operation: "Invoke alarm-router",
        detail: format!("{kind}: {message}"),
    })?;
    say(&format!("alarm-router decided: {}", decision["decision"]));
    let execution_arn = started_run(&decision)?;
    let sfn = aws_sdk_sfn::Client::new(stack.sdk_config());
    let outcome = follow(
        &sfn,
        &execution_arn,
        Duration::from_secs(600),
        move |line| say(line),
    )
    .await?;
    Ok(FailoverRun {
        outcome,
        execution_arn,
        decision,
        detection_secs,
        alarmed,
        global_name_secs: None,
        emergency_calls: None,
    })
}

/// The real outage: us-east-1 is dark. Nothing is played by hand: the local data plane runs
/// the probers of the standby and the witness, CloudWatch's evaluation and EventBridge's
/// delivery to the standby's alarm router, which decides by quorum; the run is followed in
/// the standby region, and the global name is watched from a client in the dark region.
async fn region_dark_failover(
    stack: &LocalStack,
    deployment: &LocalDeployment,
    data_plane: &crate::local::aws::data_plane::DataPlane,
    options: &RehearsalOptions,
    (killed, dark_since): (Instant, chrono::DateTime<chrono::Utc>),
    say: impl Fn(&str) + Send + Sync + Clone + 'static,
) -> Result<FailoverRun, HapilotError> {
    let run_ended = std::sync::atomic::AtomicBool::new(false);
    let watch_global_name = async {
        let mut ended_at: Option<Instant> = None;
        loop {
            if let Ok(Some(set)) = deployment.dns_answer(stack, PRIMARY_REGION).await
                && set != PRIMARY_SET
            {
                return Some(killed.elapsed().as_secs_f64());
            }
            if run_ended.load(std::sync::atomic::Ordering::Relaxed) {
                // The run is over: give the name a few periods, then stop looking.
                let since = *ended_at.get_or_insert_with(Instant::now);
                if since.elapsed() > options.check_interval * 10 {
                    return None;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // Whatever happens (an error included), the watcher must hear that the run ended.
    let decide_and_follow = async {
        let result = async {
            let (decision, detection_secs, alarmed) =
                quorum_decision(data_plane, options, dark_since, say.clone()).await?;
            let execution_arn = started_run(&decision)?;
            let sfn = aws_sdk_sfn::Client::new(&stack.sdk_config_in(STANDBY_REGION));
            let print = say.clone();
            let outcome = follow(
                &sfn,
                &execution_arn,
                Duration::from_secs(600),
                move |line| print(line),
            )
            .await?;
            Ok::<_, HapilotError>((outcome, execution_arn, decision, detection_secs, alarmed))
        }
        .await;
        run_ended.store(true, std::sync::atomic::Ordering::Relaxed);
        result
    };
    let (global_name_secs, run) = tokio::join!(watch_global_name, decide_and_follow);
    let (outcome, execution_arn, decision, detection_secs, alarmed) = run?;
    Ok(FailoverRun {
        outcome,
        execution_arn,
        decision,
        detection_secs,
        alarmed,
        global_name_secs,
        emergency_calls: None,
    })
}

/// Waits for the standby's alarm router to settle the incident (not a recovery's
/// `not_an_alarm`, not an `awaiting_quorum` while the vantage points catch up), telling each
/// delivery as it comes. Gives the decision, the seconds from `dark_since` to the alarm
/// that settled it, and when that was seen.
async fn quorum_decision(
    data_plane: &crate::local::aws::data_plane::DataPlane,
    options: &RehearsalOptions,
    dark_since: chrono::DateTime<chrono::Utc>,
    say: impl Fn(&str),
) -> Result<(Value, f64, Instant), HapilotError> {
    let deadline = Instant::now() + options.check_interval * 60;
    let mut told = data_plane.deliveries().len();
    while Instant::now() < deadline {
        let deliveries = data_plane.deliveries();
        for delivery in &deliveries[told..] {
            let alarm = vantage_label(&delivery.alarm_arn);
            let answer = match &delivery.decision {
                Ok(d) => format!(
                    "{} ({})",
                    d["decision"].as_str().unwrap_or("?"),
                    d["reason"].as_str().unwrap_or("quorum reached")
                ),
                Err(e) => format!("error: {e}"),
            };
            say(&format!(
                "alarm {alarm} -> {}; the standby's alarm-router: {answer}",
                delivery.state
            ));
            let settled = delivery
                .decision
                .as_ref()
                .ok()
                .filter(|d| d["reason"] != "not_an_alarm" && d["reason"] != "awaiting_quorum");
            if let Some(decision) = settled {
                let at = chrono::DateTime::parse_from_rfc3339(&delivery.at)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .unwrap_or_else(|_| chrono::Utc::now());
                let detection = (at - dark_since).num_milliseconds() as f64 / 1000.0;
                return Ok((decision.clone(), detection.max(0.0), Instant::now()));
            }
        }
        told = deliveries.len();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(HapilotError::Aws {
        operation: "alarm-router",
        detail: format!(
            "no vantage alarm settled the incident within 60 periods; deliveries: {:?}",
            data_plane.deliveries()
        ),
    })
}

/// The execution a router decision started, or why none was.
fn started_run(decision: &Value) -> Result<String, HapilotError> {
    decision["execution_arn"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| HapilotError::Aws {
            operation: "alarm-router",
            detail: format!("no failover started: {decision}"),
        })
}

/// Calls the front door saw: what the emergency path asked of the dark region and of Route53's
/// control plane (served: answered; refused: the region was dark).
#[derive(Debug, Clone, Default, Serialize)]
pub struct EmergencyCalls {
    /// Calls to us-east-1 answered (a dark region answers none).
    pub primary_region_served: u64,
    /// Calls to us-east-1 refused, per service (e.g. the router's read of the Route53 alarm).
    pub primary_region_refused: BTreeMap<String, u64>,
    /// Calls to Route53's control plane (served or refused).
    pub route53_control_plane: u64,
}

/// The front door's call counts at one moment.
struct CallCounts {
    served: BTreeMap<(String, String), u64>,
    refused: BTreeMap<(String, String), u64>,
}

impl CallCounts {
    fn now(stack: &LocalStack) -> Self {
        Self {
            served: stack.served_calls(),
            refused: stack.refused_calls(),
        }
    }

    /// What was called since these counts, as the emergency path's report needs it.
    fn emergency_calls_since(&self, stack: &LocalStack) -> EmergencyCalls {
        let later = Self::now(stack);
        let grown = |now: &BTreeMap<(String, String), u64>,
                     then: &BTreeMap<(String, String), u64>| {
            now.iter()
                .filter_map(|(key, n)| {
                    let more = n.saturating_sub(then.get(key).copied().unwrap_or(0));
                    (more > 0).then(|| (key.clone(), more))
                })
                .collect::<Vec<_>>()
        };
        let served = grown(&later.served, &self.served);
        let refused = grown(&later.refused, &self.refused);
        let in_primary = |((region, _), _): &&((String, String), u64)| region == PRIMARY_REGION;
        EmergencyCalls {
            primary_region_served: served.iter().filter(in_primary).map(|(_, n)| n).sum(),
            primary_region_refused: refused
                .iter()
                .filter(in_primary)
                .map(|((_, service), n)| (service.clone(), *n))
                .collect(),
            route53_control_plane: served
                .iter()
                .chain(&refused)
                .filter(|((_, service), _)| service == "route53")
                .map(|(_, n)| n)
                .sum(),
        }
    }
}

/// RPO in seconds from what the writer saw: the commit time of the newest lost row minus the
/// commit time of the newest row that survived (or of the first write, when none survived).
/// Zero when nothing was lost.
pub fn rpo_seconds(committed: &[Ack], kept: &std::collections::HashSet<i64>) -> f64 {
    let Some(newest_lost) = committed
        .iter()
        .filter(|(id, _)| !kept.contains(id))
        .map(|a| a.1)
        .reduce(f64::max)
    else {
        return 0.0;
    };
    let baseline = committed
        .iter()
        .filter(|(id, _)| kept.contains(id))
        .map(|a| a.1)
        .fold(committed.first().map_or(newest_lost, |a| a.1), f64::max);
    (newest_lost - baseline).max(0.0)
}

/// `<prefix>-<UTC time>`: a run name an operator can read.
fn run_name(prefix: &str) -> String {
    format!("{prefix}-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S"))
}

/// Starts `machine` as `name` with `input` and follows it to its end, one line per state.
async fn start_and_follow(
    stack: &LocalStack,
    machine: &str,
    name: &str,
    input: &Value,
    timeout_secs: u64,
    say: impl Fn(&str) + Send + Sync + Clone + 'static,
) -> Result<crate::runs::RunOutcome, HapilotError> {
    let sfn = aws_sdk_sfn::Client::new(stack.sdk_config());
    let execution = crate::runs::start(&sfn, &stack.arn_of(machine), name, input).await?;
    follow(
        &sfn,
        &execution,
        Duration::from_secs(timeout_secs),
        move |line| say(line),
    )
    .await
}

/// Plays the on-call operator for run `name` of `machine`: when it asks for approval, says
/// what it asked and approves. Stops when the returned task is aborted.
fn play_the_operator(
    stack: &LocalStack,
    machine: &'static str,
    name: &str,
    say: impl Fn(&str) + Send + Sync + Clone + 'static,
) -> tokio::task::JoinHandle<()> {
    use hapilot_adapters::journal::Journal;
    let config = stack.sdk_config().clone();
    let name = name.to_string();
    tokio::spawn(async move {
        let journal = hapilot_adapters::journal::S3Journal::from_sdk(
            &config,
            crate::local::world::deployment::AUDIT_BUCKET,
        );
        let key = format!("runs/{machine}/{name}/approval.json");
        loop {
            if let Ok(Some(pending)) = journal.get(&key).await {
                say(&format!(
                    "{machine} asks for approval: {} -- approving (the drill plays the operator)",
                    pending["reason"].as_str().unwrap_or_default()
                ));
                if let Err(e) = crate::approvals::answer(
                    &config,
                    crate::local::world::deployment::AUDIT_BUCKET,
                    machine,
                    &name,
                    true,
                    "local drill: approved by the drill",
                )
                .await
                {
                    say(&format!("answering the approval failed: {e}"));
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// After the failover: restore the latest backups into the DR region's third server (the
/// dr-restore state machine) and check what they hold.
async fn restore_check(
    stack: &LocalStack,
    deployment: &LocalDeployment,
    say: impl Fn(&str) + Send + Sync + Clone + 'static,
) -> Result<RestoreSummary, HapilotError> {
    let (table, column) = deployment.drill_data_check()?;
    say(
        "DR restore check: restoring the latest backups (Vault + PostgreSQL) into the DR region ...",
    );
    let name = run_name("drill-restore");
    let input = json!({
        "region": crate::local::world::deployment::STANDBY_REGION,
        "target": "latest",
        "data_check": {"table": table, "column": column},
        "readiness_timeout_seconds": 120
    });
    let started = Instant::now();
    let outcome = start_and_follow(stack, "dr-restore", &name, &input, 300, say).await?;
    let output = outcome.output.clone().unwrap_or_default();
    let check = &output["readiness"]["data_check"];
    Ok(RestoreSummary {
        execution: name,
        status: outcome.status.clone(),
        error: outcome.error.clone(),
        duration_secs: started.elapsed().as_secs_f64(),
        rows: check["rows"].as_i64(),
        data_check: format!("{table}.{column}"),
        rpo_secs: check["rpo_secs"].as_f64(),
        summary: output["plan"]["summary"]
            .as_str()
            .unwrap_or("-")
            .to_string(),
    })
}

/// After the failover: re-protect the old primary (rebuild it as a replica of the promoted
/// database), bring its region back, and run the canary failback.
async fn failback_after(
    stack: &LocalStack,
    deployment: &LocalDeployment,
    took_over: &str,
    say: impl Fn(&str) + Send + Sync + Clone + 'static,
) -> Result<FailbackSummary, HapilotError> {
    let Databases::Postgres { pair, .. } = &deployment.databases else {
        unreachable!("the drill creates a PostgreSQL deployment")
    };
    say(
        "re-protecting: the reprotect state machine makes the old primary a streaming replica of the promoted database ...",
    );
    let sfn = aws_sdk_sfn::Client::new(stack.sdk_config());
    let started = Instant::now();
    let name = run_name("drill-reprotect");
    let input = json!({
        "region": crate::local::world::deployment::PRIMARY_REGION,
        "primary_region": took_over,
        "timeout_seconds": 120
    });
    // A rebuild that deletes data (CloudNativePG) asks first; the drill plays the operator.
    let operator = play_the_operator(stack, "reprotect", &name, say.clone());
    let reprotected = start_and_follow(stack, "reprotect", &name, &input, 300, say.clone()).await;
    operator.abort();
    let reprotected = reprotected?;
    let reprotect_secs = started.elapsed().as_secs_f64();
    if !reprotected.succeeded() {
        return Ok(FailbackSummary {
            execution: name,
            status: reprotected.status.clone(),
            error: Some(format!(
                "re-protection failed: {} {}",
                reprotected.error.as_deref().unwrap_or(""),
                reprotected.cause.as_deref().unwrap_or("")
            )),
            duration_secs: 0.0,
            reprotect_secs,
            reprotect_method: "-".into(),
            reprotect_vault: Value::Null,
            steps: Vec::new(),
            followers: Value::Null,
            dns_after: json!(deployment.weights(stack).await?),
        });
    }
    let reprotect_method = reprotected
        .output
        .as_ref()
        .and_then(|o| o["rebuild"]["method"].as_str())
        .unwrap_or("nothing (already streaming: demoted in the switchover)")
        .to_string();
    let reprotect_vault = reprotected
        .output
        .as_ref()
        .map(|o| o["vault_promotion"].clone())
        .unwrap_or_default();
    deployment.primary.set_mode(GatewayMode::Healthy);
    deployment.primary.traffic().set(400.0, 0.002);
    if let Some(gateway) = deployment.gateway_in(took_over) {
        gateway.traffic().set(400.0, 0.002);
    }
    // Let the rebuilt replica replay something recent, so its lag is measured, not unknown.
    let promoted = PostgresDatabase::new(server_in(pair, took_over)?.dsn())
        .connect()
        .await
        .map_err(|e| HapilotError::Aws {
            operation: "PostgreSQL",
            detail: e.to_string(),
        })?;
    let (table, column) = deployment.drill_data_check()?;
    promoted
        .query_one(
            crate::local::systems::litellm::insert_spend_log(&table, &column).as_str(),
            &[&format!(
                "before-failback-{}",
                uuid::Uuid::new_v4().simple()
            )],
        )
        .await
        .map_err(|e| HapilotError::Aws {
            operation: "PostgreSQL",
            detail: format!("writing before the failback: {e}"),
        })?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let input = json!({
        "primary_region": crate::local::world::deployment::PRIMARY_REGION,
        "standby_region": took_over,
        "steps": [25, 50, 100],
        "bake_seconds": 2,
        "probe_samples": 2, "probe_timeout_ms": 500, "probe_interval_ms": 50,
        "dns_sync_timeout_seconds": 10, "approval_timeout_seconds": 60,
        "approve_first": true
    });
    let name = run_name("drill-failback");
    say(&format!(
        "canary failback {name}: steps 25/50/100 %, 2 s bake, gate max 1 % errors"
    ));
    let execution = crate::runs::start(&sfn, &stack.arn_of("failback"), &name, &input).await?;
    // The failback waits for a human before its first step; the drill plays the operator.
    let operator = play_the_operator(stack, "failback", &name, say.clone());
    let started = Instant::now();
    let print = say.clone();
    let outcome = follow(&sfn, &execution, Duration::from_secs(600), move |line| {
        print(line)
    })
    .await?;
    operator.abort();
    let steps = outcome
        .output
        .as_ref()
        .and_then(|o| o["steps"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|s| {
            (
                s["percent"].as_i64().unwrap_or(0),
                s["gate"]["verdict"].as_str().unwrap_or("?").to_string(),
                s["gate"]["error_rate"].as_f64(),
            )
        })
        .collect();
    Ok(FailbackSummary {
        execution: name,
        status: outcome.status.clone(),
        error: outcome.error.clone(),
        duration_secs: started.elapsed().as_secs_f64(),
        reprotect_secs,
        reprotect_method,
        reprotect_vault,
        steps,
        followers: outcome
            .output
            .as_ref()
            .map(|o| o["followers"].clone())
            .unwrap_or_default(),
        dns_after: json!(deployment.weights(stack).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpo_is_the_gap_between_the_newest_kept_and_the_newest_lost_write() {
        let committed = vec![(1, 100.0), (2, 101.0), (3, 102.5), (4, 103.0)];
        let kept = |ids: &[i64]| {
            ids.iter()
                .copied()
                .collect::<std::collections::HashSet<_>>()
        };
        assert_eq!(rpo_seconds(&committed, &kept(&[1, 2, 3, 4])), 0.0);
        assert_eq!(rpo_seconds(&committed, &kept(&[1, 2])), 2.0);
        assert_eq!(rpo_seconds(&committed, &kept(&[])), 3.0);
        assert_eq!(rpo_seconds(&[], &kept(&[])), 0.0);
    }
}
