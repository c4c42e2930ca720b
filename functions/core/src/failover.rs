//! The failover plan: the state machine input validated and filled in from the deployment's
//! configuration, and the decisions along the way (data-loss guard, traffic weights).

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::tier::Tier;

/// Defaults for a console-started run with only the two regions given.
pub const DEFAULT_APPROVAL_TIMEOUT_SECS: u64 = 900;
/// How long a DNS change may take to reach `INSYNC`.
pub const DEFAULT_DNS_SYNC_TIMEOUT_SECS: u64 = 120;
/// How long the check through the global name may keep failing after the switch before the run
/// gives up on it: resolvers keep the old answer for the records' TTL (60 s, an alias to a load
/// balancer), and Route53 needs up to one failure-threshold round of its checkers (3 x 10 s)
/// to see a region as it is. A window shorter than that fails failovers that worked.
pub const DEFAULT_VERIFY_WINDOW_SECS: u64 = 90;
/// How long a graceful switchover waits for the standby to replay everything.
pub const DEFAULT_CATCHUP_TIMEOUT_SECS: u64 = 60;

/// How a failover treats the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailoverMode {
    /// A planned move (drills, maintenance, failback): both regions healthy, writes fenced,
    /// the standby replays everything the primary wrote before it is promoted. Loses nothing;
    /// when the standby cannot catch up in time, the fence is undone and nothing moves.
    /// The default for runs started from the console or the CLI.
    #[default]
    Graceful,
    /// The primary is gone: promote what the standby has (within the tier's RPO, or with a
    /// human's approval). The alarm router always asks for this.
    Ungraceful,
}

/// A region as the deployment knows it: where its gateway answers `/health`, and which
/// weighted record of the global name sends traffic to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionSite {
    /// AWS region name.
    pub region: String,
    /// The regional gateway's health URL (behind its NLB).
    pub health_url: String,
    /// `SetIdentifier` of this region's weighted record.
    pub set_identifier: String,
}

/// The failover state machine's input. Only the two regions are required.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverRequest {
    /// The failing region.
    pub primary_region: String,
    /// The region that takes over.
    pub standby_region: String,
    /// The tier whose RPO guards promotion (default: the deployment's).
    #[serde(default)]
    pub tier: Option<Tier>,
    /// Fail over even if the primary answers healthy from here.
    #[serde(default)]
    pub force: bool,
    /// Health probes per check.
    #[serde(default)]
    pub probe_samples: Option<u32>,
    /// Per-probe timeout.
    #[serde(default)]
    pub probe_timeout_ms: Option<u64>,
    /// Pause between probes.
    #[serde(default)]
    pub probe_interval_ms: Option<u64>,
    /// How long to wait for a human when the data-loss guard asks.
    #[serde(default)]
    pub approval_timeout_seconds: Option<u64>,
    /// How long a DNS change may take to reach `INSYNC`.
    #[serde(default)]
    pub dns_sync_timeout_seconds: Option<u64>,
    /// How long the check through the global name may fail after the switch (resolvers still
    /// holding the old answer) before the run fails forward, seconds (default 90).
    #[serde(default)]
    pub verify_window_seconds: Option<u64>,
    /// How long the promoted standby's deployments may take to become ready before a human is
    /// asked whether to move traffic anyway, seconds (default: a third of the tier's RTO, at
    /// most 300; [`crate::capacity::default_wait_secs`]).
    #[serde(default)]
    pub capacity_wait_seconds: Option<u64>,
    /// What started the run (the alarm router's decision record), kept for the journal.
    #[serde(default)]
    pub incident: Option<serde_json::Value>,
    /// `graceful` (default) or `ungraceful`.
    #[serde(default)]
    pub mode: Option<FailoverMode>,
    /// Graceful only: how long the standby may take to replay everything, seconds (default 60).
    #[serde(default)]
    pub catchup_timeout_seconds: Option<u64>,
    /// The vantage points' votes that started the run (the alarm router's), for the journal
    /// and the approval request.
    #[serde(default)]
    pub votes: Option<Vec<crate::alarm::Vote>>,
    /// The quorum was not reached either way: ask a human before anything changes.
    #[serde(default)]
    pub needs_approval: bool,
    /// The delivery that started the run (one per alarm-router invocation): duplicates of one
    /// incident carry different ids, so Step Functions refuses all but the first.
    #[serde(default)]
    pub delivery: Option<String>,
    /// Other secondaries the run may take instead of `standby_region`, in the operator's order
    /// after it: the run measures each and takes the one that loses the least data
    /// ([`crate::standby::choose_standby`]).
    #[serde(default)]
    pub standby_candidates: Option<Vec<String>>,
}

