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

    /// What `--json` prints of a followed run.
    pub fn summary(&self) -> Value {
        serde_json::json!({
            "execution_arn": self.execution_arn,
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "cause": self.cause,
            "duration_s": self.duration_s,
        })
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
    /// A heartbeat: the states the run is in now, and how long it has said nothing.
    pub fn heartbeat(&self, quiet_for: Duration) -> String {
        let mut states: Vec<(&String, &f64)> = self.entered.iter().collect();
        states.sort_by(|a, b| a.1.total_cmp(b.1));
        let names: Vec<&str> = states.iter().map(|(s, _)| s.as_str()).collect();
        format!(
            "     ... still in {} ({} s without a change)",
            if names.is_empty() {
                "the run".to_string()
            } else {
                names.join(", ")
            },
            quiet_for.as_secs()
        )
    }

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

/// How often a follower looks at a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polling {
    /// The pause after the run moved.
    pub first: Duration,
    /// The longest pause, while it does not move.
    pub longest: Duration,
    /// After this long without a line, a heartbeat line says what the run waits in.
    pub heartbeat: Duration,
}

impl Polling {
    /// An operator's CLI: every 1-2 s (each look is one or two Step Functions calls from an
    /// account whose API quota the runs themselves share), a heartbeat every 30 s.
    pub const OPERATOR: Polling = Polling {
        first: Duration::from_secs(1),
        longest: Duration::from_secs(2),
        heartbeat: Duration::from_secs(30),
    };
    /// The drill and the tests on the local stack: quick looks, the local world moves fast.
    pub const QUICK: Polling = Polling {
        first: Duration::from_millis(100),
        longest: Duration::from_secs(1),
        heartbeat: Duration::from_secs(30),
    };

    /// The pause before the next look: back to the first when the run moved, half as long
    /// again (up to the longest) when it did not.
    pub fn next(&self, pause: Duration, run_moved: bool) -> Duration {
        if run_moved {
            self.first
        } else {
            pause.mul_f64(1.5).clamp(self.first, self.longest)
        }
    }
}

/// Whether a progress line is a state entered or left (`-v` detail) rather than a run's end or
/// failure.
pub fn is_state_line(line: &str) -> bool {
    line.starts_with("  -> ") || line.starts_with("  <- ")
}

/// Events per GetExecutionHistory page when following a run.
pub const HISTORY_PAGE: i32 = 25;

/// The history events after `after_id`, oldest first, read newest first so that a long run's
/// history is not read again at every look (GetExecutionHistory with `reverseOrder`), in pages
/// of [`HISTORY_PAGE`]: a look usually finds a few new events, and a page costs the server in
/// proportion to its size; without the states' input and output, which a follower never reads
/// and which make most of a page's bytes. A server that answers oldest first anyway (moto did; the local
/// stack's launcher pages as AWS does) is read to its end, filtered.
pub async fn history_after(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
    after_id: i64,
) -> Result<Vec<RunEvent>, HapilotError> {
    let mut new = Vec::new();
    let mut token = None;
    loop {
        let page = sfn
            .get_execution_history()
            .execution_arn(execution_arn)
            .reverse_order(true)
            .max_results(HISTORY_PAGE)
            .include_execution_data(false)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| HapilotError::aws("GetExecutionHistory")(e))?;
        let events = page.events();
        let newest_first = events.windows(2).all(|w| w[0].id() > w[1].id());
        let mut reached_seen = false;
        for event in events {
            if event.id() <= after_id {
                reached_seen = true;
            } else {
                new.push(RunEvent::from(event));
            }
        }
        token = page.next_token().map(str::to_string);
        if (reached_seen && newest_first) || token.is_none() {
            new.sort_by_key(|e| e.id);
            new.dedup_by_key(|e| e.id);
            return Ok(new);
        }
    }
}

/// Follows a run until it ends (or `timeout` passes), calling `on_line` with a progress line
/// for every state as it is entered and left ([`Polling::QUICK`]).
pub async fn follow(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
    timeout: Duration,
    on_line: impl FnMut(&str),
) -> Result<RunOutcome, HapilotError> {
    follow_with(sfn, execution_arn, timeout, Polling::QUICK, on_line).await
}

/// [`follow`] at the pace `polling` sets, with a heartbeat line ("still in <state>") when a
/// run has said nothing for a while (an approval or a bake can wait for minutes).
pub async fn follow_with(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
    timeout: Duration,
    polling: Polling,
    mut on_line: impl FnMut(&str),
) -> Result<RunOutcome, HapilotError> {
    let started = Instant::now();
    let mut progress = Progress::default();
    let mut events: Vec<RunEvent> = Vec::new();
    let mut pause = polling.first;
    let mut last_said = Instant::now();
    loop {
        let described = sfn
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| HapilotError::aws("DescribeExecution")(e))?;
        let after = events.last().map_or(0, |e| e.id);
        let new = history_after(sfn, execution_arn, after).await?;
        for event in &new {
            if let Some(line) = progress.line(event) {
                on_line(&line);
                last_said = Instant::now();
            }
        }
        pause = polling.next(pause, !new.is_empty());
        events.extend(new);
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
        if last_said.elapsed() >= polling.heartbeat {
            on_line(&progress.heartbeat(last_said.elapsed()));
            last_said = Instant::now();
        }
        tokio::time::sleep(pause).await;
    }
}

/// The pause before the next look of a quick follower (see [`Polling::next`]).
pub fn next_poll(pause: Duration, run_moved: bool) -> Duration {
    Polling::QUICK.next(pause, run_moved)
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
        let mut pause = Polling::QUICK.first;
        let mut pauses = Vec::new();
        for _ in 0..12 {
            pause = next_poll(pause, false);
            pauses.push(pause);
        }
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]), "{pauses:?}");
        assert_eq!(*pauses.last().unwrap(), Polling::QUICK.longest);
        assert_eq!(
            next_poll(Polling::QUICK.longest, true),
            Polling::QUICK.first
        );
        let operator = Polling::OPERATOR;
        let slowest = (0..12).fold(operator.first, |p, _| operator.next(p, false));
        assert_eq!(slowest, Duration::from_secs(2));
        assert!(operator.next(operator.first, false) >= Duration::from_secs(1));
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

#[cfg(test)]
mod heartbeat_tests {
    use super::*;

    #[test]
    fn a_heartbeat_names_the_state_the_run_waits_in() {
        let mut p = Progress::default();
        p.line(&RunEvent {
            id: 2,
            kind: "TaskStateEntered".into(),
            at: 1.0,
            state: Some("AwaitApproval".into()),
            error: None,
            cause: None,
        });
        assert_eq!(
            p.heartbeat(Duration::from_secs(31)),
            "     ... still in AwaitApproval (31 s without a change)"
        );
        assert!(is_state_line("  -> AwaitApproval"));
        assert!(!is_state_line(&p.heartbeat(Duration::ZERO)));
        assert!(!is_state_line("  run FAILED: x"));
    }
}
