//! Canary judgement for failback: is the primary region, now carrying a share of the traffic,
//! healthy enough to get more?
//!
//! Modelled on Argo Rollouts' analysis: a measurement passes, fails, or is inconclusive (too
//! little traffic to judge); failures, inconclusive results and provider errors are counted
//! against limits, and what happens next is one of proceed, measure again, ask a human, or roll
//! back. A provider error is never a pass.

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// The gate's limits (state machine input, with defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryPolicy {
    /// Highest acceptable error rate (errors / requests), e.g. `0.01` for 1 %.
    #[serde(default = "default_max_error_rate")]
    pub max_error_rate: f64,
    /// Fewer requests than this in the window is inconclusive, not a pass.
    #[serde(default = "default_min_requests")]
    pub min_requests: f64,
    /// Failed measurements tolerated at one step before rolling back (0: the first one rolls back).
    #[serde(default)]
    pub failure_limit: u32,
    /// Inconclusive measurements tolerated at one step before asking a human.
    #[serde(default)]
    pub inconclusive_limit: u32,
    /// Consecutive provider errors tolerated before rolling back.
    #[serde(default = "default_error_limit")]
    pub error_limit: u32,
    /// When set, the primary also fails if its error rate exceeds the standby's (the baseline,
    /// over the same window) by more than this many percentage points (as a fraction).
    #[serde(default)]
    pub max_increase_over_baseline: Option<f64>,
    /// The statistical judge (canary against baseline, per metric: see
    /// [`crate::canary_judge`]); off when absent.
    #[serde(default)]
    pub judge: Option<crate::canary_judge::JudgePolicy>,
    /// The judge's verdicts are reported but do not act (Argo Rollouts' dry run): the
    /// decision stays the error-rate gate's.
    #[serde(default)]
    pub dry_run: bool,
}

fn default_max_error_rate() -> f64 {
    0.01
}
fn default_min_requests() -> f64 {
    100.0
}
fn default_error_limit() -> u32 {
    2
}

impl Default for CanaryPolicy {
    fn default() -> Self {
        Self {
            max_error_rate: default_max_error_rate(),
            min_requests: default_min_requests(),
            failure_limit: 0,
            inconclusive_limit: 0,
            error_limit: default_error_limit(),
            max_increase_over_baseline: None,
            judge: None,
            dry_run: false,
        }
    }
}

impl CanaryPolicy {
    /// Checks the limits are meaningful.
    pub fn validate(&self) -> Result<(), CoreError> {
        if !(0.0..=1.0).contains(&self.max_error_rate) {
            return Err(CoreError::invalid(
                "gate.max_error_rate",
                "must be 0 to 1 (a fraction, 0.01 is 1 %)",
            ));
        }
        if self.min_requests.is_nan() || self.min_requests < 0.0 {
            return Err(CoreError::invalid("gate.min_requests", "must be 0 or more"));
        }
        if let Some(d) = self.max_increase_over_baseline
            && !(0.0..=1.0).contains(&d)
        {
            return Err(CoreError::invalid(
                "gate.max_increase_over_baseline",
                "must be 0 to 1",
            ));
        }
        if let Some(judge) = &self.judge {
            judge.validate()?;
        }
        Ok(())
    }
}

/// Requests and errors of one region over the window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrafficMeasurement {
    /// Requests in the window.
    pub requests: f64,
    /// Failed (5xx) requests in the window.
    pub errors: f64,
}

impl TrafficMeasurement {
    /// errors / requests (0 without requests).
    pub fn error_rate(&self) -> f64 {
        if self.requests > 0.0 {
            self.errors / self.requests
        } else {
            0.0
        }
    }
}

/// One measurement's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryVerdict {
    /// Within the limits.
    Pass,
    /// Over the limits.
    Fail,
    /// Too little traffic to judge.
    Inconclusive,
    /// The metrics provider could not answer.
    Error,
}

/// What the failback does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateDecision {
    /// Go to the next step.
    Proceed,
    /// Bake and measure again at this step.
    Remeasure,
    /// Pause for a human.
    AskHuman,
    /// Roll back to the standby.
    Rollback,
}

