//! Task `record-run`: the end of a failover run, whatever the outcome. Writes the report to
//! `reports/<machine>/<execution>.json`, puts the run's metrics, and notifies the on-call with
//! the outcome and (on success) the HA document's post-failover actions.
//! Input: `{"outcome", "state": <the run's state>, "started_at": $$.Execution.StartTime, "run"}`.

use hapilot_adapters::journal::Journal;
use hapilot_adapters::monitoring::{MetricValue, Metrics};
use hapilot_adapters::notifier::Notifier;
use hapilot_core::run_report::{RunReport, RunState};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;
use crate::publish::{MetricBatch, Publication, publish};
use crate::run::{RunContext, now_rfc3339, record, release_run_lock};

#[derive(Deserialize)]
struct Input {
    outcome: String,
    #[serde(default)]
    state: Value,
    started_at: String,
    run: RunContext,
}

/// Writes the report, metrics and notification.
pub async fn record_run(
    journal: &impl Journal,
    metrics: &impl Metrics,
    notifier: &impl Notifier,
    runs: &impl hapilot_adapters::orchestrator::Orchestrator,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        outcome,
        state,
        started_at,
        run,
    } = parse_input(input)?;
    let duration_secs = chrono::DateTime::parse_from_rfc3339(&started_at)
        .map(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0
        })
        .unwrap_or(0.0);
    // Each part of the state is read leniently (core's rule); only a state that is not an
    // object at all reads as empty.
    let state: RunState = serde_json::from_value(state).unwrap_or_default();
    let mut report = RunReport::new(
        (&run.machine, &run.execution, &outcome),
        &state,
        (&started_at, &now_rfc3339(), duration_secs),
    );
    // The blips the run went through, from its own history; a history that cannot be read
    // leaves the list empty rather than the run unrecorded.
    if let Some(arn) = &run.execution_arn {
        match runs.history(arn).await {
            Ok(history) => report.retries = hapilot_core::run_report::retries_in(&history),
            Err(e) => {
                tracing::warn!(error = %e, "the run's history is unreadable: its report lists no retries")
            }
        }
    }
    if run.machine == "failback" && !report.succeeded() {
        add_rolled_back_gate(&mut report, journal, &run).await;
    }
    let values = run_metrics(&run.machine, &report, &state, duration_secs);
    let publication = Publication {
        json_key: format!("reports/{}/{}.json", run.machine, run.execution),
        report: serde_json::to_value(&report).map_err(|e| FunctionError::Setup(e.to_string()))?,
        markdown: report.canary_markdown().map(|text| {
            (
                format!("reports/{}/{}.md", run.machine, run.execution),
                text,
            )
        }),
        metrics: vec![MetricBatch {
            namespace: "hapilot".into(),
            dimensions: vec![
                ("StateMachine".into(), run.machine.clone()),
                (
                    "Region".into(),
                    report
                        .standby_region
                        .clone()
                        .unwrap_or_else(|| "unknown".into()),
                ),
            ],
            values,
        }],
        notification: Some((
            format!("hapilot {}: {outcome}", run.machine),
            report.notice(&state),
        )),
        urgency: hapilot_core::paging::Urgency::of_run_end(&run.machine, report.succeeded()),
    };
    // Every ending path records the run: the run lock goes back here, whatever the outcome.
    release_run_lock(journal, &run).await;
    publish(journal, metrics, notifier, &publication).await?;
    record(journal, &run, json!({ "after": publication.report })).await?;
    Ok(publication.report)
}

/// A failback that rolled back ended inside its steps, which keep no output: the failing
/// step's gate (the numbers, the judge's table) comes from the run's journal.
async fn add_rolled_back_gate(report: &mut RunReport, journal: &impl Journal, run: &RunContext) {
    let Some(gate) = last_gate(journal, run).await else {
        return;
    };
    // Only finished steps are objects (a rolled-back run's `steps` may still be the plan's
    // list of percents).
    let mut steps: Vec<Value> = report
        .canary_steps
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s.get("gate").is_some())
        .cloned()
        .collect();
    steps.push(json!({"percent": gate["step"], "gate": gate, "rolled_back": true}));
    report.canary_steps = Value::Array(steps);
}

/// The run's metrics: its duration and success (under the names the restore test's alarms
/// and readiness read, for a restore test), the restore's RPO and the failover's data at risk
/// when known.
fn run_metrics(
    machine: &str,
    report: &RunReport,
    state: &RunState,
    duration_secs: f64,
) -> Vec<MetricValue> {
    let what = report.metric_prefix();
    let mut values = if machine == "restore-test" {
        vec![
            MetricValue::seconds("RestoreTestSeconds", duration_secs),
            MetricValue::count(
                "RestoreTestPassed",
                if report.succeeded() { 1.0 } else { 0.0 },
            ),
        ]
    } else {
        vec![
            MetricValue::seconds(format!("{what}DurationSeconds"), duration_secs),
            MetricValue::count(
                format!("{what}Succeeded"),
                if report.succeeded() { 1.0 } else { 0.0 },
            ),
        ]
    };
    if let Some(secs) = state.restore_rpo_secs() {
        values.push(MetricValue::seconds("RestoreRpoSeconds", secs));
    }
    if let Some(secs) = report.data_at_risk_secs {
        values.push(MetricValue::seconds("DataAtRiskSeconds", secs));
    }
    values
}

