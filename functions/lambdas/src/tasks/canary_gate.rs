//! Task `canary-gate`: measure the primary region's error rate over the bake window and decide
//! whether the failback may go on. With `policy.judge`, the canary is also compared with the
//! baseline region metric by metric ([`hapilot_core::canary_judge`]: error counts and the
//! provider's latency series over the same window), and the worse verdict decides.
//! Input: `{"region", "baseline_region"?, "window_seconds", "policy", "counters"?, "step",
//! "run"}`; output: the [`hapilot_core::canary::GateOutcome`] plus the raw measurements and the
//! judge's table (`judgement`), so the journal and the report show why.

use hapilot_adapters::canary_metrics::TrafficMetrics;
use hapilot_adapters::journal::Journal;
use hapilot_core::canary::{CanaryPolicy, GateCounters, judge_canary, with_judgement};
use hapilot_core::canary_judge::{ErrorCounts, LatencySamples, judge};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
struct Input {
    region: String,
    #[serde(default)]
    baseline_region: Option<String>,
    window_seconds: u64,
    policy: CanaryPolicy,
    #[serde(default)]
    counters: GateCounters,
    step: i64,
    run: RunContext,
}

/// Measures and judges once.
pub async fn canary_gate(
    traffic: &impl TrafficMetrics,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        region,
        baseline_region,
        window_seconds,
        policy,
        counters,
        step,
        run,
    } = parse_input(input)?;
    policy.validate()?;
    if policy.judge.is_some() && baseline_region.is_none() {
        return Err(FunctionError::Core(hapilot_core::CoreError::invalid(
            "baseline_region",
            "the judge compares the canary with a baseline: name the region carrying the traffic now",
        )));
    }
    let measure = |r: &str| {
        let r = r.to_string();
        async move {
            traffic
                .measure(&r, window_seconds)
                .await
                .map_err(|e| e.to_string())
        }
    };
    let primary = measure(&region).await;
    let baseline = match &baseline_region {
        Some(b) => Some(measure(b).await),
        None => None,
    };
    let mut outcome = judge_canary(primary.clone(), baseline.clone(), &policy, counters);
    let judgement = match (&policy.judge, &baseline_region) {
        (Some(judge_policy), Some(baseline_region)) => {
            let errors = ErrorCounts {
                canary: counts(&primary),
                baseline: baseline.as_ref().and_then(counts),
            };
            let latencies = latencies(traffic, (&region, baseline_region), window_seconds).await;
            let judgement = judge(
                &errors,
                &latencies,
                policy.min_requests,
                policy.max_error_rate,
                judge_policy,
            );
            outcome = with_judgement(outcome, &judgement, &policy, counters);
            Some(judgement)
        }
        _ => None,
    };
    let mut out =
        serde_json::to_value(&outcome).map_err(|e| FunctionError::Setup(e.to_string()))?;
    out["judgement"] = json!(judgement);
    out["step"] = json!(step);
    out["region"] = json!(region);
    out["measurement"] = shown(Some(&primary));
    out["baseline"] = shown(baseline.as_ref());
    tracing::info!(step, verdict = ?outcome.verdict, decision = ?outcome.decision, summary = %outcome.summary, "canary gate");
    record(journal, &run, json!({ "measurements": out })).await?;
    Ok(out)
}

type Measured = Result<hapilot_core::canary::TrafficMeasurement, String>;

/// Errors and requests of a measurement that worked.
fn counts(m: &Measured) -> Option<(f64, f64)> {
    m.as_ref().ok().map(|m| (m.errors, m.requests))
}

/// A measurement as the journal shows it: the numbers, or what went wrong.
fn shown(m: Option<&Measured>) -> Value {
    match m {
        Some(Ok(m)) => json!(m),
        Some(Err(e)) => json!({ "error": e }),
        None => Value::Null,
    }
}

/// Each latency series of the canary beside the baseline's series of the same name.
async fn latencies(
    traffic: &impl TrafficMetrics,
    (canary, baseline): (&str, &str),
    window_seconds: u64,
) -> Vec<LatencySamples> {
    let (canary, base) = (
        traffic.latency(canary, window_seconds).await,
        traffic.latency(baseline, window_seconds).await,
    );
    canary
        .into_iter()
        .map(|(metric, samples)| LatencySamples {
            baseline: base
                .iter()
                .find(|(m, _)| *m == metric)
                .and_then(|(_, s)| s.clone()),
            canary: samples,
            metric,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::canary_metrics::MemoryTrafficMetrics;
    use hapilot_adapters::journal::MemoryJournal;
    use hapilot_core::canary::TrafficMeasurement;

    fn traffic(canary_errors: f64, latency: (f64, f64)) -> MemoryTrafficMetrics {
        let mut t = MemoryTrafficMetrics::default();
        let seen = |errors: f64| TrafficMeasurement {
            requests: 1_000.0,
            errors,
        };
        t.regions.insert("us-east-1".into(), seen(canary_errors));
        t.regions.insert("us-west-2".into(), seen(1.0));
        // Sixty samples around each mean, the same spread.
        let series = |mean: f64| {
            Some(
                (0..60)
                    .map(|i| mean + f64::from(i % 7) * 0.01)
                    .collect::<Vec<_>>(),
            )
        };
        t.latencies.insert(
            "us-east-1".into(),
            vec![("p95_latency".into(), series(latency.0))],
        );
        t.latencies.insert(
            "us-west-2".into(),
            vec![("p95_latency".into(), series(latency.1))],
        );
        t
    }

    fn input(judge: bool, baseline: Option<&str>) -> Value {
        let mut policy = json!({"max_error_rate": 0.01, "min_requests": 10});
        if judge {
            policy["judge"] = json!({});
        }
        json!({
            "region": "us-east-1", "baseline_region": baseline, "window_seconds": 60,
            "policy": policy, "step": 25,
            "run": RunContext::fixture_json("failback", "CanaryGate"),
        })
    }

    #[tokio::test]
    async fn a_canary_within_its_limits_proceeds_and_the_journal_shows_the_numbers() {
        let journal = MemoryJournal::default();
        let out = canary_gate(
            &traffic(2.0, (0.2, 0.2)),
            &journal,
            input(false, Some("us-west-2")),
        )
        .await
        .unwrap();
        assert_eq!(
            (out["verdict"].as_str(), out["decision"].as_str()),
            (Some("pass"), Some("proceed")),
            "{out:#}"
        );
        assert_eq!(out["measurement"]["errors"], 2.0);
        assert_eq!(out["baseline"]["errors"], 1.0);
        let step = RunContext::fixture("failback", "CanaryGate").key();
        assert_eq!(
            hapilot_adapters::journal::Journal::get(&journal, &step)
                .await
                .unwrap()
                .unwrap()["measurements"],
            out
        );
    }

    #[tokio::test]
    async fn the_judge_fails_a_canary_whose_latency_is_far_over_the_baselines() {
        let out = canary_gate(
            &traffic(1.0, (2.0, 0.2)),
            &MemoryJournal::default(),
            input(true, Some("us-west-2")),
        )
        .await
        .unwrap();
        assert_eq!(out["verdict"], "fail", "{out:#}");
        assert_ne!(out["decision"], "proceed", "{out:#}");
        assert_eq!(
            out["judgement"]["metrics"][1]["metric"], "p95_latency",
            "{out:#}"
        );
    }

    #[tokio::test]
    async fn a_judge_without_a_baseline_is_refused_before_anything_is_measured() {
        let err = canary_gate(
            &MemoryTrafficMetrics::default(),
            &MemoryJournal::default(),
            input(true, None),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("baseline_region"), "{err}");
    }
}
