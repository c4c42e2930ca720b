//! The one weights rule: what a traffic move asks for (`activate` a set, `split` between a set
//! and the rest, or explicit `weights`) becomes the weights every set gets, checked against the
//! sets the traffic switch has. Failover, failback and the snapshot restore all move traffic
//! through it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Route53's largest weight (a record weight is 0 to 255).
pub const MAX_WEIGHT: i64 = 255;

/// What a traffic move asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrafficMove {
    /// All traffic to this set (100), none to the others (0).
    Activate(String),
    /// `percent` to `to`, `100 - percent` to every other set.
    Split {
        /// The set that gets `percent`.
        to: String,
        /// Its share, 0 to 100.
        percent: i64,
    },
    /// These weights exactly (a snapshot put back).
    Weights(BTreeMap<String, i64>),
}

/// The weights `wanted` gives the switch's `sets`; refused, naming the field, when it names a
/// set the switch does not have or a weight out of range.
pub fn target_weights(
    sets: &[String],
    wanted: &TrafficMove,
) -> Result<BTreeMap<String, i64>, CoreError> {
    let known = |set: &str| sets.iter().any(|s| s == set);
    match wanted {
        TrafficMove::Activate(active) => {
            if !known(active) {
                return Err(CoreError::invalid(
                    "activate",
                    format!("{active:?} is not one of the switch's sets {sets:?}"),
                ));
            }
            Ok(split(sets, active, 100))
        }
        TrafficMove::Split { to, percent } => {
            if !known(to) || !(0..=100).contains(percent) {
                return Err(CoreError::invalid(
                    "split",
                    format!(
                        "{to:?} must be one of the switch's sets {sets:?} and percent 0 to 100"
                    ),
                ));
            }
            Ok(split(sets, to, *percent))
        }
        TrafficMove::Weights(weights) => {
            if weights.is_empty() || weights.values().any(|w| !(0..=MAX_WEIGHT).contains(w)) {
                return Err(CoreError::invalid(
                    "weights",
                    format!("must name at least one set, each weight 0 to {MAX_WEIGHT}"),
                ));
            }
            Ok(weights.clone())
        }
    }
}

fn split(sets: &[String], to: &str, percent: i64) -> BTreeMap<String, i64> {
    sets.iter()
        .map(|s| (s.clone(), if s == to { percent } else { 100 - percent }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sets(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("set-{i}")).collect()
    }

    #[test]
    fn unknown_sets_and_out_of_range_values_are_refused_by_field() {
        let two = sets(2);
        let e = target_weights(&two, &TrafficMove::Activate("nope".into())).unwrap_err();
        assert!(e.to_string().contains("activate"), "{e}");
        let e = target_weights(
            &two,
            &TrafficMove::Split {
                to: "set-0".into(),
                percent: 101,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("split"), "{e}");
        let e = target_weights(
            &two,
            &TrafficMove::Weights(BTreeMap::from([("set-0".into(), 256)])),
        )
        .unwrap_err();
        assert!(e.to_string().contains("weights"), "{e}");
        assert!(target_weights(&two, &TrafficMove::Weights(BTreeMap::new())).is_err());
    }

    proptest! {
        #[test]
        fn activating_gives_exactly_one_set_all_traffic(n in 1usize..6, pick in 0usize..6) {
            let all = sets(n);
            let active = format!("set-{}", pick % n);
            let w = target_weights(&all, &TrafficMove::Activate(active.clone())).unwrap();
            prop_assert_eq!(w.values().filter(|w| **w == 100).count(), 1);
            prop_assert_eq!(w[&active], 100);
            prop_assert_eq!(w.values().sum::<i64>(), 100);
        }

        #[test]
        fn a_two_set_split_sums_to_100(percent in 0i64..=100) {
            let w = target_weights(&sets(2), &TrafficMove::Split { to: "set-0".into(), percent }).unwrap();
            prop_assert_eq!(w["set-0"], percent);
            prop_assert_eq!(w["set-0"] + w["set-1"], 100);
        }

        #[test]
        fn explicit_weights_pass_through_when_in_range(a in 0i64..=255, b in 0i64..=255) {
            let wanted = BTreeMap::from([("set-0".to_string(), a), ("set-1".to_string(), b)]);
            prop_assert_eq!(target_weights(&sets(2), &TrafficMove::Weights(wanted.clone())).unwrap(), wanted);
        }
    }
}
