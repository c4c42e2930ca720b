//! Lambda `alarm-router`: turns a CloudWatch alarm state change into a failover run, or into a
//! reasoned refusal. Accepts the three shapes a user can wire: the EventBridge "CloudWatch Alarm
//! State Change" event, the alarm's direct Lambda action event, and an SNS-wrapped alarm
//! notification. Anything else fails as `hapilot.UnrecognisedEvent` and nothing is started.
//!
//! Returns (and logs) the decision record: `{"decision": "start", "execution_name",
//! "execution_arn", ...}` or `{"decision": "ignore", "reason", "detail", ...}`.
//!
//! When it will not act on an outage its vantage points confirm (automatic failover off), it
//! pages the on-call once per incident with the votes and the command that starts the failover
//! by hand (`"page"` in the record); the incident's marker (`pages/<primary>-to-<standby>.json`
//! in the audit bucket, written only if absent) is removed when the quorum sees the primary up.

use aws_lambda_events::cloudwatch_alarms::{CloudWatchAlarm, CloudWatchAlarmData};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sns::SnsEvent;
use hapilot_adapters::journal::Journal;
use hapilot_adapters::monitoring::AlarmReader;
use hapilot_adapters::notifier::Notifier;
use hapilot_adapters::orchestrator::{Orchestrator, StartOutcome};
use hapilot_core::ErrorName;
use hapilot_core::alarm::{
    AlarmRef, AlarmTransition, FailoverTrigger, IgnoreReason, RouterDecision, RouterFacts,
    TRAFFIC_MOVING_STATES, Vote, decide, failover_input, find_trigger, outage_over,
    page_when_not_acting,
};
use serde_json::{Value, json};

use crate::FunctionError;
use crate::config::Settings;

/// Routes one event.
pub async fn alarm_router(
    settings: &Settings,
    alarms: &impl AlarmReader,
    runs: &impl Orchestrator,
    pages: (&impl Journal, &impl Notifier),
    event: Value,
) -> Result<Value, FunctionError> {
    let transition = parse_event(&event)?;
    let mut votes_read = Vec::new();
    let mut matched = None;
    let decision = match find_trigger(&transition, &settings.triggers) {
        Err(ignored) => ignored,
        Ok(trigger) => {
            matched = Some(trigger);
            votes_read = read_votes(alarms, trigger, &transition).await;
            let machine = settings.get(
                &settings.failover_state_machine_arn,
                "HAPILOT_FAILOVER_STATE_MACHINE_ARN",
            )?;
            let facts = RouterFacts {
                automatic_failover: settings.automatic_failover,
                votes: votes_read.clone(),
                running_failover: runs
                    .running(machine)
                    .await
                    .map_err(FunctionError::from_adapter(ErrorName::SetupFailed))?,
                lock_holder: running_lock_holder(pages.0, runs).await,
                last_run_ended_at: runs
                    .last_traffic_move_ended_at(machine, &TRAFFIC_MOVING_STATES)
                    .await
                    .map_err(FunctionError::from_adapter(ErrorName::SetupFailed))?,
                now: chrono::Utc::now().timestamp(),
                cooldown_secs: settings.cooldown_secs,
            };
            decide(&transition, trigger, &facts)
        }
    };
    let mut record = json!({ "transition": transition });
    match &decision {
        RouterDecision::Start {
            trigger,
            votes,
            needs_approval,
            ..
        } => {
            let input = failover_input(
                &settings.failover_input_defaults,
                &transition,
                trigger,
                (votes, *needs_approval),
                &uuid::Uuid::new_v4().to_string(),
            );
            record["votes"] = json!(votes);
            start_failover(settings, runs, &decision, &input, &mut record).await?;
        }
        RouterDecision::Ignore { reason, detail } => {
            record["decision"] = json!("ignore");
            record["reason"] = json!(reason);
            record["detail"] = json!(detail);
            if !votes_read.is_empty() {
                record["votes"] = json!(votes_read);
            }
            if let Some(trigger) = matched {
                page_once(trigger, &decision, &votes_read, pages, &mut record).await?;
            }
        }
    }
    tracing::info!(decision = %record, "alarm router decision");
    Ok(record)
}

