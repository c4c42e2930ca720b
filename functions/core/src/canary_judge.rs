//! The canary judge: the recovered primary (canary) against the standby (baseline), metric by
//! metric, over the same bake window; a verdict `pass`, `fail` or `inconclusive`, each with the
//! numbers behind it.
//!
//! - **Latency** (p50/p95/p99 sampled over the bake): a one-sided Mann-Whitney U test (is the
//!   canary stochastically slower?) with the ratio of medians as effect size: it fails when
//!   significant *and* at least `min_effect` times the baseline, so a large sample does not
//!   fail on a trivial difference. Kayenta's known blind spot, a few far-worse samples that a
//!   rank test may forgive, is closed by a tail check: `tail_samples` or more canary samples
//!   above `tail_factor` times the baseline's worst sample fail.
//! - **Errors** (counts over requests, often sparse): conditioned on the total number of errors,
//!   the canary's share is binomial under "same error rate" (the exact conditional test for two
//!   Poisson rates); it fails when significant and at least `min_error_ratio` times the
//!   baseline's rate. 1 error in 10,000 against 0 in 10,000 is no evidence (p = 0.5); 20 against
//!   2 is (p < 0.0001). An absolute `max_error_rate` applies on top.
//! - **Missing or too little data** is `inconclusive`, never `pass`.
//!
//! False failures: each look tests `m` metrics at `alpha / m` (Bonferroni), so a canary that
//! behaves exactly like the baseline fails a look with probability at most `alpha` from the
//! statistical tests (the tail check adds a small, distribution-dependent chance: light-tailed
//! latencies practically never put two samples at three times the baseline's worst). The error
//! test assumes errors arrive independently (Poisson); bursty errors (one incident, many
//! failures at once) are over-dispersed and fail more often than `alpha` says, which for a
//! failback errs on the safe side. A bake that looks `L` times fails a same-as-baseline canary
//! at most `L * alpha` of the time.

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// How strict the judge is (state machine input `gate.judge`, with defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgePolicy {
    /// The false-failure rate of one look, shared by its metrics (Kayenta's 98 % confidence).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Fewer latency samples than this on either side is inconclusive.
    #[serde(default = "default_min_samples")]
    pub min_samples: usize,
    /// A latency fails only when the canary's median is at least this times the baseline's.
    #[serde(default = "default_min_effect")]
    pub min_effect: f64,
    /// A canary sample above this times the baseline's worst sample is far worse.
    #[serde(default = "default_tail_factor")]
    pub tail_factor: f64,
    /// This many far-worse canary samples fail the metric.
    #[serde(default = "default_tail_samples")]
    pub tail_samples: usize,
    /// An error rate fails only when it is at least this times the baseline's.
    #[serde(default = "default_min_error_ratio")]
    pub min_error_ratio: f64,
}

fn default_alpha() -> f64 {
    0.02
}
fn default_min_samples() -> usize {
    5
}
fn default_min_effect() -> f64 {
    1.2
}
fn default_tail_factor() -> f64 {
    3.0
}
fn default_tail_samples() -> usize {
    2
}
fn default_min_error_ratio() -> f64 {
    2.0
}

impl Default for JudgePolicy {
    fn default() -> Self {
        Self {
            alpha: default_alpha(),
            min_samples: default_min_samples(),
            min_effect: default_min_effect(),
            tail_factor: default_tail_factor(),
            tail_samples: default_tail_samples(),
            min_error_ratio: default_min_error_ratio(),
        }
    }
}