/// Probe settings used by every health check of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSettings {
    /// Samples per check.
    pub samples: u32,
    /// Per-probe timeout, ms.
    pub timeout_ms: u64,
    /// Pause between probes, ms.
    pub interval_ms: u64,
}

/// Everything the run needs, decided before anything is touched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailoverPlan {
    /// The failing region.
    pub primary: RegionSite,
    /// The region taking over.
    pub standby: RegionSite,
    /// The health URL through the global name (what users reach).
    pub global_health_url: String,
    /// The tier.
    pub tier: Tier,
    /// The tier's RPO, seconds.
    pub rpo_secs: u64,
    /// The tier's RTO, seconds.
    pub rto_secs: u64,
    /// Whether a healthy-looking primary is failed over anyway.
    pub force: bool,
    /// Probe settings.
    pub probe: ProbeSettings,
    /// Approval wait, seconds.
    pub approval_timeout_seconds: u64,
    /// DNS sync deadline, seconds.
    pub dns_sync_timeout_seconds: u64,
    /// Seconds between two looks at a DNS change's status.
    pub dns_poll_seconds: u64,
    /// Looks at a DNS change's status before giving up (covers the deadline).
    pub dns_max_polls: u64,
    /// How long the global check may fail after the switch, seconds.
    #[serde(default = "default_verify_window")]
    pub verify_window_seconds: u64,
    /// Seconds between two global checks while resolvers catch up.
    #[serde(default = "default_verify_poll")]
    pub verify_poll_seconds: u64,
    /// Global checks after the first before failing forward (covers the window).
    #[serde(default = "default_verify_polls")]
    pub verify_max_polls: u64,
    /// How long the standby's capacity may take to be ready before a human decides, seconds.
    #[serde(default = "default_capacity_wait")]
    pub capacity_wait_seconds: u64,
    /// Seconds between two looks at the standby's ready replicas.
    #[serde(default = "default_capacity_poll")]
    pub capacity_poll_seconds: u64,
    /// Looks at the standby's ready replicas before asking (covers the wait).
    #[serde(default = "default_capacity_polls")]
    pub capacity_max_polls: u64,
    /// The incident record, if the run was started by an alarm.
    pub incident: Option<serde_json::Value>,
    /// Graceful or ungraceful.
    pub mode: FailoverMode,
    /// Graceful: deadline for the standby to catch up, seconds.
    pub catchup_timeout_seconds: u64,
    /// Graceful: seconds between two comparisons of the WAL positions.
    pub catchup_poll_seconds: u64,
    /// Graceful: comparisons before the fence is undone (covers the deadline).
    pub catchup_max_polls: u64,
    /// The votes that started the run (empty for console/CLI runs).
    #[serde(default)]
    pub votes: Vec<crate::alarm::Vote>,
    /// A human must approve before the fence (the quorum was not reached either way).
    #[serde(default)]
    pub needs_approval: bool,
    /// How this run moves traffic: `weights` (Route53 control plane; planned moves with both
    /// regions up), `health_check` or `arc_routing_control` (data plane; the emergency path).
    #[serde(default = "weights_switch")]
    pub traffic_switch: String,
    /// The secondaries the run chooses its standby from, in the operator's order (the
    /// requested standby first); one means the standby is pinned.
    #[serde(default)]
    pub candidates: Vec<RegionSite>,
}

fn weights_switch() -> String {
    "weights".into()
}

fn default_capacity_wait() -> u64 {
    crate::capacity::default_wait_secs(Tier::Critical.rto_secs())
}

