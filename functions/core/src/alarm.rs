//! Alarm triage: which alarm state changes may start a failover, and when not to.
//!
//! The router sees an event (possibly a duplicate, possibly stale), finds whether the alarm is a
//! configured failover trigger, then, with facts it re-read from AWS, decides to start a run or
//! to ignore the event with a reason. Every "no" is as important as the "yes": a second failover
//! while one runs, or a failback-failover ping-pong, does more harm than the outage.

use serde::{Deserialize, Serialize};

use crate::tier::Tier;

/// An alarm state change, whatever shape it arrived in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmTransition {
    /// The alarm's name.
    pub alarm_name: String,
    /// The new state: `ALARM`, `OK` or `INSUFFICIENT_DATA`.
    pub new_state: String,
    /// The state before, when the event says.
    pub previous_state: Option<String>,
    /// CloudWatch's reason text.
    pub reason: String,
    /// When the state changed, seconds since the Unix epoch: identifies the incident.
    pub changed_at: i64,
    /// Which shape the event had: `eventbridge`, `alarm-action` or `sns`.
    pub delivered_as: String,
}

/// An alarm configured to trigger a failover, with where to fail over from and to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverTrigger {
    /// The alarm's name.
    pub alarm_name: String,
    /// The region that is failing (traffic leaves it).
    pub primary_region: String,
    /// The region that takes over.
    pub standby_region: String,
    /// The tier whose RPO guards the promotion.
    pub tier: Tier,
}

/// What the router re-read from AWS before deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterFacts {
    /// Automatic failover switch (the kill switch is `false`).
    pub automatic_failover: bool,
    /// The alarm's state now, per DescribeAlarms (`None`: the alarm no longer exists).
    pub alarm_state_now: Option<String>,
    /// Name of a failover execution that is RUNNING, if any.
    pub running_failover: Option<String>,
    /// When the most recent failover run ended (epoch seconds), if any.
    pub last_run_ended_at: Option<i64>,
    /// Now, epoch seconds.
    pub now: i64,
    /// Minimum seconds between the end of one run and the start of the next.
    pub cooldown_secs: u64,
}

/// Why an event was not acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnoreReason {
    /// The transition is not into `ALARM`.
    NotAnAlarm,
    /// The alarm is not configured as a failover trigger.
    NotATrigger,
    /// Automatic failover is switched off.
    AutomaticFailoverOff,
    /// The alarm is no longer in `ALARM` (recovered, or the event is stale).
    AlarmNoLongerFiring,
    /// A failover run is already in progress.
    FailoverRunning,
    /// The last run ended too recently.
    CoolingDown,
    /// A run for this very incident exists already (a duplicate delivery).
    DuplicateDelivery,
}

/// The router's decision, returned and logged as the decision record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum RouterDecision {
    /// Start a failover run with this name.
    Start {
        /// The execution name derived from the incident.
        execution_name: String,
        /// The trigger that matched.
        trigger: FailoverTrigger,
    },
    /// Do nothing.
    Ignore {
        /// Why.
        reason: IgnoreReason,
        /// The same in words, with the facts that led to it.
        detail: String,
    },
}

impl RouterDecision {
    fn ignore(reason: IgnoreReason, detail: impl Into<String>) -> Self {
        RouterDecision::Ignore {
            reason,
            detail: detail.into(),
        }
    }
}

/// First look, before any AWS call: is this an `ALARM` transition of a configured trigger?
pub fn find_trigger<'a>(
    transition: &AlarmTransition,
    triggers: &'a [FailoverTrigger],
) -> Result<&'a FailoverTrigger, RouterDecision> {
    if transition.new_state != "ALARM" {
        return Err(RouterDecision::ignore(
            IgnoreReason::NotAnAlarm,
            format!(
                "alarm {} went to {}, not ALARM",
                transition.alarm_name, transition.new_state
            ),
        ));
    }
    triggers
        .iter()
        .find(|t| t.alarm_name == transition.alarm_name)
        .ok_or_else(|| {
            RouterDecision::ignore(
                IgnoreReason::NotATrigger,
                format!(
                    "alarm {} is not configured as a failover trigger",
                    transition.alarm_name
                ),
            )
        })
}

