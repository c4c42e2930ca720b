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
    /// The alarm's ARN when the event carries it: it names the region the alarm lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_arn: Option<String>,
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
    /// The vantage points that vote on "the primary is down": alarm ARNs, each re-read in the
    /// region its ARN names (the standby's prober, the witness's prober, Route53's health-check
    /// alarm in the primary's region). Empty: the triggering alarm alone is the vote (quorum 1;
    /// the failover's own `ConfirmPrimaryDown` probe is then the second look).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vantage_alarms: Vec<String>,
    /// Votes needed either way (default: 2 of the vantage points, or 1 when there is only one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<usize>,
    /// Other secondaries the failover may take instead of `standby_region` (the run measures
    /// each and takes the one that loses the least: [`crate::standby`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub standby_candidates: Vec<String>,
}

impl FailoverTrigger {
    /// Whether an alarm transition is one of this trigger's: by ARN when both sides have one
    /// (the same alarm name can live in several regions), by name otherwise.
    pub fn matches(&self, transition: &AlarmTransition) -> bool {
        match &transition.alarm_arn {
            Some(arn) if !self.vantage_alarms.is_empty() => {
                self.vantage_alarms.iter().any(|v| v == arn)
            }
            Some(arn) => AlarmRef::parse(arn).is_some_and(|a| a.name == self.alarm_name),
            None => {
                transition.alarm_name == self.alarm_name
                    || self
                        .vantage_alarms
                        .iter()
                        .filter_map(|v| AlarmRef::parse(v))
                        .any(|a| a.name == transition.alarm_name)
            }
        }
    }

    /// The votes needed either way.
    pub fn votes_needed(&self) -> usize {
        let voters = self.vantage_alarms.len().max(1);
        self.quorum.unwrap_or(voters.min(2)).clamp(1, voters)
    }
}

/// An alarm named by its ARN: `arn:<partition>:cloudwatch:<region>:<account>:alarm:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmRef {
    /// The region the alarm lives in (where it must be re-read).
    pub region: String,
    /// The alarm's name.
    pub name: String,
}

impl AlarmRef {
    /// Parses an alarm ARN; `None` for anything else (never a guessed region).
    pub fn parse(arn: &str) -> Option<Self> {
        let mut parts = arn.splitn(7, ':');
        let (Some("arn"), Some(_partition), Some("cloudwatch"), Some(region), Some(_account)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let (Some("alarm"), Some(name)) = (parts.next(), parts.next()) else {
            return None;
        };
        (!region.is_empty() && !name.is_empty()).then(|| AlarmRef {
            region: region.to_string(),
            name: name.to_string(),
        })
    }
}

/// What one vantage point says of the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteValue {
    /// Its alarm is in `ALARM`: the primary is down from there.
    Down,
    /// Its alarm is `OK`: the primary answers from there.
    Up,
    /// `INSUFFICIENT_DATA`, no such alarm, or the alarm's region did not answer: no vote.
    Unknown,
}

/// One vantage point's vote, with what it was read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The alarm ARN (or name) read.
    pub vantage: String,
    /// The vote.
    pub vote: VoteValue,
    /// What was read: the alarm's state, or why it could not be read.
    pub detail: String,
}

impl Vote {
    /// The vote of an alarm whose state was read (`None`: no such alarm).
    pub fn from_state(vantage: &str, state: Option<&str>) -> Self {
        let (vote, detail) = match state {
            Some("ALARM") => (VoteValue::Down, "ALARM".to_string()),
            Some("OK") => (VoteValue::Up, "OK".to_string()),
            Some(other) => (VoteValue::Unknown, other.to_string()),
            None => (VoteValue::Unknown, "no such alarm".to_string()),
        };
        Vote {
            vantage: vantage.to_string(),
            vote,
            detail,
        }
    }

    /// A vantage point that could not be read: no vote either way.
    pub fn unreadable(vantage: &str, why: &str) -> Self {
        Vote {
            vantage: vantage.to_string(),
            vote: VoteValue::Unknown,
            detail: format!("unreadable: {why}"),
        }
    }
}

