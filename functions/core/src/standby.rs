//! Choosing the standby: when the deployment has more than one secondary, the failover takes
//! the one that loses the least data and can carry the traffic soonest, and says why.
//!
//! A candidate is eligible only when its gateway answers healthy and its database's replay age
//! is known (a replica whose lag cannot be read cannot be promoted without a human). Among the
//! eligible, the order is: within the tier's RPO first, then the least data at risk, then the
//! most of the failover's replicas already ready, then the operator's preference order. No
//! eligible candidate: nobody is chosen and a human decides with every candidate's numbers.

use serde::{Deserialize, Serialize};

/// What the run measured of one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateView {
    /// The region.
    pub region: String,
    /// Its gateway answered healthy.
    pub healthy: bool,
    /// The health probe's verdict in words.
    pub health: String,
    /// Seconds of writes at risk if it is promoted now (its replay age; 0 when caught up);
    /// None when its replication could not be read.
    pub at_risk_secs: Option<f64>,
    /// The share of the failover's replicas already ready there (0 to 1; None: no Kubernetes
    /// API to ask).
    pub ready_fraction: Option<f64>,
    /// Its place in the operator's preference order (0 first).
    pub preference: usize,
}

/// One candidate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateScore {
    /// The region.
    pub region: String,
    /// It may be chosen without a human.
    pub eligible: bool,
    /// Its data at risk is within the tier's RPO.
    pub within_rpo: bool,
    /// What was measured.
    pub view: CandidateView,
    /// Why it ranks where it does, in words.
    pub reason: String,
}

/// The choice and every candidate's score, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandbyChoice {
    /// The chosen region; None when no candidate is eligible (a human decides).
    pub chosen: Option<String>,
    /// Every candidate, best first.
    pub scores: Vec<CandidateScore>,
    /// One line for the journal, the report and an approval request.
    pub summary: String,
}

