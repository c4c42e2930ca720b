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

/// How one record of the global name routes: its Route53 routing policy, by the field it
/// carries (`Weight`, `Region`, `Failover`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordRouting {
    /// `Weight`: the only records whose share Route53 lets a change move.
    Weighted,
    /// `Region`: the HA document's records (section 3.1).
    Latency,
    /// `Failover`: PRIMARY / SECONDARY.
    Failover,
    /// `GeoLocation`.
    Geolocation,
    /// `MultiValueAnswer`.
    MultiValue,
    /// No routing policy.
    Simple,
}

impl RecordRouting {
    /// As an operator names it.
    pub fn wording(self) -> &'static str {
        match self {
            RecordRouting::Weighted => "weighted",
            RecordRouting::Latency => "latency",
            RecordRouting::Failover => "failover",
            RecordRouting::Geolocation => "geolocation",
            RecordRouting::MultiValue => "multivalue answer",
            RecordRouting::Simple => "simple",
        }
    }
}

/// One record of the global name, as Route53 lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalRecord {
    /// `SetIdentifier` (empty for a simple record).
    pub set_identifier: String,
    /// Its routing policy.
    pub routing: RecordRouting,
}

/// Why weights cannot move `records`, or `None` when they are all weighted.
fn not_weighted(name: &str, records: &[GlobalRecord]) -> Option<String> {
    if records.is_empty() {
        return Some(format!(
            "the global name {name} has no records in its zone (HAPILOT_HOSTED_ZONE_ID / HAPILOT_RECORD_NAME)"
        ));
    }
    let others: Vec<&GlobalRecord> = records
        .iter()
        .filter(|r| r.routing != RecordRouting::Weighted)
        .collect();
    let first = others.first()?;
    let sets: Vec<&str> = others.iter().map(|r| r.set_identifier.as_str()).collect();
    Some(format!(
        "the global name {name} has {} records ({}), and Route53 refuses a weight on a {} record",
        first.routing.wording(),
        sets.join(", "),
        first.routing.wording()
    ))
}

/// The switch a planned move (a graceful switchover) uses: Route53 weights when every record
/// of the global name is weighted; otherwise the deployment's on/off switch
/// (`health_check`, `arc_routing_control`), which moves the whole share at once, whatever
/// the records' policy; refused, before anything changes, when there is neither.
pub fn planned_move_switch(
    name: &str,
    records: &[GlobalRecord],
    deployment_switch: &str,
) -> Result<String, CoreError> {
    match not_weighted(name, records) {
        None => Ok("weights".into()),
        Some(_) if deployment_switch != "weights" && !records.is_empty() => {
            Ok(deployment_switch.to_string())
        }
        Some(why) => Err(CoreError::invalid(
            "mode",
            format!(
                "{why}: a switchover cannot move its traffic. Make the records weighted (or add a weighted layer of alias records above them), or deploy an on/off switch (HAPILOT_TRAFFIC_SWITCH health_check or arc_routing_control)"
            ),
        )),
    }
}

/// Whether a canary failback can move `records` step by step: only weights send a share of
/// the traffic, so every record must be weighted. Refused, before anything changes, naming
/// what the records would need.
pub fn check_canary_records(name: &str, records: &[GlobalRecord]) -> Result<(), CoreError> {
    match not_weighted(name, records) {
        None => Ok(()),
        Some(why) => Err(CoreError::invalid(
            "steps",
            format!(
                "{why}: a canary failback sends a share of the traffic by weights, which these records cannot carry. \
                 Put a weighted layer above them (weighted alias records of {name}, one per region, each aliasing that region's own record) to fail back in steps; \
                 with the HA document's latency records as they are, turn the primary region back on through the deployment's health_check or arc_routing_control switch and latency routing returns its clients at once"
            ),
        )),
    }
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

    fn records(routing: RecordRouting) -> Vec<GlobalRecord> {
        ["primary", "secondary"]
            .iter()
            .map(|s| GlobalRecord {
                set_identifier: s.to_string(),
                routing,
            })
            .collect()
    }

    #[test]
    fn planned_moves_use_weights_only_on_weighted_records() {
        let weighted = records(RecordRouting::Weighted);
        assert_eq!(
            planned_move_switch("g", &weighted, "health_check").unwrap(),
            "weights"
        );
        assert_eq!(
            planned_move_switch("g", &weighted, "weights").unwrap(),
            "weights"
        );
        assert!(check_canary_records("g", &weighted).is_ok());
        let latency = records(RecordRouting::Latency);
        assert_eq!(
            planned_move_switch("g", &latency, "health_check").unwrap(),
            "health_check"
        );
        let e = planned_move_switch("g", &latency, "weights").unwrap_err();
        assert!(
            e.to_string()
                .contains("latency records (primary, secondary)"),
            "{e}"
        );
        let e = check_canary_records("g", &latency).unwrap_err();
        assert!(e.to_string().contains("weighted layer"), "{e}");
        let mut mixed = weighted.clone();
        mixed[1].routing = RecordRouting::Failover;
        assert!(check_canary_records("g", &mixed).is_err());
        assert!(planned_move_switch("g", &[], "health_check").is_err());
        assert!(check_canary_records("g", &[]).is_err());
    }
}
