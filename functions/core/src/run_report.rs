//! The report of a finished failover, failback, reprotect or dr-restore run: typed views of
//! the run state the state machines hand to `record-run` (one per machine, where they differ),
//! the report written to `reports/<machine>/<execution>.json`, its metric names and the
//! on-call's notice. Field names are the state machines' result paths; the report's are what
//! `hapilot report`, the dashboard and the tests read.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A part of the state in another shape than expected reads as absent: a recorder must not
/// fail a run's record over one field (the old code read these paths as null the same way).
fn lenient<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).unwrap_or_default())
}

/// A region named in a plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlannedRegion {
    /// The region.
    #[serde(default, deserialize_with = "lenient")]
    pub region: Option<String>,
}

/// The run's plan as the plan step wrote it (failover, failback, reprotect and dr-restore
/// share these names; each fills what it has).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanView {
    /// The region traffic leaves.
    #[serde(default, deserialize_with = "lenient")]
    pub primary: PlannedRegion,
    /// The region that takes over.
    #[serde(default, deserialize_with = "lenient")]
    pub standby: PlannedRegion,
    /// The tier.
    #[serde(default)]
    pub tier: Value,
    /// The tier's RTO, seconds.
    #[serde(default, deserialize_with = "lenient")]
    pub rto_secs: Option<f64>,
    /// The tier's RPO, seconds.
    #[serde(default)]
    pub rpo_secs: Value,
    /// How traffic moves.
    #[serde(default)]
    pub traffic_switch: Value,
    /// The vantage points' votes.
    #[serde(default)]
    pub votes: Value,
    /// The incident (alarm) that started it.
    #[serde(default)]
    pub incident: Value,
    /// graceful / ungraceful.
    #[serde(default)]
    pub mode: Value,
    /// A restore plan's one line.
    #[serde(default)]
    pub summary: Value,
    /// A restore's target.
    #[serde(default)]
    pub target: Value,
    /// A restore's region.
    #[serde(default, deserialize_with = "lenient")]
    pub region: Option<String>,
    /// A restore test's random target (seed, window, moment).
    #[serde(default)]
    pub random: Value,
    /// A restore's recovery wait (`poll_seconds`, `max_polls`): its RTO budget.
    #[serde(default)]
    pub readiness: Value,
}

/// `$.replication.assessment`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicationView {
    /// The data-loss assessment.
    #[serde(default, deserialize_with = "lenient")]
    pub assessment: Assessment,
    /// The bound with its sources ([`crate::data_at_risk::DataAtRisk`]).
    #[serde(default)]
    pub data_at_risk: Value,
    /// How far the standby replayed the WAL archive before the verdict, when it had to.
    #[serde(default)]
    pub archive_replay: Value,
    /// The bound before that replay.
    #[serde(default)]
    pub before_archive_replay: Value,
}

/// The data-loss assessment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// Seconds of writes at risk.
    #[serde(default, deserialize_with = "lenient")]
    pub at_risk_secs: Option<f64>,
}

/// A step's result whose one field the report takes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    /// SetIdentifier -> weight.
    #[serde(default)]
    pub weights: Value,
}

/// A traffic move's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Moved {
    /// The weights after it.
    #[serde(default)]
    pub after: Value,
}

/// A promotion's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    /// promoted / already_primary.
    #[serde(default)]
    pub outcome: Value,
}

/// A fence's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fence {
    /// What happened to the old primary's database.
    #[serde(default)]
    pub database: Value,
}