/// The run holding the platform's run lock, when it still runs. This read only sharpens the
/// decision record and the page: the lock itself (taken by the run's first state) is what keeps
/// a second run from changing the platform, so a lock that cannot be read here is passed over.
async fn running_lock_holder(
    journal: &impl Journal,
    runs: &impl Orchestrator,
) -> Option<hapilot_core::run_lock::LockHolder> {
    let holder = match crate::run::lock_holder(journal).await {
        Ok(holder) => holder?,
        Err(e) => {
            tracing::warn!(error = %e, "the run lock could not be read");
            return None;
        }
    };
    match runs.describe(&holder.execution_arn).await {
        Ok(status) if status.status == "RUNNING" => Some(holder),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(holder = %holder.execution_arn, error = %e, "the lock holder's status could not be read");
            None
        }
    }
}

/// Pages the on-call once per incident when the router will not act on a confirmed outage, and
/// closes the incident when the primary is seen up again.
async fn page_once(
    trigger: &FailoverTrigger,
    decision: &RouterDecision,
    votes: &[Vote],
    (journal, notifier): (&impl Journal, &impl Notifier),
    record: &mut Value,
) -> Result<(), FunctionError> {
    let incident_key = |incident: &str| format!("pages/{incident}.json");
    let Some(page) = page_when_not_acting(decision, trigger, votes) else {
        if outage_over(trigger, votes) {
            let key = incident_key(&format!(
                "{}-to-{}",
                trigger.primary_region, trigger.standby_region
            ));
            // Nothing to close is the usual case; a failure only means one page less later.
            if let Err(e) = journal.delete(&key).await {
                tracing::warn!(key, error = %e, "could not close the incident's page marker");
            }
        }
        return Ok(());
    };
    let first = journal
        .put_new(
            &incident_key(&page.incident),
            &json!({"page": page, "paged_at": chrono::Utc::now().to_rfc3339()}),
        )
        .await
        .map_err(FunctionError::from_adapter(ErrorName::RecordFailed))?;
    if first {
        notifier
            .notify(&page.subject, &page.message)
            .await
            .map_err(FunctionError::from_adapter(ErrorName::RecordFailed))?;
    }
    record["page"] = json!({
        "incident": page.incident,
        "sent": first,
        "command": page.command,
        "detail": if first { "paged the on-call" } else { "already paged for this incident" },
    });
    Ok(())
}

/// Starts the run a `Start` decision asks for and records what happened: started, or a
/// duplicate delivery of an incident already started (nothing new).
async fn start_failover(
    settings: &Settings,
    runs: &impl Orchestrator,
    decision: &RouterDecision,
    input: &Value,
    record: &mut Value,
) -> Result<(), FunctionError> {
    let RouterDecision::Start {
        execution_name,
        trigger,
        needs_approval,
        ..
    } = decision
    else {
        return Ok(());
    };
    let machine = settings.get(
        &settings.failover_state_machine_arn,
        "HAPILOT_FAILOVER_STATE_MACHINE_ARN",
    )?;
    match runs
        .start(machine, execution_name, input)
        .await
        .map_err(FunctionError::from_adapter(ErrorName::SetupFailed))?
    {
        StartOutcome::Started(arn) => {
            record["decision"] = json!("start");
            record["execution_name"] = json!(execution_name);
            record["execution_arn"] = json!(arn);
            record["trigger"] = json!(trigger);
            record["needs_approval"] = json!(needs_approval);
        }
        StartOutcome::AlreadyExists => {
            record["decision"] = json!("ignore");
            record["reason"] = json!(IgnoreReason::DuplicateDelivery);
            record["detail"] = json!(format!(
                "failover {execution_name} was already started for this incident"
            ));
        }
    }
    Ok(())
}