/// Ranks the candidates and chooses (see the module's rules).
pub fn choose_standby(candidates: &[CandidateView], rpo_secs: u64) -> StandbyChoice {
    let mut scores: Vec<CandidateScore> = candidates
        .iter()
        .map(|c| {
            let eligible = c.healthy && c.at_risk_secs.is_some();
            let within_rpo = c.at_risk_secs.is_some_and(|s| s <= rpo_secs as f64);
            let reason = if !c.healthy {
                format!("not healthy ({})", c.health)
            } else if c.at_risk_secs.is_none() {
                "replication could not be read: its data at risk is unknown".to_string()
            } else {
                format!(
                    "healthy, {:.1} s of writes at risk ({} the {rpo_secs} s RPO), {}",
                    c.at_risk_secs.unwrap_or_default(),
                    if within_rpo { "within" } else { "over" },
                    c.ready_fraction
                        .map_or("capacity unknown".to_string(), |f| {
                            format!("{:.0} % of the failover's replicas ready", f * 100.0)
                        })
                )
            };
            CandidateScore {
                region: c.region.clone(),
                eligible,
                within_rpo,
                view: c.clone(),
                reason,
            }
        })
        .collect();
    scores.sort_by(|a, b| {
        let key = |s: &CandidateScore| {
            (
                !s.eligible,
                !s.within_rpo,
                s.view.at_risk_secs.unwrap_or(f64::INFINITY),
                -s.view.ready_fraction.unwrap_or(0.0),
                s.view.preference,
            )
        };
        let (ka, kb) = (key(a), key(b));
        ka.0.cmp(&kb.0)
            .then(ka.1.cmp(&kb.1))
            .then(ka.2.total_cmp(&kb.2))
            .then(ka.3.total_cmp(&kb.3))
            .then(ka.4.cmp(&kb.4))
            .then(a.region.cmp(&b.region))
    });
    let chosen = scores
        .first()
        .filter(|s| s.eligible)
        .map(|s| s.region.clone());
    let summary = match &chosen {
        Some(region) => format!(
            "standby {region} chosen of {}: {}",
            scores.len(),
            scores[0].reason
        ),
        None => format!(
            "no standby can be chosen without a human: {}",
            scores
                .iter()
                .map(|s| format!("{} {}", s.region, s.reason))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    StandbyChoice {
        chosen,
        scores,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(
        region: &str,
        healthy: bool,
        at_risk: Option<f64>,
        ready: Option<f64>,
        pref: usize,
    ) -> CandidateView {
        CandidateView {
            region: region.into(),
            healthy,
            health: if healthy {
                "3/3 healthy".into()
            } else {
                "0/3 healthy".into()
            },
            at_risk_secs: at_risk,
            ready_fraction: ready,
            preference: pref,
        }
    }

    /// Both healthy: the one with less data at risk wins over the preferred one.
    #[test]
    fn less_data_at_risk_wins() {
        let choice = choose_standby(
            &[
                c("us-west-2", true, Some(40.0), Some(1.0), 0),
                c("eu-west-1", true, Some(2.0), Some(0.4), 1),
            ],
            300,
        );
        assert_eq!(choice.chosen.as_deref(), Some("eu-west-1"));
        assert!(
            choice.summary.contains("2.0 s of writes at risk"),
            "{}",
            choice.summary
        );
    }

    /// A degraded preferred standby loses to a healthy one; all degraded: nobody, with every
    /// candidate's numbers for the human.
    #[test]
    fn a_degraded_candidate_is_never_chosen() {
        let choice = choose_standby(
            &[
                c("us-west-2", false, Some(0.0), Some(1.0), 0),
                c("eu-west-1", true, Some(5.0), None, 1),
            ],
            300,
        );
        assert_eq!(choice.chosen.as_deref(), Some("eu-west-1"));
        let none = choose_standby(
            &[
                c("us-west-2", false, Some(0.0), Some(1.0), 0),
                c("eu-west-1", true, None, None, 1),
            ],
            300,
        );
        assert_eq!(none.chosen, None);
        assert!(
            none.summary.contains("us-west-2 not healthy")
                && none
                    .summary
                    .contains("eu-west-1 replication could not be read"),
            "{}",
            none.summary
        );
    }

    /// Equal data at risk: more ready capacity, then the operator's order.
    #[test]
    fn ties_go_to_capacity_then_preference() {
        let capacity = choose_standby(
            &[
                c("us-west-2", true, Some(0.0), Some(0.2), 0),
                c("eu-west-1", true, Some(0.0), Some(0.9), 1),
            ],
            300,
        );
        assert_eq!(capacity.chosen.as_deref(), Some("eu-west-1"));
        let preference = choose_standby(
            &[
                c("eu-west-1", true, Some(0.0), Some(1.0), 1),
                c("us-west-2", true, Some(0.0), Some(1.0), 0),
            ],
            300,
        );
        assert_eq!(preference.chosen.as_deref(), Some("us-west-2"));
    }

    proptest::proptest! {
        /// Whatever was measured: the chosen one is healthy with a known lag, no eligible
        /// candidate within the RPO loses data to one over it, and the order of the input
        /// does not change the choice.
        #[test]
        fn the_choice_is_sound_and_order_free(
            views in proptest::collection::vec(
                (proptest::bool::ANY, proptest::option::of(0.0f64..1_000.0), proptest::option::of(0.0f64..=1.0)),
                1..5,
            )
        ) {
            let candidates: Vec<CandidateView> = views.iter().enumerate()
                .map(|(i, (h, r, f))| c(&format!("r{i}"), *h, *r, *f, i)).collect();
            let choice = choose_standby(&candidates, 300);
            let mut reversed = candidates.clone();
            reversed.reverse();
            proptest::prop_assert_eq!(&choose_standby(&reversed, 300).chosen, &choice.chosen);
            match &choice.chosen {
                Some(region) => {
                    let chosen = candidates.iter().find(|c| &c.region == region).unwrap();
                    proptest::prop_assert!(chosen.healthy && chosen.at_risk_secs.is_some());
                    let best = candidates.iter()
                        .filter(|c| c.healthy)
                        .filter_map(|c| c.at_risk_secs)
                        .fold(f64::INFINITY, f64::min);
                    proptest::prop_assert_eq!(chosen.at_risk_secs.unwrap(), best);
                }
                None => proptest::prop_assert!(
                    candidates.iter().all(|c| !c.healthy || c.at_risk_secs.is_none())
                ),
            }
        }
    }
}
