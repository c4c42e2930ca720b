//! Step Functions as the alarm router sees it: what runs, what ran, starting a run.

use std::future::Future;

use aws_sdk_sfn::types::ExecutionStatus;

use crate::AdapterError;

/// What starting a named run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// A new run, with its ARN.
    Started(String),
    /// A run with that name exists already (a duplicate delivery of the same incident).
    AlreadyExists,
}

/// Reads and starts runs of one state machine.
pub trait Orchestrator: Send + Sync {
    /// The name of a RUNNING execution, if any.
    fn running(
        &self,
        state_machine_arn: &str,
    ) -> impl Future<Output = Result<Option<String>, AdapterError>> + Send;
    /// When the most recent finished execution that moved traffic stopped (epoch seconds):
    /// one that entered any of `moving_states` (a false alarm or a refusal moved nothing).
    fn last_traffic_move_ended_at(
        &self,
        state_machine_arn: &str,
        moving_states: &[&str],
    ) -> impl Future<Output = Result<Option<i64>, AdapterError>> + Send;
    /// When the most recent finished execution stopped (epoch seconds).
    fn last_stopped_at(
        &self,
        state_machine_arn: &str,
    ) -> impl Future<Output = Result<Option<i64>, AdapterError>> + Send;
    /// Starts a run named `name`.
    fn start(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &serde_json::Value,
    ) -> impl Future<Output = Result<StartOutcome, AdapterError>> + Send;
    /// One run's status (DescribeExecution).
    fn describe(
        &self,
        execution_arn: &str,
    ) -> impl Future<Output = Result<RunStatus, AdapterError>> + Send;
    /// Answers a task that waits for a token (SendTaskSuccess) with `output`. A token whose
    /// task no longer waits (answered already, timed out, its run ended) is
    /// [`AdapterError::NotFound`].
    fn answer_task(
        &self,
        token: &str,
        output: &serde_json::Value,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;
    /// One run's history so far, oldest first (GetExecutionHistory).
    fn history(
        &self,
        execution_arn: &str,
    ) -> impl Future<Output = Result<Vec<hapilot_core::run_report::HistoryStep>, AdapterError>> + Send;
}

/// The error name and cause a history event carries, if it is a failure (of the execution, a
/// task, a Lambda function, or a timeout of either).
pub fn event_failure(e: &aws_sdk_sfn::types::HistoryEvent) -> (Option<&str>, Option<&str>) {
    if let Some(d) = e.execution_failed_event_details() {
        (d.error(), d.cause())
    } else if let Some(d) = e.task_failed_event_details() {
        (d.error(), d.cause())
    } else if let Some(d) = e.lambda_function_failed_event_details() {
        (d.error(), d.cause())
    } else if let Some(d) = e.lambda_function_timed_out_event_details() {
        (d.error(), d.cause())
    } else if let Some(d) = e.task_timed_out_event_details() {
        (d.error(), d.cause())
    } else {
        (None, None)
    }
}

/// What DescribeExecution says of a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunStatus {
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`.
    pub status: String,
    /// Start, epoch seconds (fractional).
    pub started: f64,
    /// Stop, epoch seconds, once ended.
    pub stopped: Option<f64>,
    /// Output, when it succeeded.
    pub output: Option<serde_json::Value>,
    /// Error name, when it failed.
    pub error: Option<String>,
    /// Error cause, when it failed.
    pub cause: Option<String>,
}

/// [`Orchestrator`] on Step Functions.
#[derive(Debug, Clone)]
pub struct StepFunctions {
    client: aws_sdk_sfn::Client,
}

impl StepFunctions {
    /// A Step Functions client from `config`.
    pub fn from_sdk(config: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_sfn::Client::new(config))
    }

    /// Uses `client`.
    pub fn new(client: aws_sdk_sfn::Client) -> Self {
        Self { client }
    }
}

impl StepFunctions {
    /// Every ended execution: (stop, epoch seconds; ARN), newest first.
    async fn stopped(&self, state_machine_arn: &str) -> Result<Vec<(i64, String)>, AdapterError> {
        let mut ended = Vec::new();
        let mut pages = self
            .client
            .list_executions()
            .state_machine_arn(state_machine_arn)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(AdapterError::aws("ListExecutions"))?;
            if let Some(stopped) = item.stop_date() {
                ended.push((stopped.secs(), item.execution_arn().to_string()));
            }
        }
        ended.sort_by(|a, b| b.cmp(a));
        Ok(ended)
    }
}

impl Orchestrator for StepFunctions {
    async fn describe(&self, execution_arn: &str) -> Result<RunStatus, AdapterError> {
        let out = self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(AdapterError::aws("DescribeExecution"))?;
        let epoch = |t: &aws_sdk_sfn::primitives::DateTime| t.as_secs_f64();
        Ok(RunStatus {
            status: out.status().as_str().to_string(),
            started: epoch(out.start_date()),
            stopped: out.stop_date().map(epoch),
            output: out.output().and_then(|o| serde_json::from_str(o).ok()),
            error: out.error().map(str::to_string),
            cause: out.cause().map(str::to_string),
        })
    }

    async fn running(&self, state_machine_arn: &str) -> Result<Option<String>, AdapterError> {
        let out = self
            .client
            .list_executions()
            .state_machine_arn(state_machine_arn)
            .status_filter(ExecutionStatus::Running)
            .send()
            .await
            .map_err(AdapterError::aws("ListExecutions"))?;
        Ok(out.executions().first().map(|e| e.name().to_string()))
    }

    async fn last_stopped_at(&self, state_machine_arn: &str) -> Result<Option<i64>, AdapterError> {
        Ok(self
            .stopped(state_machine_arn)
            .await?
            .first()
            .map(|(stopped, _)| *stopped))
    }

    async fn last_traffic_move_ended_at(
        &self,
        state_machine_arn: &str,
        moving_states: &[&str],
    ) -> Result<Option<i64>, AdapterError> {
        // Newest first; a cool-down is at most hours, so the last few runs decide it.
        for (stopped, arn) in self.stopped(state_machine_arn).await?.into_iter().take(20) {
            let mut history = self
                .client
                .get_execution_history()
                .execution_arn(&arn)
                .into_paginator()
                .items()
                .send();
            while let Some(event) = history.next().await {
                let event = event.map_err(AdapterError::aws("GetExecutionHistory"))?;
                let entered = event.state_entered_event_details().map(|d| d.name());
                if entered.is_some_and(|n| moving_states.contains(&n)) {
                    return Ok(Some(stopped));
                }
            }
        }
        Ok(None)
    }

    async fn answer_task(
        &self,
        token: &str,
        output: &serde_json::Value,
    ) -> Result<(), AdapterError> {
        match self
            .client
            .send_task_success()
            .task_token(token)
            .output(output.to_string())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_task_timed_out() || s.is_task_does_not_exist() || s.is_invalid_token()
                }) =>
            {
                Err(AdapterError::NotFound(format!(
                    "the run no longer waits for this answer (answered already, timed out, or ended): {}",
                    crate::error::error_chain(&e)
                )))
            }
            Err(e) => Err(AdapterError::aws("SendTaskSuccess")(e)),
        }
    }

    async fn history(
        &self,
        execution_arn: &str,
    ) -> Result<Vec<hapilot_core::run_report::HistoryStep>, AdapterError> {
        let mut pages = self
            .client
            .get_execution_history()
            .execution_arn(execution_arn)
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(event) = pages.next().await {
            let e = event.map_err(AdapterError::aws("GetExecutionHistory"))?;
            let (error, cause) = event_failure(&e);
            out.push(hapilot_core::run_report::HistoryStep {
                kind: e.r#type().as_str().to_string(),
                state: e
                    .state_entered_event_details()
                    .map(|d| d.name().to_string()),
                error: error.map(str::to_string),
                cause: cause.map(str::to_string),
            });
        }
        Ok(out)
    }

    async fn start(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &serde_json::Value,
    ) -> Result<StartOutcome, AdapterError> {
        match self
            .client
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await
        {
            Ok(out) => Ok(StartOutcome::Started(out.execution_arn().to_string())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_already_exists()) =>
            {
                Ok(StartOutcome::AlreadyExists)
            }
            Err(e) => Err(AdapterError::aws("StartExecution")(e)),
        }
    }
}

/// A run the fake keeps: (state machine ARN, name, input, status).
#[cfg(any(test, feature = "fakes"))]
type KeptRun = (String, String, serde_json::Value, String);

/// In-memory [`Orchestrator`] for handler unit tests: runs kept by state machine and name.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone, Default)]
pub struct MemoryOrchestrator {
    /// (state machine ARN, name, input, status) of every run, in start order.
    runs: std::sync::Arc<std::sync::Mutex<Vec<KeptRun>>>,
    /// What `last_traffic_move_ended_at` answers.
    pub last_move_ended_at: Option<i64>,
    /// What `history` answers (for every run).
    pub history: Vec<hapilot_core::run_report::HistoryStep>,
    /// Every task answered: (token, output).
    pub answers: std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
}

#[cfg(any(test, feature = "fakes"))]
impl MemoryOrchestrator {
    /// Every run started: (state machine ARN, name, input).
    pub fn started(&self) -> Vec<(String, String, serde_json::Value)> {
        self.runs
            .lock()
            .expect("runs")
            .iter()
            .map(|(m, n, i, _)| (m.clone(), n.clone(), i.clone()))
            .collect()
    }

    /// Ends run `name` with `status`.
    pub fn finish(&self, name: &str, status: &str) {
        for run in self.runs.lock().expect("runs").iter_mut() {
            if run.1 == name {
                run.3 = status.to_string();
            }
        }
    }
}

#[cfg(any(test, feature = "fakes"))]
impl Orchestrator for MemoryOrchestrator {
    async fn running(&self, state_machine_arn: &str) -> Result<Option<String>, AdapterError> {
        Ok(self
            .runs
            .lock()
            .expect("runs")
            .iter()
            .find(|(m, _, _, s)| m == state_machine_arn && s == "RUNNING")
            .map(|(_, n, _, _)| n.clone()))
    }

    async fn last_traffic_move_ended_at(
        &self,
        _state_machine_arn: &str,
        _moving_states: &[&str],
    ) -> Result<Option<i64>, AdapterError> {
        Ok(self.last_move_ended_at)
    }

    async fn last_stopped_at(&self, _state_machine_arn: &str) -> Result<Option<i64>, AdapterError> {
        Ok(self.last_move_ended_at)
    }

    async fn start(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &serde_json::Value,
    ) -> Result<StartOutcome, AdapterError> {
        let mut runs = self.runs.lock().expect("runs");
        if runs
            .iter()
            .any(|(m, n, _, _)| m == state_machine_arn && n == name)
        {
            return Ok(StartOutcome::AlreadyExists);
        }
        runs.push((
            state_machine_arn.to_string(),
            name.to_string(),
            input.clone(),
            "RUNNING".to_string(),
        ));
        Ok(StartOutcome::Started(format!(
            "{}:{name}",
            state_machine_arn.replace(":stateMachine:", ":execution:")
        )))
    }

    async fn answer_task(
        &self,
        token: &str,
        output: &serde_json::Value,
    ) -> Result<(), AdapterError> {
        let mut answers = self.answers.lock().expect("answers");
        if answers.iter().any(|(t, _)| t == token) {
            return Err(AdapterError::NotFound(format!(
                "the run no longer waits for this answer (token {token} answered already)"
            )));
        }
        answers.push((token.to_string(), output.clone()));
        Ok(())
    }

    async fn history(
        &self,
        _execution_arn: &str,
    ) -> Result<Vec<hapilot_core::run_report::HistoryStep>, AdapterError> {
        Ok(self.history.clone())
    }

    async fn describe(&self, execution_arn: &str) -> Result<RunStatus, AdapterError> {
        let runs = self.runs.lock().expect("runs");
        let (_, _, _, status) = runs
            .iter()
            .find(|(_, n, _, _)| execution_arn.ends_with(&format!(":{n}")))
            .ok_or_else(|| AdapterError::NotFound(format!("no execution {execution_arn}")))?;
        Ok(RunStatus {
            status: status.clone(),
            started: 0.0,
            stopped: (status != "RUNNING").then_some(0.0),
            output: None,
            error: None,
            cause: None,
        })
    }
}
