//! Task `report-drill`: judge the DR drill against its targets and write its report
//! (`reports/dr-drill/<execution>.{json,md}`: timeline, the children's runs, RTO, RPO,
//! PASSED/FAILED, the fail-back decision), metrics and a notification. Runs after the failover
//! and again after the fail-back decision, rewriting the same report.
//! Input: `{"plan", "failover": <describe-run>, "before", "after"?, "failback"?, "decision"?, "run"}`.

use hapilot_aws::journal::Journal;
use hapilot_aws::monitoring::{MetricValue, Metrics};
use hapilot_aws::notifier::Notifier;
use hapilot_core::drill::{DrillMeasurement, DrillPlan, judge_drill};
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
    let measured = DrillMeasurement {
        failover_status: failover["status"].as_str().unwrap_or("UNKNOWN").to_string(),
        rto_secs: failover["duration_secs"].as_f64(),
        primary_newest: before["newest_epoch"].as_f64(),
        standby_newest: after["newest_epoch"].as_f64(),
    };
    let verdict = judge_drill(&measured, &plan);
    let stay = decision.is_object() && decision["approved"] != true;
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
        "failback_decision": if decision.is_null() { Value::Null } else if stay { json!("stay") } else { json!("fail_back") },
    });
    let stem = format!("reports/dr-drill/{}", run.execution);
    let secs = |v: Option<f64>| v.map_or("-".to_string(), |s| format!("{s:.1} s"));
    let mut md = format!(
        "# DR drill {}: {}\n\n{} -> {}, tier {} (RTO target {:.0} s, RPO target {:.0} s)\n\n| measure | value | target |\n| --- | ---: | ---: |\n| RTO (failover start -> verified) | {} | {:.0} s |\n| RPO (newest row written - newest row kept) | {} | {:.0} s |\n\nFailover run: `{}` ({}).\n",
        run.execution,
        verdict.verdict,
        plan.primary_region,
        plan.standby_region,
        plan.tier.as_str(),
        plan.rto_target_secs,
        plan.rpo_target_secs,
        secs(verdict.rto_secs),
        plan.rto_target_secs,
        secs(verdict.rpo_secs),
        plan.rpo_target_secs,
        failover["execution_arn"].as_str().unwrap_or("-"),
        measured.failover_status,
    );
    for reason in &verdict.reasons {
        md.push_str(&format!("\n- {reason}"));
    }
    match (&decision, &failback) {
        (Value::Null, _) => md.push_str("\n\nFail-back: not decided yet.\n"),
        (_, Value::Null) => {
            md.push_str("\n\nFail-back: the operator chose to stay in the standby region.\n")
        }
        (_, fb) => md.push_str(&format!(
            "\n\nFail-back: canary failback `{}` {}.\n",
            fb["execution_arn"].as_str().unwrap_or("-"),
            fb["status"].as_str().unwrap_or("-")
        )),
    }
    let mut values = vec![MetricValue::count(
        "DrillPassed",
        if verdict.verdict == "PASSED" {
            1.0
        } else {
            0.0
        },
    )];
    for (name, v) in [
        ("DrillRtoSeconds", verdict.rto_secs),
        ("DrillRpoSeconds", verdict.rpo_secs),
    ] {
        values.extend(v.map(|v| MetricValue::seconds(name, v)));
    }
    let publication = Publication {
        json_key: format!("{stem}.json"),
        report,
        notification: Some((
            format!("hapilot DR drill {}: {}", run.execution, verdict.verdict),
            md.clone(),
        )),
        markdown: Some((format!("{stem}.md"), md)),
        metrics: vec![MetricBatch {
            namespace: "hapilot".into(),
            dimensions: vec![("StateMachine".into(), "dr-drill".into())],
            values,
        }],
    };
    publish(journal, metrics, notifier, &publication).await?;
    Ok(json!({
        "verdict": verdict.verdict,
        "passed": verdict.verdict == "PASSED",
        "rto_secs": verdict.rto_secs,
        "rpo_secs": verdict.rpo_secs,
        "reasons": verdict.reasons.join("; "),
        "report_key": format!("{stem}.json"),
    }))
}