/// Counters carried from one measurement to the next within a step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateCounters {
    /// Failed measurements.
    #[serde(default)]
    pub failures: u32,
    /// Inconclusive measurements.
    #[serde(default)]
    pub inconclusives: u32,
    /// Consecutive provider errors.
    #[serde(default)]
    pub errors: u32,
}

/// The gate's full answer: kept in the journal so it shows why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateOutcome {
    /// The verdict of this measurement.
    pub verdict: CanaryVerdict,
    /// What to do next.
    pub decision: GateDecision,
    /// Counters after this measurement.
    pub counters: GateCounters,
    /// The primary's error rate, when measured.
    pub error_rate: Option<f64>,
    /// The standby's error rate, when measured.
    pub baseline_error_rate: Option<f64>,
    /// In words, with the numbers.
    pub summary: String,
}

/// Judges one measurement of the primary (and optionally the baseline) against `policy`.
pub fn judge_canary(
    primary: Result<TrafficMeasurement, String>,
    baseline: Option<Result<TrafficMeasurement, String>>,
    policy: &CanaryPolicy,
    counters: GateCounters,
) -> GateOutcome {
    let mut c = counters;
    let pct = |r: f64| format!("{:.2} %", r * 100.0);
    let measured = match primary {
        Err(e) => {
            c.errors += 1;
            let decision = if c.errors > policy.error_limit {
                GateDecision::Rollback
            } else {
                GateDecision::Remeasure
            };
            return GateOutcome {
                verdict: CanaryVerdict::Error,
                decision,
                counters: c,
                error_rate: None,
                baseline_error_rate: None,
                summary: format!(
                    "metrics provider error {}/{} (never a pass): {e}",
                    c.errors,
                    policy.error_limit + 1
                ),
            };
        }
        Ok(m) => m,
    };
    c.errors = 0;
    let rate = measured.error_rate();
    let baseline_rate = baseline
        .and_then(|b| b.ok())
        .filter(|b| b.requests >= policy.min_requests)
        .map(|b| b.error_rate());
    let (verdict, why) = if measured.requests < policy.min_requests {
        (
            CanaryVerdict::Inconclusive,
            format!(
                "{:.0} requests in the window, fewer than the {:.0} needed to judge",
                measured.requests, policy.min_requests
            ),
        )
    } else if rate > policy.max_error_rate {
        (
            CanaryVerdict::Fail,
            format!(
                "error rate {} ({:.0} of {:.0}) over the {} limit",
                pct(rate),
                measured.errors,
                measured.requests,
                pct(policy.max_error_rate)
            ),
        )
    } else if let (Some(delta), Some(base)) = (policy.max_increase_over_baseline, baseline_rate)
        && rate - base > delta
    {
        (
            CanaryVerdict::Fail,
            format!(
                "error rate {} exceeds the standby's {} by more than {}",
                pct(rate),
                pct(base),
                pct(delta)
            ),
        )
    } else {
        (
            CanaryVerdict::Pass,
            format!(
                "error rate {} ({:.0} of {:.0}) within {}",
                pct(rate),
                measured.errors,
                measured.requests,
                pct(policy.max_error_rate)
            ),
        )
    };
    let decision = next_step(verdict, &mut c, policy);
    GateOutcome {
        verdict,
        decision,
        counters: c,
        error_rate: Some(rate),
        baseline_error_rate: baseline_rate,
        summary: why,
    }
}

/// What a measured verdict leads to, counting it against the step's limits (Argo Rollouts'
/// failure and inconclusive limits).
fn next_step(verdict: CanaryVerdict, c: &mut GateCounters, policy: &CanaryPolicy) -> GateDecision {
    match verdict {
        CanaryVerdict::Pass => GateDecision::Proceed,
        CanaryVerdict::Fail => {
            c.failures += 1;
            if c.failures > policy.failure_limit {
                GateDecision::Rollback
            } else {
                GateDecision::Remeasure
            }
        }
        CanaryVerdict::Inconclusive => {
            c.inconclusives += 1;
            if c.inconclusives > policy.inconclusive_limit {
                GateDecision::AskHuman
            } else {
                GateDecision::Remeasure
            }
        }
        CanaryVerdict::Error => {
            c.errors += 1;
            if c.errors > policy.error_limit {
                GateDecision::Rollback
            } else {
                GateDecision::Remeasure
            }
        }
    }
}