/// What the votes say together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuorumVerdict {
    /// At least the quorum says down: fail over.
    Down,
    /// At least the quorum says up: the primary answers (a partition, or a recovered alarm).
    Up,
    /// Enough vantage points answer, but they disagree: wait for the next one's alarm (each
    /// vantage point's change is delivered and decides again).
    Split,
    /// Fewer vantage points can be read than the quorum: a human decides.
    Undecided,
}

/// Counts the votes. Down wins only if it reaches the quorum and outnumbers up.
pub fn quorum_verdict(votes: &[Vote], needed: usize) -> QuorumVerdict {
    let count = |v: VoteValue| votes.iter().filter(|x| x.vote == v).count();
    let (down, up) = (count(VoteValue::Down), count(VoteValue::Up));
    if down >= needed && down > up {
        QuorumVerdict::Down
    } else if up >= needed {
        QuorumVerdict::Up
    } else if down + up >= needed {
        QuorumVerdict::Split
    } else {
        QuorumVerdict::Undecided
    }
}

/// The states of the failover state machine that change where traffic goes: a run that entered
/// one of them moved traffic (and starts the cool-down); a run that entered none did not.
pub const TRAFFIC_MOVING_STATES: [&str; 4] = [
    "FenceForSwitchover",
    "FencePrimary",
    "ShiftTraffic",
    "FailForward",
];

/// Whether a run that entered `states` moved traffic.
pub fn moved_traffic<'a>(states: impl IntoIterator<Item = &'a str>) -> bool {
    states
        .into_iter()
        .any(|s| TRAFFIC_MOVING_STATES.contains(&s))
}

/// What the router re-read from AWS before deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterFacts {
    /// Automatic failover switch (the kill switch is `false`).
    pub automatic_failover: bool,
    /// Each vantage point's vote, re-read now (the triggering alarm's own among them).
    pub votes: Vec<Vote>,
    /// Name of a failover execution that is RUNNING, if any.
    pub running_failover: Option<String>,
    /// The run that holds the platform's run lock, when it is RUNNING (a failback, a drill, a
    /// failover started by hand): no second run may change the platform meanwhile.
    pub lock_holder: Option<crate::run_lock::LockHolder>,
    /// When the most recent failover run that moved traffic ended (epoch seconds), if any: runs
    /// that changed nothing (a false alarm, a refusal before the fence) start no cool-down.
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
    /// Another run that changes the platform holds the run lock.
    RunInProgress,
    /// The last run ended too recently.
    CoolingDown,
    /// A run for this very incident exists already (a duplicate delivery).
    DuplicateDelivery,
    /// The quorum of vantage points says the primary answers (e.g. only one side of a
    /// partition sees it down).
    NotConfirmed,
    /// The vantage points disagree without a quorum either way; the next one's alarm change
    /// decides again.
    AwaitingQuorum,
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
        /// The votes that led here.
        votes: Vec<Vote>,
        /// Fewer than the quorum either way: the run asks a human before changing anything.
        needs_approval: bool,
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
// The refusal is the decision record itself, made once per delivery: its size costs nothing.
#[allow(clippy::result_large_err)]
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
        .find(|t| t.matches(transition))
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
    let verdict = quorum_verdict(&facts.votes, trigger.votes_needed());
    let tally = facts
        .votes
        .iter()
        .map(|v| format!("{} {:?} ({})", v.vantage, v.vote, v.detail).to_lowercase())
        .collect::<Vec<_>>()
        .join("; ");
    if verdict == QuorumVerdict::Up {
        let (reason, what) = if trigger.vantage_alarms.is_empty() {
            (
                IgnoreReason::AlarmNoLongerFiring,
                "the alarm is not firing any more",
            )
        } else {
            (IgnoreReason::NotConfirmed, "the quorum sees the primary up")
        };
        return RouterDecision::ignore(
            reason,
            format!(
                "{what} ({} of {} needed): {tally}",
                trigger.votes_needed(),
                facts.votes.len().max(1)
            ),
        );
    }
    if verdict == QuorumVerdict::Split {
        return RouterDecision::ignore(
            IgnoreReason::AwaitingQuorum,
            format!(
                "no quorum yet ({} needed either way); the next vantage point's change decides: {tally}",
                trigger.votes_needed()
            ),
        );
    }
    if verdict == QuorumVerdict::Undecided && trigger.vantage_alarms.is_empty() {
        // One configured vantage point that cannot be read or has no data: as before, nothing.
        return RouterDecision::ignore(
            IgnoreReason::AlarmNoLongerFiring,
            format!("alarm {} is not in ALARM now: {tally}", trigger.alarm_name),
        );
    }
    if let Some(running) = &facts.running_failover {
        return RouterDecision::ignore(
            IgnoreReason::FailoverRunning,
            format!("failover {running} is already running"),
        );
    }
    if let Some(holder) = &facts.lock_holder {
        return RouterDecision::ignore(
            IgnoreReason::RunInProgress,
            format!(
                "run {} ({}) holds the platform's run lock since {}; a failover started now would be refused",
                holder.execution, holder.machine, holder.taken_at
            ),
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
        votes: facts.votes.clone(),
        needs_approval: verdict == QuorumVerdict::Undecided,
    }
}

