//! The run a task belongs to, and its journal entry.
//!
//! Every task that changes or measures the world gets a `run` object in its input, filled by
//! the state machine from the context object:
//! `{"machine": "failover", "execution.$": "$$.Execution.Name", "state.$": "$$.State.Name",
//! "entered.$": "$$.State.EnteredTime"}`, and appends one entry to the journal.

use hapilot_adapters::journal::{Journal, step_key};
use hapilot_core::ErrorName;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::FunctionError;

/// Where in which run a task executes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunContext {
    /// State machine name, e.g. `failover`.
    pub machine: String,
    /// Execution name.
    pub execution: String,
    /// State name.
    pub state: String,
    /// When the state was entered (RFC 3339).
    pub entered: String,
    /// The execution's ARN (`$$.Execution.Id`), given where the run takes its lock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_arn: Option<String>,
}

impl RunContext {
    /// The journal key of this step.
    pub fn key(&self) -> String {
        step_key(&self.machine, &self.execution, &self.entered, &self.state)
    }

    /// The key of an object that belongs to the run, e.g. `approval.json`.
    pub fn run_object(&self, name: &str) -> String {
        format!("runs/{}/{}/{name}", self.machine, self.execution)
    }
}

impl RunContext {
    /// The run context a state machine passes (`$$.StateMachine.Name`, `$$.Execution.Name`,
    /// `$$.State.Name`, `$$.State.EnteredTime`): the one fixture every handler's unit test
    /// starts from.
    #[cfg(test)]
    pub(crate) fn fixture(machine: &str, state: &str) -> Self {
        Self {
            machine: machine.into(),
            execution: format!("{machine}-unit"),
            state: state.into(),
            entered: "2026-12-06T00:00:00.000Z".into(),
            execution_arn: None,
        }
    }

    /// [`RunContext::fixture`] as the JSON a task's input carries under `run`.
    #[cfg(test)]
    pub(crate) fn fixture_json(machine: &str, state: &str) -> Value {
        serde_json::to_value(Self::fixture(machine, state)).expect("a run context serializes")
    }
}

/// The traffic switch a task input names by default: Route53 weights (shared by every task
/// that takes a `switch`, so no handler reaches into another for it).
pub fn default_switch() -> String {
    "weights".into()
}

/// Now, RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Appends the step's entry: `entry`'s fields plus state, execution and timestamps.
pub async fn record(
    journal: &impl Journal,
    run: &RunContext,
    entry: Value,
) -> Result<(), FunctionError> {
    let mut object = json!({
        "machine": run.machine,
        "execution": run.execution,
        "state": run.state,
        "entered": run.entered,
        "finished": now_rfc3339(),
    });
    if let (Some(o), Value::Object(extra)) = (object.as_object_mut(), entry) {
        o.extend(extra);
    }
    journal
        .put(&run.key(), &object)
        .await
        .map_err(FunctionError::from_adapter(ErrorName::RecordFailed))
}

