//! The harness proof: a state machine executed by moto probes a simulated gateway through the
//! real `check-health` handler, on the healthy and on every unhealthy path.

use std::time::Duration;

use hapilot::local::systems::gateway::{GatewayMode, SimulatedGateway};
use serde_json::{Value, json};

use crate::support::{TestStack, entered};

const MACHINE: &str = "health-proof";

fn input(gateway: &SimulatedGateway, timeout_ms: u64) -> Value {
    json!({
        "url": gateway.health_url(),
        "label": "primary",
        "samples": 3,
        "timeout_ms": timeout_ms,
        "interval_ms": 10,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_endpoint_succeeds_with_a_verdict_per_sample() {
    let stack = TestStack::start().await;
    let gateway = SimulatedGateway::start("us-east-1").await.unwrap();
    let output = stack.run_ok(MACHINE, input(&gateway, 1_000)).await;
    assert_eq!(output["observed"]["verdict"], "healthy", "{output:#}");
    assert_eq!(output["observed"]["samples"].as_array().unwrap().len(), 3);
    assert_eq!(output["observed"]["healthy_samples"], 3);
    assert_eq!(gateway.health_requests(), 3, "one request per sample");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_paths_end_in_the_named_error_through_the_catch() {
    let stack = TestStack::start().await;
    let gateway = SimulatedGateway::start("us-east-1").await.unwrap();

    gateway.set_mode(GatewayMode::Failing);
    let outcome = stack
        .run_failing(MACHINE, input(&gateway, 1_000), "hapilot.EndpointUnhealthy")
        .await;
    assert!(
        entered(&outcome, "RecordUnhealthy"),
        "the Catch did not match\n{}",
        outcome.history_text()
    );
    let task_failure = outcome
        .events
        .iter()
        .find(|e| e.kind == "TaskFailed")
        .expect("the ConfirmUnhealthy task failed");
    assert_eq!(
        task_failure.error.as_deref(),
        Some("hapilot.EndpointUnhealthy")
    );
    assert!(
        task_failure
            .cause
            .as_deref()
            .unwrap_or("")
            .contains("HTTP 503 (x3)"),
        "{task_failure:?}"
    );

    gateway.set_mode(GatewayMode::Hanging);
    let outcome = stack
        .run_failing(MACHINE, input(&gateway, 200), "hapilot.EndpointUnhealthy")
        .await;
    assert!(entered(&outcome, "RecordUnhealthy"));
    assert!(
        outcome.history_text().contains("no answer within 200 ms"),
        "{}",
        outcome.history_text()
    );

    // Slower than the probe timeout is down; a little slow but within it is up.
    gateway.set_mode(GatewayMode::Slow(Duration::from_millis(400)));
    stack
        .run_failing(MACHINE, input(&gateway, 150), "hapilot.EndpointUnhealthy")
        .await;
    gateway.set_mode(GatewayMode::Slow(Duration::from_millis(20)));
    stack.run_ok(MACHINE, input(&gateway, 2_000)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flap_between_the_two_looks_is_not_an_outage() {
    let stack = TestStack::start().await;
    let gateway = SimulatedGateway::start("us-east-1").await.unwrap();
    // Unhealthy for exactly the first look (3 samples); healthy again for the second.
    gateway.fail_next(3);
    let outcome = stack.run(MACHINE, input(&gateway, 1_000)).await;
    assert_eq!(gateway.health_requests(), 6);
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    assert!(
        entered(&outcome, "RecoveredWhileConfirming"),
        "{}",
        outcome.history_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_by_name_and_probes_nothing() {
    let stack = TestStack::start().await;
    let gateway = SimulatedGateway::start("us-east-1").await.unwrap();
    let mut bad = input(&gateway, 1_000);
    bad["samples"] = json!(0);
    let outcome = stack
        .run_failing(MACHINE, bad, "hapilot.InvalidInput")
        .await;
    assert!(
        outcome.history_text().contains("samples"),
        "{}",
        outcome.history_text()
    );
    assert_eq!(gateway.health_requests(), 0, "bad input must not probe");
}
