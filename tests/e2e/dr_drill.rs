//! The DR drill state machine: a failover child (graceful), RTO and RPO measured on a real
//! PostgreSQL pair against the targets, then a human decides - fail back (canary child) or stay.

use std::time::Duration;

use hapilot::local::systems::gateway::GatewayMode;
use hapilot::local::world::deployment::{DatabaseSetup, Databases};
use hapilot_adapters::database::PostgresDatabase;
use serde_json::{Value, json};

use crate::support::{FailoverWorld, assert_failed, cli_ok};

async fn prepare(world: &FailoverWorld) {
    let Databases::Postgres { pair, .. } = &world.deployment.databases else {
        unreachable!()
    };
    let primary = PostgresDatabase::new(pair.primary.dsn())
        .connect()
        .await
        .unwrap();
    // LiteLLM's own table, under the names the deployed template's drill reads.
    let (table, column) = data_check(world);
    primary
        .batch_execute(&hapilot::local::systems::litellm::create_spend_logs(
            &table, &column,
        ))
        .await
        .unwrap();
    let insert = hapilot::local::systems::litellm::insert_spend_log(&table, &column);
    for request in 1..=100 {
        primary
            .query_one(insert.as_str(), &[&format!("req-{request}")])
            .await
            .unwrap();
    }
    // Traffic for the failback's canary gate.
    world.deployment.primary.traffic().set(400.0, 0.002);
    world.deployment.standby.traffic().set(400.0, 0.002);
}

/// The DR drill's data check as the deployed template sets it.
fn data_check(world: &FailoverWorld) -> (String, String) {
    world.deployment.drill_data_check().unwrap()
}

fn drill_input(world: &FailoverWorld, extra: Value) -> Value {
    let (table, column) = data_check(world);
    assert_eq!(
        (table.as_str(), column.as_str()),
        ("LiteLLM_SpendLogs", "startTime"),
        "the template's defaults"
    );
    let mut input = json!({
        "primary_region": "us-east-1",
        "standby_region": "us-west-2",
        "data_check": {"table": table, "column": column},
        "failover": Value::Object(world.deployment.settings.failover_input_defaults.clone()),
        "failback": {
            "steps": [50, 100], "bake_seconds": 1,
            "probe_samples": 2, "probe_timeout_ms": 500, "probe_interval_ms": 50,
            "dns_sync_timeout_seconds": 10
        },
        "approval_timeout_seconds": 120
    });
    if let (Some(i), Value::Object(e)) = (input.as_object_mut(), extra) {
        i.extend(e);
    }
    input
}

