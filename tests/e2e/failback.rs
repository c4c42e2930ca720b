//! The canary failback end to end: statemachines/failback.asl.json with the real handlers, the
//! canary gate reading a Prometheus API and CloudWatch, rollback on every bad path.

use hapilot::local::world::deployment::{DatabaseSetup, Databases};
use serde_json::json;

use crate::support::failback::{failback_input as input, split_weights as weights};
use crate::support::{FailoverWorld, assert_failed, cli_ok, entered};

/// A world as it is after a failover: traffic in the standby, the primary region's database
/// rebuilt as a replica, both regions serving traffic.
async fn after_failover() -> FailoverWorld {
    let world = FailoverWorld::start(DatabaseSetup::Patroni).await;
    world
        .deployment
        .set_weights(world.stack.stack(), &[("primary", 0), ("secondary", 100)])
        .await
        .unwrap();
    let Databases::Patroni { primary, standby } = &world.deployment.databases else {
        unreachable!()
    };
    primary.set_primary(false);
    standby.set_primary(true);
    hapilot::local::systems::vault::fail_over(
        &world.deployment.primary_vault,
        &world.deployment.vault,
        "us-east-1",
    );
    world.deployment.primary.traffic().set(200.0, 0.0);
    world.deployment.standby.traffic().set(200.0, 0.0);
    world
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_failback_reaches_100_percent_step_by_step() {
    let world = after_failover().await;
    let arn = world.start_run("failback", "clean", input(json!({}))).await;
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    assert_eq!(world.weights().await, weights(100));
    let report = world
        .object("reports/failback/clean.json")
        .await
        .expect("a report");
    assert_eq!(report["outcome"], "succeeded");
    assert_eq!(
        report["weights_before"],
        json!({"primary": 0, "secondary": 100})
    );
    assert_eq!(
        report["weights_after"],
        json!({"primary": 100, "secondary": 0})
    );
    let steps = report["canary_steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["percent"], 25);
    assert_eq!(steps[0]["gate"]["verdict"], "pass");
    assert!(
        steps[0]["gate"]["measurement"]["requests"]
            .as_f64()
            .unwrap()
            >= 100.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_at_a_step_roll_back_to_the_standby_with_the_numbers() {
    let world = after_failover().await;
    world.deployment.primary.traffic().set(200.0, 0.30);
    let arn = world
        .start_run("failback", "errors", input(json!({})))
        .await;
    let outcome = world.follow(&arn).await;
    assert_failed(&outcome, "hapilot.GateFailed");
    // The rate a real Prometheus measures: increase() over scrapes 250 ms apart, extrapolated
    // to the window's edges, so about the 30 % the gateway serves, never exactly.
    let cause = outcome.cause.clone().unwrap_or_default();
    let rate: f64 = cause
        .split("error rate ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("the cause names the error rate: {cause}"));
    assert!((25.0..=35.0).contains(&rate), "{cause}");
    assert!(cause.contains("over the 1.00 % limit"), "{cause}");
    assert!(entered(&outcome, "RollBack"));
    assert_eq!(
        world.weights().await,
        weights(0),
        "rolled back to primary 0 / standby 100"
    );
    let report = world.object("reports/failback/errors.json").await.unwrap();
    assert_eq!(report["outcome"], "rolled_back");
    assert_eq!(
        report["weights_after"],
        json!({"primary": 0, "secondary": 100})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_little_traffic_is_inconclusive_and_a_human_decides() {
    let world = after_failover().await;
    world.deployment.primary.traffic().set(10.0, 0.0);
    let sdk = world.stack.stack().sdk_config().clone();
    let arn = world
        .start_run("failback", "quiet", input(json!({"steps": [100]})))
        .await;
    let pending = world.wait_for_approval_of("failback", "quiet").await;
    assert!(
        pending["reason"]
            .as_str()
            .unwrap()
            .contains("could not judge"),
        "{pending:#}"
    );
    assert_eq!(pending["details"]["verdict"], "inconclusive");
    hapilot::approvals::answer(
        &sdk,
        "hapilot-audit",
        "failback",
        "quiet",
        true,
        "quiet hour, traffic is fine",
    )
    .await
    .unwrap();
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    assert_eq!(world.weights().await, weights(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_outage_is_never_a_pass() {
    let world = after_failover().await;
    world.deployment.prometheus.stop();
    let arn = world
        .start_run("failback", "blind", input(json!({"steps": [100]})))
        .await;
    let outcome = world.follow(&arn).await;
    assert_failed(&outcome, "hapilot.GateFailed");
    assert!(
        outcome
            .cause
            .as_deref()
            .unwrap_or("")
            .contains("provider error 3/3"),
        "{:?}",
        outcome.cause
    );
    let gates = outcome
        .events
        .iter()
        .filter(|e| e.kind == "TaskStateEntered" && e.state.as_deref() == Some("CanaryGate"))
        .count();
    assert_eq!(gates, 3, "two errors tolerated, the third rolls back");
    assert_eq!(world.weights().await, weights(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_at_the_last_approval_rolls_back() {
    let world = after_failover().await;
    let sdk = world.stack.stack().sdk_config().clone();
    let arn = world
        .start_run(
            "failback",
            "last-call",
            input(json!({"steps": [50, 100], "approve_last": true})),
        )
        .await;
    let pending = world.wait_for_approval_of("failback", "last-call").await;
    assert!(
        pending["reason"].as_str().unwrap().contains("100 %"),
        "{pending:#}"
    );
    assert_eq!(
        world.weights().await,
        weights(50),
        "the first step stands while it asks"
    );
    hapilot::approvals::answer(
        &sdk,
        "hapilot-audit",
        "failback",
        "last-call",
        false,
        "not during the launch",
    )
    .await
    .unwrap();
    let outcome = world.follow(&arn).await;
    assert_failed(&outcome, "hapilot.ApprovalDenied");
    assert_eq!(world.weights().await, weights(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_prechecks_change_nothing() {
    let world = after_failover().await;
    // Split brain: the primary region's database is still a primary, not a replica.
    let Databases::Patroni { primary, .. } = &world.deployment.databases else {
        unreachable!()
    };
    primary.set_primary(true);
    let arn = world
        .start_run("failback", "split-brain", input(json!({})))
        .await;
    let outcome = world.follow(&arn).await;
    assert_failed(&outcome, "hapilot.PrecheckFailed");
    assert!(
        outcome
            .cause
            .as_deref()
            .unwrap_or("")
            .contains("in_recovery=false"),
        "{:?}",
        outcome.cause
    );
    assert!(!entered(&outcome, "CanarySteps"));
    assert_eq!(world.weights().await, weights(0));

    // An unhealthy primary region.
    primary.set_primary(false);
    world
        .deployment
        .primary
        .set_mode(hapilot::local::systems::gateway::GatewayMode::Failing);
    let arn = world
        .start_run("failback", "still-down", input(json!({})))
        .await;
    let outcome = world.follow(&arn).await;
    assert_failed(&outcome, "hapilot.PrecheckFailed");
    assert_eq!(world.weights().await, weights(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_reads_load_balancer_metrics_from_cloudwatch() {
    let mut world = after_failover().await;
    world
        .deployment
        .use_cloudwatch_traffic(world.stack.stack())
        .unwrap();
    world.deployment.primary.traffic().set(200.0, 0.2);
    let arn = world
        .start_run(
            "failback",
            "cw-errors",
            input(json!({"steps": [100], "bake_seconds": 3})),
        )
        .await;
    let outcome = world.follow(&arn).await;
    assert_failed(&outcome, "hapilot.GateFailed");
    assert!(
        outcome.cause.as_deref().unwrap_or("").contains("20.00 %"),
        "{:?}",
        outcome.cause
    );

    world.deployment.primary.traffic().set(200.0, 0.0);
    let arn = world
        .start_run(
            "failback",
            "cw-clean",
            input(json!({"steps": [100], "bake_seconds": 3})),
        )
        .await;
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    assert_eq!(world.weights().await, weights(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hapilot_failback_starts_and_follows_a_run() {
    let world = after_failover().await;
    let with = input(json!({}));
    let stdout = cli_ok(
        world
            .cli()
            .args([
                "failback",
                "--primary-region",
                "us-east-1",
                "--standby-region",
                "us-west-2",
                "--name",
                "from-cli",
            ])
            .args(["--with", &with.to_string()]),
    )
    .await;
    for line in [
        "started arn:aws:states:us-east-1:123456789012:execution:hapilot-failback:from-cli",
        "  -> CanaryGate",
        "run SUCCEEDED",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    assert_eq!(world.weights().await, weights(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_can_switch_back_first_with_patroni() {
    let world = after_failover().await;
    let arn = world
        .start_run(
            "failback",
            "db-first",
            input(json!({"steps": [100], "switch_database_first": true})),
        )
        .await;
    let outcome = world.follow(&arn).await;
    assert!(
        outcome.succeeded() && entered(&outcome, "SwitchDatabase"),
        "{}",
        outcome.history_text()
    );
    let Databases::Patroni { primary, .. } = &world.deployment.databases else {
        unreachable!()
    };
    assert!(
        primary.is_primary(),
        "the primary region's member leads again"
    );
    assert_eq!(world.weights().await, weights(100));
    // Vault followed the database back: the recovered region's cluster is the primary again,
    // the standby's its secondary.
    assert!(entered(&outcome, "SwitchVault"));
    assert_eq!(world.deployment.primary_vault.mode(), "primary");
    assert_eq!(world.deployment.vault.mode(), "secondary");
    assert_eq!(
        world.deployment.vault.primary(),
        Some(world.deployment.primary_vault.url())
    );
    let report = world
        .object("reports/failback/db-first.json")
        .await
        .unwrap();
    assert_eq!(
        report["vault"]["done"],
        json!(["demote_old", "promote_new", "rejoin_old"]),
        "{:#}",
        report["vault"]
    );
}

/// The statistical judge in the failback: a recovered primary twice as slow as the standby
/// rolls back with the judge's table in the report, though its error rate is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_judge_a_primary_twice_as_slow_rolls_back_with_the_table() {
    let world = after_failover().await;
    world.deployment.primary.traffic().set_latency(0.4);
    world.deployment.standby.traffic().set_latency(0.2);
    let arn = world
        .start_run(
            "failback",
            "slow",
            input(json!({"steps": [100], "bake_seconds": 2, "gate": {"judge": {}}})),
        )
        .await;
    let outcome = world.follow(&arn).await;
    assert_failed(&outcome, "hapilot.GateFailed");
    assert_eq!(world.weights().await, weights(0));
    let report = world.object("reports/failback/slow.json").await.unwrap();
    let judgement = &report["canary_steps"][0]["gate"]["judgement"];
    assert_eq!(judgement["verdict"], "fail", "{judgement:#}");
    let rows = judgement["metrics"].as_array().unwrap();
    let metric = |name: &str| rows.iter().find(|r| r["metric"] == name).unwrap();
    assert_eq!(metric("error rate")["verdict"], "pass", "{judgement:#}");
    let p50 = metric("p50 latency (s)");
    assert_eq!(p50["verdict"], "fail", "{judgement:#}");
    let effect = p50["effect"].as_f64().unwrap();
    assert!((1.6..2.5).contains(&effect), "{judgement:#}");
    assert!(
        outcome
            .cause
            .as_deref()
            .unwrap_or("")
            .contains("canary worse than the baseline"),
        "{:?}",
        outcome.cause
    );
    let markdown = world
        .stack
        .text("hapilot-audit", "reports/failback/slow.md")
        .await;
    assert!(
        markdown.contains("| p50 latency (s) |"),
        "the Markdown report has the judge's table:\n{markdown}"
    );
}

/// A recovered primary that behaves like the standby passes every step with the judge on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_judge_a_primary_like_the_standby_completes() {
    let world = after_failover().await;
    let arn = world
        .start_run(
            "failback",
            "alike",
            input(json!({"bake_seconds": 2, "gate": {"judge": {}}})),
        )
        .await;
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    assert_eq!(world.weights().await, weights(100));
    let report = world.object("reports/failback/alike.json").await.unwrap();
    for step in report["canary_steps"].as_array().unwrap() {
        assert_eq!(step["gate"]["judgement"]["verdict"], "pass", "{step:#}");
        assert_eq!(
            step["gate"]["judgement"]["metrics"]
                .as_array()
                .unwrap()
                .len(),
            4,
            "errors and three latencies: {step:#}"
        );
    }
}

/// With the judge on, a metrics outage mid-bake is inconclusive (no data says nothing about
/// the canary), then a human decides with the numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_judge_a_metrics_outage_is_inconclusive_then_a_human_decides() {
    let world = after_failover().await;
    let sdk = world.stack.stack().sdk_config().clone();
    let arn = world
        .start_run(
            "failback",
            "outage",
            input(json!({"steps": [100], "bake_seconds": 2, "gate": {"judge": {}, "inconclusive_limit": 1}})),
        )
        .await;
    // Prometheus goes away once the step's weights moved: during the bake, before the gate.
    let journal = hapilot_adapters::journal::S3Journal::from_sdk(&sdk, "hapilot-audit");
    let mut shifted = false;
    for _ in 0..600 {
        use hapilot_adapters::journal::Journal;
        let keys = journal.list("runs/failback/outage/").await.unwrap();
        if keys.iter().any(|k| k.ends_with("-ShiftStep.json")) {
            shifted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(shifted, "the step never moved the weights");
    world.deployment.prometheus.stop();
    let pending = world.wait_for_approval_of("failback", "outage").await;
    assert_eq!(pending["details"]["verdict"], "inconclusive", "{pending:#}");
    assert_eq!(
        pending["details"]["judgement"]["verdict"], "inconclusive",
        "{pending:#}"
    );
    hapilot::approvals::answer(
        &sdk,
        "hapilot-audit",
        "failback",
        "outage",
        false,
        "no data",
    )
    .await
    .unwrap();
    let outcome = world.follow(&arn).await;
    assert!(!outcome.succeeded());
    assert_eq!(world.weights().await, weights(0));
    let gates = outcome
        .events
        .iter()
        .filter(|e| e.kind == "TaskStateEntered" && e.state.as_deref() == Some("CanaryGate"))
        .count();
    assert_eq!(gates, 2, "one inconclusive look tolerated, the second asks");
}

/// A dry run judges and reports without acting: the slow primary gets all its traffic back,
/// and the report says what the judge would have done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_judge_reports_a_slow_primary_and_does_not_act() {
    let world = after_failover().await;
    world.deployment.primary.traffic().set_latency(0.4);
    world.deployment.standby.traffic().set_latency(0.2);
    let arn = world
        .start_run(
            "failback",
            "dry",
            input(
                json!({"steps": [100], "bake_seconds": 2, "gate": {"judge": {}, "dry_run": true}}),
            ),
        )
        .await;
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    assert_eq!(world.weights().await, weights(100));
    let report = world.object("reports/failback/dry.json").await.unwrap();
    let gate = &report["canary_steps"][0]["gate"];
    assert_eq!(gate["judgement"]["verdict"], "fail", "{gate:#}");
    assert_eq!(gate["decision"], "proceed", "{gate:#}");
    assert!(
        gate["summary"]
            .as_str()
            .unwrap()
            .contains("dry run, not acted on"),
        "{gate:#}"
    );
}
