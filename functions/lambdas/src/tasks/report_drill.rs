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
    let report = drill_report(
        &run,
        &plan,
        &verdict,
        [failover, before, after, failback],
        decided,
    );
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

/// The report's JSON: the verdict with its numbers and targets, and what each child run and
/// data check returned.
fn drill_report(
    run: &RunContext,
    plan: &DrillPlan,
    verdict: &hapilot_core::drill::DrillVerdict,
    [failover, before, after, failback]: [Value; 4],
    decided: Option<&str>,
) -> Value {
    json!({
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
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::journal::MemoryJournal;
    use hapilot_adapters::monitoring::MemoryMonitoring;
    use hapilot_adapters::notifier::MemoryNotifier;
    use hapilot_core::run_lock::LOCK_KEY;

    fn input(state: &str, failover: (&str, f64), newest: (f64, f64)) -> Value {
        json!({
            "plan": {
                "tier": "Critical", "rto_target_secs": 900.0, "rpo_target_secs": 60.0,
                "failover_input": {}, "failback_input": {},
                "primary_region": "us-east-1", "standby_region": "us-west-2",
                "data_check": {"table": "spend", "column": "at"},
                "poll_seconds": 2, "approval_timeout_seconds": 3600,
            },
            "failover": {"execution_arn": "arn:failover", "status": failover.0, "duration_secs": failover.1},
            "before": {"newest_epoch": newest.0},
            "after": {"newest_epoch": newest.1},
            "run": RunContext::fixture_json("dr-drill", state),
        })
    }

    async fn report(input: Value) -> (Value, MemoryJournal, MemoryMonitoring, MemoryNotifier) {
        let (journal, metrics, notifier) = <(MemoryJournal, _, _)>::default();
        // The drill holds the platform's run lock while its children run.
        let drill = RunContext::fixture("dr-drill", "JudgeDrill");
        journal
            .put(
                LOCK_KEY,
                &json!({"machine": drill.machine, "execution": drill.execution,
                        "execution_arn": "arn:drill", "taken_at": "2026-12-06T00:00:00Z"}),
            )
            .await
            .unwrap();
        let out = report_drill(&journal, &metrics, &notifier, input)
            .await
            .unwrap();
        (out, journal, metrics, notifier)
    }

    #[tokio::test]
    async fn a_failover_within_both_targets_passes_and_the_drill_keeps_its_lock_for_the_failback() {
        let (out, journal, metrics, notifier) =
            report(input("JudgeDrill", ("SUCCEEDED", 120.0), (100.0, 95.0))).await;
        assert_eq!(
            (out["verdict"].as_str(), out["passed"].as_bool()),
            (Some("PASSED"), Some(true)),
            "{out:#}"
        );
        assert_eq!(
            (out["rto_secs"].as_f64(), out["rpo_secs"].as_f64()),
            (Some(120.0), Some(5.0))
        );
        let written = journal
            .get("reports/dr-drill/dr-drill-unit.json")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(written["rpo_target_secs"], 60.0);
        assert_eq!(written["data_after"]["newest_epoch"], 95.0);
        assert!(journal.text("reports/dr-drill/dr-drill-unit.md").is_some());
        assert_eq!(metrics.last("DrillPassed"), Some(1.0));
        assert_eq!(metrics.last("DrillRtoSeconds"), Some(120.0));
        assert!(
            notifier.sent()[0].0.ends_with("PASSED"),
            "{:?}",
            notifier.sent()
        );
        assert!(
            journal.get(LOCK_KEY).await.unwrap().is_some(),
            "a failback decision follows"
        );
    }

    #[tokio::test]
    async fn a_failed_failover_fails_the_drill_with_the_reason_and_gives_the_lock_back() {
        let (out, journal, metrics, _) =
            report(input("JudgeDrill", ("FAILED", 30.0), (100.0, 30.0))).await;
        assert_eq!(out["passed"], false);
        let reasons = out["reasons"].as_str().unwrap();
        assert!(
            reasons.contains("the failover run ended FAILED"),
            "{reasons}"
        );
        assert!(reasons.contains("RPO 70.0 s is over"), "{reasons}");
        assert_eq!(metrics.last("DrillPassed"), Some(0.0));
        assert_eq!(
            journal.get(LOCK_KEY).await.unwrap(),
            None,
            "the drill ends here"
        );
    }
}
