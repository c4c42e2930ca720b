//! CloudWatch's evaluation of a metric alarm, as the CloudWatch User Guide documents it
//! ("Evaluating an alarm", "Configuring how CloudWatch alarms treat missing data"):
//!
//! - An alarm looks at its last `EvaluationPeriods` (N) periods and goes to `ALARM` when at
//!   least `DatapointsToAlarm` (M, default N) of them breach the threshold ("M out of N").
//! - CloudWatch retrieves more periods than N: the *evaluation range* (here N + 2 periods,
//!   the guide's own examples show 5 for N = 3).
//! - When at least N real datapoints are in the range, the most recent N real ones decide,
//!   missing periods skipped; `TreatMissingData` plays no part.
//! - Otherwise the missing ones are filled "as few times as possible": `breaching` fills them
//!   breaching, `notBreaching` not breaching; `missing` judges the real datapoints alone (all
//!   missing is `INSUFFICIENT_DATA`); `ignore` keeps the current state unless the real
//!   datapoints decide it whatever the missing ones would be.
//!
//! The guide's table for N = M = 3 (tested below): `0 - X - X` OK, `0 - - - -` OK, `- - - - -`
//! INSUFFICIENT_DATA / kept / ALARM / OK, `0 X X - X` ALARM, `- - X - -` ALARM / kept / ALARM /
//! OK, for missing / ignore / breaching / notBreaching. A starved data plane (a datapoint
//! late or lost) therefore never turns an `ALARM` back to `OK` by itself.

/// A metric alarm's evaluation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRule {
    /// The threshold.
    pub threshold: f64,
    /// `GreaterThanOrEqualToThreshold`, `GreaterThanThreshold`, `LessThanThreshold`,
    /// `LessThanOrEqualToThreshold`.
    pub comparison: String,
    /// N.
    pub evaluation_periods: usize,
    /// M.
    pub datapoints_to_alarm: usize,
    /// `missing` (default), `notBreaching`, `breaching`, `ignore`.
    pub treat_missing_data: String,
}

/// Extra periods CloudWatch retrieves beyond N.
pub const EXTRA_PERIODS: usize = 2;

impl AlarmRule {
    /// Whether `value` breaches the threshold.
    pub fn breaches(&self, value: f64) -> bool {
        match self.comparison.as_str() {
            "GreaterThanOrEqualToThreshold" => value >= self.threshold,
            "GreaterThanThreshold" => value > self.threshold,
            "LessThanThreshold" => value < self.threshold,
            "LessThanOrEqualToThreshold" => value <= self.threshold,
            _ => false,
        }
    }

    /// How many periods the evaluation range holds.
    pub fn evaluation_range(&self) -> usize {
        self.evaluation_periods.max(1) + EXTRA_PERIODS
    }
}

/// The state an alarm goes to, from the periods of its evaluation range (oldest first, `None`
/// for a period without data) and its `current` state.
pub fn evaluate(rule: &AlarmRule, range: &[Option<f64>], current: &str) -> String {
    let n = rule.evaluation_periods.max(1);
    let m = rule.datapoints_to_alarm.clamp(1, n);
    let real: Vec<bool> = range.iter().flatten().map(|v| rule.breaches(*v)).collect();
    let verdict = |breaching: usize| {
        if breaching >= m {
            "ALARM".to_string()
        } else {
            "OK".to_string()
        }
    };
    if real.len() >= n {
        let recent = &real[real.len() - n..];
        return verdict(recent.iter().filter(|b| **b).count());
    }
    let breaching = real.iter().filter(|b| **b).count();
    let filled = n - real.len();
    match rule.treat_missing_data.as_str() {
        "breaching" => verdict(breaching + filled),
        "notBreaching" => verdict(breaching),
        "ignore" => {
            let if_not = verdict(breaching);
            let if_breaching = verdict(breaching + filled);
            if real.is_empty() || if_not != if_breaching {
                current.to_string()
            } else {
                if_not
            }
        }
        // `missing`: the real datapoints alone decide.
        _ => {
            if real.is_empty() {
                "INSUFFICIENT_DATA".to_string()
            } else if breaching >= m.min(real.len()) {
                "ALARM".to_string()
            } else {
                "OK".to_string()
            }
        }
    }
}

