//! Starting and following state machine runs, locally or in AWS, with live progress.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent};
use serde_json::Value;

use crate::HapilotError;

/// One history event, reduced to what progress lines and reports need.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEvent {
    /// Event id (1-based, in order).
    pub id: i64,
    /// The event type, e.g. `TaskStateEntered`, `LambdaFunctionFailed`.
    pub kind: String,
    /// Seconds since the Unix epoch.
    pub at: f64,
    /// The state's name, for state entered/exited events.
    pub state: Option<String>,
    /// Error name, for failure events.
    pub error: Option<String>,
    /// Error cause, for failure events.
    pub cause: Option<String>,
}

impl From<&HistoryEvent> for RunEvent {
    fn from(e: &HistoryEvent) -> Self {
        let state = e
            .state_entered_event_details()
            .map(|d| d.name().to_string())
            .or_else(|| e.state_exited_event_details().map(|d| d.name().to_string()));
        let (error, cause) = hapilot_adapters::orchestrator::event_failure(e);
        RunEvent {
            id: e.id(),
            kind: e.r#type().as_str().to_string(),
            at: e.timestamp().as_secs_f64(),
            state,
            error: error.map(str::to_string),
            cause: cause.map(str::to_string),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The execution ARN.
    pub execution_arn: String,
    /// `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED`.
    pub status: String,
    /// The run's output, when it succeeded.
    pub output: Option<Value>,
    /// The error name, when it failed.
    pub error: Option<String>,
    /// The error cause, when it failed.
    pub cause: Option<String>,
    /// The full history.
    pub events: Vec<RunEvent>,
    /// Seconds from the first to the last history event.
    pub duration_s: f64,
}

impl RunOutcome {
    /// Whether the run succeeded.
    pub fn succeeded(&self) -> bool {
        self.status == "SUCCEEDED"
    }

    /// The history as readable lines (for test failures and `watch`).
    pub fn history_text(&self) -> String {
        let mut progress = Progress::default();
        let mut lines = vec![format!(
            "execution {} ended {}",
            self.execution_arn, self.status
        )];
        for e in &self.events {
            let detail = match (&e.error, &e.cause) {
                (Some(err), Some(cause)) => format!(" error={err} cause={cause}"),
                (Some(err), None) => format!(" error={err}"),
                _ => String::new(),
            };
            let state = e
                .state
                .as_deref()
                .map(|s| format!(" [{s}]"))
                .unwrap_or_default();
            lines.push(format!("  #{:<3} {}{state}{detail}", e.id, e.kind));
            progress.line(e);
        }
        lines.join("\n")
    }

    /// Seconds each state took (entered -> exited), in order of entry.
    pub fn state_durations(&self) -> Vec<(String, f64)> {
        let mut entered: HashMap<&str, f64> = HashMap::new();
        let mut out = Vec::new();
        for e in &self.events {
            match (
                e.kind.ends_with("StateEntered"),
                e.kind.ends_with("StateExited"),
                &e.state,
            ) {
                (true, _, Some(s)) => {
                    entered.insert(s, e.at);
                }
                (_, true, Some(s)) => {
                    if let Some(start) = entered.remove(s.as_str()) {
                        out.push((s.clone(), e.at - start));
                    }
                }
                _ => {}
            }
        }
        out
    }
}

/// Turns history events into one progress line per state entered/left, with durations.
#[derive(Debug, Default)]
pub struct Progress {
    entered: HashMap<String, f64>,
}

impl Progress {
    /// The line for `event`, if it deserves one.
    pub fn line(&mut self, event: &RunEvent) -> Option<String> {
        let kind = event.kind.as_str();
        match (&event.state, kind) {
            (Some(state), k) if k.ends_with("StateEntered") => {
                self.entered.insert(state.clone(), event.at);
                Some(format!("  -> {state}"))
            }
            (Some(state), k) if k.ends_with("StateExited") => {
                let took = self
                    .entered
                    .remove(state)
                    .map(|t| event.at - t)
                    .unwrap_or(0.0);
                Some(format!("  <- {state} ({took:.2} s)"))
            }
            (
                _,
                "TaskFailed" | "LambdaFunctionFailed" | "TaskTimedOut" | "LambdaFunctionTimedOut",
            ) => Some(format!(
                "     task failed: {} {}",
                event.error.as_deref().unwrap_or("?"),
                event.cause.as_deref().unwrap_or("")
            )),
            (_, "ExecutionFailed") => Some(format!(
                "  run FAILED: {} {}",
                event.error.as_deref().unwrap_or("?"),
                event.cause.as_deref().unwrap_or("")
            )),
            (_, "ExecutionSucceeded") => Some("  run SUCCEEDED".to_string()),
            (_, "ExecutionTimedOut") => Some("  run TIMED OUT".to_string()),
            (_, "ExecutionAborted") => Some("  run ABORTED".to_string()),
            _ => None,
        }
    }
}

/// Starts a named run of `state_machine_arn`; returns the execution ARN.
pub async fn start(
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    name: &str,
    input: &Value,
) -> Result<String, HapilotError> {
    use hapilot_adapters::orchestrator::{Orchestrator, StartOutcome, StepFunctions};
    // The adapter the alarm router and the DR drill start runs with: one StartExecution.
    match StepFunctions::new(sfn.clone())
        .start(state_machine_arn, name, input)
        .await
    {
        Ok(StartOutcome::Started(arn)) => Ok(arn),
        Ok(StartOutcome::AlreadyExists) => Err(HapilotError::Aws {
            operation: "StartExecution",
            detail: format!(
                "{state_machine_arn} already has a run named {name:?}: follow it with `hapilot watch`, or choose another --name"
            ),
        }),
        // Already "StartExecution failed: <code>: <message>", one line.
        Err(e) => Err(HapilotError::Invalid(e.to_string())),
    }
}

/// Every history event of a run so far.
pub async fn history(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
) -> Result<Vec<RunEvent>, HapilotError> {
    let mut events = Vec::new();
    let mut token = None;
    loop {
        let page = sfn
            .get_execution_history()
            .execution_arn(execution_arn)
            .max_results(1000)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| HapilotError::aws("GetExecutionHistory")(e))?;
        events.extend(page.events().iter().map(RunEvent::from));
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(events);
        }
    }
}