/// Second look, with facts re-read from AWS: start, or ignore with the reason.
pub fn decide(
    transition: &AlarmTransition,
    trigger: &FailoverTrigger,
    facts: &RouterFacts,
) -> RouterDecision {
    if !facts.automatic_failover {
        return RouterDecision::ignore(
            IgnoreReason::AutomaticFailoverOff,
            "automatic failover is switched off; start the failover by hand if it is needed",
        );
    }
    match facts.alarm_state_now.as_deref() {
        Some("ALARM") => {}
        Some(state) => {
            return RouterDecision::ignore(
                IgnoreReason::AlarmNoLongerFiring,
                format!("alarm {} is {state} now", trigger.alarm_name),
            );
        }
        None => {
            return RouterDecision::ignore(
                IgnoreReason::AlarmNoLongerFiring,
                format!("alarm {} does not exist any more", trigger.alarm_name),
            );
        }
    }
    if let Some(running) = &facts.running_failover {
        return RouterDecision::ignore(
            IgnoreReason::FailoverRunning,
            format!("failover {running} is already running"),
        );
    }
    if let Some(ended) = facts.last_run_ended_at {
        let since = facts.now - ended;
        if since < facts.cooldown_secs as i64 {
            return RouterDecision::ignore(
                IgnoreReason::CoolingDown,
                format!(
                    "the last failover ended {since} s ago, inside the {} s cool-down",
                    facts.cooldown_secs
                ),
            );
        }
    }
    RouterDecision::Start {
        execution_name: execution_name(&transition.alarm_name, transition.changed_at),
        trigger: trigger.clone(),
    }
}

/// The execution name for an incident: the same alarm transition always gives the same name,
/// so a duplicate delivery cannot start a second run (Step Functions refuses the name).
/// Names are at most 80 characters of `[A-Za-z0-9_-]`.
pub fn execution_name(alarm_name: &str, changed_at: i64) -> String {
    let safe: String = alarm_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(56)
        .collect();
    format!("failover-{safe}-{changed_at}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn transition(state: &str) -> AlarmTransition {
        AlarmTransition {
            alarm_name: "primary-health".into(),
            new_state: state.into(),
            previous_state: Some("OK".into()),
            reason: "Threshold crossed".into(),
            changed_at: 1_700_000_000,
            delivered_as: "eventbridge".into(),
        }
    }

    fn triggers() -> Vec<FailoverTrigger> {
        vec![FailoverTrigger {
            alarm_name: "primary-health".into(),
            primary_region: "us-east-1".into(),
            standby_region: "us-west-2".into(),
            tier: Tier::Critical,
        }]
    }

    fn facts() -> RouterFacts {
        RouterFacts {
            automatic_failover: true,
            alarm_state_now: Some("ALARM".into()),
            running_failover: None,
            last_run_ended_at: None,
            now: 1_700_000_100,
            cooldown_secs: 1_800,
        }
    }

    fn reason(d: RouterDecision) -> IgnoreReason {
        match d {
            RouterDecision::Ignore { reason, .. } => reason,
            other => panic!("expected ignore, got {other:?}"),
        }
    }

    #[test]
    fn starts_only_for_a_firing_trigger_with_clear_facts() {
        let t = transition("ALARM");
        let triggers = triggers();
        let trigger = find_trigger(&t, &triggers).unwrap();
        assert_eq!(
            decide(&t, trigger, &facts()),
            RouterDecision::Start {
                execution_name: "failover-primary-health-1700000000".into(),
                trigger: trigger.clone()
            }
        );
    }

    #[test]
    fn every_refusal_has_its_reason() {
        let triggers = triggers();
        assert_eq!(
            reason(find_trigger(&transition("OK"), &triggers).unwrap_err()),
            IgnoreReason::NotAnAlarm
        );
        let mut other = transition("ALARM");
        other.alarm_name = "disk-full".into();
        assert_eq!(
            reason(find_trigger(&other, &triggers).unwrap_err()),
            IgnoreReason::NotATrigger
        );

        let t = transition("ALARM");
        let trigger = &triggers[0];
        let check = |f: RouterFacts| reason(decide(&t, trigger, &f));
        assert_eq!(
            check(RouterFacts {
                automatic_failover: false,
                ..facts()
            }),
            IgnoreReason::AutomaticFailoverOff
        );
        assert_eq!(
            check(RouterFacts {
                alarm_state_now: Some("OK".into()),
                ..facts()
            }),
            IgnoreReason::AlarmNoLongerFiring
        );
        assert_eq!(
            check(RouterFacts {
                alarm_state_now: None,
                ..facts()
            }),
            IgnoreReason::AlarmNoLongerFiring
        );
        assert_eq!(
            check(RouterFacts {
                running_failover: Some("failover-x".into()),
                ..facts()
            }),
            IgnoreReason::FailoverRunning
        );
        assert_eq!(
            check(RouterFacts {
                last_run_ended_at: Some(1_700_000_000),
                ..facts()
            }),
            IgnoreReason::CoolingDown
        );
        assert!(matches!(
            decide(
                &t,
                trigger,
                &RouterFacts {
                    last_run_ended_at: Some(1_690_000_000),
                    ..facts()
                }
            ),
            RouterDecision::Start { .. }
        ));
    }

    proptest! {
        #[test]
        fn execution_names_are_valid_and_stable(name in ".{1,300}", at in 0i64..4_000_000_000) {
            let n = execution_name(&name, at);
            prop_assert!(n.len() <= 80, "{}", n);
            prop_assert!(n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
            prop_assert_eq!(n.clone(), execution_name(&name, at));
            prop_assert_ne!(n, execution_name(&name, at + 1));
        }
    }
}