/// A notification to the on-call when hapilot will not act on an outage its quorum confirms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// One incident, one page: the key of the incident (primary -> standby).
    pub incident: String,
    /// The notification's subject.
    pub subject: String,
    /// What was seen, and the exact command to start the failover by hand.
    pub message: String,
    /// That command.
    pub command: String,
}

/// What the on-call must hear about a decision: a [`Page`] when the router will not act
/// (automatic failover off) although the vantage points confirm the primary down; `None`
/// otherwise (a run starts, or the outage is not confirmed).
pub fn page_when_not_acting(
    decision: &RouterDecision,
    trigger: &FailoverTrigger,
    votes: &[Vote],
) -> Option<Page> {
    let RouterDecision::Ignore { reason, detail } = decision else {
        return None;
    };
    let why_not = match reason {
        IgnoreReason::AutomaticFailoverOff => {
            "automatic failover is switched off (HAPILOT_AUTOMATIC_FAILOVER)".to_string()
        }
        // A failover in progress is acting on it; any other run holding the lock is not.
        IgnoreReason::RunInProgress => format!(
            "{detail}. Once it has ended (or after stopping it), the command below starts the failover"
        ),
        _ => return None,
    };
    if quorum_verdict(votes, trigger.votes_needed()) != QuorumVerdict::Down {
        return None;
    }
    let (primary, standby) = (&trigger.primary_region, &trigger.standby_region);
    let command = format!(
        "hapilot start failover --input - <<< '{{\"primary_region\": \"{primary}\", \"standby_region\": \"{standby}\", \"mode\": \"ungraceful\"}}'"
    );
    let tally = votes
        .iter()
        .map(|v| format!("{}: {:?} ({})", v.vantage, v.vote, v.detail).to_lowercase())
        .collect::<Vec<_>>()
        .join("; ");
    Some(Page {
        incident: format!("{primary}-to-{standby}"),
        subject: format!(
            "hapilot: {primary} is down and hapilot will not fail over by itself ({})",
            if *reason == IgnoreReason::AutomaticFailoverOff {
                "automatic failover is off"
            } else {
                "another run holds the run lock"
            }
        ),
        message: format!(
            "The vantage points confirm {primary} down ({} of {} needed): {tally}.\n\n\
             hapilot will not fail over by itself: {why_not}. To fail over to {standby}, run:\n\n  {command}\n\n\
             This is the only page for this incident until {primary} is seen up again.",
            trigger.votes_needed(),
            votes.len().max(1)
        ),
        command,
    })
}