fn default_capacity_poll() -> u64 {
    crate::capacity::poll_secs(default_capacity_wait())
}

fn default_capacity_polls() -> u64 {
    default_capacity_wait().div_ceil(default_capacity_poll())
}

fn default_verify_window() -> u64 {
    DEFAULT_VERIFY_WINDOW_SECS
}

fn default_verify_poll() -> u64 {
    verify_poll_seconds(DEFAULT_VERIFY_WINDOW_SECS)
}

fn default_verify_polls() -> u64 {
    DEFAULT_VERIFY_WINDOW_SECS.div_ceil(default_verify_poll())
}

/// Seconds between two global checks for a window: every second for short (compressed)
/// windows, every 5 s otherwise.
fn verify_poll_seconds(window: u64) -> u64 {
    if window < 20 { 1 } else { 5 }
}

impl FailoverPlan {
    /// Picks the traffic switch for this run from the deployment's: an ungraceful failover uses
    /// the deployment's data-plane switch (it must not need the failing region or Route53's
    /// control plane); a graceful switchover, with both regions up, moves weights.
    pub fn with_traffic_switch(mut self, deployment_switch: &str) -> Self {
        self.traffic_switch = match self.mode {
            FailoverMode::Graceful => "weights".into(),
            FailoverMode::Ungraceful => deployment_switch.to_string(),
        };
        self
    }
}

