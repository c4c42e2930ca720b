//! Vault in the run: which performance-replication calls make the region taking over the
//! Vault primary, and its old primary a secondary of it.
//!
//! A performance secondary serves reads but forwards writes to its primary, so with the primary
//! region dark every write (secret updates, some logins, leases) fails in the standby until its
//! Vault is promoted. Vault's own guide for a planned move: demote the original primary, promote
//! the secondary, then point the demoted cluster at the new primary with a fresh activation
//! token (a promoted primary knows no secondary). There must never be two primaries: an old
//! primary that answers is demoted first; one that is dark is re-joined later (re-protection
//! runs the same decision once it answers). Every call is decided from both clusters'
//! replication status, so running the step twice does nothing the second time.

use serde::{Deserialize, Serialize};

use crate::readiness::VaultReplicationView;

/// One replication call, in the order they must be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VaultStep {
    /// `sys/replication/performance/primary/demote` on the old primary.
    DemoteOld,
    /// `sys/replication/performance/secondary/promote` on the region taking over.
    PromoteNew,
    /// `sys/replication/performance/primary/revoke-secondary` on the new primary: the
    /// re-joining cluster's id (the old primary's, or another secondary's) has a token that
    /// was never used (a re-join cut short).
    RevokeOld,
    /// `primary/secondary-token` on the new primary, `secondary/update-primary` with it on the
    /// re-joining cluster (the old primary, or another secondary).
    RejoinOld,
}

/// What to do, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultPlan {
    /// The calls, in order (empty: already as wanted).
    pub steps: Vec<VaultStep>,
    /// The old cluster could not be reached: it re-joins when re-protection runs.
    pub rejoin_pending: bool,
    /// One line for the journal and the report.
    pub summary: String,
}

/// Decides the calls that make `new` (the region taking over) the performance primary and
/// `old` (None: it did not answer) its secondary, registered on the new primary as `old_id`.
/// Refuses when the new cluster does not take part in performance replication.
pub fn plan_promotion(
    new: &VaultReplicationView,
    old: Option<&VaultReplicationView>,
    old_id: &str,
) -> Result<VaultPlan, String> {
    use VaultStep::*;
    let new_is_primary = match new.mode.as_str() {
        "primary" => true,
        "secondary" => false,
        other => {
            return Err(format!(
                "the Vault taking over is in performance replication mode {other:?}, not a secondary: nothing hapilot can promote (vault read sys/replication/performance/status)"
            ));
        }
    };
    let promote = if new_is_primary {
        vec![]
    } else {
        vec![PromoteNew]
    };
    let (steps, rejoin_pending, what) = match old {
        None => (
            promote,
            true,
            "the old primary's Vault does not answer: it re-joins as a secondary when re-protection runs",
        ),
        Some(old) if old.mode == "primary" => {
            let mut steps = vec![DemoteOld];
            steps.extend(promote);
            steps.push(RejoinOld);
            (
                steps,
                false,
                "the old primary is demoted first (never two primaries), then re-joins as a secondary",
            )
        }
        Some(old) => {
            let mut steps = promote;
            steps.extend(rejoin_calls(new, old, old_id));
            (
                steps,
                false,
                "the old cluster is a secondary; it follows the new primary",
            )
        }
    };
    let summary = if steps.is_empty() && !rejoin_pending {
        "Vault already as wanted: the new region's cluster is the primary, the old follows it"
            .to_string()
    } else {
        let calls: Vec<&str> = steps
            .iter()
            .map(|s| match s {
                DemoteOld => "demote the old primary",
                PromoteNew => "promote the new primary",
                RevokeOld => "revoke the old cluster's unused token",
                RejoinOld => "re-join the old cluster as a secondary",
            })
            .collect();
        if calls.is_empty() {
            format!("Vault: nothing to call now; {what}")
        } else {
            format!("Vault: {}; {what}", calls.join(", then "))
        }
    };
    Ok(VaultPlan {
        steps,
        rejoin_pending,
        summary,
    })
}

/// The calls that make `cluster` (a secondary, registered on the new primary as `id`)
/// follow `new`: none when the new primary knows it and it streams; a re-join otherwise, after
/// revoking an unused token. A cluster that is not yet a primary knows no secondary.
fn rejoin_calls(
    new: &VaultReplicationView,
    cluster: &VaultReplicationView,
    id: &str,
) -> Vec<VaultStep> {
    let follows = cluster.primary.is_some() && cluster.state != "idle";
    let known = new.mode == "primary" && new.known_secondaries.iter().any(|k| k == id);
    match (known, follows) {
        (true, true) => vec![],
        (true, false) => vec![VaultStep::RevokeOld, VaultStep::RejoinOld],
        (false, _) => vec![VaultStep::RejoinOld],
    }
}