/// The run state `record-run` receives (`$` of the state machine at its end).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The plan.
    #[serde(default, deserialize_with = "lenient")]
    pub plan: PlanView,
    /// Replication read before the promotion (failover).
    #[serde(default, deserialize_with = "lenient")]
    pub replication: ReplicationView,
    /// Weights before any move.
    #[serde(default, deserialize_with = "lenient")]
    pub snapshot: Weights,
    /// Weights at the end (failback).
    #[serde(rename = "final", default, deserialize_with = "lenient")]
    pub final_weights: Weights,
    /// The fail-forward move (failover).
    #[serde(default, deserialize_with = "lenient")]
    pub fail_forward: Moved,
    /// Why the fail-forward failed too.
    #[serde(default)]
    pub fail_forward_error: Value,
    /// The traffic shift.
    #[serde(default, deserialize_with = "lenient")]
    pub shift: Moved,
    /// The canary steps (failback).
    #[serde(default)]
    pub steps: Value,
    /// The promotion.
    #[serde(default, deserialize_with = "lenient")]
    pub promotion: Promotion,
    /// The fence.
    #[serde(default, deserialize_with = "lenient")]
    pub fence: Fence,
    /// The approval asked, and its answer.
    #[serde(default)]
    pub approval: Value,
    /// The run's error (`Error`, `Cause`).
    #[serde(default)]
    pub error: Value,
    /// A switchover's catch-up.
    #[serde(default)]
    pub catchup: Value,
    /// A failover's scale-up of the standby (before the fence and the promotion).
    #[serde(default)]
    pub scale: Value,
    /// A failover's last look at the standby's ready replicas before the traffic moved
    /// (`ready`, `polls`, `waited_secs`, what was `short`).
    #[serde(default)]
    pub capacity: Value,
    /// A failover's choice of standby among its candidates (every candidate's numbers).
    #[serde(default)]
    pub choice: Value,
    /// Vault made the performance primary where the database went (failover, failback) or the
    /// old cluster re-joined (reprotect): the calls decided and made, the verification.
    #[serde(default)]
    pub vault_promotion: Value,
    /// Why the Vault step failed (the run went on).
    #[serde(default)]
    pub vault_error: Value,
    /// The other secondaries pointed at the new primary (`followers`, `summary`).
    #[serde(default)]
    pub followers: Value,
    /// Why re-pointing them failed, if it did (the run went on).
    #[serde(default)]
    pub follow_error: Value,
    /// An undone fence.
    #[serde(default)]
    pub unfence: Value,
    /// A reprotect's rebuild.
    #[serde(default)]
    pub rebuild: Value,
    /// A reprotect's streaming check.
    #[serde(default)]
    pub streaming: Value,
    /// A restore's verification of the restore point.
    #[serde(default)]
    pub verification: Value,
    /// A restore's Vault step.
    #[serde(default)]
    pub vault_restore: Value,
    /// A restore's database step.
    #[serde(default)]
    pub database_restore: Value,
    /// A restore's readiness and data check (`data_check.rpo_secs`: the restore's RPO).
    #[serde(default)]
    pub readiness: Value,
    /// A restore test's teardown of its scratch target.
    #[serde(default)]
    pub teardown: Value,
    /// Why the teardown failed, if it did.
    #[serde(default)]
    pub teardown_error: Value,
    /// A restore test's Redis check (the RDB loaded by a scratch redis-server).
    #[serde(default)]
    pub redis_restore: Value,
}

impl RunState {
    /// A DR restore's RPO from its data check: the newest restored row against the target.
    pub fn restore_rpo_secs(&self) -> Option<f64> {
        self.readiness["data_check"]["rpo_secs"].as_f64()
    }
}

/// What a DR restore's report adds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreReport {
    /// The plan's line.
    pub summary: Value,
    /// The target.
    pub target: Value,
    /// The restore point's verification.
    pub verification: Value,
    /// Vault.
    pub vault: Value,
    /// PostgreSQL.
    pub database: Value,
    /// Recovery and the data check.
    pub readiness: Value,
    /// The DNS switch offered.
    pub dns_switch: Value,
    /// A restore test's random target (seed, window, moment).
    #[serde(default)]
    pub random: Value,
    /// A restore test's teardown (or its error).
    #[serde(default)]
    pub teardown: Value,
    /// A restore test's Redis check: the RDB, the keys loaded against the file's own count.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub redis: Value,
    /// The recovery wait's budget, seconds (the tier's RTO by default): the restore time is
    /// judged against it.
    #[serde(default)]
    pub rto_target_secs: Option<f64>,
}

