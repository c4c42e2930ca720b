//! The local drill, the README's main job. For now it proves the pipeline end to end: the local
//! stack executes a state machine that probes simulated regional gateways through the real
//! `check-health` handler, once healthy and once broken, and reports how each run ended.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::HapilotError;
use crate::local::gateway::{GatewayMode, SimulatedGateway};
use crate::local::{LocalStack, StackOptions, project_root};
use crate::runs::{follow, start};

/// The proof state machine (it lives under `tests/`: it proves the harness, it is not a product
/// state machine).
pub const PROOF_MACHINE: &str = "health-proof";

/// One scenario of the proof and how it ended.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    /// What was simulated.
    pub scenario: String,
    /// The end we expected: `SUCCEEDED`, or the error name of a failed run.
    pub expected: String,
    /// The end we saw.
    pub actual: String,
    /// Seconds from StartExecution to the end of the run, as the caller saw it.
    pub start_to_end_s: f64,
    /// Seconds per state.
    pub state_seconds: Vec<(String, f64)>,
}

impl ScenarioResult {
    /// Whether the run ended as expected.
    pub fn passed(&self) -> bool {
        self.expected == self.actual
    }
}

/// The proof's report.
#[derive(Debug, Clone)]
pub struct ProofReport {
    /// Seconds to bring the local stack up (moto start + deploy).
    pub stack_up_s: f64,
    /// Every scenario.
    pub scenarios: Vec<ScenarioResult>,
}

impl ProofReport {
    /// Whether every scenario ended as expected.
    pub fn passed(&self) -> bool {
        self.scenarios.iter().all(ScenarioResult::passed)
    }

    /// A readable report.
    pub fn render(&self) -> String {
        let mut out = String::from("\n=== hapilot local drill: health-check proof ===\n");
        out.push_str(&format!("local stack up in {:.2} s\n", self.stack_up_s));
        for s in &self.scenarios {
            out.push_str(&format!(
                "{:<7} {:<34} expected {:<27} got {:<27} StartExecution->end {:.2} s\n",
                if s.passed() { "PASSED" } else { "FAILED" },
                s.scenario,
                s.expected,
                s.actual,
                s.start_to_end_s
            ));
            for (state, secs) in &s.state_seconds {
                out.push_str(&format!("          {state:<26} {secs:.3} s\n"));
            }
        }
        out.push_str(if self.passed() {
            "result: PASSED\n"
        } else {
            "result: FAILED\n"
        });
        out
    }
}

/// Runs the health-check proof on a fresh local stack; `say` hears progress lines.
pub async fn health_proof(
    mut options: StackOptions,
    say: impl Fn(&str) + Send + Sync + Clone + 'static,
) -> Result<ProofReport, HapilotError> {
    options
        .definitions
        .push(project_root().join("tests/statemachines/health-proof.asl.json"));
    say("starting the local stack (moto + Lambda host)...");
    let up = Instant::now();
    let stack = LocalStack::start(options, say.clone()).await?;
    let stack_up_s = up.elapsed().as_secs_f64();
    say(&format!(
        "local stack up at {} in {stack_up_s:.2} s",
        stack.endpoint_url()
    ));
    let gateway = SimulatedGateway::start("us-east-1")
        .await
        .map_err(HapilotError::io("starting the simulated gateway"))?;
    let sfn = aws_sdk_sfn::Client::new(stack.sdk_config());
    let arn = stack
        .state_machine_arn(PROOF_MACHINE)
        .expect("the proof machine was just deployed")
        .to_string();
    let scenarios = [
        ("us-east-1 healthy", GatewayMode::Healthy, "SUCCEEDED"),
        (
            "us-east-1 answering 503",
            GatewayMode::Failing,
            "hapilot.EndpointUnhealthy",
        ),
        (
            "us-east-1 hanging (probe timeouts)",
            GatewayMode::Hanging,
            "hapilot.EndpointUnhealthy",
        ),
    ];
    let mut results = Vec::new();
    for (i, (scenario, mode, expected)) in scenarios.into_iter().enumerate() {
        gateway.set_mode(mode);
        say(&format!("scenario {}: {scenario}", i + 1));
        let input = json!({
            "url": gateway.health_url(),
            "label": gateway.region(),
            "samples": 3,
            "timeout_ms": 300,
            "interval_ms": 50,
        });
        let started = Instant::now();
        let name = format!("proof-{}-{}", i + 1, uuid::Uuid::new_v4().simple());
        let execution = start(&sfn, &arn, &name, &input).await?;
        let print = say.clone();
        let outcome = follow(&sfn, &execution, Duration::from_secs(120), move |line| {
            print(line)
        })
        .await?;
        let actual = if outcome.succeeded() {
            outcome.status.clone()
        } else {
            outcome
                .error
                .clone()
                .unwrap_or_else(|| outcome.status.clone())
        };
        results.push(ScenarioResult {
            scenario: scenario.to_string(),
            expected: expected.to_string(),
            actual,
            start_to_end_s: started.elapsed().as_secs_f64(),
            state_seconds: outcome.state_durations(),
        });
    }
    stack.shutdown().await;
    Ok(ProofReport {
        stack_up_s,
        scenarios: results,
    })
}