/// Whether the vantage points see the primary up again (an incident's page is then closed).
pub fn outage_over(trigger: &FailoverTrigger, votes: &[Vote]) -> bool {
    !votes.is_empty() && quorum_verdict(votes, trigger.votes_needed()) == QuorumVerdict::Up
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

/// The failover run's input for an alarm-started run: the deployment's defaults under the
/// trigger's regions and tier, `ungraceful` (an alarm means the primary is failing: nothing to
/// wait for), the votes, whether a human must approve, the incident, and `delivery`: one id per
/// delivery, so a second delivery of the same incident gives the same run name with another
/// input, which Step Functions refuses (the same input would be answered with the running
/// execution's ARN, indistinguishable from a start).
pub fn failover_input(
    defaults: &serde_json::Map<String, serde_json::Value>,
    transition: &AlarmTransition,
    trigger: &FailoverTrigger,
    (votes, needs_approval): (&[Vote], bool),
    delivery: &str,
) -> serde_json::Value {
    use serde_json::json;
    let mut input = defaults.clone();
    for (key, value) in [
        ("primary_region", json!(trigger.primary_region)),
        ("standby_region", json!(trigger.standby_region)),
        ("tier", json!(trigger.tier)),
        ("mode", json!("ungraceful")),
        ("votes", json!(votes)),
        ("needs_approval", json!(needs_approval)),
        ("delivery", json!(delivery)),
        (
            "incident",
            json!({ "alarm": transition.alarm_name, "alarm_arn": transition.alarm_arn,
                    "changed_at": transition.changed_at,
                    "reason": transition.reason, "delivered_as": transition.delivered_as }),
        ),
    ] {
        input.insert(key.to_string(), value);
    }
    if !trigger.standby_candidates.is_empty() {
        input.insert(
            "standby_candidates".to_string(),
            json!(trigger.standby_candidates),
        );
    }
    serde_json::Value::Object(input)
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
            alarm_arn: None,
        }
    }

    fn triggers() -> Vec<FailoverTrigger> {
        vec![FailoverTrigger {
            alarm_name: "primary-health".into(),
            primary_region: "us-east-1".into(),
            standby_region: "us-west-2".into(),
            tier: Tier::Critical,
            vantage_alarms: Vec::new(),
            quorum: None,
            standby_candidates: Vec::new(),
        }]
    }

    fn facts() -> RouterFacts {
        RouterFacts {
            automatic_failover: true,
            votes: vec![Vote::from_state("primary-health", Some("ALARM"))],
            running_failover: None,
            lock_holder: None,
            last_run_ended_at: None,
            now: 1_700_000_100,
            cooldown_secs: 1_800,
        }
    }

    fn failback_holds_the_lock() -> Option<crate::run_lock::LockHolder> {
        Some(crate::run_lock::LockHolder {
            machine: "failback".into(),
            execution: "failback-cli-7".into(),
            execution_arn: "arn:aws:states:us-west-2:1:execution:hapilot-failback:failback-cli-7"
                .into(),
            taken_at: "2026-12-06T03:00:00Z".into(),
        })
    }

    /// A confirmed outage while another run holds the lock: nothing starts, the decision names
    /// the holder, and the on-call is paged with the command; a failover in progress is acting,
    /// so it pages no one, and an unconfirmed outage pages no one either.
    #[test]
    fn a_confirmed_outage_during_another_run_pages_with_the_holder_and_the_command() {
        let t = transition("ALARM");
        let trigger = &triggers()[0];
        let held = RouterFacts {
            lock_holder: failback_holds_the_lock(),
            ..facts()
        };
        let decision = decide(&t, trigger, &held);
        let RouterDecision::Ignore { reason, detail } = &decision else {
            panic!("{decision:?}")
        };
        assert_eq!(*reason, IgnoreReason::RunInProgress);
        assert!(detail.contains("failback-cli-7"), "{detail}");
        let page = page_when_not_acting(&decision, trigger, &held.votes).unwrap();
        assert!(page.message.contains("failback-cli-7"), "{}", page.message);
        assert!(page.message.contains(&page.command));
        assert!(page.subject.contains("run lock"), "{}", page.subject);
        let running = decide(
            &t,
            trigger,
            &RouterFacts {
                running_failover: Some("failover-x".into()),
                ..held.clone()
            },
        );
        assert_eq!(page_when_not_acting(&running, trigger, &held.votes), None);
        let up = vec![Vote::from_state("primary-health", Some("OK"))];
        assert_eq!(page_when_not_acting(&decision, trigger, &up), None);
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
                trigger: trigger.clone(),
                votes: facts().votes,
                needs_approval: false,
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
                votes: vec![Vote::from_state("primary-health", Some("OK"))],
                ..facts()
            }),
            IgnoreReason::AlarmNoLongerFiring
        );
        assert_eq!(
            check(RouterFacts {
                votes: vec![Vote::from_state("primary-health", None)],
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

    const STANDBY: &str = "arn:aws:cloudwatch:us-west-2:123456789012:alarm:hapilot-watch-us-east-1";
    const WITNESS: &str = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:hapilot-watch-us-east-1";
    const ROUTE53: &str = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:hapilot-primary-health";

    fn quorum_trigger() -> FailoverTrigger {
        FailoverTrigger {
            alarm_name: "hapilot-watch-us-east-1".into(),
            vantage_alarms: vec![STANDBY.into(), WITNESS.into(), ROUTE53.into()],
            ..triggers()[0].clone()
        }
    }

    fn decide_with(votes: Vec<Vote>) -> RouterDecision {
        let mut t = transition("ALARM");
        t.alarm_arn = Some(STANDBY.into());
        decide(&t, &quorum_trigger(), &RouterFacts { votes, ..facts() })
    }

    #[test]
    fn alarm_arns_name_their_region_and_nothing_else_parses() {
        assert_eq!(
            AlarmRef::parse(WITNESS),
            Some(AlarmRef {
                region: "eu-west-1".into(),
                name: "hapilot-watch-us-east-1".into()
            })
        );
        // Alarm names may hold colons; the name is everything after `alarm:`.
        assert_eq!(
            AlarmRef::parse("arn:aws:cloudwatch:us-east-1:1:alarm:a:b")
                .unwrap()
                .name,
            "a:b"
        );
        for bad in [
            "hapilot-primary-health",
            "arn:aws:sns:us-east-1:1:alarm:x",
            "arn:aws:cloudwatch::1:alarm:x",
            "arn:aws:cloudwatch:us-east-1:1:dashboard:x",
            "arn:aws:cloudwatch:us-east-1:1:alarm:",
        ] {
            assert_eq!(AlarmRef::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_trigger_matches_its_vantage_alarms_by_arn_not_by_a_name_in_another_region() {
        let trigger = quorum_trigger();
        let mut t = transition("ALARM");
        t.alarm_name = "hapilot-watch-us-east-1".into();
        for arn in [STANDBY, WITNESS, ROUTE53] {
            t.alarm_arn = Some(arn.into());
            assert!(trigger.matches(&t), "{arn}");
        }
        t.alarm_arn =
            Some("arn:aws:cloudwatch:ap-south-1:123456789012:alarm:hapilot-watch-us-east-1".into());
        assert!(!trigger.matches(&t));
        assert_eq!(trigger.votes_needed(), 2);
    }

    #[test]
    fn two_of_three_down_start_two_up_refuse_and_anything_less_asks_a_human() {
        let v = |arn: &str, state: Option<&str>| Vote::from_state(arn, state);
        let start = |d: RouterDecision| match d {
            RouterDecision::Start { needs_approval, .. } => needs_approval,
            other => panic!("expected a start, got {other:?}"),
        };
        // us-east-1 dark: its alarm cannot be read; the standby and the witness agree.
        assert!(!start(decide_with(vec![
            v(STANDBY, Some("ALARM")),
            v(WITNESS, Some("ALARM")),
            Vote::unreadable(ROUTE53, "connection reset"),
        ])));
        // A partition: only the standby sees the primary down.
        match decide_with(vec![
            v(STANDBY, Some("ALARM")),
            v(WITNESS, Some("OK")),
            v(ROUTE53, Some("OK")),
        ]) {
            RouterDecision::Ignore { reason, detail } => {
                assert_eq!(reason, IgnoreReason::NotConfirmed);
                assert!(
                    detail.contains("eu-west-1") && detail.contains("up"),
                    "{detail}"
                );
            }
            other => panic!("{other:?}"),
        }
        // Two vantage points unreadable: one vote is not a quorum either way.
        assert!(start(decide_with(vec![
            v(STANDBY, Some("ALARM")),
            Vote::unreadable(WITNESS, "timeout"),
            Vote::unreadable(ROUTE53, "timeout"),
        ])));
        // One down, one up: wait for the third vantage point's change.
        assert!(matches!(
            decide_with(vec![
                v(STANDBY, Some("ALARM")),
                v(WITNESS, Some("OK")),
                Vote::unreadable(ROUTE53, "dark"),
            ]),
            RouterDecision::Ignore {
                reason: IgnoreReason::AwaitingQuorum,
                ..
            }
        ));
        assert!(start(decide_with(vec![
            v(STANDBY, Some("ALARM")),
            v(WITNESS, Some("INSUFFICIENT_DATA")),
            Vote::unreadable(ROUTE53, "dark"),
        ])));
    }

    #[test]
    fn only_runs_that_moved_traffic_start_a_cool_down() {
        assert!(!moved_traffic([
            "PlanFailover",
            "ConfirmPrimaryDown",
            "RecordFalseAlarm"
        ]));
        assert!(!moved_traffic([
            "PlanFailover",
            "CheckStandby",
            "RecordStandbyUnhealthy"
        ]));
        assert!(moved_traffic([
            "PlanFailover",
            "FencePrimary",
            "RestoreWeights"
        ]));
        assert!(moved_traffic(["FenceForSwitchover", "UndoFence"]));
    }

    proptest! {
        #[test]
        fn a_quorum_never_starts_with_more_up_than_down(
            states in proptest::collection::vec(0u8..4, 1..6),
            needed in 1usize..4,
        ) {
            let votes: Vec<Vote> = states
                .iter()
                .enumerate()
                .map(|(i, s)| match s {
                    0 => Vote::from_state(&i.to_string(), Some("ALARM")),
                    1 => Vote::from_state(&i.to_string(), Some("OK")),
                    2 => Vote::from_state(&i.to_string(), Some("INSUFFICIENT_DATA")),
                    _ => Vote::unreadable(&i.to_string(), "dark"),
                })
                .collect();
            let down = states.iter().filter(|s| **s == 0).count();
            let up = states.iter().filter(|s| **s == 1).count();
            match quorum_verdict(&votes, needed) {
                QuorumVerdict::Down => prop_assert!(down >= needed && down > up),
                QuorumVerdict::Up => prop_assert!(up >= needed),
                QuorumVerdict::Split => prop_assert!(down + up >= needed && up < needed),
                QuorumVerdict::Undecided => prop_assert!(down + up < needed),
            }
        }

        #[test]
        fn execution_names_are_valid_and_stable(name in ".{1,300}", at in 0i64..4_000_000_000) {
            let n = execution_name(&name, at);
            prop_assert!(n.len() <= 80, "{}", n);
            prop_assert!(n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
            prop_assert_eq!(n.clone(), execution_name(&name, at));
            prop_assert_ne!(n, execution_name(&name, at + 1));
        }
    }

    #[test]
    fn an_alarm_started_run_is_ungraceful_and_carries_its_incident_over_the_defaults() {
        let defaults = serde_json::json!({"probe_samples": 2, "mode": "graceful"})
            .as_object()
            .cloned()
            .unwrap();
        let trigger = &triggers()[0];
        let votes = [Vote::from_state("arn:vantage", Some("ALARM"))];
        let input = failover_input(
            &defaults,
            &transition("ALARM"),
            trigger,
            (&votes, true),
            "d-1",
        );
        assert_eq!(input["probe_samples"], 2, "defaults stay");
        assert_eq!(
            input["mode"], "ungraceful",
            "an alarm overrides a default mode"
        );
        assert_eq!(input["primary_region"], trigger.primary_region.as_str());
        assert_eq!(input["needs_approval"], true);
        assert_eq!(input["delivery"], "d-1");
        assert_eq!(
            input["incident"]["alarm"],
            transition("ALARM").alarm_name.as_str()
        );
        assert_eq!(input["votes"][0]["vantage"], "arn:vantage");
        assert!(
            input.get("standby_candidates").is_none(),
            "no candidates configured: the standby is pinned"
        );
        let mut choosing = trigger.clone();
        choosing.standby_candidates = vec!["eu-west-1".into()];
        let input = failover_input(
            &defaults,
            &transition("ALARM"),
            &choosing,
            (&votes, false),
            "d-2",
        );
        assert_eq!(
            input["standby_candidates"],
            serde_json::json!(["eu-west-1"])
        );
    }
}