/// The last canary gate the failback `run` journaled (its `measurements`), if any.
async fn last_gate(journal: &impl Journal, run: &RunContext) -> Option<Value> {
    let keys = journal.list(&run.run_object("")).await.ok()?;
    let key = keys
        .iter()
        .filter(|k| k.ends_with("-CanaryGate.json"))
        .max()?;
    let entry = journal.get(key).await.ok()??;
    Some(entry["measurements"].clone()).filter(|m| m.is_object())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::journal::MemoryJournal;
    use hapilot_adapters::monitoring::MemoryMonitoring;
    use hapilot_adapters::notifier::MemoryNotifier;

    /// A failover's end over in-memory fakes: the report at its key, the run's metrics named
    /// after the machine, the notice with the post-failover actions, and the journal entry.
    #[tokio::test]
    async fn a_failover_is_reported_measured_and_announced() {
        let (journal, monitoring, notifier) = (
            MemoryJournal::default(),
            MemoryMonitoring::default(),
            MemoryNotifier::default(),
        );
        let input = json!({
            "outcome": "succeeded",
            "started_at": "2026-12-01T09:00:00Z",
            "state": {
                "plan": {"primary": {"region": "us-east-1"}, "standby": {"region": "us-west-2"},
                         "rto_secs": 900, "rpo_secs": 300, "tier": "Critical"},
                "replication": {"assessment": {"at_risk_secs": 2.5}},
                "shift": {"after": {"secondary": 100}}
            },
            "run": {"machine": "failover", "execution": "f-1", "state": "RecordRun",
                    "entered": "2026-12-01T09:01:00Z",
                    "execution_arn": "arn:aws:states:us-west-2:123456789012:execution:failover:f-1"}
        });
        // The run went through one blip at ScaleStandby.
        let step = |kind: &str, state: Option<&str>, error: Option<&str>| {
            hapilot_core::run_report::HistoryStep {
                kind: kind.into(),
                state: state.map(str::to_string),
                error: error.map(str::to_string),
                cause: Some("Kubernetes at ...: HTTP 503".into()),
            }
        };
        let mut runs = hapilot_adapters::orchestrator::MemoryOrchestrator::default();
        runs.history = vec![
            step("TaskStateEntered", Some("ScaleStandby"), None),
            step("LambdaFunctionScheduled", None, None),
            step("LambdaFunctionFailed", None, Some("hapilot.Transient")),
            step("LambdaFunctionScheduled", None, None),
        ];
        let report = record_run(&journal, &monitoring, &notifier, &runs, input)
            .await
            .unwrap();
        assert_eq!(report["standby_region"], "us-west-2");
        assert_eq!(report["weights_after"], json!({"secondary": 100}));
        assert_eq!(report["retries"][0]["state"], "ScaleStandby", "{report}");
        assert_eq!(
            journal.get("reports/failover/f-1.json").await.unwrap(),
            Some(report.clone())
        );
        assert_eq!(monitoring.last("FailoverSucceeded"), Some(1.0));
        assert_eq!(monitoring.last("DataAtRiskSeconds"), Some(2.5));
        assert_eq!(
            notifier.urgencies(),
            [hapilot_core::paging::Urgency::ActNow],
            "a failover pages"
        );
        let (subject, message) = &notifier.sent()[0];
        assert_eq!(subject, "hapilot failover: succeeded");
        assert!(message.contains("POST-FAILOVER ACTIONS"), "{message}");
        let entries = journal.list("runs/failover/f-1/").await.unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");
    }

    /// A state that is not an object at all still gives a report (a recorder must not fail
    /// the run's record over its shape).
    #[tokio::test]
    async fn a_malformed_state_still_records() {
        let input = json!({
            "outcome": "failed", "started_at": "not a time", "state": "oops",
            "run": {"machine": "reprotect", "execution": "r-1", "state": "RecordRun",
                    "entered": "2026-12-01T09:01:00Z"}
        });
        let (journal, monitoring, notifier) = (
            MemoryJournal::default(),
            MemoryMonitoring::default(),
            MemoryNotifier::default(),
        );
        let runs = hapilot_adapters::orchestrator::MemoryOrchestrator::default();
        let report = record_run(&journal, &monitoring, &notifier, &runs, input)
            .await
            .unwrap();
        assert_eq!(report["outcome"], "failed");
        assert_eq!(monitoring.last("ReprotectSucceeded"), Some(0.0));
    }
}