impl JudgePolicy {
    /// Checks the settings are meaningful.
    pub fn validate(&self) -> Result<(), CoreError> {
        if !(self.alpha > 0.0 && self.alpha < 0.5) {
            return Err(CoreError::invalid(
                "gate.judge.alpha",
                "must be above 0 and below 0.5 (0.02 is 98 % confidence)",
            ));
        }
        if self.min_samples < 2 {
            return Err(CoreError::invalid(
                "gate.judge.min_samples",
                "must be 2 or more",
            ));
        }
        for (field, value) in [
            ("gate.judge.min_effect", self.min_effect),
            ("gate.judge.tail_factor", self.tail_factor),
            ("gate.judge.min_error_ratio", self.min_error_ratio),
        ] {
            if value.is_nan() || value < 1.0 {
                return Err(CoreError::invalid(
                    field,
                    "must be 1 or more (a ratio to the baseline)",
                ));
            }
        }
        if self.tail_samples == 0 {
            return Err(CoreError::invalid(
                "gate.judge.tail_samples",
                "must be 1 or more",
            ));
        }
        Ok(())
    }
}

/// One latency metric's samples over the bake (`None`: the series was missing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySamples {
    /// e.g. `p99 latency (s)`.
    pub metric: String,
    /// The canary's samples.
    pub canary: Option<Vec<f64>>,
    /// The baseline's samples.
    pub baseline: Option<Vec<f64>>,
}

/// Errors and requests of both sides over the bake (`None`: not measured).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ErrorCounts {
    /// The canary's (errors, requests).
    pub canary: Option<(f64, f64)>,
    /// The baseline's (errors, requests).
    pub baseline: Option<(f64, f64)>,
}

/// A metric's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricVerdict {
    /// No evidence the canary is worse.
    Pass,
    /// The canary is worse, with the numbers to show it.
    Fail,
    /// Too little or missing data: never a pass.
    Inconclusive,
}

/// One row of the judge's table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricJudgement {
    /// The metric.
    pub metric: String,
    /// The canary's value (median, or error rate).
    pub canary: Option<f64>,
    /// The baseline's value.
    pub baseline: Option<f64>,
    /// The test that decided.
    pub test: String,
    /// Its p-value, when a test ran.
    pub p_value: Option<f64>,
    /// The effect: canary / baseline.
    pub effect: Option<f64>,
    /// The verdict.
    pub verdict: MetricVerdict,
    /// Why, in words.
    pub reason: String,
    /// The canary's samples (latency metrics), for the report's plot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canary_samples: Vec<f64>,
    /// The baseline's samples (latency metrics).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baseline_samples: Vec<f64>,
}

/// The judge's answer for one look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// Fail if any metric fails, else inconclusive if any is, else pass.
    pub verdict: MetricVerdict,
    /// Passed metrics out of those judged, 0-100 (Kayenta's score).
    pub score: f64,
    /// One row per metric.
    pub metrics: Vec<MetricJudgement>,
    /// The significance each test used (`alpha / metrics`).
    pub alpha_per_test: f64,
    /// In words, with the numbers.
    pub summary: String,
}

