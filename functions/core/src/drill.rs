//! The DR drill (the HA document's `dr-drill.sh`): a failover run as a child, measured against
//! the tier's RTO and RPO, then a human decides whether to fail back (a canary failback child)
//! or stay.

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::failover::FailoverMode;
use crate::restore::DataCheck;
use crate::tier::Tier;

/// The dr-drill state machine's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillRequest {
    /// The region failed away from.
    pub primary_region: String,
    /// The region failed over to.
    pub standby_region: String,
    /// `graceful` (default: a drill is planned) or `ungraceful`.
    #[serde(default)]
    pub mode: Option<FailoverMode>,
    /// The RPO data check (newest row time on both sides).
    pub data_check: DataCheck,
    /// Tier whose targets the drill is judged by (default: the deployment's).
    #[serde(default)]
    pub tier: Option<Tier>,
    /// Stricter RTO for a rehearsal, seconds (default: the tier's).
    #[serde(default)]
    pub rto_target_secs: Option<f64>,
    /// Stricter RPO, seconds (default: the tier's).
    #[serde(default)]
    pub rpo_target_secs: Option<f64>,
    /// Further fields for the failover child (probe settings, timeouts).
    #[serde(default)]
    pub failover: serde_json::Map<String, serde_json::Value>,
    /// Further fields for the failback child (steps, bake time, gate).
    #[serde(default)]
    pub failback: serde_json::Map<String, serde_json::Value>,
    /// How long to wait for the fail-back decision, seconds (default 3600).
    #[serde(default)]
    pub approval_timeout_seconds: Option<u64>,
}

/// Fields the drill sets on its children itself.
const OWNED: [&str; 3] = ["primary_region", "standby_region", "mode"];

/// The planned drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillPlan {
    /// Tier.
    pub tier: Tier,
    /// RTO target, seconds.
    pub rto_target_secs: f64,
    /// RPO target, seconds.
    pub rpo_target_secs: f64,
    /// The failover child's input.
    pub failover_input: serde_json::Value,
    /// The failback child's input.
    pub failback_input: serde_json::Value,
    /// Where the data check runs before (the primary) and after (the new primary).
    pub primary_region: String,
    /// The region failed over to.
    pub standby_region: String,
    /// The data check.
    pub data_check: DataCheck,
    /// Seconds between looks at a child run.
    pub poll_seconds: u64,
    /// Fail-back decision timeout, seconds.
    pub approval_timeout_seconds: u64,
}

/// Validates a request and builds the children's inputs.
pub fn plan_drill(request: DrillRequest, default_tier: Tier) -> Result<DrillPlan, CoreError> {
    request.data_check.validate()?;
    if request.primary_region == request.standby_region {
        return Err(CoreError::invalid(
            "standby_region",
            "must differ from primary_region",
        ));
    }
    for (field, extra) in [
        ("failover", &request.failover),
        ("failback", &request.failback),
    ] {
        if let Some(k) = OWNED.iter().find(|k| extra.contains_key(**k)) {
            return Err(CoreError::invalid(
                format!("{field}.{k}"),
                "is set by the drill itself; put it at the top level",
            ));
        }
    }
    let tier = request.tier.unwrap_or(default_tier);
    let positive = |v: Option<f64>, field: &str, default: u64| match v {
        Some(x) if x <= 0.0 || !x.is_finite() => Err(CoreError::invalid(
            field,
            "must be a positive number of seconds",
        )),
        Some(x) => Ok(x),
        None => Ok(default as f64),
    };
    let mode = request.mode.unwrap_or(FailoverMode::Graceful);
    let child = |extra: &serde_json::Map<String, serde_json::Value>, with_mode: bool| {
        let mut input = extra.clone();
        input.insert(
            "primary_region".into(),
            request.primary_region.clone().into(),
        );
        input.insert(
            "standby_region".into(),
            request.standby_region.clone().into(),
        );
        if with_mode {
            input.insert(
                "mode".into(),
                serde_json::to_value(mode).unwrap_or_default(),
            );
        }
        serde_json::Value::Object(input)
    };
    Ok(DrillPlan {
        tier,
        rto_target_secs: positive(request.rto_target_secs, "rto_target_secs", tier.rto_secs())?,
        rpo_target_secs: positive(request.rpo_target_secs, "rpo_target_secs", tier.rpo_secs())?,
        failover_input: child(&request.failover, true),
        failback_input: child(&request.failback, false),
        primary_region: request.primary_region,
        standby_region: request.standby_region,
        data_check: request.data_check,
        poll_seconds: 2,
        approval_timeout_seconds: request.approval_timeout_seconds.unwrap_or(3_600),
    })
}

