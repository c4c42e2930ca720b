//! Capacity before traffic: the standby must carry the load before the load is sent to it.
//!
//! A failover scales the standby's deployments to the failover counts (`HAPILOT_SCALE_TARGETS`)
//! before it fences and promotes, and looks at their ready replicas before it moves traffic
//! (every `capacity_poll_seconds`, at most `capacity_max_polls` times). Sending 100 % of the
//! traffic to a standby whose pods are still starting turns a failover into a second outage
//! (the HA document's script 4.2 scales after the switch; ARC Region switch scales first).
//! Short after the wait, a human decides, with the numbers.

use serde::{Deserialize, Serialize};

/// One deployment's replicas: how many the failover wants, how many are ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentCapacity {
    /// The deployment.
    pub deployment: String,
    /// Replicas the failover scaled it to.
    pub wanted: i64,
    /// Replicas ready now (`status.readyReplicas`).
    pub ready: i64,
}

/// What one look at the standby's capacity found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityCheck {
    /// Every deployment has its wanted replicas ready.
    pub ready: bool,
    /// The share of wanted replicas that are ready, over all deployments (0 to 1).
    pub ready_fraction: f64,
    /// The deployments still short.
    pub short: Vec<DeploymentCapacity>,
    /// One line for the journal, the report and an approval request.
    pub summary: String,
}

/// Judges one look at the standby's deployments. No deployment to look at (no Kubernetes API
/// configured) is ready: there is nothing hapilot could wait for.
pub fn judge(observed: &[DeploymentCapacity]) -> CapacityCheck {
    let wanted: i64 = observed.iter().map(|d| d.wanted.max(0)).sum();
    let ready: i64 = observed
        .iter()
        .map(|d| d.ready.clamp(0, d.wanted.max(0)))
        .sum();
    let short: Vec<DeploymentCapacity> = observed
        .iter()
        .filter(|d| d.ready < d.wanted)
        .cloned()
        .collect();
    let ready_fraction = if wanted == 0 {
        1.0
    } else {
        ready as f64 / wanted as f64
    };
    let summary = if short.is_empty() {
        format!("standby capacity ready: {ready} of {wanted} replicas")
    } else {
        let list: Vec<String> = short
            .iter()
            .map(|d| format!("{} {} of {} ready", d.deployment, d.ready, d.wanted))
            .collect();
        format!(
            "standby capacity short: {} ({:.0} % of the wanted replicas ready)",
            list.join(", "),
            ready_fraction * 100.0
        )
    };
    CapacityCheck {
        ready: short.is_empty(),
        ready_fraction,
        short,
        summary,
    }
}

/// The longest a failover waits for the standby's capacity by default: a third of the tier's
/// RTO (the rest is detection, promotion and DNS), at most 5 minutes.
pub fn default_wait_secs(rto_secs: u64) -> u64 {
    (rto_secs / 3).clamp(1, 300)
}

/// Seconds between two looks for a wait of `wait_secs`: about thirty looks over the wait,
/// between one a second and one every five seconds.
pub fn poll_secs(wait_secs: u64) -> u64 {
    (wait_secs / 30).clamp(1, 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(name: &str, wanted: i64, ready: i64) -> DeploymentCapacity {
        DeploymentCapacity {
            deployment: name.into(),
            wanted,
            ready,
        }
    }

    #[test]
    fn ready_only_when_every_deployment_has_its_wanted_replicas() {
        let ok = judge(&[d("litellm", 5, 5), d("agentgateway", 3, 4)]);
        assert!(ok.ready && ok.short.is_empty());
        assert_eq!(ok.ready_fraction, 1.0);
        let short = judge(&[d("litellm", 5, 2), d("agentgateway", 3, 3)]);
        assert!(!short.ready);
        assert_eq!(short.short, [d("litellm", 5, 2)]);
        assert_eq!(short.ready_fraction, 5.0 / 8.0);
        assert!(
            short.summary.contains("litellm 2 of 5 ready") && short.summary.contains("62 %"),
            "{}",
            short.summary
        );
        assert!(judge(&[]).ready, "nothing to wait for");
    }

    #[test]
    fn the_wait_is_a_third_of_the_rto_and_at_most_five_minutes() {
        assert_eq!(default_wait_secs(900), 300);
        assert_eq!(default_wait_secs(3_600), 300);
        assert_eq!(default_wait_secs(60), 20);
        assert_eq!(poll_secs(20), 1);
        assert_eq!(poll_secs(30), 1);
        assert_eq!(poll_secs(60), 2);
        assert_eq!(poll_secs(300), 5);
    }

    proptest::proptest! {
        #[test]
        fn the_fraction_stays_in_bounds_and_ready_means_none_short(
            counts in proptest::collection::vec((0i64..20, -2i64..25), 0..6)
        ) {
            let observed: Vec<_> = counts.iter().enumerate()
                .map(|(i, (w, r))| d(&format!("d{i}"), *w, *r)).collect();
            let check = judge(&observed);
            proptest::prop_assert!((0.0..=1.0).contains(&check.ready_fraction));
            proptest::prop_assert_eq!(check.ready, check.short.is_empty());
            proptest::prop_assert_eq!(
                check.ready,
                observed.iter().all(|d| d.ready >= d.wanted)
            );
        }
    }
}