/// Judges one look: the error counts and every latency metric, canary against baseline.
pub fn judge(
    errors: &ErrorCounts,
    latencies: &[LatencySamples],
    min_requests: f64,
    max_error_rate: f64,
    policy: &JudgePolicy,
) -> Judgement {
    let alpha = policy.alpha / (1 + latencies.len()) as f64;
    let mut metrics = vec![judge_errors(
        errors,
        min_requests,
        max_error_rate,
        alpha,
        policy,
    )];
    metrics.extend(latencies.iter().map(|l| judge_latency(l, alpha, policy)));
    let count = |v: MetricVerdict| metrics.iter().filter(|m| m.verdict == v).count();
    let verdict = if count(MetricVerdict::Fail) > 0 {
        MetricVerdict::Fail
    } else if count(MetricVerdict::Inconclusive) > 0 {
        MetricVerdict::Inconclusive
    } else {
        MetricVerdict::Pass
    };
    let score = 100.0 * count(MetricVerdict::Pass) as f64 / metrics.len() as f64;
    let named = |v: MetricVerdict| {
        metrics
            .iter()
            .filter(|m| m.verdict == v)
            .map(|m| format!("{} ({})", m.metric, m.reason))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let summary = match verdict {
        MetricVerdict::Fail => format!(
            "canary worse than the baseline: {}",
            named(MetricVerdict::Fail)
        ),
        MetricVerdict::Inconclusive => {
            format!("inconclusive: {}", named(MetricVerdict::Inconclusive))
        }
        MetricVerdict::Pass => format!(
            "canary no worse than the baseline on {} metric(s) (score {score:.0})",
            metrics.len()
        ),
    };
    Judgement {
        verdict,
        score,
        metrics,
        alpha_per_test: alpha,
        summary,
    }
}

fn judge_errors(
    counts: &ErrorCounts,
    min_requests: f64,
    max_error_rate: f64,
    alpha: f64,
    policy: &JudgePolicy,
) -> MetricJudgement {
    let row = |canary, baseline, test: &str, p, effect, verdict, reason: String| MetricJudgement {
        metric: "error rate".into(),
        canary,
        baseline,
        test: test.into(),
        p_value: p,
        effect,
        verdict,
        reason,
        canary_samples: Vec::new(),
        baseline_samples: Vec::new(),
    };
    let (Some((ce, cn)), Some((be, bn))) = (counts.canary, counts.baseline) else {
        return row(
            counts.canary.map(|(e, n)| rate(e, n)),
            counts.baseline.map(|(e, n)| rate(e, n)),
            "none",
            None,
            None,
            MetricVerdict::Inconclusive,
            "a side's error counts are missing".into(),
        );
    };
    let (cr, br) = (rate(ce, cn), rate(be, bn));
    if cn < min_requests || bn < min_requests {
        return row(
            Some(cr),
            Some(br),
            "none",
            None,
            None,
            MetricVerdict::Inconclusive,
            format!("{cn:.0} and {bn:.0} requests: fewer than {min_requests:.0} on a side"),
        );
    }
    let effect = (br > 0.0).then(|| cr / br);
    if cr > max_error_rate {
        return row(
            Some(cr),
            Some(br),
            "absolute limit",
            None,
            effect,
            MetricVerdict::Fail,
            format!("{} over the {} limit", percent(cr), percent(max_error_rate)),
        );
    }
    let p = conditional_binomial_p(ce.round() as u64, be.round() as u64, cn, bn);
    let large = effect.is_none_or(|e| e >= policy.min_error_ratio) && cr > br;
    let (verdict, reason) = if p < alpha && large {
        (
            MetricVerdict::Fail,
            format!(
                "{} against {} (p = {p:.2e} < {alpha:.4})",
                percent(cr),
                percent(br)
            ),
        )
    } else {
        (
            MetricVerdict::Pass,
            format!("{} against {} (p = {p:.3})", percent(cr), percent(br)),
        )
    };
    row(
        Some(cr),
        Some(br),
        "conditional binomial (exact)",
        Some(p),
        effect,
        verdict,
        reason,
    )
}

fn judge_latency(samples: &LatencySamples, alpha: f64, policy: &JudgePolicy) -> MetricJudgement {
    let finite = |s: &Option<Vec<f64>>| {
        s.as_ref().map(|v| {
            v.iter()
                .copied()
                .filter(|x| x.is_finite())
                .collect::<Vec<_>>()
        })
    };
    let (canary, baseline) = (finite(&samples.canary), finite(&samples.baseline));
    let row = |c, b, test: &str, p, effect, verdict, reason: String| MetricJudgement {
        metric: samples.metric.clone(),
        canary: c,
        baseline: b,
        test: test.into(),
        p_value: p,
        effect,
        verdict,
        reason,
        canary_samples: samples.canary.clone().unwrap_or_default(),
        baseline_samples: samples.baseline.clone().unwrap_or_default(),
    };
    let (Some(canary), Some(baseline)) = (canary, baseline) else {
        return row(
            None,
            None,
            "none",
            None,
            None,
            MetricVerdict::Inconclusive,
            "the series is missing on a side".into(),
        );
    };
    if canary.len() < policy.min_samples || baseline.len() < policy.min_samples {
        return row(
            median(&canary),
            median(&baseline),
            "none",
            None,
            None,
            MetricVerdict::Inconclusive,
            format!(
                "{} and {} samples: fewer than {} on a side",
                canary.len(),
                baseline.len(),
                policy.min_samples
            ),
        );
    }
    let (cm, bm) = (median(&canary), median(&baseline));
    let effect = match (cm, bm) {
        (Some(c), Some(b)) if b > 0.0 => Some(c / b),
        _ => None,
    };
    let worst = baseline.iter().copied().fold(f64::MIN, f64::max);
    let far = canary
        .iter()
        .filter(|x| **x > worst * policy.tail_factor && **x > 0.0)
        .count();
    if far >= policy.tail_samples {
        return row(
            cm,
            bm,
            "tail",
            None,
            effect,
            MetricVerdict::Fail,
            format!(
                "{far} of {} samples above {}x the baseline's worst ({worst:.4})",
                canary.len(),
                policy.tail_factor
            ),
        );
    }
    let p = mann_whitney_greater_p(&canary, &baseline);
    let large = effect.is_none_or(|e| e >= policy.min_effect);
    let (verdict, reason) = match (p < alpha, large) {
        (true, true) => (
            MetricVerdict::Fail,
            format!(
                "median {}x the baseline's (p = {p:.2e} < {alpha:.4})",
                effect.map_or("?".into(), |e| format!("{e:.2}"))
            ),
        ),
        (true, false) => (
            MetricVerdict::Pass,
            format!(
                "slower but only {}x the baseline's median (below {}x)",
                effect.map_or("?".into(), |e| format!("{e:.2}")),
                policy.min_effect
            ),
        ),
        _ => (
            MetricVerdict::Pass,
            format!("no evidence of a slower canary (p = {p:.3})"),
        ),
    };
    row(
        cm,
        bm,
        "Mann-Whitney U (one-sided)",
        Some(p),
        effect,
        verdict,
        reason,
    )
}

/// The judgement as a Markdown table (metric, canary, baseline, test, p-value, effect,
/// verdict), then each latency's samples as two sparklines on one scale.
pub fn markdown_table(j: &Judgement) -> String {
    let num =
        |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    let mut out = String::from(
        "| metric | canary | baseline | test | p-value | effect | verdict |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for m in &j.metrics {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:?}: {} |\n",
            m.metric,
            num(m.canary, 4),
            num(m.baseline, 4),
            m.test,
            m.p_value.map_or("-".to_string(), |p| format!("{p:.2e}")),
            m.effect.map_or("-".to_string(), |e| format!("{e:.2}x")),
            m.verdict,
            m.reason
        ));
    }
    for m in j.metrics.iter().filter(|m| !m.canary_samples.is_empty()) {
        let all = m.canary_samples.iter().chain(&m.baseline_samples);
        let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        out.push_str(&format!(
            "\n`{}` canary `{}` baseline `{}` ({lo:.3} to {hi:.3})\n",
            m.metric,
            sparkline(&m.canary_samples, lo, hi),
            sparkline(&m.baseline_samples, lo, hi)
        ));
    }
    out
}