/// The error-rate gate's outcome (`gate`, judged from `counters`) with the statistical
/// judge's verdict folded in: the worse of the two decides, unless the policy is a dry run
/// (then the judge only reports). With the judge on, a metrics outage is inconclusive (the
/// bake goes on, then a human decides with the numbers), not a rollback: no data says nothing
/// about the canary.
pub fn with_judgement(
    gate: GateOutcome,
    judgement: &crate::canary_judge::Judgement,
    policy: &CanaryPolicy,
    counters: GateCounters,
) -> GateOutcome {
    use crate::canary_judge::MetricVerdict;
    if policy.dry_run {
        return GateOutcome {
            summary: format!(
                "{}; judge (dry run, not acted on): {}",
                gate.summary, judgement.summary
            ),
            ..gate
        };
    }
    let judged = match judgement.verdict {
        MetricVerdict::Pass => CanaryVerdict::Pass,
        MetricVerdict::Fail => CanaryVerdict::Fail,
        MetricVerdict::Inconclusive => CanaryVerdict::Inconclusive,
    };
    let rank = |v: CanaryVerdict| match v {
        CanaryVerdict::Pass => 0,
        CanaryVerdict::Inconclusive => 1,
        CanaryVerdict::Fail => 2,
        CanaryVerdict::Error => 3,
    };
    let gate_verdict = match gate.verdict {
        CanaryVerdict::Error => CanaryVerdict::Inconclusive,
        other => other,
    };
    let verdict = if rank(judged) > rank(gate_verdict) {
        judged
    } else {
        gate_verdict
    };
    let mut c = GateCounters {
        errors: 0,
        ..counters
    };
    let decision = next_step(verdict, &mut c, policy);
    GateOutcome {
        verdict,
        decision,
        counters: c,
        summary: format!("{}; judge: {}", gate.summary, judgement.summary),
        ..gate
    }
}