async fn answer(world: &FailoverWorld, execution: &str, approve: bool) {
    cli_ok(
        world
            .cli()
            .args([if approve { "approve" } else { "deny" }, execution])
            .args(["--machine", "dr-drill", "--bucket", "hapilot-audit"])
            .args(["--comment", "drill decision from the test", "--yes"]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drill_within_targets_passes_and_fails_back_when_approved() {
    let world = FailoverWorld::start(DatabaseSetup::Postgres).await;
    prepare(&world).await;
    let name = "drill-pass";
    let arn = world
        .start_run("dr-drill", name, drill_input(&world, json!({})))
        .await;
    let pending = world.wait_for_approval_of("dr-drill", name).await;
    assert!(
        pending["reason"]
            .as_str()
            .unwrap_or("")
            .contains("DR drill PASSED"),
        "{pending}"
    );
    let report = world
        .object(&format!("reports/dr-drill/{name}.json"))
        .await
        .unwrap();
    assert_eq!(report["verdict"], "PASSED", "{report:#}");
    assert_eq!(
        report["rpo_secs"], 0.0,
        "a graceful drill keeps every row: {report:#}"
    );
    assert!(report["rto_secs"].as_f64().unwrap() > 0.0);
    assert_eq!(world.weights().await["secondary"], 100);

    // The drill holds the platform's run lock from its plan to its verdict (its failover ran
    // under it): a run started by anyone else meanwhile is refused, naming the drill.
    let lock = world
        .object(hapilot_core::run_lock::LOCK_KEY)
        .await
        .expect("the drill holds the lock while it waits");
    assert_eq!(
        (lock["machine"].as_str(), lock["execution"].as_str()),
        (Some("dr-drill"), Some(name))
    );
    let intruder = world
        .start_failover(
            "during-the-drill",
            world.console_input(json!({"mode": "graceful"})),
        )
        .await;
    let refused = world.follow(&intruder).await;
    crate::support::assert_failed(&refused, "hapilot.RunInProgress");
    assert!(refused.cause.as_deref().unwrap_or_default().contains(name));

    // The operator re-protects the old primary, then approves the fail-back.
    cli_ok(world.cli().args([
        "reprotect",
        "--region",
        "us-east-1",
        "--primary-region",
        "us-west-2",
    ]))
    .await;
    answer(&world, name, true).await;
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    let report = world
        .object(&format!("reports/dr-drill/{name}.json"))
        .await
        .unwrap();
    assert_eq!(report["failback_decision"], "fail_back");
    assert_eq!(report["failback"]["status"], "SUCCEEDED", "{report:#}");
    assert!(
        world
            .object(hapilot_core::run_lock::LOCK_KEY)
            .await
            .is_none(),
        "the drill's verdict gave the lock back"
    );
    assert_eq!(
        world.weights().await["primary"],
        100,
        "traffic is back in the primary"
    );
    let md = world
        .stack
        .text("hapilot-audit", &format!("reports/dr-drill/{name}.md"))
        .await;
    assert!(md.starts_with(&format!("# DR drill {name}: PASSED")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_standby_fails_the_drill_and_a_denied_failback_stays_put() {
    let world = FailoverWorld::start(DatabaseSetup::Postgres).await;
    prepare(&world).await;
    // Every probe of the standby takes 400 ms: the failover is slower than this rehearsal's
    // 1-second RTO target.
    world
        .deployment
        .standby
        .set_mode(GatewayMode::Slow(Duration::from_millis(400)));
    let name = "drill-slow";
    let arn = world
        .start_run(
            "dr-drill",
            name,
            drill_input(&world, json!({"rto_target_secs": 1})),
        )
        .await;
    let pending = world.wait_for_approval_of("dr-drill", name).await;
    assert!(
        pending["reason"]
            .as_str()
            .unwrap_or("")
            .contains("DR drill FAILED"),
        "{pending}"
    );
    world.deployment.standby.set_mode(GatewayMode::Healthy);
    answer(&world, name, false).await;
    let outcome = world.follow(&arn).await;
    assert_failed(&outcome, "hapilot.DrillFailed");
    assert!(
        outcome.cause.as_deref().unwrap_or("").contains("RTO"),
        "{:?}",
        outcome.cause
    );
    let report = world
        .object(&format!("reports/dr-drill/{name}.json"))
        .await
        .unwrap();
    assert_eq!(report["verdict"], "FAILED");
    assert_eq!(report["failback_decision"], "stay");
    assert!(report["failback"].is_null(), "no failback was started");
    assert_eq!(
        world.weights().await["secondary"],
        100,
        "denied: traffic stays in the standby"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cloudnativepg_drill_reports_its_rpo_from_the_data_check() {
    // The HA document's drill (5.3) on its own topology (3.2): the data check reads each
    // region's Cluster through its read-write service.
    let world = FailoverWorld::start(DatabaseSetup::Cloudnativepg).await;
    prepare(&world).await;
    let name = "drill-cnpg";
    let arn = world
        .start_run("dr-drill", name, drill_input(&world, json!({})))
        .await;
    let pending = world.wait_for_approval_of("dr-drill", name).await;
    assert!(
        pending["reason"]
            .as_str()
            .unwrap_or("")
            .contains("DR drill PASSED"),
        "{pending}"
    );
    let report = world
        .object(&format!("reports/dr-drill/{name}.json"))
        .await
        .unwrap();
    assert_eq!(report["verdict"], "PASSED", "{report:#}");
    assert_eq!(
        report["rpo_secs"], 0.0,
        "the token switchover keeps every row: {report:#}"
    );
    assert_eq!(report["data_before"]["rows"], 100, "{report:#}");
    assert_eq!(report["data_after"]["rows"], 100, "{report:#}");
    answer(&world, name, false).await;
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
}
