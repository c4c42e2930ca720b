//! The failback plan: moving traffic back to the recovered primary region in canary steps.

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::canary::{CanaryPolicy, validate_steps};
use crate::failover::{FailoverPlan, FailoverRequest, RegionSite, plan_failover};
use crate::tier::Tier;

/// The default canary steps: the primary's share of traffic, in percent.
pub const DEFAULT_STEPS: [i64; 5] = [10, 25, 50, 75, 100];
/// Default bake time per step (the runbook waits 5 minutes).
pub const DEFAULT_BAKE_SECONDS: u64 = 300;
/// Default largest replay lag of the primary region's database before failback may start.
pub const DEFAULT_MAX_CATCHUP_LAG_SECS: u64 = 30;

/// The failback state machine's input. Only the two regions are required.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FailbackRequest {
    /// The recovered region that gets its traffic back.
    pub primary_region: String,
    /// The region carrying the traffic now.
    pub standby_region: String,
    /// Primary's share at each step, rising to 100.
    #[serde(default)]
    pub steps: Option<Vec<i64>>,
    /// Seconds each step bakes before the canary gate measures.
    #[serde(default)]
    pub bake_seconds: Option<u64>,
    /// Ask a human before the first step.
    #[serde(default)]
    pub approve_first: bool,
    /// Ask a human before the last step.
    #[serde(default)]
    pub approve_last: bool,
    /// Make the primary region's database the primary again before the first step.
    #[serde(default)]
    pub switch_database_first: bool,
    /// Largest replay lag (seconds) the primary region's database may have to start.
    #[serde(default)]
    pub max_catchup_lag_secs: Option<u64>,
    /// The canary gate's limits.
    #[serde(default)]
    pub gate: Option<CanaryPolicy>,
    /// Health probes per check.
    #[serde(default)]
    pub probe_samples: Option<u32>,
    /// Per-probe timeout.
    #[serde(default)]
    pub probe_timeout_ms: Option<u64>,
    /// Pause between probes.
    #[serde(default)]
    pub probe_interval_ms: Option<u64>,
    /// How long an approval waits.
    #[serde(default)]
    pub approval_timeout_seconds: Option<u64>,
    /// How long a DNS change may take to reach INSYNC.
    #[serde(default)]
    pub dns_sync_timeout_seconds: Option<u64>,
    /// The tier (for the report).
    #[serde(default)]
    pub tier: Option<Tier>,
}

/// Everything a failback run needs, decided before anything is touched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailbackPlan {
    /// Regions, probes, approval and DNS settings (shared with failover).
    #[serde(flatten)]
    pub common: FailoverPlan,
    /// The primary's share per step.
    pub steps: Vec<i64>,
    /// Index of the last step (for the "approve before the last step" choice).
    pub last_index: usize,
    /// Bake seconds per step.
    pub bake_seconds: u64,
    /// Ask before the first step.
    pub approve_first: bool,
    /// Ask before the last step.
    pub approve_last: bool,
    /// Switch the database primary back first.
    pub switch_database_first: bool,
    /// Largest replay lag to start.
    pub max_catchup_lag_secs: u64,
    /// The gate's limits.
    pub gate: CanaryPolicy,
}

/// Validates a failback request against the deployment and fills in defaults.
pub fn plan_failback(
    request: &FailbackRequest,
    sites: &[RegionSite],
    global_health_url: &str,
    default_tier: Tier,
) -> Result<FailbackPlan, CoreError> {
    let common = plan_failover(
        &FailoverRequest {
            primary_region: request.primary_region.clone(),
            standby_region: request.standby_region.clone(),
            tier: request.tier,
            force: false,
            probe_samples: request.probe_samples,
            probe_timeout_ms: request.probe_timeout_ms,
            probe_interval_ms: request.probe_interval_ms,
            approval_timeout_seconds: request.approval_timeout_seconds,
            dns_sync_timeout_seconds: request.dns_sync_timeout_seconds,
            verify_window_seconds: None,
            capacity_wait_seconds: None,
            incident: None,
            mode: Some(crate::failover::FailoverMode::Graceful),
            catchup_timeout_seconds: None,
            votes: None,
            needs_approval: false,
            delivery: None,
            standby_candidates: None,
        },
        sites,
        global_health_url,
        default_tier,
    )?;
    let steps = request
        .steps
        .clone()
        .unwrap_or_else(|| DEFAULT_STEPS.to_vec());
    validate_steps(&steps)?;
    let bake_seconds = request.bake_seconds.unwrap_or(DEFAULT_BAKE_SECONDS);
    if bake_seconds > 3_600 {
        return Err(CoreError::invalid("bake_seconds", "must be 0 to 3600"));
    }
    let gate = request.gate.unwrap_or_default();
    gate.validate()?;
    Ok(FailbackPlan {
        common,
        last_index: steps.len() - 1,
        steps,
        bake_seconds,
        approve_first: request.approve_first,
        approve_last: request.approve_last,
        switch_database_first: request.switch_database_first,
        max_catchup_lag_secs: request
            .max_catchup_lag_secs
            .unwrap_or(DEFAULT_MAX_CATCHUP_LAG_SECS),
        gate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites() -> Vec<RegionSite> {
        ["us-east-1", "us-west-2"]
            .iter()
            .map(|r| RegionSite {
                region: r.to_string(),
                health_url: format!("http://{r}/health"),
                set_identifier: r.to_string(),
            })
            .collect()
    }

    #[test]
    fn minimal_input_gets_the_runbook_defaults() {
        let r: FailbackRequest = serde_json::from_value(
            serde_json::json!({"primary_region": "us-east-1", "standby_region": "us-west-2"}),
        )
        .unwrap();
        let plan = plan_failback(&r, &sites(), "http://g/health", Tier::Critical).unwrap();
        assert_eq!(plan.steps, vec![10, 25, 50, 75, 100]);
        assert_eq!((plan.bake_seconds, plan.last_index), (300, 4));
        assert_eq!(plan.gate, CanaryPolicy::default());
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(
            json["primary"]["region"], "us-east-1",
            "common fields are flat: {json}"
        );
    }

    #[test]
    fn bad_steps_are_refused() {
        let r: FailbackRequest = serde_json::from_value(
            serde_json::json!({"primary_region": "us-east-1", "standby_region": "us-west-2", "steps": [10, 50]}),
        )
        .unwrap();
        let e = plan_failback(&r, &sites(), "u", Tier::High).unwrap_err();
        assert!(e.to_string().contains("end at 100"), "{e}");
    }
}