/// Re-reads every vantage point, each in the region its ARN names. A vantage point that cannot
/// be read (its region dark, no such alarm) is recorded as no vote, never as "down".
async fn read_votes(
    alarms: &impl AlarmReader,
    trigger: &FailoverTrigger,
    transition: &AlarmTransition,
) -> Vec<Vote> {
    let vantages: Vec<String> = if trigger.vantage_alarms.is_empty() {
        vec![
            transition
                .alarm_arn
                .clone()
                .unwrap_or_else(|| transition.alarm_name.clone()),
        ]
    } else {
        trigger.vantage_alarms.clone()
    };
    let mut votes = Vec::new();
    // One after the other: each read has a short deadline, so a dark region costs seconds.
    for vantage in &vantages {
        let state = match AlarmRef::parse(vantage) {
            Some(alarm) => alarms.alarm_state_in(&alarm.region, &alarm.name).await,
            // A bare name (a trigger without ARNs, an event without one): this region's alarm.
            None => alarms.alarm_state(vantage).await,
        };
        votes.push(match state {
            Ok(state) => Vote::from_state(vantage, state.as_deref()),
            Err(e) => Vote::unreadable(vantage, &e.to_string()),
        });
    }
    votes
}

fn unrecognised(why: impl Into<String>) -> FunctionError {
    FunctionError::named(
        ErrorName::UnrecognisedEvent,
        format!(
            "{}; expected an EventBridge \"CloudWatch Alarm State Change\" event, a CloudWatch alarm \
             Lambda action event, or an SNS notification of a CloudWatch alarm. Nothing was started.",
            why.into()
        ),
    )
}