/// `reports/<machine>/<execution>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// failover, failback, reprotect, dr-restore.
    pub machine: String,
    /// The execution's name.
    pub execution: String,
    /// succeeded, failed, failed_forward, reprotected, restored, ...
    pub outcome: String,
    /// The region traffic left.
    pub primary_region: Option<String>,
    /// The region that took over.
    pub standby_region: Option<String>,
    /// The tier.
    pub tier: Value,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub finished_at: String,
    /// Seconds.
    pub duration_secs: f64,
    /// The tier's RTO.
    pub rto_target_secs: Option<f64>,
    /// Whether the run ended within it.
    pub within_rto: Option<bool>,
    /// Writes at risk, seconds.
    pub data_at_risk_secs: Option<f64>,
    /// The bound in full (bytes, seconds, sources) and, when the standby replayed the WAL
    /// archive first, the replay and the bound before it: `{bound, archive_replay,
    /// before_archive_replay}` (null without a data-loss guard).
    #[serde(default)]
    pub data_at_risk: Value,
    /// The tier's RPO.
    pub rpo_target_secs: Value,
    /// Weights before.
    pub weights_before: Value,
    /// Weights after: the failback's final ones, else the fail-forward's, else the shift's.
    pub weights_after: Value,
    /// How traffic moved.
    pub traffic_switch: Value,
    /// The votes.
    pub votes: Value,
    /// The canary steps.
    pub canary_steps: Value,
    /// The promotion's outcome.
    pub promotion: Value,
    /// The fence's effect on the database.
    pub fence: Value,
    /// The approval.
    pub approval: Value,
    /// The error.
    pub error: Value,
    /// The incident.
    pub incident: Value,
    /// The mode.
    pub mode: Value,
    /// A switchover's catch-up.
    pub catchup: Value,
    /// A failover's scale-up of the standby.
    #[serde(default)]
    pub scale: Value,
    /// A failover's wait for the standby's capacity before the traffic moved.
    #[serde(default)]
    pub capacity: Value,
    /// The choice of standby among the candidates, with every candidate's numbers.
    #[serde(default)]
    pub choice: Value,
    /// Vault's promotion or re-join, with what was called and verified.
    #[serde(default)]
    pub vault: Value,
    /// Why the Vault step failed, if it did (the run went on without it).
    #[serde(default)]
    pub vault_error: Value,
    /// The other secondaries after the promotion: following the new primary, or what they
    /// need (a rebuild, a hand).
    #[serde(default)]
    pub followers: Value,
    /// Why re-pointing them failed, if it did (the run went on).
    #[serde(default)]
    pub follow_error: Value,
    /// An undone fence.
    pub unfence: Value,
    /// A reprotect's rebuild.
    pub rebuild: Value,
    /// A reprotect's streaming check.
    pub streaming: Value,
    /// A DR restore's part.
    pub restore: Option<RestoreReport>,
    /// Steps tried again after a failure (a blip the run went through), in order.
    #[serde(default)]
    pub retries: Vec<StepRetry>,
}

/// One event of a run's history, as much as the list of retries needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryStep {
    /// The event type, e.g. `TaskStateEntered`, `LambdaFunctionFailed`.
    pub kind: String,
    /// The state's name, for state entered events.
    pub state: Option<String>,
    /// The error name, for failure events.
    pub error: Option<String>,
    /// The error's cause, for failure events.
    pub cause: Option<String>,
}

/// A step tried again after a failed attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRetry {
    /// The state.
    pub state: String,
    /// Which attempt failed (1 for the first).
    pub attempt: u32,
    /// Its error name, e.g. `hapilot.Transient`.
    pub error: String,
    /// What the step said (first 300 characters).
    pub cause: String,
}

/// The retries in a run's history: every failed attempt of a state that was followed by
/// another attempt of the same state (a `Retry` firing). A failure that ended the state (its
/// `Catch` or the run's end) is not a retry.
pub fn retries_in(events: &[HistoryStep]) -> Vec<StepRetry> {
    const FAILED: [&str; 6] = [
        "LambdaFunctionFailed",
        "LambdaFunctionTimedOut",
        "LambdaFunctionStartFailed",
        "LambdaFunctionScheduleFailed",
        "TaskFailed",
        "TaskTimedOut",
    ];
    const SCHEDULED: [&str; 2] = ["LambdaFunctionScheduled", "TaskScheduled"];
    let mut out = Vec::new();
    let mut state: Option<&str> = None;
    let mut attempt = 0u32;
    let mut failed: Option<&HistoryStep> = None;
    for e in events {
        if e.kind.ends_with("StateEntered") {
            state = e.state.as_deref();
            attempt = 0;
            failed = None;
        } else if SCHEDULED.contains(&e.kind.as_str()) {
            attempt += 1;
            if let (Some(state), Some(f)) = (state, failed.take()) {
                out.push(StepRetry {
                    state: state.to_string(),
                    attempt: attempt - 1,
                    error: f.error.clone().unwrap_or_default(),
                    cause: f
                        .cause
                        .as_deref()
                        .unwrap_or_default()
                        .chars()
                        .take(300)
                        .collect(),
                });
            }
        } else if FAILED.contains(&e.kind.as_str()) {
            failed = Some(e);
        }
    }
    out
}