/// What the drill measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillMeasurement {
    /// The failover child's status.
    pub failover_status: String,
    /// Seconds from the failover's start to its verified end.
    pub rto_secs: Option<f64>,
    /// Newest row on the primary before the failover (epoch seconds).
    pub primary_newest: Option<f64>,
    /// Newest of those rows found on the new primary afterwards.
    pub standby_newest: Option<f64>,
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillVerdict {
    /// `PASSED` or `FAILED`.
    pub verdict: String,
    /// RTO, seconds.
    pub rto_secs: Option<f64>,
    /// RPO, seconds: how much older the newest surviving row is than the newest written.
    pub rpo_secs: Option<f64>,
    /// Why it failed, in plain words (empty when it passed).
    pub reasons: Vec<String>,
}

/// Judges the drill against its targets.
pub fn judge_drill(m: &DrillMeasurement, plan: &DrillPlan) -> DrillVerdict {
    let mut reasons = Vec::new();
    if m.failover_status != "SUCCEEDED" {
        reasons.push(format!("the failover run ended {}", m.failover_status));
    }
    let rpo = match (m.primary_newest, m.standby_newest) {
        (Some(p), Some(s)) => Some((p - s).max(0.0)),
        (Some(_), None) => None,
        (None, _) => Some(0.0),
    };
    match m.rto_secs {
        Some(rto) if rto > plan.rto_target_secs => reasons.push(format!(
            "RTO {rto:.1} s is over the target {:.0} s",
            plan.rto_target_secs
        )),
        None => reasons.push("RTO unknown: the failover did not finish".into()),
        _ => {}
    }
    match rpo {
        Some(r) if r > plan.rpo_target_secs => reasons.push(format!(
            "RPO {r:.1} s is over the target {:.0} s",
            plan.rpo_target_secs
        )),
        None => reasons.push("RPO unknown: no surviving row on the new primary".into()),
        _ => {}
    }
    DrillVerdict {
        verdict: if reasons.is_empty() {
            "PASSED"
        } else {
            "FAILED"
        }
        .into(),
        rto_secs: m.rto_secs,
        rpo_secs: rpo,
        reasons,
    }
}

/// A child run of the drill as `describe-run` reports it (the failover, the fail-back).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChildRun {
    /// Its ARN.
    #[serde(default)]
    pub execution_arn: Option<String>,
    /// RUNNING, SUCCEEDED, FAILED, ...
    #[serde(default)]
    pub status: Option<String>,
    /// How long it ran.
    #[serde(default)]
    pub duration_secs: Option<f64>,
}

/// What the operator chose after the drill's failover: None while undecided.
pub fn failback_decision(decision: &serde_json::Value) -> Option<&'static str> {
    if decision.is_null() {
        None
    } else if decision.is_object() && decision["approved"] != true {
        Some("stay")
    } else {
        Some("fail_back")
    }
}

/// The drill's measurement from its failover child and the data checks before and after.
pub fn drill_measurement(
    failover: &ChildRun,
    primary_newest: Option<f64>,
    standby_newest: Option<f64>,
) -> DrillMeasurement {
    DrillMeasurement {
        failover_status: failover.status.clone().unwrap_or_else(|| "UNKNOWN".into()),
        rto_secs: failover.duration_secs,
        primary_newest,
        standby_newest,
    }
}