/// Takes the platform's run lock for `run` ([`hapilot_core::run_lock`]): one run that changes
/// the platform at a time. A lock whose holder has ended is taken over; a running holder's
/// (or one that cannot be asked about) ends this run as `hapilot.RunInProgress`, changing
/// nothing. Returns the holder record it wrote (or already had).
pub async fn take_run_lock(
    journal: &impl Journal,
    runs: &impl hapilot_adapters::orchestrator::Orchestrator,
    run: &RunContext,
) -> Result<Value, FunctionError> {
    use hapilot_core::run_lock::{HolderState, LOCK_KEY, LockHolder, LockStep, lock_step};
    let execution_arn = run.execution_arn.clone().ok_or_else(|| {
        FunctionError::Setup(
            "the run lock needs the execution ARN: pass \"execution_arn.$\": \"$$.Execution.Id\" in the state's run".into(),
        )
    })?;
    let me = LockHolder {
        machine: run.machine.clone(),
        execution: run.execution.clone(),
        execution_arn,
        taken_at: now_rfc3339(),
    };
    let mine = serde_json::to_value(&me).map_err(|e| FunctionError::Setup(e.to_string()))?;
    let failed = || FunctionError::from_adapter(ErrorName::RecordFailed);
    // Two rounds at most: a lost race to create or to take over reads the winner.
    for _ in 0..2 {
        let current = journal.get_tagged(LOCK_KEY).await.map_err(failed())?;
        let holder: Option<(LockHolder, String)> =
            current.and_then(|(v, tag)| serde_json::from_value(v).ok().map(|h| (h, tag)));
        let state = match &holder {
            Some((h, _)) if !h.same_run(&me) => Some(match runs.describe(&h.execution_arn).await {
                Ok(status) if status.status == "RUNNING" => HolderState::Running,
                Ok(_) => HolderState::Ended,
                Err(e) => {
                    tracing::warn!(holder = %h.execution_arn, error = %e, "could not read the lock holder's status");
                    HolderState::Unknown
                }
            }),
            _ => None,
        };
        match lock_step(&me, holder.as_ref().map(|(h, _)| h), state) {
            LockStep::AlreadyHeld => return Ok(mine),
            LockStep::HeldByParent => {
                let parent = holder.map(|(h, _)| h);
                return serde_json::to_value(&parent)
                    .map(|p| json!({ "held_by_parent": p }))
                    .map_err(|e| FunctionError::Setup(e.to_string()));
            }
            LockStep::Refuse(why) => {
                return Err(FunctionError::named(ErrorName::RunInProgress, why));
            }
            LockStep::Take => {
                if journal.put_new(LOCK_KEY, &mine).await.map_err(failed())? {
                    return Ok(mine);
                }
            }
            LockStep::TakeOver => {
                let tag = holder.map(|(_, t)| t).unwrap_or_default();
                if journal
                    .replace_if(LOCK_KEY, &tag, &mine)
                    .await
                    .map_err(failed())?
                {
                    tracing::info!(run = %me.execution, "took over a stale run lock");
                    return Ok(mine);
                }
            }
        }
    }
    Err(FunctionError::named(
        ErrorName::RunInProgress,
        "another run took the platform's run lock at the same moment: nothing was changed; look at the runs in progress and start again if none is".to_string(),
    ))
}

/// The run holding the platform's run lock, if one does (a lock that does not parse reads as
/// none: the writers below only ever write a whole holder).
pub async fn lock_holder(
    journal: &impl Journal,
) -> Result<Option<hapilot_core::run_lock::LockHolder>, hapilot_adapters::AdapterError> {
    Ok(journal
        .get(hapilot_core::run_lock::LOCK_KEY)
        .await?
        .and_then(|v| serde_json::from_value(v).ok()))
}

/// Gives the platform's run lock back if `run` holds it (every ending path records the run;
/// a run that never took it, or lost it, leaves it alone). A failure is logged, never fatal:
/// a lock left behind is taken over once its holder has ended.
pub async fn release_run_lock(journal: &impl Journal, run: &RunContext) {
    use hapilot_core::run_lock::{LOCK_KEY, held_by};
    let holder = match lock_holder(journal).await {
        Ok(holder) => holder,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the run lock to give it back");
            return;
        }
    };
    // Only this run's own lock: while it runs, nobody else may take it over, so reading then
    // deleting cannot remove another run's lock.
    if held_by(holder.as_ref(), &run.machine, &run.execution)
        && let Err(e) = journal.delete(LOCK_KEY).await
    {
        tracing::warn!(error = %e, "could not give the run lock back");
    }
}

/// The global name's records with their routing policies (`HAPILOT_HOSTED_ZONE_ID`,
/// `HAPILOT_RECORD_NAME`), read when a planned move is planned; also returns the name.
pub async fn global_records<'a>(
    settings: &'a crate::config::Settings,
    dns: &impl hapilot_adapters::dns::Dns,
) -> Result<(&'a str, Vec<hapilot_core::weights::GlobalRecord>), FunctionError> {
    let zone = settings.get(&settings.hosted_zone_id, "HAPILOT_HOSTED_ZONE_ID")?;
    let name = settings.get(&settings.record_name, "HAPILOT_RECORD_NAME")?;
    let records = dns
        .record_routing(zone, name)
        .await
        .map_err(FunctionError::from_adapter(ErrorName::PrecheckFailed))?;
    Ok((name, records))
}