/// Validates a request against the deployment's regions and fills in defaults.
pub fn plan_failover(
    request: &FailoverRequest,
    sites: &[RegionSite],
    global_health_url: &str,
    default_tier: Tier,
) -> Result<FailoverPlan, CoreError> {
    let site = |field: &str, region: &str| {
        sites
            .iter()
            .find(|s| s.region == region)
            .cloned()
            .ok_or_else(|| {
                let known: Vec<_> = sites.iter().map(|s| s.region.as_str()).collect();
                CoreError::invalid(
                    field,
                    format!(
                        "{region:?} is not a configured region (configured: {})",
                        known.join(", ")
                    ),
                )
            })
    };
    let primary = site("primary_region", &request.primary_region)?;
    let standby = site("standby_region", &request.standby_region)?;
    if primary.region == standby.region {
        return Err(CoreError::invalid(
            "standby_region",
            "must differ from primary_region",
        ));
    }
    let mut candidates = vec![standby.clone()];
    for region in request.standby_candidates.iter().flatten() {
        let candidate = site("standby_candidates", region)?;
        if candidate.region == primary.region {
            return Err(CoreError::invalid(
                "standby_candidates",
                "must not name primary_region",
            ));
        }
        if !candidates.contains(&candidate) {
            candidates.push(candidate);
        }
    }
    let probe = ProbeSettings {
        samples: request
            .probe_samples
            .unwrap_or(crate::health::DEFAULT_SAMPLES),
        timeout_ms: request
            .probe_timeout_ms
            .unwrap_or(crate::health::DEFAULT_TIMEOUT_MS),
        interval_ms: request
            .probe_interval_ms
            .unwrap_or(crate::health::DEFAULT_INTERVAL_MS),
    };
    // The same limits as a single health check, checked now rather than mid-run.
    crate::health::HealthCheckRequest {
        url: primary.health_url.clone(),
        label: None,
        samples: Some(probe.samples),
        timeout_ms: Some(probe.timeout_ms),
        interval_ms: Some(probe.interval_ms),
        expect_body: None,
        min_healthy: None,
        require_healthy: false,
    }
    .plan()
    .map_err(|e| match e {
        CoreError::InvalidInput { field, problem } => {
            CoreError::invalid(format!("probe_{field}"), problem)
        }
    })?;
    let approval_timeout_seconds = request
        .approval_timeout_seconds
        .unwrap_or(DEFAULT_APPROVAL_TIMEOUT_SECS);
    if !(1..=86_400).contains(&approval_timeout_seconds) {
        return Err(CoreError::invalid(
            "approval_timeout_seconds",
            "must be 1 to 86400",
        ));
    }
    let dns_sync_timeout_seconds = request
        .dns_sync_timeout_seconds
        .unwrap_or(DEFAULT_DNS_SYNC_TIMEOUT_SECS);
    if !(1..=900).contains(&dns_sync_timeout_seconds) {
        return Err(CoreError::invalid(
            "dns_sync_timeout_seconds",
            "must be 1 to 900",
        ));
    }
    let verify_window_seconds = request
        .verify_window_seconds
        .unwrap_or(DEFAULT_VERIFY_WINDOW_SECS);
    if !(1..=900).contains(&verify_window_seconds) {
        return Err(CoreError::invalid(
            "verify_window_seconds",
            "must be 1 to 900",
        ));
    }
    let verify_poll = verify_poll_seconds(verify_window_seconds);
    let catchup_timeout_seconds = request
        .catchup_timeout_seconds
        .unwrap_or(DEFAULT_CATCHUP_TIMEOUT_SECS);
    if !(1..=3_600).contains(&catchup_timeout_seconds) {
        return Err(CoreError::invalid(
            "catchup_timeout_seconds",
            "must be 1 to 3600",
        ));
    }
    let catchup_poll_seconds = if catchup_timeout_seconds < 30 { 1 } else { 2 };
    let tier = request.tier.unwrap_or(default_tier);
    let dns_poll_seconds = if dns_sync_timeout_seconds < 20 { 1 } else { 5 };
    let capacity_wait_seconds = request
        .capacity_wait_seconds
        .unwrap_or_else(|| crate::capacity::default_wait_secs(tier.rto_secs()));
    if !(1..=3_600).contains(&capacity_wait_seconds) {
        return Err(CoreError::invalid(
            "capacity_wait_seconds",
            "must be 1 to 3600",
        ));
    }
    let capacity_poll_seconds = crate::capacity::poll_secs(capacity_wait_seconds);
    Ok(FailoverPlan {
        primary,
        standby,
        global_health_url: global_health_url.to_string(),
        tier,
        rpo_secs: tier.rpo_secs(),
        rto_secs: tier.rto_secs(),
        force: request.force,
        probe,
        approval_timeout_seconds,
        dns_sync_timeout_seconds,
        dns_poll_seconds,
        dns_max_polls: dns_sync_timeout_seconds.div_ceil(dns_poll_seconds),
        verify_window_seconds,
        verify_poll_seconds: verify_poll,
        verify_max_polls: verify_window_seconds.div_ceil(verify_poll),
        capacity_wait_seconds,
        capacity_poll_seconds,
        capacity_max_polls: capacity_wait_seconds.div_ceil(capacity_poll_seconds),
        incident: request.incident.clone(),
        mode: request.mode.unwrap_or_default(),
        catchup_timeout_seconds,
        catchup_poll_seconds,
        catchup_max_polls: catchup_timeout_seconds.div_ceil(catchup_poll_seconds),
        votes: request.votes.clone().unwrap_or_default(),
        needs_approval: request.needs_approval,
        traffic_switch: weights_switch(),
        candidates,
    })
}

/// A database's WAL position, as `check-catchup` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalPosition {
    /// Whether it is a replica.
    pub in_recovery: bool,
    /// Whether new transactions are read-only (`default_transaction_read_only`): fenced.
    pub read_only: bool,
    /// `pg_current_wal_lsn()` on a primary, `pg_last_wal_replay_lsn()` on a replica.
    pub lsn: u64,
}

/// The catch-up verdict: whether the standby replayed everything the primary wrote (within
/// `max_lag_bytes`), and the sentence that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchupVerdict {
    /// Promote now (graceful switchover) or the rebuilt replica is close enough (re-protection).
    pub caught_up: bool,
    /// The two positions compared.
    pub status: CatchupStatus,
    /// What was seen, for the journal and the report.
    pub detail: String,
}