/// Follows a run until it ends (or `timeout` passes), calling `on_line` with a progress line
/// for every state as it is entered and left.
pub async fn follow(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
    timeout: Duration,
    mut on_line: impl FnMut(&str),
) -> Result<RunOutcome, HapilotError> {
    let started = Instant::now();
    let mut progress = Progress::default();
    let mut seen = 0usize;
    let mut pause = FIRST_POLL;
    loop {
        let described = sfn
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| HapilotError::aws("DescribeExecution")(e))?;
        let events = history(sfn, execution_arn).await?;
        for event in events.iter().skip(seen) {
            if let Some(line) = progress.line(event) {
                on_line(&line);
            }
        }
        pause = next_poll(pause, events.len() > seen);
        seen = events.len();
        let status = described.status().clone();
        if status != ExecutionStatus::Running && status != ExecutionStatus::PendingRedrive {
            let duration_s = match (events.first(), events.last()) {
                (Some(a), Some(b)) => b.at - a.at,
                _ => 0.0,
            };
            return Ok(RunOutcome {
                execution_arn: execution_arn.to_string(),
                status: status.as_str().to_string(),
                output: described
                    .output()
                    .and_then(|o| serde_json::from_str(o).ok()),
                error: described.error().map(str::to_string),
                cause: described.cause().map(str::to_string),
                events,
                duration_s,
            });
        }
        if started.elapsed() > timeout {
            return Err(HapilotError::RunTimedOut {
                execution: execution_arn.to_string(),
                status: status.as_str().to_string(),
                waited_s: timeout.as_secs(),
            });
        }
        tokio::time::sleep(pause).await;
    }
}

/// The follower's first pause between looks.
const FIRST_POLL: Duration = Duration::from_millis(100);
/// Its longest: a run waiting for a human or a bake can wait minutes, and every look is two
/// Step Functions calls from an account whose API quota the runs themselves share.
const LONGEST_POLL: Duration = Duration::from_secs(1);

/// The pause before the next look: back to the first when the run moved, half as long again
/// (up to [`LONGEST_POLL`]) when it did not.
pub fn next_poll(pause: Duration, run_moved: bool) -> Duration {
    if run_moved {
        FIRST_POLL
    } else {
        pause.mul_f64(1.5).min(LONGEST_POLL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64, kind: &str, at: f64, state: Option<&str>) -> RunEvent {
        RunEvent {
            id,
            kind: kind.into(),
            at,
            state: state.map(str::to_string),
            error: None,
            cause: None,
        }
    }

    #[test]
    fn a_quiet_run_is_looked_at_less_and_less_often_and_a_moving_one_at_once() {
        let mut pause = FIRST_POLL;
        let mut pauses = Vec::new();
        for _ in 0..12 {
            pause = next_poll(pause, false);
            pauses.push(pause);
        }
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]), "{pauses:?}");
        assert_eq!(*pauses.last().unwrap(), LONGEST_POLL);
        assert_eq!(next_poll(LONGEST_POLL, true), FIRST_POLL);
    }

    #[test]
    fn progress_shows_entries_exits_and_durations() {
        let mut p = Progress::default();
        assert_eq!(p.line(&event(1, "ExecutionStarted", 0.0, None)), None);
        assert_eq!(
            p.line(&event(2, "TaskStateEntered", 1.0, Some("Probe")))
                .unwrap(),
            "  -> Probe"
        );
        assert_eq!(
            p.line(&event(3, "TaskStateExited", 1.25, Some("Probe")))
                .unwrap(),
            "  <- Probe (0.25 s)"
        );
        let mut failed = event(4, "ExecutionFailed", 2.0, None);
        failed.error = Some("hapilot.X".into());
        assert_eq!(p.line(&failed).unwrap(), "  run FAILED: hapilot.X ");
    }
}
