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