/// The HA document's "POST-FAILOVER ACTIONS" (section 4.2).
pub const POST_FAILOVER_ACTIONS: [&str; 3] = [
    "Investigate the primary region issue",
    "Monitor error rates and latency",
    "Plan failback when the primary recovers (hapilot failback, canary steps)",
];

fn first_set(values: [&Value; 3]) -> Value {
    values
        .into_iter()
        .find(|v| !v.is_null())
        .cloned()
        .unwrap_or(Value::Null)
}

impl RunReport {
    /// The report of a run of `machine` named `execution` that ended with `outcome` after
    /// `duration_secs`.
    pub fn new(
        (machine, execution, outcome): (&str, &str, &str),
        state: &RunState,
        (started_at, finished_at, duration_secs): (&str, &str, f64),
    ) -> Self {
        let plan = &state.plan;
        let rto = plan.rto_secs;
        RunReport {
            machine: machine.to_string(),
            execution: execution.to_string(),
            outcome: outcome.to_string(),
            primary_region: plan.primary.region.clone(),
            standby_region: plan.standby.region.clone().or_else(|| plan.region.clone()),
            tier: plan.tier.clone(),
            started_at: started_at.to_string(),
            finished_at: finished_at.to_string(),
            duration_secs,
            rto_target_secs: rto,
            within_rto: rto.map(|r| duration_secs <= r),
            data_at_risk_secs: state.replication.assessment.at_risk_secs,
            data_at_risk: match &state.replication.data_at_risk {
                Value::Null => Value::Null,
                bound => serde_json::json!({
                    "bound": bound,
                    "archive_replay": state.replication.archive_replay,
                    "before_archive_replay": state.replication.before_archive_replay,
                }),
            },
            rpo_target_secs: plan.rpo_secs.clone(),
            weights_before: state.snapshot.weights.clone(),
            weights_after: first_set([
                &state.final_weights.weights,
                &state.fail_forward.after,
                &state.shift.after,
            ]),
            traffic_switch: plan.traffic_switch.clone(),
            votes: plan.votes.clone(),
            canary_steps: state.steps.clone(),
            promotion: state.promotion.outcome.clone(),
            fence: state.fence.database.clone(),
            approval: state.approval.clone(),
            error: state.error.clone(),
            incident: plan.incident.clone(),
            mode: plan.mode.clone(),
            catchup: state.catchup.clone(),
            scale: state.scale.clone(),
            capacity: state.capacity.clone(),
            choice: state.choice.clone(),
            vault: state.vault_promotion.clone(),
            vault_error: state.vault_error.clone(),
            followers: state.followers.clone(),
            follow_error: state.follow_error.clone(),
            unfence: state.unfence.clone(),
            rebuild: state.rebuild.clone(),
            streaming: state.streaming.clone(),
            restore: matches!(machine, "dr-restore" | "restore-test").then(|| RestoreReport {
                summary: plan.summary.clone(),
                target: plan.target.clone(),
                verification: state.verification.clone(),
                vault: state.vault_restore.clone(),
                database: state.database_restore.clone(),
                readiness: state.readiness.clone(),
                dns_switch: state.approval.clone(),
                random: plan.random.clone(),
                teardown: match (&state.teardown, &state.teardown_error) {
                    (Value::Null, Value::Null) => Value::Null,
                    (Value::Null, error) => serde_json::json!({"error": error}),
                    (done, _) => done.clone(),
                },
                redis: state.redis_restore.clone(),
                rto_target_secs: plan.readiness["poll_seconds"]
                    .as_f64()
                    .zip(plan.readiness["max_polls"].as_f64())
                    .map(|(p, n)| p * n),
            }),
            retries: Vec::new(),
        }
    }

    /// Whether the outcome is a success of its machine.
    pub fn succeeded(&self) -> bool {
        matches!(
            self.outcome.as_str(),
            "succeeded" | "reprotected" | "restored" | "passed"
        )
    }