/// Checks a list of canary steps: 1 to 100, strictly increasing, ending at 100.
pub fn validate_steps(steps: &[i64]) -> Result<(), CoreError> {
    if steps.is_empty() || steps.len() > 20 {
        return Err(CoreError::invalid("steps", "must list 1 to 20 weights"));
    }
    if steps.iter().any(|s| !(1..=100).contains(s)) || steps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(CoreError::invalid(
            "steps",
            format!("must rise strictly within 1..=100 (got {steps:?})"),
        ));
    }
    if steps.last() != Some(&100) {
        return Err(CoreError::invalid(
            "steps",
            "must end at 100: a failback that stops halfway is not done",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(requests: f64, errors: f64) -> Result<TrafficMeasurement, String> {
        Ok(TrafficMeasurement { requests, errors })
    }

    fn judged(verdict: crate::canary_judge::MetricVerdict) -> crate::canary_judge::Judgement {
        crate::canary_judge::Judgement {
            verdict,
            score: 0.0,
            metrics: vec![],
            alpha_per_test: 0.01,
            summary: format!("{verdict:?}"),
        }
    }

    /// The judge's fail rolls back a step the error rate passed; its inconclusive measures
    /// again up to the limit, then asks a human; a dry run only reports; a provider error
    /// stays an error.
    #[test]
    fn the_judge_folds_into_the_decision() {
        use crate::canary_judge::MetricVerdict::*;
        let policy = CanaryPolicy {
            judge: Some(Default::default()),
            inconclusive_limit: 1,
            ..CanaryPolicy::default()
        };
        let z = GateCounters::default();
        let gate = |c| judge_canary(m(1000.0, 1.0), None, &policy, c);
        let out = with_judgement(gate(z), &judged(Fail), &policy, z);
        assert_eq!(
            (out.verdict, out.decision),
            (CanaryVerdict::Fail, GateDecision::Rollback)
        );
        assert!(out.summary.contains("judge: Fail"), "{}", out.summary);
        let once = with_judgement(gate(z), &judged(Inconclusive), &policy, z);
        assert_eq!(once.decision, GateDecision::Remeasure);
        let twice = with_judgement(
            gate(once.counters),
            &judged(Inconclusive),
            &policy,
            once.counters,
        );
        assert_eq!(twice.decision, GateDecision::AskHuman);
        let pass = with_judgement(gate(z), &judged(Pass), &policy, z);
        assert_eq!(pass.decision, GateDecision::Proceed);
        let dry = CanaryPolicy {
            dry_run: true,
            ..policy
        };
        let out = with_judgement(
            judge_canary(m(1000.0, 1.0), None, &dry, z),
            &judged(Fail),
            &dry,
            z,
        );
        assert_eq!(out.decision, GateDecision::Proceed);
        assert!(out.summary.contains("dry run"), "{}", out.summary);
        let error = judge_canary(Err("down".into()), None, &policy, z);
        let out = with_judgement(error, &judged(Inconclusive), &policy, z);
        assert_eq!(
            (out.verdict, out.decision),
            (CanaryVerdict::Inconclusive, GateDecision::Remeasure)
        );
    }

    #[test]
    fn decisions_follow_the_limits() {
        let p = CanaryPolicy::default();
        let z = GateCounters::default();
        assert_eq!(
            judge_canary(m(1000.0, 5.0), None, &p, z).decision,
            GateDecision::Proceed
        );
        let fail = judge_canary(m(1000.0, 250.0), None, &p, z);
        assert_eq!(
            (fail.verdict, fail.decision),
            (CanaryVerdict::Fail, GateDecision::Rollback)
        );
        assert!(fail.summary.contains("25.00 %"), "{}", fail.summary);
        let thin = judge_canary(m(10.0, 0.0), None, &p, z);
        assert_eq!(
            (thin.verdict, thin.decision),
            (CanaryVerdict::Inconclusive, GateDecision::AskHuman)
        );
        let e1 = judge_canary(Err("timeout".into()), None, &p, z);
        assert_eq!(
            (e1.verdict, e1.decision),
            (CanaryVerdict::Error, GateDecision::Remeasure)
        );
        let e3 = judge_canary(
            Err("timeout".into()),
            None,
            &p,
            GateCounters { errors: 2, ..z },
        );
        assert_eq!(e3.decision, GateDecision::Rollback);
        let tolerant = CanaryPolicy {
            failure_limit: 1,
            ..p
        };
        assert_eq!(
            judge_canary(m(1000.0, 250.0), None, &tolerant, z).decision,
            GateDecision::Remeasure
        );
        let relative = CanaryPolicy {
            max_increase_over_baseline: Some(0.002),
            ..p
        };
        let worse = judge_canary(m(1000.0, 8.0), Some(m(1000.0, 1.0)), &relative, z);
        assert_eq!(worse.verdict, CanaryVerdict::Fail, "{}", worse.summary);
    }

    #[test]
    fn steps_must_rise_to_100() {
        assert!(validate_steps(&[10, 25, 50, 75, 100]).is_ok());
        for bad in [
            vec![],
            vec![10, 10, 100],
            vec![50, 25, 100],
            vec![10, 50],
            vec![0, 100],
            vec![10, 101],
        ] {
            assert!(validate_steps(&bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn an_error_is_never_a_pass(errors in 0u32..10, limit in 0u32..5) {
            let p = CanaryPolicy { error_limit: limit, ..CanaryPolicy::default() };
            let out = judge_canary(Err("down".into()), None, &p, GateCounters { errors, ..GateCounters::default() });
            prop_assert_ne!(out.decision, GateDecision::Proceed);
            prop_assert_eq!(out.decision == GateDecision::Rollback, errors + 1 > limit);
        }

        #[test]
        fn proceed_only_on_enough_clean_traffic(requests in 0f64..10_000.0, errors_frac in 0f64..1.0) {
            let p = CanaryPolicy::default();
            let errors = (requests * errors_frac).floor();
            let out = judge_canary(m(requests, errors), None, &p, GateCounters::default());
            let expect = requests >= p.min_requests && errors / requests <= p.max_error_rate;
            prop_assert_eq!(out.decision == GateDecision::Proceed, expect);
        }
    }
}
