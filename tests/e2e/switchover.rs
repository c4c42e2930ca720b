//! Graceful switchover (zero data loss) and re-protection of the old primary, on a real
//! PostgreSQL streaming pair with the local stack.

use std::collections::BTreeSet;
use std::time::Duration;

use hapilot::local::systems::gateway::GatewayMode;
use hapilot::local::world::deployment::{DatabaseSetup, Databases};
use serde_json::json;

use crate::support::postgres::{connect, ids, in_recovery};
use crate::support::switchover::graceful_under_writes;
use crate::support::{FailoverWorld, assert_failed, cli_ok};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_switchover_loses_nothing_and_the_writer_sees_refusals_not_lost_commits() {
    let world = FailoverWorld::start(DatabaseSetup::Postgres).await;
    let switched = graceful_under_writes(&world, "graceful").await;
    assert!(
        switched.seen.read_only_errors > 0,
        "the writer must have been refused during the fence (other errors: {:?})",
        switched.seen.other_errors
    );
    let report = world
        .object("reports/failover/graceful.json")
        .await
        .unwrap();
    assert_eq!(report["mode"], "graceful");
    assert_eq!(report["catchup"]["caught_up"], true, "{report}");
    assert_eq!(report["catchup"]["lag_bytes"], 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_that_cannot_catch_up_undoes_the_fence_and_promotes_nothing() {
    let world = FailoverWorld::start(DatabaseSetup::Postgres).await;
    let pair = world.postgres();
    let primary = connect(&pair.primary.dsn()).await;
    primary
        .batch_execute("CREATE TABLE writes (id bigserial PRIMARY KEY)")
        .await
        .unwrap();
    let replica = connect(&pair.replica.dsn()).await;
    // Let the table's creation reach the replica, then stop its replay: it falls behind.
    for _ in 0..100 {
        if replica
            .query_one("SELECT to_regclass('writes') IS NOT NULL", &[])
            .await
            .unwrap()
            .get::<_, bool>(0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    replica
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .unwrap();
    primary
        .batch_execute("INSERT INTO writes SELECT FROM generate_series(1, 1000)")
        .await
        .unwrap();
    let before = world.weights().await;

    let arn = world
        .start_failover(
            "behind",
            world.console_input(json!({"mode": "graceful", "catchup_timeout_seconds": 3})),
        )
        .await;
    let outcome = world.follow(&arn).await;
    assert_failed(&outcome, "hapilot.CatchupTimedOut");
    let cause = outcome.cause.clone().unwrap_or_default();
    assert!(cause.contains("bytes behind"), "{cause}");
    assert!(crate::support::entered(&outcome, "UndoFence"));
    assert!(!crate::support::entered(&outcome, "PromoteStandby"));

    assert!(in_recovery(&replica).await, "nothing was promoted");
    assert_eq!(world.weights().await, before, "weights restored");
    // The primary takes writes again, in new and in existing sessions.
    let fresh = connect(&pair.primary.dsn()).await;
    fresh
        .batch_execute("INSERT INTO writes DEFAULT VALUES")
        .await
        .unwrap();
    let report = world.object("reports/failover/behind.json").await.unwrap();
    assert_eq!(report["unfence"]["database"], "read_write", "{report}");
    replica
        .batch_execute("SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_an_ungraceful_failover_reprotect_rewinds_the_old_primary_into_a_replica() {
    let world = FailoverWorld::start(DatabaseSetup::Postgres).await;
    let pair = world.postgres();
    let primary = connect(&pair.primary.dsn()).await;
    primary
        .batch_execute("CREATE TABLE writes (id bigserial PRIMARY KEY); INSERT INTO writes SELECT FROM generate_series(1, 100);")
        .await
        .unwrap();
    // The replica has replayed those writes (its lag is measured, within the RPO) before the
    // region dies: on a busy machine the kill can otherwise come first, the lag is unknown
    // and the run rightly asks for approval instead.
    let replica = connect(&pair.replica.dsn()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let replayed = replica
            .query_one("SELECT to_regclass('writes') IS NOT NULL AND pg_last_xact_replay_timestamp() IS NOT NULL", &[])
            .await
            .unwrap()
            .get::<_, bool>(0)
            && replica
                .query_one("SELECT count(*) FROM writes", &[])
                .await
                .unwrap()
                .get::<_, i64>(0)
                == 100;
        if replayed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never replayed the writes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(replica);
    // The primary region dies, its Vault with it.
    world.deployment.primary.set_mode(GatewayMode::Failing);
    world.deployment.primary_vault.set_down(true);
    tokio::task::block_in_place(|| pair.primary.kill()).unwrap();
    let arn = world
        .start_failover("lost", world.console_input(json!({})))
        .await;
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    // The standby's Vault is promoted; the dark one's re-join waits for re-protection.
    let report = world.object("reports/failover/lost.json").await.unwrap();
    assert_eq!(
        report["vault"]["done"],
        json!(["promote_new"]),
        "{report:#}"
    );
    assert_eq!(report["vault"]["plan"]["rejoin_pending"], true);
    assert_eq!(world.deployment.vault.mode(), "primary");
    let promoted = connect(&pair.replica.dsn()).await;
    promoted
        .batch_execute("INSERT INTO writes SELECT FROM generate_series(1, 50)")
        .await
        .unwrap();

    // The old primary's region is back, its Vault still the primary it was (two primaries
    // until re-protection demotes it): re-protect it, through the CLI.
    world.deployment.primary_vault.set_down(false);
    assert_eq!(world.deployment.primary_vault.mode(), "primary");
    let stdout = cli_ok(world.cli().args([
        "reprotect",
        "--region",
        "us-east-1",
        "--primary-region",
        "us-west-2",
    ]))
    .await;
    assert!(stdout.contains("\"method\": \"pg_rewind\""), "{stdout}");
    assert!(
        stdout.contains("pg_rewind: Done!"),
        "a real rewind: {stdout}"
    );

    let old = connect(&pair.primary.dsn()).await;
    assert!(in_recovery(&old).await, "the old primary is a replica now");
    assert_eq!(
        world.deployment.primary_vault.mode(),
        "secondary",
        "its Vault was demoted"
    );
    assert_eq!(
        world.deployment.primary_vault.primary(),
        Some(world.deployment.vault.url()),
        "and follows the promoted one"
    );
    promoted
        .batch_execute("INSERT INTO writes SELECT FROM generate_series(1, 25)")
        .await
        .unwrap();
    let want = ids(&promoted).await;
    let mut got = BTreeSet::new();
    for _ in 0..100 {
        got = ids(&old).await;
        if got == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        got.len(),
        175,
        "rows written after the failover reach the new replica"
    );
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reprotect_refuses_an_old_primary_that_still_accepts_writes() {
    let world = FailoverWorld::start(DatabaseSetup::Postgres).await;
    let pair = world.postgres();
    let old = connect(&pair.primary.dsn()).await;
    old.batch_execute(
        "CREATE TABLE writes (id bigserial PRIMARY KEY); INSERT INTO writes DEFAULT VALUES;",
    )
    .await
    .unwrap();
    // Someone promoted the standby by hand; the old primary was never fenced: two primaries.
    let standby = connect(&pair.replica.dsn()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    standby
        .batch_execute("SELECT pg_promote(true, 30)")
        .await
        .unwrap();
    old.batch_execute("INSERT INTO writes DEFAULT VALUES")
        .await
        .unwrap();

    let outcome = world
        .stack
        .run(
            "reprotect",
            json!({"region": "us-east-1", "primary_region": "us-west-2"}),
        )
        .await;
    assert_failed(&outcome, "hapilot.SplitBrain");
    assert!(
        outcome
            .cause
            .as_deref()
            .unwrap_or("")
            .contains("split brain"),
        "{:?}",
        outcome.cause
    );
    // Nothing was overwritten: still a primary, still taking writes, with both rows.
    assert!(!in_recovery(&old).await);
    old.batch_execute("INSERT INTO writes DEFAULT VALUES")
        .await
        .unwrap();
    assert_eq!(ids(&old).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_on_patroni_is_a_switchover_naming_the_leader() {
    let world = FailoverWorld::start(DatabaseSetup::Patroni).await;
    // The standby's new pods take a while: a planned switchover waits for them while the
    // primary still serves, and fences only once they are ready.
    world
        .deployment
        .standby_kube
        .set_ready_delay(Duration::from_secs(3));
    let arn = world
        .start_failover(
            "patroni-graceful",
            world.console_input(json!({"mode": "graceful", "capacity_wait_seconds": 60})),
        )
        .await;
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    let order: Vec<&str> = outcome
        .events
        .iter()
        .filter(|e| e.kind.ends_with("StateEntered"))
        .filter_map(|e| e.state.as_deref())
        .filter(|s| s.starts_with("CheckCapacity") || *s == "FenceForSwitchover")
        .collect();
    let fence = order
        .iter()
        .position(|s| *s == "FenceForSwitchover")
        .unwrap();
    assert!(
        order[..fence]
            .iter()
            .filter(|s| **s == "CheckCapacityBeforeFence")
            .count()
            >= 2,
        "the first look found pods starting, before any fence: {order:?}"
    );
    assert!(
        !order[fence..].contains(&"CheckCapacityBeforeFence"),
        "{order:?}"
    );
    let Databases::Patroni { standby, .. } = &world.deployment.databases else {
        unreachable!()
    };
    assert!(standby.is_primary());
    assert_eq!(standby.switchover_and_reinitialize_requests(), (1, 0));
    assert_eq!(standby.failover_requests(), 0);
}

/// A planned switchover to a standby that never gets its capacity does not start: nothing is
/// fenced, promoted or moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_switchover_to_a_short_standby_fences_nothing() {
    let world = FailoverWorld::start(DatabaseSetup::Patroni).await;
    world.deployment.standby_kube.set_available("litellm", 1);
    let before = world.weights().await;
    let arn = world
        .start_failover(
            "graceful-short",
            world.console_input(json!({"mode": "graceful", "capacity_wait_seconds": 2})),
        )
        .await;
    let outcome = world.follow(&arn).await;
    assert_failed(&outcome, "hapilot.CapacityNotReady");
    assert!(
        outcome
            .cause
            .as_deref()
            .unwrap_or_default()
            .contains("nothing fenced: standby capacity short: litellm 1 of 5 ready"),
        "{}",
        outcome.history_text()
    );
    assert!(!crate::support::entered(&outcome, "FenceForSwitchover"));
    assert_eq!(world.weights().await, before, "traffic unchanged");
    let Databases::Patroni { primary, standby } = &world.deployment.databases else {
        unreachable!()
    };
    assert!(primary.is_primary() && !standby.is_primary());
    assert_eq!(standby.switchover_and_reinitialize_requests(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_lag_is_published_zero_when_caught_up_and_growing_when_behind() {
    let world = FailoverWorld::start(DatabaseSetup::Postgres).await;
    let pair = world.postgres();
    let primary = connect(&pair.primary.dsn()).await;
    primary
        .batch_execute(
            "CREATE TABLE writes (id bigserial PRIMARY KEY); INSERT INTO writes DEFAULT VALUES;",
        )
        .await
        .unwrap();
    let publish = || async {
        hapilot::local::aws::front_door::invoke(
            &world.stack.endpoint_url(),
            "publish-replication-lag",
            &json!({}),
        )
        .await
        .unwrap()
    };
    // Caught up (however long ago the last write was): no lag.
    let mut out = json!({});
    for _ in 0..50 {
        out = publish().await;
        if out["lag_secs"]["us-west-2"] == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(out["lag_secs"]["us-west-2"], 0.0, "{out}");
    // Behind: replay paused while the primary writes.
    let replica = connect(&pair.replica.dsn()).await;
    replica
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .unwrap();
    primary
        .batch_execute("INSERT INTO writes DEFAULT VALUES")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let out = publish().await;
    let lag = out["lag_secs"]["us-west-2"].as_f64().unwrap();
    assert!(lag >= 1.0, "{out}");
    let metrics = world
        .stack
        .cloudwatch()
        .list_metrics()
        .namespace("hapilot/Database")
        .metric_name("ReplicationLagSeconds")
        .send()
        .await
        .unwrap();
    assert!(
        metrics.metrics().iter().any(|m| m
            .dimensions()
            .iter()
            .any(|d| d.value() == Some("us-west-2"))),
        "{metrics:?}"
    );
    replica
        .batch_execute("SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
}