    /// The metrics' prefix, after what ran, so a dashboard never mixes a restore's duration
    /// with a failover's.
    pub fn metric_prefix(&self) -> &'static str {
        match self.machine.as_str() {
            "failover" => "Failover",
            "failback" => "Failback",
            "reprotect" => "Reprotect",
            "dr-restore" => "Restore",
            "restore-test" => "RestoreTest",
            _ => "Run",
        }
    }

    /// Each canary step's judgement (the statistical judge's, when it ran): (percent, it).
    pub fn judgements(&self) -> Vec<(i64, crate::canary_judge::Judgement)> {
        self.canary_steps
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|step| {
                let judgement = serde_json::from_value(step["gate"]["judgement"].clone()).ok()?;
                Some((step["percent"].as_i64().unwrap_or(0), judgement))
            })
            .collect()
    }

    /// The Markdown report of a failback whose gate ran the judge: per step the judge's table
    /// and plots; None without a judgement.
    pub fn canary_markdown(&self) -> Option<String> {
        let judgements = self.judgements();
        if judgements.is_empty() {
            return None;
        }
        let mut out = format!(
            "# {} run {}: {}\n\n{} -> {}, {:.1} s\n",
            self.machine,
            self.execution,
            self.outcome,
            self.primary_region.as_deref().unwrap_or("?"),
            self.standby_region.as_deref().unwrap_or("?"),
            self.duration_secs
        );
        if !self.error.is_null() {
            out.push_str(&format!("\nerror: {}\n", self.error));
        }
        for (percent, judgement) in judgements {
            out.push_str(&format!(
                "\n## step {percent} %: {:?} (score {:.0})\n\n{}\n\n{}",
                judgement.verdict,
                judgement.score,
                judgement.summary,
                crate::canary_judge::markdown_table(&judgement)
            ));
        }
        Some(out)
    }

    /// The on-call's notice: the outcome, regions, duration and data at risk; the error; what
    /// to do after a fail-forward; the document's post-failover actions after a failover.
    pub fn notice(&self, state: &RunState) -> String {
        let region = |r: &Option<String>| r.clone().unwrap_or_else(|| "?".into());
        let mut message = format!(
            "hapilot {} run {}: {}\n{} -> {}, {:.1} s, data at risk: {}\n",
            self.machine,
            self.execution,
            self.outcome,
            region(&self.primary_region),
            region(&self.standby_region),
            self.duration_secs,
            self.data_at_risk_secs
                .map(|s| format!("{s:.1} s"))
                .unwrap_or_else(|| "unknown".into()),
        );
        if let Some(summary) = self.data_at_risk["bound"]["summary"].as_str() {
            message.push_str(&format!("data-loss bound: {summary}\n"));
        }
        if !self.error.is_null() {
            message.push_str(&format!("error: {}\n", self.error));
        }
        if let Some((percent, last)) = self.judgements().pop() {
            message.push_str(&format!(
                "\ncanary judge at {percent} %: {}\n",
                last.summary
            ));
            for m in &last.metrics {
                message.push_str(&format!(
                    "  {:<18} canary {:>10} baseline {:>10}  {:?}\n",
                    m.metric,
                    m.canary.map_or("-".into(), |v| format!("{v:.4}")),
                    m.baseline.map_or("-".into(), |v| format!("{v:.4}")),
                    m.verdict
                ));
            }
        }
        if self.outcome == "failed_forward" {
            message.push_str(&format!(
                "\nACTION NEEDED: the standby database is promoted; traffic stays on {} (fail \
                 forward: {}). Finish what failed by hand; never send traffic back to the fenced primary.\n",
                region(&self.standby_region),
                if state.fail_forward_error.is_null() {
                    "switched to the standby".to_string()
                } else {
                    format!("the switch failed too: {}", state.fail_forward_error)
                },
            ));
        }
        if self.outcome == "succeeded" && self.machine == "failover" {
            message.push_str("\nPOST-FAILOVER ACTIONS:\n");
            for (i, action) in POST_FAILOVER_ACTIONS.iter().enumerate() {
                message.push_str(&format!("{}. {action}\n", i + 1));
            }
        }
        message
    }
}

#[cfg(test)]
mod tests {
    fn event(kind: &str, state: Option<&str>, error: Option<&str>) -> HistoryStep {
        HistoryStep {
            kind: kind.into(),
            state: state.map(str::to_string),
            error: error.map(str::to_string),
            cause: error.map(|e| format!("{e}: said")),
        }
    }