/// Judges a switchover's (or a re-protection's) catch-up from the two databases' positions,
/// each with its region's name. Positions are comparable only on a primary/replica pair: a
/// "primary" in recovery, or a "standby" that is not a replica, is never caught up, whatever
/// the numbers say (a primary that still takes writes could move on after we looked).
pub fn judge_catchup(
    (primary_region, primary): (&str, WalPosition),
    (standby_region, standby): (&str, WalPosition),
    max_lag_bytes: u64,
) -> CatchupVerdict {
    let status = CatchupStatus {
        primary_lsn: primary.lsn,
        standby_lsn: standby.lsn,
    };
    let (caught_up, detail) = if primary.in_recovery {
        (
            false,
            format!("{primary_region} is not a primary (in recovery)"),
        )
    } else if !standby.in_recovery {
        (false, format!("{standby_region} is not a replica"))
    } else {
        let state = if primary.read_only {
            "fenced"
        } else {
            "accepting writes"
        };
        (
            status.lag_bytes() <= max_lag_bytes,
            format!(
                "{primary_region} at {} ({state}), {standby_region} replayed {}: {} bytes behind",
                format_lsn(status.primary_lsn),
                format_lsn(status.standby_lsn),
                status.lag_bytes()
            ),
        )
    };
    CatchupVerdict {
        caught_up,
        status,
        detail,
    }
}

/// Where the two databases' WAL stands, for a graceful switchover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchupStatus {
    /// The fenced primary's current write position (`pg_current_wal_lsn()`).
    pub primary_lsn: u64,
    /// What the standby has replayed (`pg_last_wal_replay_lsn()`).
    pub standby_lsn: u64,
}

impl CatchupStatus {
    /// Whether the standby has replayed everything the primary wrote: promoting now loses nothing.
    pub fn caught_up(self) -> bool {
        self.standby_lsn >= self.primary_lsn
    }

    /// Bytes of WAL the standby still has to replay.
    pub fn lag_bytes(self) -> u64 {
        self.primary_lsn.saturating_sub(self.standby_lsn)
    }
}

/// Replication lag in seconds as the HA document's alert means it ("replication lag > 30 s"):
/// 0 when the replica has replayed everything the primary wrote (an idle primary writes no
/// transactions, so "time since the last replayed transaction" would grow without any lag);
/// otherwise the age of the last replayed transaction.
pub fn replication_lag_secs(catchup: CatchupStatus, replay_age_secs: Option<f64>) -> Option<f64> {
    if catchup.caught_up() {
        return Some(0.0);
    }
    replay_age_secs.map(|s| s.max(0.0))
}

/// Formats an LSN as PostgreSQL does (`16/B374D848`).
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// What a database adapter reports about the standby's replication.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicationStatus {
    /// Whether the database is still a replica (`pg_is_in_recovery()`).
    pub in_recovery: bool,
    /// Seconds since the last replayed transaction, when known.
    pub replay_lag_secs: Option<f64>,
    /// WAL received but not yet replayed, bytes, when known (replayed before promotion).
    pub unreplayed_bytes: Option<u64>,
    /// Whether a WAL receiver is streaming from the primary now, when the backend says
    /// (`pg_stat_wal_receiver`, Patroni's `replication_state`).
    #[serde(default)]
    pub streaming: Option<bool>,
    /// What streaming gave it (`pg_last_wal_receive_lsn()`, Patroni's `received_location`),
    /// when the backend says.
    #[serde(default)]
    pub received_lsn: Option<u64>,
    /// What it replayed (`pg_last_wal_replay_lsn()`, Patroni's `replayed_location`), when the
    /// backend says.
    #[serde(default)]
    pub replayed_lsn: Option<u64>,
}

impl ReplicationStatus {
    /// The standby's side of [`crate::data_at_risk::bound_data_at_risk`].
    pub fn standby_wal(&self) -> crate::data_at_risk::StandbyWal {
        crate::data_at_risk::StandbyWal {
            in_recovery: self.in_recovery,
            received: self.received_lsn,
            replayed: self.replayed_lsn,
            replay_age_secs: self.replay_lag_secs,
        }
    }
}

