//! The failover state machine end to end: alarm router -> statemachines/failover.asl.json ->
//! the real handlers -> Route53, Patroni/PostgreSQL, Kubernetes, S3, SNS, CloudWatch.

use std::time::Duration;

use hapilot::local::systems::gateway::GatewayMode;
use hapilot::local::world::deployment::{DatabaseSetup, Databases, PRIMARY_ALARM, alarm_event};
use serde_json::{Value, json};

use crate::support::postgres::in_recovery;
use crate::support::{FailoverWorld, assert_failed, cli_ok, entered};

fn unchanged() -> std::collections::BTreeMap<String, i64> {
    [("primary".to_string(), 100), ("secondary".to_string(), 0)].into()
}

/// The dead primary fenced off by its weight, and the standby not given the traffic yet.
fn fenced() -> std::collections::BTreeMap<String, i64> {
    [("primary".to_string(), 0), ("secondary".to_string(), 0)].into()
}

fn failed_over() -> std::collections::BTreeMap<String, i64> {
    [("primary".to_string(), 0), ("secondary".to_string(), 100)].into()
}

fn patroni(
    world: &FailoverWorld,
) -> (
    &hapilot::local::systems::patroni::SimulatedPatroni,
    &hapilot::local::systems::patroni::SimulatedPatroni,
) {
    match &world.deployment.databases {
        Databases::Patroni { primary, standby } => (primary, standby),
        Databases::Postgres { .. } => panic!("this test runs on the Patroni setup"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarm_driven_failover_moves_traffic_promotes_scales_and_reports() {
    let mut world = FailoverWorld::start(DatabaseSetup::Patroni).await;
    world.deployment.primary.set_mode(GatewayMode::Failing);
    world
        .deployment
        .set_alarm(world.stack.stack(), "ALARM", "primary down")
        .await
        .unwrap();
    let event = alarm_event(PRIMARY_ALARM, "ALARM", "2026-11-25T09:00:00Z");
    let queue = world.subscribe_queue().await;

    let decision = world.route(&event).await.unwrap();
    assert_eq!(decision["decision"], "start", "{decision:#}");
    let execution = decision["execution_name"].as_str().unwrap().to_string();
    assert_eq!(execution, "failover-hapilot-primary-health-1795597200");
    let outcome = world
        .follow(decision["execution_arn"].as_str().unwrap())
        .await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());

    assert_eq!(world.weights().await, failed_over());
    let (old, new) = patroni(&world);
    assert!(new.is_primary() && new.failover_requests() == 1);
    assert!(
        !old.is_primary(),
        "Patroni moved the leader key: the old leader (reachable here) stepped down"
    );
    assert_eq!(world.deployment.standby_kube.replicas("litellm"), Some(5));
    assert_eq!(
        world.deployment.standby_kube.replicas("agentgateway"),
        Some(3)
    );

    let report = world
        .object(&format!("reports/failover/{execution}.json"))
        .await
        .expect("a report");
    assert_eq!(report["outcome"], "succeeded");
    assert_eq!(
        report["weights_before"],
        json!({"primary": 100, "secondary": 0})
    );
    assert_eq!(
        report["weights_after"],
        json!({"primary": 0, "secondary": 100})
    );
    assert_eq!(report["incident"]["alarm"], PRIMARY_ALARM);
    assert!(report["data_at_risk_secs"].as_f64().unwrap() < 300.0);
    // Vault went with the database: the old primary's cluster answered (only its gateway
    // failed), so it was demoted first, then re-joined the promoted one as its secondary; the
    // promoted cluster serves the gateway's secret.
    assert_eq!(
        report["vault"]["done"],
        json!(["demote_old", "promote_new", "rejoin_old"]),
        "{:#}",
        report["vault"]
    );
    assert_eq!(report["vault"]["after"]["known_secret"]["keys"], 1);
    assert_eq!(world.deployment.vault.mode(), "primary");
    assert_eq!(world.deployment.primary_vault.mode(), "secondary");
    assert_eq!(
        world.deployment.primary_vault.primary(),
        Some(world.deployment.vault.url())
    );
    let keys = world.journal_keys(&execution).await;
    for state in [
        "PlanFailover",
        "SnapshotWeights",
        "ReadReplication",
        "FencePrimary",
        "PromoteStandby",
        "PromoteVault",
        "ShiftTraffic",
        "ScaleStandby",
        "RecordSuccess",
    ] {
        assert!(
            keys.iter().any(|k| k.ends_with(&format!("-{state}.json"))),
            "no journal entry for {state}: {keys:?}"
        );
    }

    let done = world
        .wait_for_notification(&queue, "hapilot failover: succeeded")
        .await;
    assert!(
        done.1.contains("POST-FAILOVER ACTIONS") && done.1.contains("us-east-1 -> us-west-2"),
        "{}",
        done.1
    );
    let metrics = world
        .stack
        .cloudwatch()
        .list_metrics()
        .namespace("hapilot")
        .send()
        .await
        .unwrap();
    let names: Vec<_> = metrics
        .metrics()
        .iter()
        .filter_map(|m| m.metric_name())
        .collect();
    for metric in [
        "FailoverDurationSeconds",
        "DataAtRiskSeconds",
        "FailoverSucceeded",
    ] {
        assert!(names.contains(&metric), "{metric} missing from {names:?}");
    }

    // The same alarm delivered again: the cool-down refuses it...
    let again = world.route(&event).await.unwrap();
    assert_eq!(
        (again["decision"].as_str(), again["reason"].as_str()),
        (Some("ignore"), Some("cooling_down")),
        "{again:#}"
    );
    // ...and without a cool-down, the incident's execution name does.
    world
        .deployment
        .reconfigure(world.stack.stack(), |s| s.cooldown_secs = 0)
        .unwrap();
    let again = world.route(&event).await.unwrap();
    assert_eq!(again["reason"], "duplicate_delivery", "{again:#}");
    let runs = world
        .stack
        .sfn()
        .list_executions()
        .state_machine_arn(world.stack.stack().arn_of("failover"))
        .send()
        .await
        .unwrap();
    assert_eq!(runs.executions().len(), 1, "one incident, one run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_primary_is_a_false_alarm_and_nothing_changes() {
    let world = FailoverWorld::start(DatabaseSetup::Patroni).await;
    let arn = world
        .start_failover("false-alarm", world.console_input(json!({})))
        .await;
    let outcome = world.follow(&arn).await;
    assert!(
        outcome.succeeded() && entered(&outcome, "FalseAlarm"),
        "{}",
        outcome.history_text()
    );
    assert_eq!(world.weights().await, unchanged());
    assert_eq!(patroni(&world).1.failover_requests(), 0);
    let report = world
        .object("reports/failover/false-alarm.json")
        .await
        .unwrap();
    assert_eq!(report["outcome"], "false_alarm");

    // force: fails over even though the primary answers.
    let arn = world
        .start_failover("forced", world.console_input(json!({"force": true})))
        .await;
    let outcome = world.follow(&arn).await;
    assert!(
        outcome.succeeded() && entered(&outcome, "FailoverComplete"),
        "{}",
        outcome.history_text()
    );
    assert_eq!(world.weights().await, failed_over());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_standby_stops_the_run_with_nothing_changed() {
    let world = FailoverWorld::start(DatabaseSetup::Patroni).await;
    world.deployment.primary.set_mode(GatewayMode::Failing);
    world.deployment.standby.set_mode(GatewayMode::Hanging);
    let arn = world
        .start_failover("standby-down", world.console_input(json!({})))
        .await;
    let outcome = world.follow(&arn).await;
    assert_failed(&outcome, "hapilot.StandbyUnhealthy");
    assert!(
        outcome
            .cause
            .as_deref()
            .unwrap_or("")
            .contains("no answer within"),
        "{:?}",
        outcome.cause
    );
    assert_eq!(world.weights().await, unchanged());
    assert_eq!(patroni(&world).1.failover_requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_over_the_rpo_waits_for_a_human_deny_changes_nothing_approve_fails_over() {
    let world = FailoverWorld::start(DatabaseSetup::Patroni).await;
    world.deployment.primary.set_mode(GatewayMode::Failing);
    patroni(&world).1.set_replay_lag(Duration::from_secs(600));
    // Streaming is 3 MiB behind too, and the lag publisher saw the leader's position before
    // us-east-1 went dark.
    patroni(&world).1.set_received_behind(3 << 20);
    publish_primary_position(&world).await;
    let bucket = "hapilot-audit";
    let sdk = world.stack.stack().sdk_config().clone();

    let queue = world.subscribe_queue().await;
    let arn = world
        .start_failover("lagging-deny", world.console_input(json!({})))
        .await;
    let pending = world.wait_for_approval("lagging-deny").await;
    // The approval names the data at risk in bytes and seconds, and where each number came from.
    let risk = &pending["details"]["replication"]["data_at_risk"];
    assert_eq!(risk["bytes"], 3 << 20, "{pending:#}");
    assert!(risk["secs"].as_f64().unwrap() >= 600.0, "{pending:#}");
    let sources = risk["sources"].as_array().unwrap();
    let from = |name: &str| {
        sources
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| format!("{} from {}", s["value"], s["from"]))
            .unwrap_or_else(|| panic!("no source {name}: {pending:#}"))
    };
    assert!(
        from("primary_published").contains("journal wal-positions/us-east-1.json"),
        "{pending:#}"
    );
    assert!(
        from("standby_received").contains("the standby in us-west-2"),
        "{pending:#}"
    );
    assert!(
        from("archive_end").contains("no archived WAL"),
        "{pending:#}"
    );
    assert!(
        pending["reason"]
            .as_str()
            .unwrap()
            .contains("at least 3.0 MiB"),
        "{pending:#}"
    );
    let ask = world.wait_for_notification(&queue, "approval needed").await;
    assert!(
        ask.1.contains(&format!(
            "hapilot approve lagging-deny --machine failover --region {} --bucket hapilot-audit",
            world.stack.stack().region()
        )) && ask.1.contains("over the 300 s RPO"),
        "{}",
        ask.1
    );
    assert!(
        pending["reason"]
            .as_str()
            .unwrap()
            .contains("over the 300 s RPO"),
        "{pending:#}"
    );
    // While it waits, an alarm for the same region is refused: one failover at a time.
    world
        .deployment
        .set_alarm(world.stack.stack(), "ALARM", "down")
        .await
        .unwrap();
    let refused = world
        .route(&alarm_event(PRIMARY_ALARM, "ALARM", "2026-11-25T10:00:00Z"))
        .await
        .unwrap();
    assert_eq!(refused["reason"], "failover_running", "{refused:#}");
    // Denied from the CLI, as the on-call would, with the endpoint, region and audit bucket
    // from a hapilot.toml (not the environment). A typo in that file is refused by name and
    // answers nothing.
    let dir = std::env::temp_dir().join(format!("hapilot-toml-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let settings_file = |name: &str, key: &str| {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "[aws]\nendpoint_url = \"{}\"\nregion = \"us-east-1\"\n\n[settings]\n{key} = \"{bucket}\"\n",
                world.stack.stack().endpoint_url()
            ),
        )
        .unwrap();
        path
    };
    let oncall_cli = |file: &std::path::Path| {
        let mut cli = world.cli();
        cli.arg("--config")
            .arg(file)
            .args([
                "deny",
                "lagging-deny",
                "--comment",
                "replica too far behind",
            ])
            .env("HAPILOT_OPERATOR", "oncall-test")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION");
        cli
    };
    let typo = oncall_cli(&settings_file("typo.toml", "audit_buckt"))
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert!(!typo.status.success());
    assert!(
        stderr.contains("typo.toml: [settings] has no key \"audit_buckt\""),
        "{stderr}"
    );
    assert_eq!(world.wait_for_approval("lagging-deny").await, pending);
    // Without --yes and without a terminal to confirm on, nothing is answered, but the on-call
    // sees what they were about to decide.
    let unconfirmed = oncall_cli(&settings_file("hapilot.toml", "audit_bucket"))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&unconfirmed.stdout),
        String::from_utf8_lossy(&unconfirmed.stderr),
    );
    assert!(!unconfirmed.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("pass --yes to deny"), "{stderr}");
    assert!(
        stdout.contains("you are about to deny:")
            && stdout.contains("failover run lagging-deny waits at RequestApproval"),
        "{stdout}"
    );
    assert_eq!(world.wait_for_approval("lagging-deny").await, pending);
    cli_ok(oncall_cli(&settings_file("hapilot.toml", "audit_bucket")).arg("--yes")).await;
    let _ = std::fs::remove_dir_all(&dir);
    let outcome = world.follow(&arn).await;
    assert_failed(&outcome, "hapilot.ApprovalDenied");
    assert_eq!(world.weights().await, unchanged());
    assert_eq!(patroni(&world).1.failover_requests(), 0);
    let report = world
        .object("reports/failover/lagging-deny.json")
        .await
        .unwrap();
    assert_eq!(report["approval"]["comment"], "replica too far behind");
    // Who answered is who AWS says called, not what the environment claims.
    let by = report["approval"]["by"].as_str().unwrap();
    assert!(by.starts_with("arn:aws:"), "{report:#}");
    assert_eq!(report["approval"]["operator"], "oncall-test");

    let arn = world
        .start_failover("lagging-approve", world.console_input(json!({})))
        .await;
    world.wait_for_approval("lagging-approve").await;
    hapilot::approvals::answer(
        &sdk,
        bucket,
        "failover",
        "lagging-approve",
        true,
        "accept the loss",
    )
    .await
    .unwrap();
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    assert_eq!(world.weights().await, failed_over());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_approval_times_out_safely() {
    let world = FailoverWorld::start(DatabaseSetup::Patroni).await;
    world.deployment.primary.set_mode(GatewayMode::Failing);
    patroni(&world).1.set_replay_lag(Duration::from_secs(900));
    let arn = world
        .start_failover(
            "nobody-home",
            world.console_input(json!({"approval_timeout_seconds": 2})),
        )
        .await;
    let outcome = world.follow(&arn).await;
    assert_failed(&outcome, "hapilot.ApprovalTimedOut");
    assert_eq!(world.weights().await, unchanged());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_that_cannot_be_scaled_is_promoted_but_its_traffic_waits_for_a_human() {
    let world = FailoverWorld::start(DatabaseSetup::Patroni).await;
    world.deployment.primary.set_mode(GatewayMode::Failing);
    world.deployment.standby_kube.delete("litellm");
    let arn = world
        .start_failover(
            "scale-breaks",
            world.console_input(json!({"approval_timeout_seconds": 2})),
        )
        .await;
    let outcome = world.follow(&arn).await;
    assert_failed(&outcome, "hapilot.CapacityNotReady");
    assert!(entered(&outcome, "PromoteStandby") && entered(&outcome, "RequestCapacityApproval"));
    // A deployment that does not exist is a 404: permanent, so tried once, not retried.
    let attempts = outcome
        .events
        .iter()
        .skip_while(|e| e.state.as_deref() != Some("ScaleStandby"))
        .take_while(|e| e.state.as_deref() != Some("GracefulOrGuarded"))
        .filter(|e| e.kind == "LambdaFunctionScheduled" || e.kind == "TaskScheduled")
        .count();
    assert_eq!(attempts, 1, "{}", outcome.history_text());
    assert!(
        !entered(&outcome, "RestoreWeights") && !entered(&outcome, "ShiftTraffic"),
        "no traffic to a standby without capacity, and never back to the fenced primary"
    );
    assert_eq!(world.weights().await, fenced());
    let report = world
        .object("reports/failover/scale-breaks.json")
        .await
        .unwrap();
    assert_eq!(report["outcome"], "failed_forward");
    assert_eq!(
        report["promotion"], "promoted",
        "the report must say the database was promoted"
    );
}

/// Capacity before traffic: the standby's new pods take a while to pass their readiness
/// probes; the traffic moves only once they have, and the report shows the wait. Its Redis'
/// Sentinels have lost their quorum: reported before the traffic moves, not blocking (the
/// master itself is writable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_the_traffic_only_once_its_pods_are_ready() {
    let mut world = FailoverWorld::start(DatabaseSetup::Patroni).await;
    world.deployment.primary.set_mode(GatewayMode::Failing);
    world.deployment.redis.as_mut().unwrap().stop_sentinels(2);
    world
        .deployment
        .standby_kube
        .set_ready_delay(Duration::from_secs(3));
    let arn = world
        .start_failover(
            "capacity-first",
            world.console_input(json!({"capacity_wait_seconds": 60})),
        )
        .await;
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    let order: Vec<&str> = outcome
        .events
        .iter()
        .filter(|e| e.kind.ends_with("StateEntered"))
        .filter_map(|e| e.state.as_deref())
        .filter(|s| {
            [
                "ScaleStandby",
                "PromoteStandby",
                "CheckCapacity",
                "ShiftTraffic",
            ]
            .contains(s)
        })
        .collect();
    let looks = order.iter().filter(|s| **s == "CheckCapacity").count();
    assert!(looks >= 2, "the first look found pods starting: {order:?}");
    assert_eq!(
        order[0], "ScaleStandby",
        "scaled before anything else: {order:?}"
    );
    assert_eq!(order[1], "PromoteStandby", "{order:?}");
    assert_eq!(
        order.last(),
        Some(&"ShiftTraffic"),
        "traffic last: {order:?}"
    );
    assert_eq!(world.weights().await, failed_over());
    let report = world
        .object("reports/failover/capacity-first.json")
        .await
        .unwrap();
    assert_eq!(
        report["capacity"]["ready"], true,
        "{:#}",
        report["capacity"]
    );
    assert!(
        report["capacity"]["waited_secs"].as_f64().unwrap() > 0.5
            && report["capacity"]["polls"].as_u64().unwrap() >= 2,
        "{:#}",
        report["capacity"]
    );
    let cache = &report["capacity"]["cache"];
    assert_eq!(cache["usable"], true, "{cache:#}");
    assert_eq!(cache["sentinel_quorum"], false, "{cache:#}");
    let findings = cache["findings"].to_string();
    assert!(
        findings.contains("quorum is 2") && findings.contains("fresh rate-limit counters"),
        "{findings}"
    );
    let litellm = report["scale"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["deployment"] == "litellm")
        .unwrap();
    assert_eq!(litellm["after"], 5, "{:#}", report["scale"]);
}

/// A world where eu-west-1 is a second secondary, as the HA document's section 3 has it: its
/// gateway, a Patroni member of the same cluster (a replica), its weighted record.
async fn with_eu_candidate() -> FailoverWorld {
    let stack = crate::support::TestStack::for_templates().await;
    let deployment = hapilot::local::world::deployment::LocalDeployment::create_with(
        stack.stack(),
        hapilot::local::world::deployment::WorldOptions {
            third_region: true,
            ..hapilot::local::world::deployment::WorldOptions::classic(DatabaseSetup::Patroni)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("the local deployment was not created: {e}"));
    FailoverWorld { stack, deployment }
}

fn weights3(
    primary: i64,
    secondary: i64,
    tertiary: i64,
) -> std::collections::BTreeMap<String, i64> {
    [
        ("primary".to_string(), primary),
        ("secondary".to_string(), secondary),
        ("tertiary".to_string(), tertiary),
    ]
    .into()
}

/// us-east-1 dark, both secondaries healthy: the one with less data at risk (eu-west-1, 0.5 s
/// behind, over us-west-2, 60 s behind) is chosen, takes the traffic and the database; the
/// other follows the new leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secondary_that_loses_least_takes_over_and_the_other_follows_it() {
    let world = with_eu_candidate().await;
    let eu_member = world
        .deployment
        .third
        .as_ref()
        .unwrap()
        .patroni_member()
        .unwrap();
    let (_, west) = patroni(&world);
    west.set_replay_lag(Duration::from_secs(60));
    world.deployment.primary.set_mode(GatewayMode::Failing);
    let arn = world
        .start_failover(
            "least-at-risk",
            world.console_input(json!({"standby_candidates": ["eu-west-1"]})),
        )
        .await;
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    assert_eq!(world.weights().await, weights3(0, 0, 100));
    assert!(eu_member.is_primary(), "eu-west-1's member leads");
    let (east, west) = patroni(&world);
    assert!(
        !west.is_primary() && !east.is_primary(),
        "the other secondary follows the new leader"
    );
    let report = world
        .object("reports/failover/least-at-risk.json")
        .await
        .unwrap();
    let choice = &report["choice"];
    assert_eq!(choice["chosen"]["region"], "eu-west-1", "{choice:#}");
    let scores = choice["scores"].as_array().unwrap();
    assert_eq!(scores[1]["region"], "us-west-2", "{choice:#}");
    assert!(
        scores[1]["reason"]
            .as_str()
            .unwrap()
            .contains("60.0 s of writes at risk"),
        "{choice:#}"
    );
    assert_eq!(report["standby_region"], "eu-west-1", "{report:#}");
}

/// Both secondaries degraded: a human decides with every candidate's numbers, and a denial
/// changes nothing. Then us-west-2 alone degraded: eu-west-1 is chosen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_degraded_secondary_is_passed_over_and_all_degraded_ask_a_human() {
    let world = with_eu_candidate().await;
    let third = world.deployment.third.as_ref().unwrap();
    let (eu_gateway, eu_member) = (&third.gateway, third.patroni_member().unwrap());
    world.deployment.primary.set_mode(GatewayMode::Failing);
    world.deployment.standby.set_mode(GatewayMode::Failing);
    eu_gateway.set_mode(GatewayMode::Failing);
    let candidates = json!({"standby_candidates": ["eu-west-1"]});
    let arn = world
        .start_failover("no-good-standby", world.console_input(candidates.clone()))
        .await;
    let pending = world.wait_for_approval("no-good-standby").await;
    let reason = pending["reason"].as_str().unwrap();
    assert!(
        reason.contains("no standby can be chosen without a human")
            && reason.contains("us-west-2 not healthy")
            && reason.contains("eu-west-1 not healthy"),
        "{reason}"
    );
    assert_eq!(pending["state"], "RequestStandbyApproval");
    cli_ok(world.cli().args([
        "deny",
        "no-good-standby",
        "--machine",
        "failover",
        "--bucket",
        "hapilot-audit",
        "--comment",
        "neither",
        "--yes",
    ]))
    .await;
    let outcome = world.follow(&arn).await;
    assert_failed(&outcome, "hapilot.ApprovalDenied");
    assert_eq!(
        world.weights().await,
        weights3(100, 0, 0),
        "nothing changed"
    );
    let (_, standby) = patroni(&world);
    assert!(!standby.is_primary() && !eu_member.is_primary());

    eu_gateway.set_mode(GatewayMode::Healthy);
    let arn = world
        .start_failover("west-degraded", world.console_input(candidates))
        .await;
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    assert_eq!(world.weights().await, weights3(0, 0, 100));
    assert!(eu_member.is_primary());
    let report = world
        .object("reports/failover/west-degraded.json")
        .await
        .unwrap();
    assert_eq!(report["choice"]["chosen"]["region"], "eu-west-1");
    assert!(
        report["choice"]["scores"][1]["reason"]
            .as_str()
            .unwrap()
            .starts_with("not healthy"),
        "{:#}",
        report["choice"]
    );
}

/// Never ready within the wait: a human decides with the numbers; denied, the traffic stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_that_never_becomes_ready_asks_a_human_with_the_numbers() {
    let world = FailoverWorld::start(DatabaseSetup::Patroni).await;
    world.deployment.primary.set_mode(GatewayMode::Failing);
    world.deployment.standby_kube.set_available("litellm", 1);
    let arn = world
        .start_failover(
            "short-standby",
            world.console_input(json!({"capacity_wait_seconds": 2})),
        )
        .await;
    let pending = world.wait_for_approval("short-standby").await;
    let reason = pending["reason"].as_str().unwrap();
    assert!(
        reason.contains("not ready to carry all traffic")
            && reason.contains("litellm 1 of 5 ready"),
        "{reason}"
    );
    assert_eq!(pending["state"], "RequestCapacityApproval");
    assert_eq!(
        world.weights().await,
        fenced(),
        "no traffic to the standby while asking"
    );
    cli_ok(world.cli().args([
        "deny",
        "short-standby",
        "--machine",
        "failover",
        "--bucket",
        "hapilot-audit",
        "--comment",
        "not with one pod",
        "--yes",
    ]))
    .await;
    let outcome = world.follow(&arn).await;
    assert_failed(&outcome, "hapilot.CapacityNotReady");
    assert!(!entered(&outcome, "ShiftTraffic"));
    assert_eq!(world.weights().await, fenced());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_already_promoted_standby_is_success() {
    let world = FailoverWorld::start(DatabaseSetup::Patroni).await;
    world.deployment.primary.set_mode(GatewayMode::Failing);
    let (_, standby) = patroni(&world);
    let arn = world
        .start_failover("first", world.console_input(json!({})))
        .await;
    assert!(world.follow(&arn).await.succeeded());
    assert_eq!(standby.failover_requests(), 1);
    // A second run (an operator re-running it) finds the standby promoted: no second failover.
    let arn = world
        .start_failover("second", world.console_input(json!({"force": true})))
        .await;
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    assert_eq!(standby.failover_requests(), 1);
    let report = world.object("reports/failover/second.json").await.unwrap();
    assert_eq!(report["promotion"], "already_primary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_refuses_what_it_must_not_act_on() {
    let mut world = FailoverWorld::start(DatabaseSetup::Patroni).await;
    let at = "2026-11-25T11:00:00Z";
    let decide = |v: Value| {
        (
            v["decision"].as_str().unwrap_or("").to_string(),
            v["reason"].as_str().unwrap_or("").to_string(),
        )
    };

    // Back to OK: not an alarm.
    let d = world
        .route(&alarm_event(PRIMARY_ALARM, "OK", at))
        .await
        .unwrap();
    assert_eq!(decide(d), ("ignore".into(), "not_an_alarm".into()));
    // Some other alarm.
    let d = world
        .route(&alarm_event("disk-full", "ALARM", at))
        .await
        .unwrap();
    assert_eq!(decide(d), ("ignore".into(), "not_a_trigger".into()));
    // An ALARM event whose alarm is already back to OK when re-read (moto's alarm starts OK/INSUFFICIENT).
    let d = world
        .route(&alarm_event(PRIMARY_ALARM, "ALARM", at))
        .await
        .unwrap();
    assert_eq!(
        decide(d),
        ("ignore".into(), "alarm_no_longer_firing".into())
    );
    // Kill switch.
    world
        .deployment
        .set_alarm(world.stack.stack(), "ALARM", "down")
        .await
        .unwrap();
    world
        .deployment
        .reconfigure(world.stack.stack(), |s| s.automatic_failover = false)
        .unwrap();
    let d = world
        .route(&alarm_event(PRIMARY_ALARM, "ALARM", at))
        .await
        .unwrap();
    assert_eq!(
        decide(d),
        ("ignore".into(), "automatic_failover_off".into())
    );
    // Malformed and unknown events: a named error, nothing started.
    for bad in [
        json!({"hello": "world"}),
        json!({"detail-type": "CloudWatch Alarm State Change", "detail": {"alarmName": 7}}),
    ] {
        let (kind, message) = world.route(&bad).await.unwrap_err();
        assert_eq!(kind, "hapilot.UnrecognisedEvent", "{message}");
    }
    let runs = world
        .stack
        .sfn()
        .list_executions()
        .state_machine_arn(world.stack.stack().arn_of("failover"))
        .send()
        .await
        .unwrap();
    assert!(runs.executions().is_empty(), "nothing may have started");
    assert_eq!(world.weights().await, unchanged());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_console_input_is_refused_before_anything_changes() {
    let world = FailoverWorld::start(DatabaseSetup::Patroni).await;
    let arn = world
        .start_failover(
            "typo",
            json!({"primary_region": "us-east-1", "standby_region": "us-west-9"}),
        )
        .await;
    let outcome = world.follow(&arn).await;
    assert_failed(&outcome, "hapilot.InvalidInput");
    assert!(outcome.cause.as_deref().unwrap_or("").contains("us-west-9"));
    assert_eq!(world.weights().await, unchanged());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_backend_fences_and_promotes_a_real_replica() {
    let world = FailoverWorld::start(DatabaseSetup::Postgres).await;
    let Databases::Postgres { pair, .. } = &world.deployment.databases else {
        unreachable!()
    };
    let primary = hapilot_adapters::database::PostgresDatabase::new(pair.primary.dsn())
        .connect()
        .await
        .unwrap();
    primary.batch_execute("CREATE TABLE t (id bigserial primary key, at timestamptz default clock_timestamp()); INSERT INTO t DEFAULT VALUES;").await.unwrap();
    let replica = hapilot_adapters::database::PostgresDatabase::new(pair.replica.dsn())
        .connect()
        .await
        .unwrap();
    assert!(in_recovery(&replica).await);
    // Keep the replica's replay lag fresh for the data-loss guard.
    primary
        .batch_execute("INSERT INTO t DEFAULT VALUES;")
        .await
        .unwrap();

    world.deployment.primary.set_mode(GatewayMode::Failing);
    let arn = world
        .start_failover("pg", world.console_input(json!({})))
        .await;
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    assert!(!in_recovery(&replica).await, "the replica must be promoted");
    // New sessions on the old primary get read-only transactions: writes are refused.
    let primary = hapilot_adapters::database::PostgresDatabase::new(pair.primary.dsn())
        .connect()
        .await
        .unwrap();
    let refused = primary
        .batch_execute("INSERT INTO t DEFAULT VALUES")
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION),
        "{refused}"
    );
    let read_only: String = primary
        .query_one("SHOW default_transaction_read_only", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        read_only, "on",
        "the reachable old primary must be fenced read-only"
    );
    let report = world.object("reports/failover/pg.json").await.unwrap();
    assert_eq!(report["fence"]["outcome"], "read_only");
    assert_eq!(report["promotion"], "promoted");
    let rows: i64 = replica
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 2, "every committed row reached the promoted replica");
}

/// Streaming cut before the primary dies, the WAL archive (in the DR bucket, and where the
/// standby's `restore_command` reads it) reaching beyond what the standby received: the run
/// bounds the data at risk from the published primary position, the archive's end and the
/// standby's positions; the standby has replayed the archive before its promotion, so it loses
/// only what was never archived, fewer rows than streaming alone would have; every lost row was
/// written after the bound's `complete_to`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_beyond_a_cut_stream_is_replayed_before_promotion_and_the_loss_is_within_the_bound()
 {
    use hapilot::local::systems::barman;
    let world = FailoverWorld::start(DatabaseSetup::Postgres).await;
    let pair = world.postgres();
    let connect = |dsn: String| async move {
        hapilot_adapters::database::PostgresDatabase::new(dsn)
            .connect()
            .await
            .unwrap()
    };
    let primary = connect(pair.primary.dsn()).await;
    let replica = connect(pair.replica.dsn()).await;
    primary
        .batch_execute("CREATE TABLE t (id bigserial primary key, at timestamptz default clock_timestamp()); INSERT INTO t DEFAULT VALUES;")
        .await
        .unwrap();
    for _ in 0..300 {
        if count(&replica).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Streaming is cut; the standby's restore_command reads the DR copy of the archive.
    let dr_wal = pair.scratch_dir("dr-wal").unwrap();
    for sql in [
        "ALTER SYSTEM SET primary_conninfo = ''".to_string(),
        format!(
            "ALTER SYSTEM SET restore_command = 'cp {}/%f %p'",
            dr_wal.display()
        ),
        "SELECT pg_reload_conf()".to_string(),
    ] {
        replica.batch_execute(&sql).await.unwrap();
    }
    for _ in 0..300 {
        let receivers: i64 = replica
            .query_one("SELECT count(*) FROM pg_stat_wal_receiver", &[])
            .await
            .unwrap()
            .get(0);
        if receivers == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let streamed_only = count(&replica).await;
    assert_eq!(streamed_only, 1);
    // Twenty rows reach the archive (and its DR copy), ten more never leave the primary.
    primary
        .batch_execute("INSERT INTO t SELECT FROM generate_series(1, 20)")
        .await
        .unwrap();
    let names = tokio::task::block_in_place(|| barman::switch_and_archive(pair)).unwrap();
    let objects = barman::wal_objects(pair, &names).unwrap();
    barman::upload(
        &world.stack.s3(),
        hapilot::local::world::deployment::DR_BACKUP_BUCKET,
        &objects,
    )
    .await
    .unwrap();
    for name in names.iter().filter(|n| n.len() == 24) {
        std::fs::copy(pair.archive_dir().join(name), dr_wal.join(name)).unwrap();
        // Readable by the server's user, whoever copied it.
        std::fs::set_permissions(
            dr_wal.join(name),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
    }
    primary
        .batch_execute("INSERT INTO t SELECT FROM generate_series(1, 10)")
        .await
        .unwrap();
    let written = count(&primary).await;
    publish_primary_position(&world).await;
    let written_at: Vec<f64> = primary
        .query(
            "SELECT extract(epoch FROM at)::float8 FROM t ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // us-east-1 goes dark: its database dies without a checkpoint.
    tokio::task::block_in_place(|| pair.primary.kill()).unwrap();
    world.deployment.primary.set_mode(GatewayMode::Failing);
    let arn = world
        .start_failover("archive-replay", world.console_input(json!({})))
        .await;
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    assert!(!in_recovery(&replica).await, "the replica must be promoted");
    let kept = count(&replica).await;
    assert_eq!(
        kept, 21,
        "every archived row was replayed, none of the unarchived ones"
    );
    assert!(kept > streamed_only);
    let report = world
        .object("reports/failover/archive-replay.json")
        .await
        .unwrap();
    let bound = &report["data_at_risk"]["bound"];
    let bytes = bound["bytes"].as_u64().unwrap();
    let streamed = bound["bytes_streamed_only"].as_u64().unwrap();
    assert!(
        bytes > 0 && bytes < streamed,
        "the archive shrank the bytes at risk: {report:#}"
    );
    // Every lost row was written after the moment the bound says the standby is complete to,
    // and that moment is at most `secs` before the read.
    let complete_to = bound["complete_to"].as_i64().unwrap() as f64;
    for (i, at) in written_at.iter().enumerate().skip(kept as usize) {
        assert!(
            *at >= complete_to,
            "lost row {i} at {at} before {complete_to}: {report:#}"
        );
    }
    assert_eq!(written - kept, 10, "{report:#}");
    assert!(bound["secs"].as_f64().unwrap() < 300.0, "{report:#}");
    let sources = bound["sources"].to_string();
    assert!(
        sources.contains("s3://hapilot-backups-dr/postgres/gateway-db/wals/"),
        "{sources}"
    );
}

/// Runs the lag publisher once, as Scheduler would, and checks it kept us-east-1's position.
async fn publish_primary_position(world: &FailoverWorld) {
    let published = hapilot::local::aws::front_door::invoke(
        &world.stack.endpoint_url(),
        "publish-replication-lag",
        &json!({}),
    )
    .await
    .unwrap();
    assert_eq!(
        published["primary_position"]["region"], "us-east-1",
        "{published:#}"
    );
}

async fn count(c: &tokio_postgres::Client) -> i64 {
    c.query_one("SELECT count(*) FROM t", &[])
        .await
        .map(|r| r.get::<_, i64>(0))
        .unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_identical_deliveries_start_exactly_one_run() {
    let world = FailoverWorld::start(DatabaseSetup::Patroni).await;
    world.deployment.primary.set_mode(GatewayMode::Failing);
    world
        .deployment
        .set_alarm(world.stack.stack(), "ALARM", "primary down")
        .await
        .unwrap();
    let event = alarm_event(PRIMARY_ALARM, "ALARM", "2026-11-25T09:00:00Z");
    // Ten deliveries in flight at once, each its own request to the front door.
    let endpoint = world.stack.endpoint_url();
    let deliveries: Vec<_> = (0..10)
        .map(|_| {
            let (endpoint, event) = (endpoint.clone(), event.clone());
            tokio::spawn(async move {
                hapilot::local::aws::front_door::invoke(&endpoint, "alarm-router", &event).await
            })
        })
        .collect();
    let mut decisions: Vec<Value> = Vec::new();
    for delivery in deliveries {
        decisions.push(delivery.await.unwrap().unwrap());
    }
    let starts = decisions
        .iter()
        .filter(|d| d["decision"] == "start")
        .count();
    assert_eq!(starts, 1, "{decisions:#?}");
    for d in decisions.iter().filter(|d| d["decision"] != "start") {
        assert!(
            d["reason"] == "duplicate_delivery" || d["reason"] == "failover_running",
            "{d:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_false_alarm_starts_no_cool_down() {
    let world = FailoverWorld::start(DatabaseSetup::Patroni).await;
    world
        .deployment
        .set_alarm(world.stack.stack(), "ALARM", "flap")
        .await
        .unwrap();
    let first = world
        .route(&alarm_event(PRIMARY_ALARM, "ALARM", "2026-11-25T09:00:00Z"))
        .await
        .unwrap();
    assert_eq!(first["decision"], "start", "{first:#}");
    let outcome = world.follow(first["execution_arn"].as_str().unwrap()).await;
    assert!(
        entered(&outcome, "RecordFalseAlarm"),
        "{}",
        outcome.history_text()
    );
    let second = world
        .route(&alarm_event(PRIMARY_ALARM, "ALARM", "2026-11-25T09:05:00Z"))
        .await
        .unwrap();
    assert_eq!(
        second["decision"], "start",
        "a run that moved no traffic must not block the next: {second:#}"
    );
    world
        .follow(second["execution_arn"].as_str().unwrap())
        .await;
}