/// `values` as block characters between `lo` (lowest) and `hi` (highest).
pub fn sparkline(values: &[f64], lo: f64, hi: f64) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    values
        .iter()
        .map(|v| {
            let share = if hi > lo { (v - lo) / (hi - lo) } else { 0.0 };
            BARS[((share * 7.0).round() as usize).min(7)]
        })
        .collect()
}

fn rate(errors: f64, requests: f64) -> f64 {
    if requests > 0.0 {
        errors / requests
    } else {
        0.0
    }
}

fn percent(r: f64) -> String {
    format!("{:.3} %", r * 100.0)
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// One-sided p-value that `a` is stochastically greater than `b`: the normal approximation of
/// U with the tie correction and a continuity correction; 1 when every value ties.
pub fn mann_whitney_greater_p(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|x| (*x, true))
        .chain(b.iter().map(|x| (*x, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    let (mut rank_sum, mut ties) = (0.0, 0.0);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        // Tied values share the mean of their ranks (1-based).
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        rank_sum += all[i..=j].iter().filter(|v| v.1).count() as f64 * mean_rank;
        i = j + 1;
    }
    let u = rank_sum - n1 * (n1 + 1.0) / 2.0;
    let total = n1 + n2;
    let variance = n1 * n2 / 12.0 * ((total + 1.0) - ties / (total * (total - 1.0)));
    if variance <= 0.0 {
        return 1.0;
    }
    let z = (u - n1 * n2 / 2.0 - 0.5) / variance.sqrt();
    1.0 - normal_cdf(z)
}

/// P(X >= k1) for X ~ Binomial(k1 + k2, n1 / (n1 + n2)): under "same rate", the canary's share
/// of all errors. Exact, in log space.
pub fn conditional_binomial_p(k1: u64, k2: u64, n1: f64, n2: f64) -> f64 {
    let k = k1 + k2;
    if k1 == 0 || n1 <= 0.0 || n2 <= 0.0 {
        return 1.0;
    }
    let p = n1 / (n1 + n2);
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let log_choose = |n: u64, r: u64| {
        ln_gamma(n as f64 + 1.0) - ln_gamma(r as f64 + 1.0) - ln_gamma((n - r) as f64 + 1.0)
    };
    (k1..=k)
        .map(|x| (log_choose(k, x) + x as f64 * lp + (k - x) as f64 * lq).exp())
        .sum::<f64>()
        .min(1.0)
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error below 1e-13).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return std::f64::consts::PI.ln()
            - (std::f64::consts::PI * x).sin().ln()
            - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let a = G[1..]
        .iter()
        .enumerate()
        .fold(G[0], |acc, (i, g)| acc + g / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Φ(z), the standard normal CDF (Numerical Recipes' erfcc Chebyshev fit; absolute error
/// below 1.2e-7).
pub fn normal_cdf(z: f64) -> f64 {
    let x = -z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let y = t
        * (-x * x - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    let erfc = if x >= 0.0 { y } else { 2.0 - y };
    0.5 * erfc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A small deterministic generator (xorshift64*), so the statistical tests below give the
    /// same answer on every run.
    struct Rng(u64);
    impl Rng {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }
        /// Lognormal latency around `median` seconds (sigma 0.25), as request latencies are.
        fn latency(&mut self, median: f64) -> f64 {
            let (u1, u2) = (self.uniform().max(1e-12), self.uniform());
            let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            median * (0.25 * normal).exp()
        }
        fn samples(&mut self, n: usize, median: f64) -> Vec<f64> {
            (0..n).map(|_| self.latency(median)).collect()
        }
        /// Poisson(`mean`) (Knuth): errors arriving independently at one rate.
        fn poisson(&mut self, mean: f64) -> f64 {
            let (limit, mut k, mut p) = ((-mean).exp(), 0.0, 1.0);
            loop {
                p *= self.uniform();
                if p <= limit {
                    return k;
                }
                k += 1.0;
            }
        }
    }

    fn p99(canary: Vec<f64>, baseline: Vec<f64>) -> LatencySamples {
        LatencySamples {
            metric: "p99 latency (s)".into(),
            canary: Some(canary),
            baseline: Some(baseline),
        }
    }

    fn clean_errors() -> ErrorCounts {
        ErrorCounts {
            canary: Some((2.0, 10_000.0)),
            baseline: Some((2.0, 10_000.0)),
        }
    }

    fn run(errors: ErrorCounts, latencies: &[LatencySamples]) -> Judgement {
        judge(&errors, latencies, 100.0, 0.05, &JudgePolicy::default())
    }

    #[test]
    fn the_statistics_match_known_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((ln_gamma(10.0) - 362_880f64.ln()).abs() < 1e-10);
        // Bin(22, 0.5): P(X >= 20) = (231 + 22 + 1) / 2^22.
        let p = conditional_binomial_p(20, 2, 10_000.0, 10_000.0);
        assert!((p - 254.0 / 4_194_304.0).abs() < 1e-12, "{p}");
        assert_eq!(conditional_binomial_p(0, 5, 1.0, 1.0), 1.0);
        // Every canary sample above every baseline sample, 10 each: z = (100-50-0.5)/13.23.
        let p = mann_whitney_greater_p(
            &[11.0, 12., 13., 14., 15., 16., 17., 18., 19., 20.],
            &[1.0, 2., 3., 4., 5., 6., 7., 8., 9., 10.],
        );
        assert!((p - 9.1e-5).abs() < 2e-5, "{p}");
        assert_eq!(mann_whitney_greater_p(&[1.0; 6], &[1.0; 6]), 1.0);
    }

    /// The cases, one by one.
    #[test]
    fn a_doubled_p99_fails_and_the_same_behaviour_passes() {
        let mut rng = Rng(7);
        let same = run(
            clean_errors(),
            &[p99(rng.samples(12, 0.8), rng.samples(12, 0.8))],
        );
        assert_eq!(same.verdict, MetricVerdict::Pass, "{}", same.summary);
        let doubled = run(
            clean_errors(),
            &[p99(rng.samples(12, 1.6), rng.samples(12, 0.8))],
        );
        assert_eq!(doubled.verdict, MetricVerdict::Fail, "{}", doubled.summary);
        let row = &doubled.metrics[1];
        assert_eq!(row.test, "Mann-Whitney U (one-sided)");
        assert!(row.effect.unwrap() > 1.6 && row.p_value.unwrap() < doubled.alpha_per_test);
    }

    #[test]
    fn seven_of_ten_samples_a_hundred_times_worse_fail() {
        let mut rng = Rng(11);
        let mut canary = rng.samples(3, 0.5);
        canary.extend(rng.samples(7, 50.0));
        let j = run(clean_errors(), &[p99(canary, rng.samples(10, 0.5))]);
        assert_eq!(j.verdict, MetricVerdict::Fail, "{}", j.summary);
        assert_eq!(j.metrics[1].test, "tail");
        // Even when the rank test alone would forgive them: two far-worse samples among many.
        let mut canary = rng.samples(38, 0.5);
        canary.extend([60.0, 75.0]);
        let j = run(clean_errors(), &[p99(canary, rng.samples(40, 0.5))]);
        assert_eq!(j.metrics[1].verdict, MetricVerdict::Fail, "{}", j.summary);
        assert_eq!(j.metrics[1].test, "tail");
    }

    #[test]
    fn the_table_shows_every_row_and_plots_latencies_on_one_scale() {
        let j = run(clean_errors(), &[p99(vec![2.0; 6], vec![1.0; 6])]);
        let table = markdown_table(&j);
        assert!(
            table.contains("| error rate | 0.0002 | 0.0002 | conditional binomial (exact) |"),
            "{table}"
        );
        assert!(
            table.contains("| p99 latency (s) | 2.0000 | 1.0000 | Mann-Whitney U (one-sided) |"),
            "{table}"
        );
        assert!(table.contains("| 2.00x | Fail: "), "{table}");
        assert!(
            table.contains("canary `██████` baseline `▁▁▁▁▁▁`"),
            "{table}"
        );
        assert_eq!(sparkline(&[0.0, 0.5, 1.0], 0.0, 1.0), "▁▅█");
    }

    #[test]
    fn sparse_errors_are_judged_as_counts() {
        let errors = |c: f64, b: f64| ErrorCounts {
            canary: Some((c, 10_000.0)),
            baseline: Some((b, 10_000.0)),
        };
        let one = run(errors(1.0, 0.0), &[]);
        assert_eq!(one.verdict, MetricVerdict::Pass, "{}", one.summary);
        let twenty = run(errors(20.0, 2.0), &[]);
        assert_eq!(twenty.verdict, MetricVerdict::Fail, "{}", twenty.summary);
        assert!(twenty.metrics[0].p_value.unwrap() < 1e-4);
        // Over the absolute limit fails whatever the baseline does.
        let high = run(errors(600.0, 600.0), &[]);
        assert_eq!(high.verdict, MetricVerdict::Fail);
        assert_eq!(high.metrics[0].test, "absolute limit");
    }

    #[test]
    fn no_data_is_inconclusive_never_a_pass() {
        let none = ErrorCounts {
            canary: None,
            baseline: None,
        };
        assert_eq!(run(none, &[]).verdict, MetricVerdict::Inconclusive);
        let quiet = ErrorCounts {
            canary: Some((0.0, 40.0)),
            baseline: Some((0.0, 10_000.0)),
        };
        assert_eq!(run(quiet, &[]).verdict, MetricVerdict::Inconclusive);
        let missing = LatencySamples {
            metric: "p95 latency (s)".into(),
            canary: None,
            baseline: Some(vec![0.5; 10]),
        };
        let j = run(clean_errors(), &[missing]);
        assert_eq!(j.verdict, MetricVerdict::Inconclusive, "{}", j.summary);
        let few = run(clean_errors(), &[p99(vec![0.5, 0.6], vec![0.5; 10])]);
        assert_eq!(few.verdict, MetricVerdict::Inconclusive);
        assert!(few.score < 100.0);
    }

    /// The stated false-failure rate: 2,000 looks at a canary behaving exactly like its
    /// baseline (errors and three latencies) fail at most about `alpha` of the time.
    #[test]
    fn identical_behaviour_fails_at_most_at_the_stated_rate() {
        let mut rng = Rng(42);
        let policy = JudgePolicy::default();
        let trials = 2_000;
        let mut failures = 0;
        for _ in 0..trials {
            let errors = ErrorCounts {
                canary: Some((rng.poisson(5.0), 10_000.0)),
                baseline: Some((rng.poisson(5.0), 10_000.0)),
            };
            let latencies: Vec<LatencySamples> = [0.2, 0.6, 1.2]
                .iter()
                .map(|m| p99(rng.samples(15, *m), rng.samples(15, *m)))
                .collect();
            if judge(&errors, &latencies, 100.0, 0.05, &policy).verdict == MetricVerdict::Fail {
                failures += 1;
            }
        }
        let rate = failures as f64 / trials as f64;
        eprintln!(
            "false failures: {failures} of {trials} looks ({rate:.4}; alpha {})",
            policy.alpha
        );
        assert!(
            rate <= policy.alpha,
            "false failures {rate} over alpha {}",
            policy.alpha
        );
    }

    proptest! {
        /// Whatever the samples, a canary whose every sample is at most the baseline's
        /// smallest never fails on latency.
        #[test]
        fn a_faster_canary_never_fails(
            baseline in proptest::collection::vec(0.01f64..10.0, 5..40),
            scale in 0.0f64..1.0,
        ) {
            let floor = baseline.iter().copied().fold(f64::MAX, f64::min);
            let canary: Vec<f64> = baseline.iter().map(|x| floor * scale * (x / 10.0)).collect();
            let j = run(clean_errors(), &[p99(canary, baseline)]);
            prop_assert_eq!(j.metrics[1].verdict, MetricVerdict::Pass, "{}", j.summary);
        }

        /// The judge's verdict is the worst of its rows, and the score counts the passes.
        #[test]
        fn the_verdict_is_the_worst_row(
            c in 0.0f64..50.0, b in 0.0f64..50.0, n in 0.0f64..20_000.0,
            shift in 0.5f64..3.0,
        ) {
            let mut rng = Rng(3);
            let errors = ErrorCounts { canary: Some((c, n)), baseline: Some((b, 10_000.0)) };
            let j = run(errors, &[p99(rng.samples(10, shift), rng.samples(10, 1.0))]);
            let worst = if j.metrics.iter().any(|m| m.verdict == MetricVerdict::Fail) {
                MetricVerdict::Fail
            } else if j.metrics.iter().any(|m| m.verdict == MetricVerdict::Inconclusive) {
                MetricVerdict::Inconclusive
            } else {
                MetricVerdict::Pass
            };
            prop_assert_eq!(j.verdict, worst);
            let passes = j.metrics.iter().filter(|m| m.verdict == MetricVerdict::Pass).count();
            prop_assert!((j.score - 100.0 * passes as f64 / 2.0).abs() < 1e-9);
        }
    }
}
