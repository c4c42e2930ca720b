//! The test harness: a fresh local stack per test, ready SDK clients, and run helpers that print
//! the full execution history when a run does not end as expected.

#![allow(dead_code)] // Each test module uses a different part of the harness.

pub mod backups;
pub mod failback;
pub mod postgres;
pub mod switchover;

use std::time::Duration;

use hapilot::local::aws::definitions::definitions_in;
use hapilot::local::{LocalStack, StackOptions, project_root};
use hapilot::runs::{RunOutcome, follow, start};
use hapilot_functions::config::Settings;
use hapilot_functions::registry::Handler;
use serde_json::Value;

/// How long a test waits for a run before giving up (runs in tests take seconds).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// A local stack for one test: moto + front door + every product state machine and every
/// harness state machine under `tests/statemachines/`. Dropping it stops everything.
pub struct TestStack {
    stack: LocalStack,
}

impl TestStack {
    /// A stack serving every hapilot function with default settings.
    pub async fn start() -> Self {
        Self::start_with(StackOptions::default()).await
    }

    /// A stack a deployment will take over: the templates bring the product's state machines
    /// (the harness's are deployed as always).
    pub async fn for_templates() -> Self {
        Self::start_with(StackOptions::default().leaving_machines_to_templates()).await
    }

    /// A stack whose functions see `settings` (their deployment configuration).
    pub async fn with_settings(settings: Settings) -> Self {
        Self::start_with(StackOptions {
            settings,
            ..StackOptions::default()
        })
        .await
    }

    /// A stack that also serves `extra` functions (handlers that misbehave on purpose).
    pub async fn with_extra_functions(extra: Vec<(String, Handler)>) -> Self {
        Self::start_with(StackOptions {
            extra_functions: extra,
            ..StackOptions::default()
        })
        .await
    }

    /// A stack whose functions see `settings`, with `extra` handlers in place of (or beside)
    /// the catalog's.
    pub async fn with_settings_and_functions(
        settings: Settings,
        extra: Vec<(String, Handler)>,
    ) -> Self {
        Self::start_with(StackOptions {
            settings,
            extra_functions: extra,
            ..StackOptions::default()
        })
        .await
    }

    async fn start_with(mut options: StackOptions) -> Self {
        options
            .definitions
            .extend(definitions_in(&project_root().join("tests/statemachines")));
        let stack = LocalStack::start(options, |line| eprintln!("{line}"))
            .await
            .unwrap_or_else(|e| panic!("the local stack did not start: {e}"));
        Self { stack }
    }

    /// The front door's URL.
    pub fn endpoint_url(&self) -> String {
        self.stack.endpoint_url()
    }

    /// The underlying stack.
    pub fn stack(&self) -> &LocalStack {
        &self.stack
    }

    /// The `hapilot` CLI, pointed at this stack like an operator's shell after `local up`.
    pub fn cli(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hapilot"));
        for line in self.stack.env_lines() {
            if let Some((key, value)) = line.trim_start_matches("export ").split_once('=') {
                command.env(key, value);
            }
        }
        command
    }

    /// An object's text (a Markdown report), panicking if it is missing.
    pub async fn text(&self, bucket: &str, key: &str) -> String {
        String::from_utf8_lossy(&self.bytes(bucket, key).await).into_owned()
    }

