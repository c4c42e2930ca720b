//! One incident, one run: the platform's run lock. Runs that change the platform take it in
//! their first state, whoever starts them; a second is refused as `hapilot.RunInProgress`
//! naming the first and changes nothing; a lock left by a run that ended is taken over.

use hapilot::local::deployment::DatabaseSetup;
use hapilot::local::gateway::GatewayMode;
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
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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
