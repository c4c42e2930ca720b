//! One incident, one run: the platform's run lock. Runs that change the platform take it in
//! their first state, whoever starts them; a second is refused as `hapilot.RunInProgress`
//! naming the first and changes nothing; a lock left by a run that ended is taken over.

use hapilot::local::systems::gateway::GatewayMode;
use hapilot::local::world::deployment::DatabaseSetup;
use serde_json::json;

use crate::support::{FailoverWorld, assert_failed, cli_ok, entered};

const LOCK_KEY: &str = hapilot_core::run_lock::LOCK_KEY;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_run_changes_the_platform_at_a_time_whoever_starts_it() {
    let world = FailoverWorld::start(DatabaseSetup::Postgres).await;
    world.deployment.primary.set_mode(GatewayMode::Failing);

    // An automatic run that waits for a human holds the lock while it waits.
    let first = "auto-incident";
    let first_arn = world
        .start_failover(first, world.console_input(json!({"needs_approval": true})))
        .await;
    world.wait_for_approval_of("failover", first).await;
    let lock = world.object(LOCK_KEY).await.expect("the lock is taken");
    assert_eq!(lock["execution"], first, "{lock}");

    // A console start and a CLI start meanwhile: refused at once, naming the holder.
    let second = world
        .start_failover("console-start", world.console_input(json!({})))
        .await;
    let refused = world.follow(&second).await;
    assert_failed(&refused, "hapilot.RunInProgress");
    let cause = refused.cause.clone().unwrap_or_default();
    assert!(
        cause.contains(first) && cause.contains("Nothing was changed"),
        "{cause}"
    );
    assert!(
        !entered(&refused, "SnapshotWeights"),
        "{}",
        refused.history_text()
    );
    let input = world.console_input(json!({})).to_string();
    let mut cli = world.cli();
    cli.args(["start", "failover", "--input", "-", "--name", "cli-start"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cli.spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    let said = crate::support::said(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("hapilot.RunInProgress") && said.contains(first),
        "{said}"
    );
    assert_eq!(
        world.object(LOCK_KEY).await.unwrap()["execution"],
        first,
        "the refused runs left the lock alone"
    );

    // Denied: the run ends and gives the lock back.
    cli_ok(
        world
            .cli()
            .args([
                "deny",
                first,
                "--machine",
                "failover",
                "--bucket",
                "hapilot-audit",
            ])
            .args(["--comment", "the test denies", "--yes"]),
    )
    .await;
    let denied = world.follow(&first_arn).await;
    assert!(!denied.succeeded());
    assert!(world.object(LOCK_KEY).await.is_none(), "given back");

    // A lock left behind by a run that ended (stopped before it could give it back) is taken
    // over by the next run, which goes on.
    use hapilot_adapters::journal::Journal;
    let journal = hapilot_adapters::journal::S3Journal::from_sdk(
        world.stack.stack().sdk_config(),
        "hapilot-audit",
    );
    journal
        .put(
            LOCK_KEY,
            &json!({"machine": "failover", "execution": first, "execution_arn": first_arn,
                    "taken_at": "2026-12-06T00:00:00Z"}),
        )
        .await
        .unwrap();
    // A fresh write, so the standby's measured lag is recent (an idle pair's grows).
    let primary = hapilot_adapters::database::PostgresDatabase::new(world.postgres().primary.dsn())
        .connect()
        .await
        .unwrap();
    primary
        .batch_execute("CREATE TABLE lock_check (id int); INSERT INTO lock_check VALUES (1);")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let next = world
        .start_failover("after-the-stale-lock", world.console_input(json!({})))
        .await;
    let outcome = world.follow(&next).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    assert!(
        world.object(LOCK_KEY).await.is_none(),
        "given back at the end"
    );

    // The audit bucket is deployed from the template with Object Lock: giving the lock back
    // left a delete marker, and every version it had is still there, under retention.
    let s3 = hapilot_adapters::sdk::s3(world.stack.stack().sdk_config());
    let lock = s3
        .get_object_lock_configuration()
        .bucket("hapilot-audit")
        .send()
        .await
        .unwrap();
    let rule = lock.object_lock_configuration().unwrap();
    assert_eq!(
        rule.object_lock_enabled().map(|e| e.as_str()),
        Some("Enabled")
    );
    let versions = s3
        .list_object_versions()
        .bucket("hapilot-audit")
        .prefix(LOCK_KEY)
        .send()
        .await
        .unwrap();
    assert!(versions.versions().len() >= 3, "{versions:?}");
    assert!(!versions.delete_markers().is_empty(), "{versions:?}");
    let oldest = versions.versions().last().unwrap();
    let refused = s3
        .delete_object()
        .bucket("hapilot-audit")
        .key(LOCK_KEY)
        .version_id(oldest.version_id().unwrap())
        .send()
        .await;
    assert!(refused.is_err(), "a locked version cannot be deleted");
}

/// The measured case: the witness's and Route53's alarms of one outage reach the standby's
/// router at the same moment. Each may start a run (the router's `ListExecutions` is eventually
/// consistent), but only one gets past its plan: the other is refused by the run lock, naming
/// the first, before it changes anything. The test plays CloudWatch and EventBridge itself (no
/// data plane), so the alarms stay where it puts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_vantage_alarms_of_one_outage_delivered_at_once_make_one_run() {
    use hapilot::local::aws::data_plane::state_change_event;
    use hapilot::local::world::deployment::{
        LocalDeployment, PRIMARY_ALARM, RecordRouting, STANDBY_REGION, WATCH_ALARM, WorldOptions,
    };
    let stack = crate::support::TestStack::for_templates().await;
    let deployment = LocalDeployment::create_with(
        stack.stack(),
        WorldOptions::regional(DatabaseSetup::Patroni, RecordRouting::Weighted),
    )
    .await
    .unwrap();
    deployment.primary.set_mode(GatewayMode::Failing);
    let vantage = [
        ("us-west-2", WATCH_ALARM),
        ("eu-west-1", WATCH_ALARM),
        ("us-east-1", PRIMARY_ALARM),
    ];
    for (region, name) in vantage {
        aws_sdk_cloudwatch::Client::new(&stack.stack().observer_config(region))
            .set_alarm_state()
            .alarm_name(name)
            .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
            .state_reason("the test plays the outage")
            .send()
            .await
            .unwrap();
    }
    let event = |(region, name): (&str, &str)| {
        state_change_event(
            &format!("arn:aws:cloudwatch:{region}:123456789012:alarm:{name}"),
            name,
            region,
            "OK",
            "ALARM",
            &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )
    };
    let (witness, route53) = tokio::join!(
        stack
            .stack()
            .deliver(STANDBY_REGION, "alarm-router", event(vantage[1])),
        stack
            .stack()
            .deliver(STANDBY_REGION, "alarm-router", event(vantage[2])),
    );
    let decisions = [witness.unwrap().unwrap(), route53.unwrap().unwrap()];
    eprintln!(
        "decisions at once: {:?}",
        decisions
            .iter()
            .map(|d| d["decision"].clone())
            .collect::<Vec<_>>()
    );
    assert!(
        decisions.iter().any(|d| d["decision"] == "start"),
        "{decisions:#?}"
    );

    // Every run started ends refused by the lock, except one.
    let sfn = aws_sdk_sfn::Client::new(&stack.stack().sdk_config_in(STANDBY_REGION));
    let machine = stack.stack().arn_in(STANDBY_REGION, "failover");
    let started: Vec<String> = decisions
        .iter()
        .filter_map(|d| d["execution_arn"].as_str().map(str::to_string))
        .collect();
    let mut refused = Vec::new();
    let mut going = Vec::new();
    for arn in &started {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let history = sfn
                .get_execution_history()
                .execution_arn(arn)
                .send()
                .await
                .unwrap();
            let past_plan = history.events().iter().any(|e| {
                e.state_entered_event_details()
                    .is_some_and(|d| d.name() != "PlanFailover")
            });
            let run = sfn
                .describe_execution()
                .execution_arn(arn)
                .send()
                .await
                .unwrap();
            if run.status().as_str() == "FAILED" && !past_plan {
                assert_eq!(run.error(), Some("hapilot.RunInProgress"), "{run:?}");
                refused.push(run.cause().unwrap_or_default().to_string());
                break;
            }
            if past_plan {
                going.push(arn.clone());
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{run:?}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    assert_eq!(
        going.len(),
        1,
        "one run changes the platform: {going:?} {refused:?}"
    );
    let first = going[0].rsplit(':').next().unwrap();
    assert!(refused.iter().all(|c| c.contains(first)), "{refused:?}");
    let all = sfn
        .list_executions()
        .state_machine_arn(&machine)
        .send()
        .await
        .unwrap();
    assert_eq!(all.executions().len(), started.len());

    // A vantage alarm's change while that run holds the lock: the router names it.
    let again = stack
        .stack()
        .deliver(STANDBY_REGION, "alarm-router", event(vantage[0]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again["decision"], "ignore", "{again:#}");
    assert!(
        again["detail"].as_str().unwrap_or_default().contains(first),
        "{again:#}"
    );
    let _ = sfn.stop_execution().execution_arn(&going[0]).send().await;
}
