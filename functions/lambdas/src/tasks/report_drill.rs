//! Task `report-drill`: judge the DR drill against its targets and write its report
//! (`reports/dr-drill/<execution>.{json,md}`: timeline, the children's runs, RTO, RPO,
//! PASSED/FAILED, the fail-back decision), metrics and a notification. Runs after the failover
//! and again after the fail-back decision, rewriting the same report.
//! Input: `{"plan", "failover": <describe-run>, "before", "after"?, "failback"?, "decision"?, "run"}`.

use hapilot_adapters::journal::Journal;
use hapilot_adapters::monitoring::{MetricValue, Metrics};
use hapilot_adapters::notifier::Notifier;
use hapilot_core::drill::{
    ChildRun, DrillPlan, drill_markdown, drill_measurement, failback_decision, judge_drill,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;
use crate::publish::{MetricBatch, Publication, publish};
use crate::run::RunContext;

#[derive(Deserialize)]
struct Input {
    plan: DrillPlan,
    failover: Value,
    before: Value,
    #[serde(default)]
    after: Value,
    #[serde(default)]
    failback: Value,
    #[serde(default)]
    decision: Value,
    run: RunContext,
}

/// Judges and reports.
pub async fn report_drill(
    journal: &impl Journal,
    metrics: &impl Metrics,
    notifier: &impl Notifier,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        plan,
        failover,
        before,
        after,
        failback,
        decision,
        run,
    } = parse_input(input)?;
    let child = |v: &Value| serde_json::from_value::<ChildRun>(v.clone()).unwrap_or_default();
    let failover_run = child(&failover);
    // The drill ends after this report unless its failover succeeded and a failback decision
    // follows: then it gives the platform's run lock back (its children ran under it).
    if run.state != "JudgeDrill" || failover_run.status.as_deref() != Some("SUCCEEDED") {
        crate::run::release_run_lock(journal, &run).await;
    }
    let failback_run = (!failback.is_null()).then(|| child(&failback));
    let measured = drill_measurement(
        &failover_run,
        before["newest_epoch"].as_f64(),
        after["newest_epoch"].as_f64(),
    );
    let verdict = judge_drill(&measured, &plan);
    let decided = failback_decision(&decision);
    let report = json!({
        "execution": run.execution,
        // When the drill was judged: readiness reads the newest passed drill's age from it.
        "finished_at": crate::run::now_rfc3339(),
        "verdict": verdict.verdict,
        "reasons": verdict.reasons,
        "tier": plan.tier,
        "rto_secs": verdict.rto_secs,
        "rto_target_secs": plan.rto_target_secs,
        "rpo_secs": verdict.rpo_secs,
        "rpo_target_secs": plan.rpo_target_secs,
        "primary_region": plan.primary_region,
        "standby_region": plan.standby_region,
        "failover": failover,
        "data_before": before,
        "data_after": after,
        "failback": failback,
        "failback_decision": decided,
    });
    let stem = format!("reports/dr-drill/{}", run.execution);
    let md = drill_markdown(
        &run.execution,
        &plan,
        &verdict,
        &failover_run,
        failback_run.as_ref(),
        decided,
    );
    let passed = verdict.verdict == "PASSED";
    let publication = Publication {
        json_key: format!("{stem}.json"),
        report,
        notification: Some((
            format!("hapilot DR drill {}: {}", run.execution, verdict.verdict),
            md.clone(),
        )),
        urgency: hapilot_core::paging::Urgency::of_run_end("dr-drill", passed),
        markdown: Some((format!("{stem}.md"), md)),
        metrics: vec![MetricBatch {
            namespace: "hapilot".into(),
            dimensions: vec![("StateMachine".into(), "dr-drill".into())],
            values: drill_metrics(&verdict),
        }],
    };
    publish(journal, metrics, notifier, &publication).await?;
    Ok(json!({
        "verdict": verdict.verdict,
        "passed": passed,
        "rto_secs": verdict.rto_secs,
        "rpo_secs": verdict.rpo_secs,
        "reasons": verdict.reasons.join("; "),
        "report_key": format!("{stem}.json"),
    }))
}

/// The drill's metrics: passed (1/0), and RTO and RPO where measured.
fn drill_metrics(verdict: &hapilot_core::drill::DrillVerdict) -> Vec<MetricValue> {
    let passed = verdict.verdict == "PASSED";
    let mut values = vec![MetricValue::count(
        "DrillPassed",
        if passed { 1.0 } else { 0.0 },
    )];
    for (name, v) in [
        ("DrillRtoSeconds", verdict.rto_secs),
        ("DrillRpoSeconds", verdict.rpo_secs),
    ] {
        values.extend(v.map(|v| MetricValue::seconds(name, v)));
    }
    values
}