/// The data-loss guard's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataLossAssessment {
    /// Whether promotion may go ahead without a human.
    pub within_rpo: bool,
    /// Seconds of writes at risk, when known.
    pub at_risk_secs: Option<f64>,
    /// Bytes of WAL the primary wrote that the standby lacks, at least, when known
    /// ([`crate::data_at_risk`]).
    #[serde(default)]
    pub at_risk_bytes: Option<u64>,
    /// The tier's RPO.
    pub rpo_secs: u64,
    /// In words, for the approval request and the report.
    pub summary: String,
}

/// Decides whether promoting the standby could lose more than the tier's RPO.
///
/// An unknown lag (a replica that never replayed anything) is treated as over the RPO: the
/// autopilot does not bet data on what it cannot measure.
pub fn assess_data_loss(status: &ReplicationStatus, rpo_secs: u64) -> DataLossAssessment {
    if !status.in_recovery {
        return DataLossAssessment {
            within_rpo: true,
            at_risk_secs: Some(0.0),
            at_risk_bytes: Some(0),
            rpo_secs,
            summary: "the standby is already a primary: nothing left to replay".to_string(),
        };
    }
    match status.replay_lag_secs {
        Some(lag) if lag <= rpo_secs as f64 => DataLossAssessment {
            within_rpo: true,
            at_risk_secs: Some(lag),
            at_risk_bytes: None,
            rpo_secs,
            summary: format!("standby is {lag:.1} s behind, within the {rpo_secs} s RPO"),
        },
        Some(lag) => DataLossAssessment {
            within_rpo: false,
            at_risk_secs: Some(lag),
            at_risk_bytes: None,
            rpo_secs,
            summary: format!(
                "standby is {lag:.1} s behind, over the {rpo_secs} s RPO: up to {lag:.0} s of writes would be lost"
            ),
        },
        None => DataLossAssessment {
            within_rpo: false,
            at_risk_secs: None,
            at_risk_bytes: None,
            rpo_secs,
            summary: "the standby's replication lag is unknown (no transaction replayed yet): data at risk cannot be bounded".to_string(),
        },
    }
}

/// The data-loss guard's verdict on a bound ([`crate::data_at_risk::bound_data_at_risk`]):
/// within the RPO only when the seconds at risk are known and at most the RPO.
pub fn assess_bound(risk: &crate::data_at_risk::DataAtRisk, rpo_secs: u64) -> DataLossAssessment {
    let within_rpo = risk.within(rpo_secs);
    let verdict = match (within_rpo, risk.secs) {
        (true, _) => format!("within the {rpo_secs} s RPO"),
        (false, Some(_)) => format!("over the {rpo_secs} s RPO"),
        (false, None) => "data at risk cannot be bounded in seconds".to_string(),
    };
    DataLossAssessment {
        within_rpo,
        at_risk_secs: risk.secs,
        at_risk_bytes: risk.bytes,
        rpo_secs,
        summary: format!("{verdict}: {}", risk.summary),
    }
}

#[cfg(test)]
mod catchup_tests {
    use super::*;

    fn at(lsn: u64, in_recovery: bool, read_only: bool) -> WalPosition {
        WalPosition {
            in_recovery,
            read_only,
            lsn,
        }
    }

    #[test]
    fn a_replica_that_replayed_everything_is_caught_up() {
        let v = judge_catchup(
            ("us-east-1", at(0x1_0000_0100, false, true)),
            ("us-west-2", at(0x1_0000_0100, true, true)),
            0,
        );
        assert!(v.caught_up);
        assert_eq!(
            v.detail,
            "us-east-1 at 1/100 (fenced), us-west-2 replayed 1/100: 0 bytes behind"
        );
    }

    #[test]
    fn one_byte_behind_is_not_caught_up_unless_allowed() {
        let primary = ("us-east-1", at(1_000, false, false));
        let standby = ("us-west-2", at(999, true, true));
        let strict = judge_catchup(primary, standby, 0);
        assert!(!strict.caught_up);
        assert_eq!(strict.status.lag_bytes(), 1);
        assert!(
            strict.detail.contains("accepting writes"),
            "{}",
            strict.detail
        );
        assert!(judge_catchup(primary, standby, 1).caught_up);
    }

