//! Task `record-run`: the end of a failover run, whatever the outcome. Writes the report to
//! `reports/<machine>/<execution>.json`, puts the run's metrics, and notifies the on-call with
//! the outcome and (on success) the HA document's post-failover actions.
//! Input: `{"outcome", "state": <the run's state>, "started_at": $$.Execution.StartTime, "run"}`.

use hapilot_aws::journal::Journal;
use hapilot_aws::monitoring::{MetricValue, Metrics};
use hapilot_aws::notifier::Notifier;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;
use crate::publish::{MetricBatch, Publication, publish};
use crate::run::{RunContext, now_rfc3339, record};

#[derive(Deserialize)]
struct Input {
    outcome: String,
    #[serde(default)]
    state: Value,
    started_at: String,
    run: RunContext,
}

/// The HA document's "POST-FAILOVER ACTIONS" (section 4.2).
const POST_FAILOVER_ACTIONS: [&str; 3] = [
    "Investigate the primary region issue",
    "Monitor error rates and latency",
    "Plan failback when the primary recovers (hapilot failback, canary steps)",
];

/// Writes the report, metrics and notification.
pub async fn record_run(
    journal: &impl Journal,
    metrics: &impl Metrics,
    notifier: &impl Notifier,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        outcome,
        state,
        started_at,
        run,
    } = parse_input(input)?;
    let finished_at = now_rfc3339();
    let duration_secs = chrono::DateTime::parse_from_rfc3339(&started_at)
        .map(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0
        })
        .unwrap_or(0.0);
    let plan = &state["plan"];
    let at_risk = state["replication"]["assessment"]["at_risk_secs"].as_f64();
    let rto = plan["rto_secs"].as_f64();
    let report = json!({
        "machine": run.machine,
        "execution": run.execution,
        "outcome": outcome,
        "primary_region": plan["primary"]["region"],
        "standby_region": plan["standby"]["region"],
        "tier": plan["tier"],
        "started_at": started_at,
        "finished_at": finished_at,
        "duration_secs": duration_secs,
        "rto_target_secs": rto,
        "within_rto": rto.map(|r| duration_secs <= r),
        "data_at_risk_secs": at_risk,
        "rpo_target_secs": plan["rpo_secs"],
        "weights_before": state["snapshot"]["weights"],
        "weights_after": if !state["final"]["weights"].is_null() { state["final"]["weights"].clone() } else if !state["fail_forward"]["after"].is_null() { state["fail_forward"]["after"].clone() } else { state["shift"]["after"].clone() },
        "traffic_switch": state["plan"]["traffic_switch"],
        "votes": state["plan"]["votes"],
        "canary_steps": state["steps"],
        "promotion": state["promotion"]["outcome"],
        "fence": state["fence"]["database"],
        "approval": state["approval"],
        "error": state["error"],
        "incident": plan["incident"],
        "mode": plan["mode"],
        "catchup": state["catchup"],
        "unfence": state["unfence"],
        "rebuild": state["rebuild"],
        "streaming": state["streaming"],
        "restore": if run.machine == "dr-restore" {
            json!({
                "summary": plan["summary"], "target": plan["target"],
                "verification": state["verification"], "vault": state["vault_restore"],
                "database": state["database_restore"], "readiness": state["readiness"],
                "dns_switch": state["approval"],
            })
        } else {
            Value::Null
        },
    });
    // Named after what ran, so a dashboard never mixes a restore's duration with a failover's.
    let what = match run.machine.as_str() {
        "failover" => "Failover",
        "failback" => "Failback",
        "reprotect" => "Reprotect",
        "dr-restore" => "Restore",
        _ => "Run",
    };
    let succeeded = matches!(outcome.as_str(), "succeeded" | "reprotected" | "restored");
    let mut values = vec![
        MetricValue::seconds(format!("{what}DurationSeconds"), duration_secs),
        MetricValue::count(
            format!("{what}Succeeded"),
            if succeeded { 1.0 } else { 0.0 },
        ),
    ];
    // A DR restore's RPO, from its data check (the newest restored row vs the target).
    if let Some(secs) = state["readiness"]["data_check"]["rpo_secs"].as_f64() {
        values.push(MetricValue::seconds("RestoreRpoSeconds", secs));
    }
    if let Some(secs) = at_risk {
        values.push(MetricValue::seconds("DataAtRiskSeconds", secs));
    }
    let region = plan["standby"]["region"]
        .as_str()
        .unwrap_or("unknown")
        .to_string();
    let mut message = format!(
        "hapilot {machine} run {execution}: {outcome}\n{primary} -> {standby}, {duration_secs:.1} s, data at risk: {risk}\n",
        machine = run.machine,
        execution = run.execution,
        primary = plan["primary"]["region"].as_str().unwrap_or("?"),
        standby = plan["standby"]["region"].as_str().unwrap_or("?"),
        risk = at_risk
            .map(|s| format!("{s:.1} s"))
            .unwrap_or_else(|| "unknown".into()),
    );
    if !state["error"].is_null() {
        message.push_str(&format!("error: {}\n", state["error"]));
    }
    if outcome == "failed_forward" {
        message.push_str(&format!(
            "\nACTION NEEDED: the standby database is promoted; traffic stays on {standby} (fail \
             forward: {forward}). Finish what failed by hand; never send traffic back to the fenced primary.\n",
            standby = plan["standby"]["region"].as_str().unwrap_or("?"),
            forward = if state["fail_forward_error"].is_null() {
                "switched to the standby".to_string()
            } else {
                format!("the switch failed too: {}", state["fail_forward_error"])
            },
        ));
    }
    if outcome == "succeeded" && run.machine == "failover" {
        message.push_str("\nPOST-FAILOVER ACTIONS:\n");
        for (i, action) in POST_FAILOVER_ACTIONS.iter().enumerate() {
            message.push_str(&format!("{}. {action}\n", i + 1));
        }
    }
    let publication = Publication {
        json_key: format!("reports/{}/{}.json", run.machine, run.execution),
        report,
        markdown: None,
        metrics: vec![MetricBatch {
            namespace: "hapilot".into(),
            dimensions: vec![
                ("StateMachine".into(), run.machine.clone()),
                ("Region".into(), region),
            ],
            values,
        }],
        notification: Some((format!("hapilot {}: {outcome}", run.machine), message)),
    };
    publish(journal, metrics, notifier, &publication).await?;
    record(journal, &run, json!({ "after": publication.report })).await?;
    Ok(publication.report)
}
