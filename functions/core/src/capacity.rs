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

/// What a look at the standby's Redis found: whether the gateway can use it once the traffic
/// moves, what Sentinel says, and what the gateway loses in the move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheCheck {
    /// The configured address answers as a writable master (the gateway's rate-limit counters
    /// and cache writes need one). A replica or no answer is not usable.
    pub usable: bool,
    /// Sentinel can agree on a failover of this Redis (None where no Sentinel is configured).
    pub sentinel_quorum: Option<bool>,
    /// What the run reports before the traffic moves (quorum lost, region-local data).
    pub findings: Vec<String>,
    /// One line for the journal, the report and an approval request.
    pub summary: String,
}

/// Judges the standby's Redis before the traffic moves. `replication` is `INFO replication`
/// (or why it could not be read); `sentinel` the readiness verdict of its Sentinels. A master
/// is region-local (no replica of the failed region's Redis), so the gateway starts there with
/// an empty cache and fresh rate-limit counters: said, not blocking. A Sentinel without quorum
/// is reported and does not block either (waiting does not bring Sentinels back during an
/// outage; it means Redis itself cannot fail over next). A Redis that is not a writable master
/// blocks: the gateway's writes would fail.
pub fn judge_cache(
    replication: Result<&crate::readiness::RedisView, &str>,
    sentinel: Option<&crate::readiness::ReadinessCheck>,
) -> CacheCheck {
    use crate::readiness::CheckStatus;
    let mut findings = Vec::new();
    let usable = match replication {
        Ok(view) if view.role == "master" => {
            findings.push(
                "Redis is region-local (a master, not a replica of the failed region's): the gateway starts with an empty cache and fresh rate-limit counters"
                    .to_string(),
            );
            true
        }
        Ok(view) => {
            findings.push(format!(
                "Redis answers as a {} (read-only): fail it over first (ElastiCache Global Datastore: FailoverGlobalReplicationGroup; Sentinel: SENTINEL FAILOVER)",
                view.role
            ));
            false
        }
        Err(e) => {
            findings.push(format!("Redis does not answer: {e}"));
            false
        }
    };
    let sentinel_quorum = sentinel.map(|check| {
        let ok = check.status != CheckStatus::Fail;
        if !ok {
            findings.push(format!(
                "Sentinel: {} (Redis cannot fail over by itself in this region)",
                check.seen
            ));
        }
        ok
    });
    let summary = match (usable, sentinel_quorum) {
        (true, Some(false)) => "Redis usable, but its Sentinels have no quorum".to_string(),
        (true, _) => "Redis usable (region-local master)".to_string(),
        (false, _) => format!("Redis not usable: {}", findings[0]),
    };
    CacheCheck {
        usable,
        sentinel_quorum,
        findings,
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

    fn view(role: &str) -> crate::readiness::RedisView {
        crate::readiness::RedisView {
            role: role.into(),
            connected_replicas: 1,
            master_link_up: None,
        }
    }

    /// A writable master is usable whatever Sentinel says; the loss of region-local data and a
    /// lost quorum are findings; a replica or silence blocks.
    #[test]
    fn the_cache_is_usable_only_as_a_writable_master() {
        use crate::readiness::{SentinelMaster, SentinelView, sentinel_check};
        let up = |s: &str| SentinelView {
            sentinel: s.into(),
            answer: Ok(SentinelMaster {
                address: "10.0.0.1:6379".into(),
                flags: "master".into(),
                replicas: 1,
                other_sentinels: 2,
                quorum: 2,
            }),
        };
        let down = |s: &str| SentinelView {
            sentinel: s.into(),
            answer: Err("connection refused".into()),
        };
        let healthy = sentinel_check("us-west-2", "gw", &[up("a"), up("b"), up("c")]);
        let no_quorum = sentinel_check("us-west-2", "gw", &[up("a"), down("b"), down("c")]);
        let ok = judge_cache(Ok(&view("master")), Some(&healthy));
        assert!(ok.usable && ok.sentinel_quorum == Some(true), "{ok:?}");
        assert!(ok.findings[0].contains("empty cache"));
        let lost = judge_cache(Ok(&view("master")), Some(&no_quorum));
        assert!(lost.usable && lost.sentinel_quorum == Some(false));
        assert!(
            lost.findings.iter().any(|f| f.contains("quorum is 2")),
            "{lost:?}"
        );
        assert!(lost.summary.contains("no quorum"));
        let replica = judge_cache(Ok(&view("slave")), None);
        assert!(!replica.usable && replica.sentinel_quorum.is_none());
        assert!(replica.summary.contains("read-only"), "{}", replica.summary);
        let silent = judge_cache(Err("connection refused"), None);
        assert!(!silent.usable && silent.summary.contains("does not answer"));
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