    #[test]
    fn positions_of_a_pair_that_is_not_primary_and_replica_never_count() {
        // Equal numbers, wrong roles: a promoted "standby" or a demoted "primary".
        let v = judge_catchup(
            ("us-east-1", at(5, true, true)),
            ("us-west-2", at(5, true, true)),
            u64::MAX,
        );
        assert!(!v.caught_up);
        assert_eq!(v.detail, "us-east-1 is not a primary (in recovery)");
        let v = judge_catchup(
            ("us-east-1", at(5, false, true)),
            ("us-west-2", at(9, false, false)),
            u64::MAX,
        );
        assert!(!v.caught_up);
        assert_eq!(v.detail, "us-west-2 is not a replica");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sites() -> Vec<RegionSite> {
        ["us-east-1", "us-west-2"]
            .iter()
            .map(|r| RegionSite {
                region: r.to_string(),
                health_url: format!("http://{r}.internal/health"),
                set_identifier: r.to_string(),
            })
            .collect()
    }

    fn minimal() -> FailoverRequest {
        serde_json::from_value(
            serde_json::json!({"primary_region": "us-east-1", "standby_region": "us-west-2"}),
        )
        .unwrap()
    }

    /// Candidates: the requested standby first, then the others in the operator's order, each
    /// a configured region other than the primary.
    #[test]
    fn standby_candidates_are_validated_and_ordered() {
        let sites = {
            let mut s = sites();
            s.push(RegionSite {
                region: "eu-west-1".into(),
                health_url: "http://eu/health".into(),
                set_identifier: "tertiary".into(),
            });
            s
        };
        let plan = plan_failover(&minimal(), &sites, "u", Tier::Critical).unwrap();
        assert_eq!(plan.candidates.len(), 1, "pinned by default");
        let mut request = minimal();
        request.standby_candidates = Some(vec!["eu-west-1".into(), "us-west-2".into()]);
        let plan = plan_failover(&request, &sites, "u", Tier::Critical).unwrap();
        let regions: Vec<&str> = plan.candidates.iter().map(|c| c.region.as_str()).collect();
        assert_eq!(regions, ["us-west-2", "eu-west-1"]);
        request.standby_candidates = Some(vec!["us-east-1".into()]);
        assert!(plan_failover(&request, &sites, "u", Tier::Critical).is_err());
        request.standby_candidates = Some(vec!["ap-south-1".into()]);
        let e = plan_failover(&request, &sites, "u", Tier::Critical).unwrap_err();
        assert!(e.to_string().contains("standby_candidates"), "{e}");
    }

    #[test]
    fn minimal_console_input_gets_defaults() {
        let plan = plan_failover(&minimal(), &sites(), "http://gw/health", Tier::Critical).unwrap();
        assert_eq!(plan.primary.region, "us-east-1");
        assert_eq!((plan.rpo_secs, plan.rto_secs), (300, 900));
        assert_eq!(plan.approval_timeout_seconds, 900);
        assert!(!plan.force);
        // Capacity before traffic: a third of the RTO, looked at every 5 s.
        assert_eq!(
            (
                plan.capacity_wait_seconds,
                plan.capacity_poll_seconds,
                plan.capacity_max_polls
            ),
            (300, 5, 60)
        );
        let mut quick = minimal();
        quick.capacity_wait_seconds = Some(3);
        let plan = plan_failover(&quick, &sites(), "u", Tier::Critical).unwrap();
        assert_eq!(
            (plan.capacity_poll_seconds, plan.capacity_max_polls),
            (1, 3)
        );
        quick.capacity_wait_seconds = Some(0);
        assert!(plan_failover(&quick, &sites(), "u", Tier::Critical).is_err());
    }

    #[test]
    fn the_emergency_path_moves_traffic_through_the_data_plane_and_planned_moves_by_weights() {
        let graceful = plan_failover(&minimal(), &sites(), "u", Tier::Critical).unwrap();
        assert_eq!(
            graceful.with_traffic_switch("health_check").traffic_switch,
            "weights"
        );
        let mut r = minimal();
        r.mode = Some(FailoverMode::Ungraceful);
        let ungraceful = plan_failover(&r, &sites(), "u", Tier::Critical).unwrap();
        assert_eq!(ungraceful.traffic_switch, "weights");
        for kind in ["health_check", "arc_routing_control", "weights"] {
            assert_eq!(
                ungraceful.clone().with_traffic_switch(kind).traffic_switch,
                kind
            );
        }
    }

    #[test]
    fn console_runs_are_graceful_unless_asked() {
        let plan = plan_failover(&minimal(), &sites(), "http://gw/health", Tier::Critical).unwrap();
        assert_eq!(plan.mode, FailoverMode::Graceful);
        assert_eq!(
            (plan.catchup_timeout_seconds, plan.catchup_max_polls),
            (60, 30)
        );
        let mut ungraceful = minimal();
        ungraceful.mode = Some(FailoverMode::Ungraceful);
        ungraceful.catchup_timeout_seconds = Some(5);
        let plan =
            plan_failover(&ungraceful, &sites(), "http://gw/health", Tier::Critical).unwrap();
        assert_eq!(plan.mode, FailoverMode::Ungraceful);
        assert_eq!(plan.catchup_max_polls, 5);
        ungraceful.catchup_timeout_seconds = Some(0);
        assert!(plan_failover(&ungraceful, &sites(), "http://gw/health", Tier::Critical).is_err());
    }

    #[test]
    fn an_idle_caught_up_replica_has_no_lag() {
        let idle = CatchupStatus {
            primary_lsn: 100,
            standby_lsn: 100,
        };
        assert_eq!(replication_lag_secs(idle, Some(3_600.0)), Some(0.0));
        let behind = CatchupStatus {
            standby_lsn: 50,
            ..idle
        };
        assert_eq!(replication_lag_secs(behind, Some(42.0)), Some(42.0));
        assert_eq!(replication_lag_secs(behind, None), None);
    }

    #[test]
    fn caught_up_means_everything_replayed() {
        let s = CatchupStatus {
            primary_lsn: 0x3_0000_0100,
            standby_lsn: 0x3_0000_0000,
        };
        assert!(!s.caught_up());
        assert_eq!(s.lag_bytes(), 0x100);
        assert_eq!(format_lsn(s.primary_lsn), "3/100");
        assert!(
            CatchupStatus {
                standby_lsn: s.primary_lsn,
                ..s
            }
            .caught_up()
        );
    }

    #[test]
    fn bad_regions_are_named() {
        let mut r = minimal();
        r.standby_region = "eu-west-9".into();
        let e = plan_failover(&r, &sites(), "u", Tier::High).unwrap_err();
        assert!(
            e.to_string().contains("standby_region") && e.to_string().contains("us-west-2"),
            "{e}"
        );
        r.standby_region = "us-east-1".into();
        assert!(plan_failover(&r, &sites(), "u", Tier::High).is_err());
        let mut r = minimal();
        r.probe_samples = Some(0);
        assert!(
            plan_failover(&r, &sites(), "u", Tier::High)
                .unwrap_err()
                .to_string()
                .contains("probe_samples")
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let r: Result<FailoverRequest, _> = serde_json::from_value(
            serde_json::json!({"primary_region": "a", "standby_region": "b", "forse": true}),
        );
        assert!(r.is_err());
    }

    #[test]
    fn unknown_lag_needs_a_human() {
        let s = ReplicationStatus {
            in_recovery: true,
            replay_lag_secs: None,
            unreplayed_bytes: None,
            streaming: None,
            ..Default::default()
        };
        assert!(!assess_data_loss(&s, 300).within_rpo);
        let promoted = ReplicationStatus {
            in_recovery: false,
            ..s
        };
        assert!(assess_data_loss(&promoted, 300).within_rpo);
    }

    proptest! {
        #[test]
        fn guard_is_exactly_the_rpo(lag in 0.0f64..10_000.0, rpo in 1u64..5_000) {
            let s = ReplicationStatus { in_recovery: true, replay_lag_secs: Some(lag), unreplayed_bytes: None, streaming: Some(true), ..Default::default() };
            prop_assert_eq!(assess_data_loss(&s, rpo).within_rpo, lag <= rpo as f64);
        }
    }
}