    /// An object's bytes, panicking if it is missing.
    pub async fn bytes(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.s3()
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("s3://{bucket}/{key}: {e:?}"))
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes()
            .to_vec()
    }

    /// A Step Functions client pointed at this stack.
    pub fn sfn(&self) -> aws_sdk_sfn::Client {
        aws_sdk_sfn::Client::new(self.stack.sdk_config())
    }

    /// An S3 client pointed at this stack (path-style).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        hapilot_adapters::sdk::s3(self.stack.sdk_config())
    }

    /// A Route53 client pointed at this stack.
    pub fn route53(&self) -> aws_sdk_route53::Client {
        aws_sdk_route53::Client::new(self.stack.sdk_config())
    }

    /// A CloudWatch client pointed at this stack.
    pub fn cloudwatch(&self) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(self.stack.sdk_config())
    }

    /// Starts a uniquely named run of `machine` with `input` and follows it to its end.
    pub async fn run(&self, machine: &str, input: Value) -> RunOutcome {
        self.run_within(machine, input, RUN_TIMEOUT).await
    }

    /// [`TestStack::run`] for a run that may take longer than [`RUN_TIMEOUT`] on a busy machine
    /// (a restore with its content checks).
    pub async fn run_within(&self, machine: &str, input: Value, timeout: Duration) -> RunOutcome {
        let arn = self.stack.state_machine_arn(machine).unwrap_or_else(|| {
            panic!(
                "no state machine {machine:?}; have {:?}",
                self.stack.state_machines()
            )
        });
        let sfn = self.sfn();
        let name = format!("test-{}", uuid::Uuid::new_v4().simple());
        let execution = start(&sfn, &arn, &name, &input)
            .await
            .expect("StartExecution");
        follow(&sfn, &execution, timeout, |_| {})
            .await
            .unwrap_or_else(|e| panic!("following {execution}: {e}"))
    }

    /// Runs `machine` and asserts it succeeded; returns its output.
    pub async fn run_ok(&self, machine: &str, input: Value) -> Value {
        let outcome = self.run(machine, input).await;
        assert!(
            outcome.succeeded(),
            "expected SUCCEEDED\n{}",
            outcome.history_text()
        );
        outcome.output.unwrap_or(Value::Null)
    }

    /// Runs `machine` and asserts it failed with `error`; returns the outcome.
    pub async fn run_failing(&self, machine: &str, input: Value, error: &str) -> RunOutcome {
        let outcome = self.run(machine, input).await;
        assert_eq!(
            (outcome.status.as_str(), outcome.error.as_deref()),
            ("FAILED", Some(error)),
            "unexpected end\n{}",
            outcome.history_text()
        );
        outcome
    }
}

/// Asserts the run failed with `error`, printing its history if not.
pub fn assert_failed(outcome: &RunOutcome, error: &str) {
    assert_eq!(
        (outcome.status.as_str(), outcome.error.as_deref()),
        ("FAILED", Some(error)),
        "{}",
        outcome.history_text()
    );
}

/// Whether the run's history shows `state` was entered.
pub fn entered(outcome: &RunOutcome, state: &str) -> bool {
    outcome
        .events
        .iter()
        .any(|e| e.kind.ends_with("StateEntered") && e.state.as_deref() == Some(state))
}

/// Whether a process with `pid` still exists (zombies count as gone).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The environment variable a test puts on a command so that every process it starts, and
/// theirs, can be found afterwards (children inherit it).
pub const PROCESS_TAG: &str = "HAPILOT_TEST_PROCESS_TAG";

/// Live processes (pid, command line) whose environment carries `PROCESS_TAG=tag`.
pub fn tagged_processes(tag: &str) -> Vec<(u32, String)> {
    let wanted = format!("{PROCESS_TAG}={tag}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| process_alive(*pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == wanted.as_bytes()))
        })
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .unwrap_or_default();
            (pid, cmdline)
        })
        .collect()
}

/// Stops, when dropped, every process still carrying its tag: a test that fails or times out
/// kills the hapilot process it started (`kill_on_drop`), which cannot stop the servers it
/// started in turn (PostgreSQL daemonizes); they carry the tag in their environment.
pub struct TaggedProcesses {
    /// The value of [`PROCESS_TAG`] the test's processes are started with.
    pub tag: String,
}