/// After a promotion, what another secondary (one the run did not promote, registered as
/// `id`) needs to follow `new`, the performance primary now: the calls, or why it is left
/// alone (a second primary is never touched: demoting it is re-protection's decision).
pub fn plan_follow(
    new: &VaultReplicationView,
    other: &VaultReplicationView,
    id: &str,
) -> Result<Vec<VaultStep>, String> {
    if new.mode != "primary" {
        return Err(format!(
            "the new primary's Vault is in mode {:?}: other secondaries cannot follow it yet",
            new.mode
        ));
    }
    match other.mode.as_str() {
        "secondary" => Ok(rejoin_calls(new, other, id)),
        "primary" => Err(format!(
            "{id}'s Vault is a performance primary too: not touched (demote it and re-join it: hapilot reprotect)"
        )),
        mode => Err(format!(
            "{id}'s Vault is in performance replication mode {mode:?}: nothing to re-point"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::VaultStep::*;
    use super::*;

    fn view(
        mode: &str,
        state: &str,
        known: &[&str],
        primary: Option<&str>,
    ) -> VaultReplicationView {
        VaultReplicationView {
            mode: mode.into(),
            state: state.into(),
            connections: vec![],
            known_secondaries: known.iter().map(|s| s.to_string()).collect(),
            primary: primary.map(str::to_string),
        }
    }

    /// The emergency: the old region dark, the secondary promoted, the re-join left for later.
    #[test]
    fn a_dark_old_primary_promotes_and_leaves_the_rejoin_pending() {
        let plan = plan_promotion(
            &view("secondary", "stream-wals", &[], Some("east")),
            None,
            "us-east-1",
        )
        .unwrap();
        assert_eq!(plan.steps, [PromoteNew]);
        assert!(plan.rejoin_pending);
        assert!(plan.summary.contains("re-protection"), "{}", plan.summary);
    }

    /// A planned move (switchover, failback): demote first, never two primaries.
    #[test]
    fn an_answering_old_primary_is_demoted_before_the_promotion() {
        let plan = plan_promotion(
            &view("secondary", "stream-wals", &[], Some("east")),
            Some(&view("primary", "running", &["us-west-2"], None)),
            "us-east-1",
        )
        .unwrap();
        assert_eq!(plan.steps, [DemoteOld, PromoteNew, RejoinOld]);
        assert!(!plan.rejoin_pending);
    }

    /// After an emergency the old primary comes back still a primary: demote and re-join it.
    #[test]
    fn an_old_primary_back_after_the_emergency_is_demoted_and_rejoined() {
        let plan = plan_promotion(
            &view("primary", "running", &[], None),
            Some(&view("primary", "running", &["us-west-2"], None)),
            "us-east-1",
        )
        .unwrap();
        assert_eq!(plan.steps, [DemoteOld, RejoinOld]);
    }

    /// Twice is once: a finished switch has nothing to do; a re-join cut short revokes the
    /// unused token first; a demoted old cluster only re-joins.
    #[test]
    fn the_decision_is_idempotent() {
        let new = view("primary", "running", &["us-east-1"], None);
        let following = view("secondary", "stream-wals", &[], Some("west"));
        let done = plan_promotion(&new, Some(&following), "us-east-1").unwrap();
        assert!(done.steps.is_empty(), "{done:?}");
        assert!(done.summary.contains("already"), "{}", done.summary);
        let idle = view("secondary", "idle", &[], None);
        assert_eq!(
            plan_promotion(&new, Some(&idle), "us-east-1")
                .unwrap()
                .steps,
            [RevokeOld, RejoinOld]
        );
        let fresh = view("primary", "running", &[], None);
        assert_eq!(
            plan_promotion(&fresh, Some(&idle), "us-east-1")
                .unwrap()
                .steps,
            [RejoinOld]
        );
        assert_eq!(
            plan_promotion(
                &view("secondary", "idle", &[], None),
                Some(&idle),
                "us-east-1"
            )
            .unwrap()
            .steps,
            [PromoteNew, RejoinOld]
        );
    }

    /// Another secondary, still streaming from the dark old primary, re-joins the new one;
    /// once it follows, nothing more; a second primary is left alone.
    #[test]
    fn other_secondaries_rejoin_the_new_primary_once() {
        let new = view("primary", "running", &[], None);
        let following_old = view("secondary", "stream-wals", &[], Some("east"));
        assert_eq!(
            plan_follow(&new, &following_old, "eu-west-1").unwrap(),
            [RejoinOld]
        );
        let new_knows = view("primary", "running", &["eu-west-1"], None);
        let following_new = view("secondary", "stream-wals", &[], Some("west"));
        assert!(
            plan_follow(&new_knows, &following_new, "eu-west-1")
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            plan_follow(
                &new_knows,
                &view("secondary", "idle", &[], None),
                "eu-west-1"
            )
            .unwrap(),
            [RevokeOld, RejoinOld]
        );
        let e = plan_follow(&new, &view("primary", "running", &[], None), "eu-west-1").unwrap_err();
        assert!(e.contains("not touched"), "{e}");
        assert!(plan_follow(&following_old, &following_old, "eu-west-1").is_err());
    }

    #[test]
    fn a_vault_outside_performance_replication_is_refused() {
        let e = plan_promotion(&view("disabled", "", &[], None), None, "us-east-1").unwrap_err();
        assert!(e.contains("disabled"), "{e}");
    }

    proptest::proptest! {
        /// Whatever the two clusters say, the plan never promotes while the old primary is
        /// still a primary, and demotes only a primary.
        #[test]
        fn never_two_primaries(
            new_mode in proptest::sample::select(vec!["primary", "secondary"]),
            old_mode in proptest::option::of(proptest::sample::select(vec!["primary", "secondary"])),
            known in proptest::bool::ANY,
            follows in proptest::bool::ANY,
        ) {
            let new = view(new_mode, "running", if known { &["old"] } else { &[] }, None);
            let old = old_mode.map(|m| view(m, if follows { "stream-wals" } else { "idle" }, &[], follows.then_some("new")));
            let plan = plan_promotion(&new, old.as_ref(), "old").unwrap();
            let demote = plan.steps.iter().position(|s| *s == DemoteOld);
            let promote = plan.steps.iter().position(|s| *s == PromoteNew);
            proptest::prop_assert_eq!(demote.is_some(), old_mode == Some("primary"));
            if let (Some(d), Some(p)) = (demote, promote) {
                proptest::prop_assert!(d < p);
            }
            proptest::prop_assert_eq!(promote.is_some(), new_mode == "secondary");
        }
    }
}