/// The drill's report for people: targets, measures, reasons and the fail-back.
pub fn drill_markdown(
    execution: &str,
    plan: &DrillPlan,
    verdict: &DrillVerdict,
    failover: &ChildRun,
    failback: Option<&ChildRun>,
    decision: Option<&str>,
) -> String {
    let secs = |v: Option<f64>| v.map_or("-".to_string(), |s| format!("{s:.1} s"));
    let mut md = format!(
        "# DR drill {}: {}\n\n{} -> {}, tier {} (RTO target {:.0} s, RPO target {:.0} s)\n\n| measure | value | target |\n| --- | ---: | ---: |\n| RTO (failover start -> verified) | {} | {:.0} s |\n| RPO (newest row written - newest row kept) | {} | {:.0} s |\n\nFailover run: `{}` ({}).\n",
        execution,
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
        failover.execution_arn.as_deref().unwrap_or("-"),
        failover.status.as_deref().unwrap_or("UNKNOWN"),
    );
    for reason in &verdict.reasons {
        md.push_str(&format!("\n- {reason}"));
    }
    match (decision, failback) {
        (None, _) => md.push_str("\n\nFail-back: not decided yet.\n"),
        (Some(_), None) => {
            md.push_str("\n\nFail-back: the operator chose to stay in the standby region.\n")
        }
        (Some(_), Some(fb)) => md.push_str(&format!(
            "\n\nFail-back: canary failback `{}` {}.\n",
            fb.execution_arn.as_deref().unwrap_or("-"),
            fb.status.as_deref().unwrap_or("-")
        )),
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> DrillRequest {
        serde_json::from_value(serde_json::json!({
            "primary_region": "us-east-1", "standby_region": "us-west-2",
            "data_check": {"table": "spend_logs", "column": "created_at"},
            "failover": {"probe_samples": 2}
        }))
        .unwrap()
    }

    #[test]
    fn a_drill_is_graceful_and_held_to_the_tier_by_default() {
        let plan = plan_drill(request(), Tier::Critical).unwrap();
        assert_eq!((plan.rto_target_secs, plan.rpo_target_secs), (900.0, 300.0));
        assert_eq!(plan.failover_input["mode"], "graceful");
        assert_eq!(plan.failover_input["probe_samples"], 2);
        assert!(plan.failback_input.get("mode").is_none());
        let mut bad = request();
        bad.failover.insert("mode".into(), "ungraceful".into());
        assert!(
            plan_drill(bad, Tier::Critical)
                .unwrap_err()
                .to_string()
                .contains("failover.mode")
        );
    }

    #[test]
    fn the_verdict_names_what_missed() {
        let plan = plan_drill(request(), Tier::Critical).unwrap();
        let ok = DrillMeasurement {
            failover_status: "SUCCEEDED".into(),
            rto_secs: Some(42.0),
            primary_newest: Some(1_000.0),
            standby_newest: Some(999.5),
        };
        let v = judge_drill(&ok, &plan);
        assert_eq!((v.verdict.as_str(), v.rpo_secs), ("PASSED", Some(0.5)));
        let slow = DrillMeasurement {
            rto_secs: Some(1_000.0),
            ..ok.clone()
        };
        let v = judge_drill(&slow, &plan);
        assert_eq!(v.verdict, "FAILED");
        assert!(v.reasons[0].contains("RTO 1000.0 s is over the target 900 s"));
        let failed = DrillMeasurement {
            failover_status: "FAILED".into(),
            rto_secs: None,
            ..ok
        };
        assert_eq!(judge_drill(&failed, &plan).reasons.len(), 2);
    }

    #[test]
    fn the_failback_decision_and_the_report_text() {
        use serde_json::json;
        assert_eq!(failback_decision(&json!(null)), None);
        assert_eq!(failback_decision(&json!({"approved": false})), Some("stay"));
        assert_eq!(
            failback_decision(&json!({"approved": true})),
            Some("fail_back")
        );
        let plan = plan_drill(
            serde_json::from_value(
                json!({"primary_region": "us-east-1", "standby_region": "us-west-2",
                "data_check": {"table": "spend_logs", "column": "created_at"}}),
            )
            .unwrap(),
            Tier::Critical,
        )
        .unwrap();
        let failover = ChildRun {
            execution_arn: Some("arn:f".into()),
            status: Some("SUCCEEDED".into()),
            duration_secs: Some(30.0),
        };
        let verdict = judge_drill(&drill_measurement(&failover, Some(10.0), Some(10.0)), &plan);
        let md = drill_markdown("d-1", &plan, &verdict, &failover, None, None);
        assert!(md.starts_with("# DR drill d-1: PASSED"), "{md}");
        assert!(
            md.contains("| RTO (failover start -> verified) | 30.0 s | 900 s |"),
            "{md}"
        );
        assert!(md.ends_with("Fail-back: not decided yet.\n"));
        let stayed = drill_markdown("d-1", &plan, &verdict, &failover, None, Some("stay"));
        assert!(stayed.contains("chose to stay"));
    }
}