/// Groups datapoints `(seconds before now, value)` into `periods` periods of `period` seconds,
/// oldest first, each reduced by `statistic` (`Minimum`, `Maximum`, `Sum`, `Average`,
/// `SampleCount`); a period without datapoints is `None`.
pub fn periods(
    points: &[(f64, f64)],
    period: f64,
    periods: usize,
    statistic: &str,
) -> Vec<Option<f64>> {
    let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); periods];
    for (age, value) in points {
        if *age < 0.0 || period <= 0.0 {
            continue;
        }
        let index = (age / period).floor() as usize;
        if index < periods {
            buckets[periods - 1 - index].push(*value);
        }
    }
    buckets
        .into_iter()
        .map(|b| {
            if b.is_empty() {
                return None;
            }
            Some(match statistic {
                "Maximum" => b.iter().copied().fold(f64::MIN, f64::max),
                "Sum" => b.iter().sum(),
                "Average" => b.iter().sum::<f64>() / b.len() as f64,
                "SampleCount" => b.len() as f64,
                _ => b.iter().copied().fold(f64::MAX, f64::min),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(treat: &str, n: usize, m: usize) -> AlarmRule {
        AlarmRule {
            threshold: 1.0,
            comparison: "LessThanThreshold".into(),
            evaluation_periods: n,
            datapoints_to_alarm: m,
            treat_missing_data: treat.into(),
        }
    }

    /// `X` breaching (0.0 < 1), `0` not breaching (1.0), `-` missing: the guide's notation.
    fn row(text: &str) -> Vec<Option<f64>> {
        text.split_whitespace()
            .map(|c| match c {
                "X" => Some(0.0),
                "0" => Some(1.0),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_guides_table_for_three_of_three() {
        // (datapoints, missing, ignore, breaching, notBreaching); "keep" = current state.
        let table = [
            ("0 - X - X", ["OK", "OK", "OK", "OK"]),
            ("0 - - - -", ["OK", "OK", "OK", "OK"]),
            ("- - - - -", ["INSUFFICIENT_DATA", "keep", "ALARM", "OK"]),
            ("0 X X - X", ["ALARM", "ALARM", "ALARM", "ALARM"]),
            ("- - X - -", ["ALARM", "keep", "ALARM", "OK"]),
        ];
        for (points, expected) in table {
            for (treat, want) in ["missing", "ignore", "breaching", "notBreaching"]
                .iter()
                .zip(expected)
            {
                for current in ["OK", "ALARM"] {
                    let want = if want == "keep" { current } else { want };
                    assert_eq!(
                        evaluate(&rule(treat, 3, 3), &row(points), current),
                        want,
                        "{points} with {treat} from {current}"
                    );
                }
            }
        }
    }

    #[test]
    fn m_out_of_n_counts_the_most_recent_real_datapoints() {
        assert_eq!(
            evaluate(&rule("missing", 3, 2), &row("0 - X - X"), "OK"),
            "ALARM"
        );
        assert_eq!(
            evaluate(&rule("missing", 3, 2), &row("X X 0 0 X"), "ALARM"),
            "OK"
        );
        assert_eq!(
            evaluate(&rule("missing", 1, 1), &row("X X X X 0"), "ALARM"),
            "OK"
        );
    }

    #[test]
    fn a_late_datapoint_never_turns_an_alarm_back_to_ok() {
        // The blackout that failed CI: three breaching periods, then one period's datapoint
        // late. The old evaluation judged `- X X` as "two of three" and went OK.
        for late in ["X X X X -", "X X X - -", "- X - X -"] {
            assert_eq!(
                evaluate(&rule("missing", 3, 3), &row(late), "ALARM"),
                "ALARM",
                "{late}"
            );
        }
    }

    #[test]
    fn datapoints_fall_into_periods_oldest_first() {
        let points = [(0.2, 1.0), (0.7, 0.0), (1.5, 1.0), (4.9, 0.0), (5.1, 7.0)];
        assert_eq!(
            periods(&points, 1.0, 5, "Minimum"),
            vec![Some(0.0), None, None, Some(1.0), Some(0.0)]
        );
        assert_eq!(periods(&points, 1.0, 5, "Maximum")[4], Some(1.0));
        assert_eq!(periods(&points, 1.0, 5, "SampleCount")[4], Some(2.0));
        assert_eq!(periods(&points, 6.0, 1, "Sum"), vec![Some(9.0)]);
    }
}