fn state_name(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Reads any of the three accepted shapes into one transition.
pub fn parse_event(event: &Value) -> Result<AlarmTransition, FunctionError> {
    if event.get("detail-type").is_some() {
        return from_eventbridge(event);
    }
    if event.get("alarmData").is_some() {
        return from_alarm_action(event);
    }
    if event.get("Records").is_some() {
        return from_sns(event);
    }
    Err(unrecognised("unknown event shape"))
}

/// EventBridge's "CloudWatch Alarm State Change" event.
fn from_eventbridge(event: &Value) -> Result<AlarmTransition, FunctionError> {
    if event["detail-type"] != "CloudWatch Alarm State Change" {
        return Err(unrecognised(format!(
            "EventBridge event of type {}",
            event["detail-type"]
        )));
    }
    let e: EventBridgeEvent<CloudWatchAlarmData> = serde_json::from_value(event.clone())
        .map_err(|e| unrecognised(format!("malformed alarm event: {e}")))?;
    let alarm_arn = e
        .resources
        .iter()
        .flatten()
        .find(|r| AlarmRef::parse(r).is_some())
        .cloned();
    transition(e.detail, "alarm event", "eventbridge", alarm_arn)
}

/// The transition an alarm's data describes, however it was delivered.
fn transition(
    data: CloudWatchAlarmData,
    what: &str,
    delivered_as: &str,
    alarm_arn: Option<String>,
) -> Result<AlarmTransition, FunctionError> {
    let state = data
        .state
        .ok_or_else(|| unrecognised(format!("{what} without a state")))?;
    Ok(AlarmTransition {
        alarm_name: data.alarm_name,
        new_state: state_name(&state.value),
        previous_state: data.previous_state.map(|p| state_name(&p.value)),
        reason: state.reason,
        changed_at: state.timestamp.timestamp(),
        delivered_as: delivered_as.into(),
        alarm_arn,
    })
}

/// The alarm's own Lambda action event.
fn from_alarm_action(event: &Value) -> Result<AlarmTransition, FunctionError> {
    let e: CloudWatchAlarm = serde_json::from_value(event.clone())
        .map_err(|e| unrecognised(format!("malformed alarm action event: {e}")))?;
    let alarm_arn = event["alarmArn"]
        .as_str()
        .filter(|a| AlarmRef::parse(a).is_some())
        .map(str::to_string);
    transition(
        e.alarm_data,
        "alarm action event",
        "alarm-action",
        alarm_arn,
    )
}

/// An SNS notification wrapping the alarm's JSON message (one record).
fn from_sns(event: &Value) -> Result<AlarmTransition, FunctionError> {
    let e: SnsEvent = serde_json::from_value(event.clone())
        .map_err(|e| unrecognised(format!("malformed SNS event: {e}")))?;
    let [record] = e.records.as_slice() else {
        return Err(unrecognised(format!(
            "SNS event with {} records (expected 1)",
            e.records.len()
        )));
    };
    let message: Value = serde_json::from_str(&record.sns.message).map_err(|_| {
        unrecognised("SNS message is not a CloudWatch alarm notification (not JSON)")
    })?;
    let text = |k: &str| message[k].as_str().map(str::to_string);
    let (Some(alarm_name), Some(new_state), Some(changed)) = (
        text("AlarmName"),
        text("NewStateValue"),
        text("StateChangeTime"),
    ) else {
        return Err(unrecognised(
            "SNS message lacks AlarmName, NewStateValue or StateChangeTime",
        ));
    };
    let changed_at = chrono::DateTime::parse_from_str(&changed, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(&changed))
        .map_err(|_| unrecognised(format!("StateChangeTime {changed:?} is not a timestamp")))?
        .timestamp();
    Ok(AlarmTransition {
        alarm_name,
        new_state,
        previous_state: text("OldStateValue"),
        reason: text("NewStateReason").unwrap_or_default(),
        changed_at,
        delivered_as: "sns".into(),
        alarm_arn: text("AlarmArn").filter(|a| AlarmRef::parse(a).is_some()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::journal::MemoryJournal;
    use hapilot_adapters::notifier::MemoryNotifier;

    #[test]
    fn all_three_shapes_give_the_same_transition() {
        let eventbridge = json!({
            "version": "0", "id": "1", "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch", "account": "123456789012", "time": "2026-11-25T09:00:00Z",
            "region": "us-east-1", "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:primary-health"],
            "detail": {
                "alarmName": "primary-health",
                "state": {"value": "ALARM", "reason": "down", "timestamp": "2026-11-25T09:00:00.000+0000"},
                "previousState": {"value": "OK", "reason": "up", "timestamp": "2026-11-25T08:00:00.000+0000"},
                "configuration": {}
            }
        });
        let action = json!({
            "source": "aws.cloudwatch", "alarmArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:primary-health",
            "accountId": "123456789012", "time": "2026-11-25T09:00:00.000+0000", "region": "us-east-1",
            "alarmData": {
                "alarmName": "primary-health",
                "state": {"value": "ALARM", "reason": "down", "timestamp": "2026-11-25T09:00:00.000+0000"},
                "previousState": {"value": "OK", "reason": "up", "timestamp": "2026-11-25T08:00:00.000+0000"},
                "configuration": {}
            }
        });
        let message = json!({
            "AlarmName": "primary-health", "NewStateValue": "ALARM", "OldStateValue": "OK",
            "NewStateReason": "down", "StateChangeTime": "2026-11-25T09:00:00.000+0000"
        });
        let sns = json!({"Records": [{
            "EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:t:1",
            "Sns": {"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
                    "Subject": "ALARM", "Message": message.to_string(), "Timestamp": "2026-11-25T09:00:01.000Z",
                    "SignatureVersion": "1", "Signature": "x", "SigningCertUrl": "https://x", "UnsubscribeUrl": "https://x",
                    "MessageAttributes": {}}
        }]});
        let parsed: Vec<_> = [eventbridge, action, sns]
            .iter()
            .map(|e| parse_event(e).unwrap())
            .collect();
        for t in &parsed {
            assert_eq!(
                (t.alarm_name.as_str(), t.new_state.as_str()),
                ("primary-health", "ALARM")
            );
            assert_eq!(t.changed_at, parsed[0].changed_at, "{t:?}");
            assert_eq!(t.previous_state.as_deref(), Some("OK"));
        }
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        for bad in [
            json!({}),
            json!({"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {}}),
            json!("ALARM"),
            json!({"alarmData": {"alarmName": 3}}),
        ] {
            let e = parse_event(&bad).unwrap_err();
            assert_eq!(e.error_type(), "hapilot.UnrecognisedEvent", "{bad}");
            assert!(e.to_string().contains("Nothing was started"));
        }
    }

    fn settings() -> Settings {
        let mut s = Settings::with_defaults();
        s.failover_state_machine_arn =
            Some("arn:aws:states:us-west-2:123456789012:stateMachine:failover".into());
        s.triggers = vec![FailoverTrigger {
            alarm_name: "primary-health".into(),
            primary_region: "us-east-1".into(),
            standby_region: "us-west-2".into(),
            tier: hapilot_core::tier::Tier::Critical,
            vantage_alarms: vec![
                "arn:aws:cloudwatch:us-west-2:123456789012:alarm:watch".into(),
                "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:watch".into(),
            ],
            quorum: Some(2),
            standby_candidates: Vec::new(),
        }];
        s
    }

    fn alarm(state: &str) -> Value {
        json!({
            "version": "0", "id": "1", "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch", "account": "123456789012", "time": "2026-11-25T09:00:00Z",
            "region": "us-west-2", "resources": ["arn:aws:cloudwatch:us-west-2:123456789012:alarm:watch"],
            "detail": {
                "alarmName": "watch",
                "state": {"value": state, "reason": "down", "timestamp": "2026-11-25T09:00:00.000+0000"},
                "previousState": {"value": "OK", "reason": "up", "timestamp": "2026-11-25T08:00:00.000+0000"},
                "configuration": {}
            }
        })
    }

    /// The router's rules over in-memory fakes: a quorum of vantage points starts exactly one
    /// ungraceful run with its incident; a second delivery starts nothing; one vantage point
    /// alone changes nothing.
    #[tokio::test]
    async fn a_quorum_starts_one_run_and_a_lone_vote_starts_none() {
        use hapilot_adapters::monitoring::MemoryMonitoring;
        use hapilot_adapters::orchestrator::MemoryOrchestrator;
        let (journal, notifier) = (MemoryJournal::default(), MemoryNotifier::default());
        let settings = settings();
        let mut alarms = MemoryMonitoring::default();
        alarms
            .alarms
            .insert(("us-west-2".into(), "watch".into()), "ALARM".into());
        alarms
            .alarms
            .insert(("eu-west-1".into(), "watch".into()), "OK".into());
        let runs = MemoryOrchestrator::default();
        let lone = alarm_router(
            &settings,
            &alarms,
            &runs,
            (&journal, &notifier),
            alarm("ALARM"),
        )
        .await
        .unwrap();
        assert_eq!(lone["decision"], "ignore", "{lone:#}");
        assert!(runs.started().is_empty());

        alarms
            .alarms
            .insert(("eu-west-1".into(), "watch".into()), "ALARM".into());
        let started = alarm_router(
            &settings,
            &alarms,
            &runs,
            (&journal, &notifier),
            alarm("ALARM"),
        )
        .await
        .unwrap();
        assert_eq!(started["decision"], "start", "{started:#}");
        let (_, _, input) = &runs.started()[0];
        assert_eq!(input["mode"], "ungraceful");
        assert_eq!(input["standby_region"], "us-west-2");
        assert_eq!(input["incident"]["alarm"], "watch");

        let again = alarm_router(
            &settings,
            &alarms,
            &runs,
            (&journal, &notifier),
            alarm("ALARM"),
        )
        .await
        .unwrap();
        assert_eq!(again["decision"], "ignore", "{again:#}");
        assert_eq!(runs.started().len(), 1, "one failover at a time");
    }

    /// A confirmed outage while a failback holds the run lock: nothing starts, the record names
    /// the failback, and the on-call is paged once with the command; a lock whose holder has
    /// ended is no obstacle.
    #[tokio::test]
    async fn a_confirmed_outage_during_a_failback_pages_naming_it() {
        use hapilot_adapters::monitoring::MemoryMonitoring;
        use hapilot_adapters::orchestrator::MemoryOrchestrator;
        let (journal, notifier) = (MemoryJournal::default(), MemoryNotifier::default());
        let settings = settings();
        let mut alarms = MemoryMonitoring::default();
        for region in ["us-west-2", "eu-west-1"] {
            alarms
                .alarms
                .insert((region.into(), "watch".into()), "ALARM".into());
        }
        let runs = MemoryOrchestrator::default();
        let failback = "arn:aws:states:us-west-2:123456789012:stateMachine:failback";
        let StartOutcome::Started(arn) =
            runs.start(failback, "canary-7", &json!({})).await.unwrap()
        else {
            panic!("started")
        };
        journal
            .put(
                hapilot_core::run_lock::LOCK_KEY,
                &json!({"machine": "failback", "execution": "canary-7", "execution_arn": arn,
                        "taken_at": "2026-12-06T03:00:00Z"}),
            )
            .await
            .unwrap();
        let route = || {
            alarm_router(
                &settings,
                &alarms,
                &runs,
                (&journal, &notifier),
                alarm("ALARM"),
            )
        };
        let held = route().await.unwrap();
        assert_eq!(
            (held["decision"].as_str(), held["reason"].as_str()),
            (Some("ignore"), Some("run_in_progress")),
            "{held:#}"
        );
        assert!(
            held["detail"].as_str().unwrap().contains("canary-7"),
            "{held:#}"
        );
        assert_eq!(held["page"]["sent"], true, "{held:#}");
        assert_eq!(route().await.unwrap()["page"]["sent"], false);
        let sent = notifier.sent();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(sent[0].1.contains("canary-7") && sent[0].1.contains("hapilot start failover"));
        // The failback ended without giving the lock back: the next alarm starts the failover.
        runs.finish("canary-7", "FAILED");
        let started = route().await.unwrap();
        assert_eq!(started["decision"], "start", "{started:#}");
    }

    /// Automatic failover off: a confirmed outage pages once per incident with the command, and
    /// starts nothing; the primary seen up again closes the incident, so the next outage pages.
    #[tokio::test]
    async fn with_automatic_failover_off_a_confirmed_outage_pages_once() {
        use hapilot_adapters::monitoring::MemoryMonitoring;
        use hapilot_adapters::orchestrator::MemoryOrchestrator;
        let (journal, notifier) = (MemoryJournal::default(), MemoryNotifier::default());
        let mut settings = settings();
        settings.automatic_failover = false;
        let mut alarms = MemoryMonitoring::default();
        for region in ["us-west-2", "eu-west-1"] {
            alarms
                .alarms
                .insert((region.into(), "watch".into()), "ALARM".into());
        }
        let runs = MemoryOrchestrator::default();
        let route = |alarms| {
            let (settings, runs, journal, notifier) = (&settings, &runs, &journal, &notifier);
            async move {
                alarm_router(settings, alarms, runs, (journal, notifier), alarm("ALARM"))
                    .await
                    .unwrap()
            }
        };
        let first = route(&alarms).await;
        assert_eq!(
            (first["decision"].as_str(), first["reason"].as_str()),
            (Some("ignore"), Some("automatic_failover_off")),
            "{first:#}"
        );
        assert_eq!(first["page"]["sent"], true, "{first:#}");
        let again = route(&alarms).await;
        assert_eq!(again["page"]["sent"], false, "{again:#}");
        let sent = notifier.sent();
        assert_eq!(sent.len(), 1, "one page per incident: {sent:?}");
        assert!(sent[0].1.contains("hapilot start failover --input - <<< '{\"primary_region\": \"us-east-1\", \"standby_region\": \"us-west-2\", \"mode\": \"ungraceful\"}'"), "{}", sent[0].1);
        assert!(runs.started().is_empty(), "nothing started");

        // The primary is up again: the incident closes; a new outage pages again.
        let mut up = MemoryMonitoring::default();
        for region in ["us-west-2", "eu-west-1"] {
            up.alarms
                .insert((region.into(), "watch".into()), "OK".into());
        }
        let recovered = route(&up).await;
        assert!(recovered["page"].is_null(), "{recovered:#}");
        assert_eq!(route(&alarms).await["page"]["sent"], true);
        assert_eq!(notifier.sent().len(), 2);

        // One vantage point alone confirms nothing: no page.
        let mut lone = MemoryMonitoring::default();
        lone.alarms
            .insert(("us-west-2".into(), "watch".into()), "ALARM".into());
        lone.alarms
            .insert(("eu-west-1".into(), "watch".into()), "OK".into());
        let journal2 = MemoryJournal::default();
        let quiet = alarm_router(
            &settings,
            &lone,
            &runs,
            (&journal2, &notifier),
            alarm("ALARM"),
        )
        .await
        .unwrap();
        assert!(quiet["page"].is_null(), "{quiet:#}");
    }
}