impl TaggedProcesses {
    /// A fresh tag.
    pub fn new() -> Self {
        Self {
            tag: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

impl Drop for TaggedProcesses {
    fn drop(&mut self) {
        for (pid, _) in tagged_processes(&self.tag) {
            // SAFETY: kill(2) of a process this test started (it carries the test's tag).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// Waits until no process carries `tag` (a stop is not instant); returns those left.
pub async fn tagged_processes_left(tag: &str, within: Duration) -> Vec<(u32, String)> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = tagged_processes(tag);
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates hosted zone `name`; returns its id.
pub async fn create_zone(r53: &aws_sdk_route53::Client, name: &str) -> String {
    r53.create_hosted_zone()
        .name(name)
        .caller_reference(uuid::Uuid::new_v4().to_string())
        .send()
        .await
        .expect("CreateHostedZone")
        .hosted_zone()
        .expect("a hosted zone")
        .id()
        .to_string()
}

/// The stack's SDK configuration for `region` (`None`: its own region).
fn config_in(stack: &LocalStack, region: Option<&str>) -> aws_config::SdkConfig {
    region.map_or_else(|| stack.sdk_config().clone(), |r| stack.sdk_config_in(r))
}

/// Subscribes a fresh SQS queue in `region` to `topic_arn` (a topic of that region); returns
/// its URL.
pub async fn subscribe_queue(stack: &LocalStack, region: Option<&str>, topic_arn: &str) -> String {
    let config = config_in(stack, region);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let name = format!("notifications-{}", uuid::Uuid::new_v4().simple());
    let url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn = attributes
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .unwrap()
        .clone();
    aws_sdk_sns::Client::new(&config)
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(arn)
        .send()
        .await
        .unwrap();
    url
}

/// Every notification delivered to `queue` (in `region`) so far: (subject, message).
pub async fn notifications(
    stack: &LocalStack,
    region: Option<&str>,
    queue: &str,
) -> Vec<(String, String)> {
    let sqs = aws_sdk_sqs::Client::new(&config_in(stack, region));
    let mut out = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        if got.messages().is_empty() {
            return out;
        }
        for m in got.messages() {
            let envelope: Value =
                serde_json::from_str(m.body().unwrap_or("{}")).unwrap_or_default();
            out.push((
                envelope["Subject"].as_str().unwrap_or_default().to_string(),
                envelope["Message"].as_str().unwrap_or_default().to_string(),
            ));
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// Waits up to `within` for `pid` to be gone.
pub async fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if !process_alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    !process_alive(pid)
}

/// What a finished command said, stdout then stderr.
pub fn said(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a `hapilot` command to its end, asserts it succeeded (printing both streams if not),
/// and returns its stdout.
pub async fn cli_ok(mut command: impl std::borrow::BorrowMut<tokio::process::Command>) -> String {
    let out = command.borrow_mut().output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A test stack with a complete two-region deployment on it.
pub struct FailoverWorld {
    /// The stack.
    pub stack: TestStack,
    /// The deployment.
    pub deployment: hapilot::local::world::deployment::LocalDeployment,
}

impl FailoverWorld {
    /// A stack and a deployment whose regions run `database`.
    pub async fn start(database: hapilot::local::world::deployment::DatabaseSetup) -> Self {
        let stack = TestStack::for_templates().await;
        let deployment =
            hapilot::local::world::deployment::LocalDeployment::create(stack.stack(), database)
                .await
                .unwrap_or_else(|e| panic!("the local deployment was not created: {e}"));
        Self { stack, deployment }
    }

    /// Delivers `event` to the alarm router as EventBridge would.
    pub async fn route(&self, event: &Value) -> Result<Value, (String, String)> {
        hapilot::local::aws::front_door::invoke(&self.stack.endpoint_url(), "alarm-router", event)
            .await
    }

    /// The real PostgreSQL pair of a `DatabaseSetup::Postgres` world.
    pub fn postgres(&self) -> &hapilot::local::systems::postgres::PostgresPair {
        match &self.deployment.databases {
            hapilot::local::world::deployment::Databases::Postgres { pair, .. } => pair,
            hapilot::local::world::deployment::Databases::Patroni { .. } => {
                unreachable!("this test runs on PostgreSQL")
            }
        }
    }

    /// The global name's weights now.
    pub async fn weights(&self) -> std::collections::BTreeMap<String, i64> {
        self.deployment.weights(self.stack.stack()).await.unwrap()
    }

    /// Follows an execution started by someone else (the alarm router).
    pub async fn follow(&self, execution_arn: &str) -> RunOutcome {
        follow(&self.stack.sfn(), execution_arn, RUN_TIMEOUT, |_| {})
            .await
            .unwrap_or_else(|e| panic!("following {execution_arn}: {e}"))
    }

    /// The input a console user gives for a failing primary (`mode: ungraceful`), plus the
    /// deployment's fast test defaults.
    pub fn console_input(&self, extra: Value) -> Value {
        let mut input = Value::Object(self.deployment.settings.failover_input_defaults.clone());
        input["primary_region"] = "us-east-1".into();
        input["standby_region"] = "us-west-2".into();
        // These tests play a failing primary; graceful runs say so explicitly.
        input["mode"] = "ungraceful".into();
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                input[k] = v;
            }
        }
        input
    }

    /// Starts a failover run named `name` without waiting for it; returns its ARN.
    pub async fn start_failover(&self, name: &str, input: Value) -> String {
        let arn = self.stack.stack().arn_of("failover");
        start(&self.stack.sfn(), &arn, name, &input)
            .await
            .expect("StartExecution")
    }

    /// A journal or report object from the audit bucket, if it exists.
    pub async fn object(&self, key: &str) -> Option<Value> {
        use hapilot_adapters::journal::Journal;
        hapilot_adapters::journal::S3Journal::from_sdk(
            self.stack.stack().sdk_config(),
            "hapilot-audit",
        )
        .get(key)
        .await
        .unwrap()
    }

    /// The `hapilot` CLI, pointed at this stack like an operator's shell after `local up`.
    pub fn cli(&self) -> tokio::process::Command {
        let mut cli = self.stack.cli();
        // Signed in as the on-call operator, with the approval URL of the region the runs are in.
        for (var, value) in self.deployment.operator_env(self.stack.stack().region()) {
            cli.env(var, value);
        }
        cli
    }

    /// Every journal key of a failover run.
    pub async fn journal_keys(&self, execution: &str) -> Vec<String> {
        use hapilot_adapters::journal::Journal;
        hapilot_adapters::journal::S3Journal::from_sdk(
            self.stack.stack().sdk_config(),
            "hapilot-audit",
        )
        .list(&format!("runs/failover/{execution}/"))
        .await
        .unwrap()
    }

    /// Waits until failover run `execution` asks for approval; returns the pending request.
    pub async fn wait_for_approval(&self, execution: &str) -> Value {
        self.wait_for_approval_of("failover", execution).await
    }

    /// Starts a run of `machine` named `name` without waiting for it; returns its ARN.
    pub async fn start_run(&self, machine: &str, name: &str, input: Value) -> String {
        let arn = self.stack.stack().arn_of(machine);
        start(&self.stack.sfn(), &arn, name, &input)
            .await
            .expect("StartExecution")
    }

    /// Waits until run `execution` of `machine` asks for approval; returns the pending request.
    pub async fn wait_for_approval_of(&self, machine: &str, execution: &str) -> Value {
        let key = format!("runs/{machine}/{execution}/approval.json");
        for _ in 0..600 {
            if let Some(pending) = self.object(&key).await {
                return pending;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {execution} never asked for approval");
    }
}

impl FailoverWorld {
    /// Subscribes a fresh SQS queue to the notification topic; returns its URL.
    pub async fn subscribe_queue(&self) -> String {
        subscribe_queue(self.stack.stack(), None, &self.deployment.topic_arn).await
    }

    /// Every notification delivered to `queue` so far: (subject, message).
    pub async fn notifications(&self, queue: &str) -> Vec<(String, String)> {
        notifications(self.stack.stack(), None, queue).await
    }
}

impl FailoverWorld {
    /// Waits (up to 10 s) for a notification whose subject contains `subject`.
    pub async fn wait_for_notification(&self, queue: &str, subject: &str) -> (String, String) {
        let mut seen = Vec::new();
        for _ in 0..200 {
            seen.extend(self.notifications(queue).await);
            if let Some(found) = seen.iter().find(|(s, _)| s.contains(subject)) {
                return found.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no notification with subject {subject:?}; got {seen:?}");
    }
}