    /// A failed attempt followed by another of the same state is a retry; the failure that
    /// ends a state (caught) is not, and a state entered again starts counting anew.
    #[test]
    fn retries_are_failed_attempts_followed_by_another() {
        let history = [
            event("TaskStateEntered", Some("ScaleStandby"), None),
            event("LambdaFunctionScheduled", None, None),
            event("LambdaFunctionFailed", None, Some("hapilot.Transient")),
            event("LambdaFunctionScheduled", None, None),
            event("LambdaFunctionFailed", None, Some("hapilot.Transient")),
            event("LambdaFunctionScheduled", None, None),
            event("LambdaFunctionSucceeded", None, None),
            event("TaskStateExited", Some("ScaleStandby"), None),
            event("TaskStateEntered", Some("VerifyGlobal"), None),
            event("LambdaFunctionScheduled", None, None),
            event(
                "LambdaFunctionFailed",
                None,
                Some("hapilot.EndpointUnhealthy"),
            ),
            event("TaskStateEntered", Some("RecordCompensated"), None),
            event("LambdaFunctionScheduled", None, None),
        ];
        let retries = retries_in(&history);
        assert_eq!(
            retries
                .iter()
                .map(|r| (r.state.as_str(), r.attempt, r.error.as_str()))
                .collect::<Vec<_>>(),
            vec![
                ("ScaleStandby", 1, "hapilot.Transient"),
                ("ScaleStandby", 2, "hapilot.Transient")
            ]
        );
        assert_eq!(retries[0].cause, "hapilot.Transient: said");
    }

    use super::*;
    use serde_json::json;

    fn state(extra: Value) -> RunState {
        let mut base = json!({
            "plan": {"primary": {"region": "us-east-1"}, "standby": {"region": "us-west-2"},
                     "tier": "Critical", "rto_secs": 900, "rpo_secs": 300},
            "replication": {"assessment": {"at_risk_secs": 1.5}},
            "snapshot": {"weights": {"primary": 100, "secondary": 0}},
            "shift": {"after": {"primary": 0, "secondary": 100}},
        });
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn a_failover_report_reads_the_state_machines_paths() {
        let s = state(json!({}));
        let r = RunReport::new(("failover", "f-1", "succeeded"), &s, ("t0", "t1", 42.0));
        assert_eq!(r.primary_region.as_deref(), Some("us-east-1"));
        assert_eq!(r.within_rto, Some(true));
        assert_eq!(r.data_at_risk_secs, Some(1.5));
        assert_eq!(r.weights_after, json!({"primary": 0, "secondary": 100}));
        assert!(r.restore.is_none());
        assert!(r.succeeded());
        assert_eq!(r.metric_prefix(), "Failover");
        let notice = r.notice(&s);
        assert!(notice.contains("us-east-1 -> us-west-2, 42.0 s, data at risk: 1.5 s"));
        assert!(notice.contains("POST-FAILOVER ACTIONS:\n1. Investigate"));
    }

    #[test]
    fn the_weights_after_are_the_failbacks_then_the_fail_forwards_then_the_shifts() {
        let s = state(json!({"fail_forward": {"after": {"secondary": 100}}}));
        let r = RunReport::new(("failover", "f", "failed_forward"), &s, ("", "", 1.0));
        assert_eq!(r.weights_after, json!({"secondary": 100}));
        assert!(r.notice(&s).contains("ACTION NEEDED"));
        let s = state(json!({"final": {"weights": {"primary": 100}}}));
        let r = RunReport::new(("failback", "b", "succeeded"), &s, ("", "", 1.0));
        assert_eq!(r.weights_after, json!({"primary": 100}));
        assert!(!r.notice(&s).contains("POST-FAILOVER"));
    }

    #[test]
    fn a_part_in_another_shape_reads_as_absent() {
        let s: RunState = serde_json::from_value(json!({
            "plan": {"primary": "us-east-1", "rto_secs": "soon"},
            "replication": [1, 2]
        }))
        .unwrap();
        assert_eq!(s.plan.primary.region, None);
        assert_eq!(s.plan.rto_secs, None);
        assert_eq!(s.replication.assessment.at_risk_secs, None);
    }

    #[test]
    fn a_restore_report_carries_its_data_check() {
        let s = state(
            json!({"readiness": {"ready": true, "data_check": {"rpo_secs": 4.0, "newest": "x"}},
                             "plan": {"summary": "base backup b1", "target": "latest"}}),
        );
        let r = RunReport::new(("dr-restore", "r", "restored"), &s, ("", "", 1.0));
        assert_eq!(s.restore_rpo_secs(), Some(4.0));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["restore"]["readiness"]["data_check"]["newest"], "x");
        assert_eq!(json["restore"]["readiness"]["ready"], true);
        assert_eq!(r.metric_prefix(), "Restore");
    }
}
