//! The `cloudnativepg` backend on real PostgreSQL behind the CloudNativePG stand-in: the pair
//! as two replica clusters of a distributed topology (`pg-east` primary, `pg-west` its replica
//! cluster), each in its region's Kubernetes API, changed only through `Cluster` specs.

use std::time::Duration;

use hapilot::local::systems::gateway::GatewayMode;
use hapilot::local::world::deployment::DatabaseSetup;
use hapilot_adapters::database::{Database, DatabaseTarget, FenceOutcome, PromotionOutcome};
use hapilot_functions::registry::Adapters;
use serde_json::json;

use crate::support::failback::{failback_input as input, split_weights as weights};
use crate::support::postgres::{connect, ids, in_recovery, rows_arrive};
use crate::support::switchover::{Switched, graceful_under_writes};
use crate::support::{FailoverWorld, cli_ok, entered};

fn cluster(world: &FailoverWorld, region: &str) -> serde_json::Value {
    let kube = if region == "us-east-1" {
        &world.deployment.primary_kube
    } else {
        &world.deployment.standby_kube
    };
    let name = if region == "us-east-1" {
        "pg-east"
    } else {
        "pg-west"
    };
    kube.cnpg_cluster(name).unwrap()
}

fn adapters(world: &FailoverWorld) -> Adapters {
    Adapters::new(
        world.stack.stack().sdk_config(),
        world.deployment.settings.clone(),
    )
    .unwrap()
}

fn target(world: &FailoverWorld, region: &str) -> DatabaseTarget {
    world.deployment.settings.regions[region]
        .database
        .clone()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn region_lost_the_replica_cluster_is_promoted_and_reprotect_rebuilds_the_old_one_after_approval()
 {
    let world = FailoverWorld::start(DatabaseSetup::Cloudnativepg).await;
    let pair = world.postgres();
    let primary = connect(&pair.primary.dsn()).await;
    primary
        .batch_execute("CREATE TABLE writes (id bigserial PRIMARY KEY); INSERT INTO writes SELECT FROM generate_series(1, 100);")
        .await
        .unwrap();
    let replica = connect(&pair.replica.dsn()).await;
    rows_arrive(&primary, &replica).await;
    drop(primary);

    // us-east-1 is lost: its Kubernetes API does not answer, its server is dead.
    world.deployment.primary_kube.set_down(true);
    world.deployment.primary.set_mode(GatewayMode::Failing);
    tokio::task::block_in_place(|| pair.primary.kill()).unwrap();
    let arn = world
        .start_failover("cnpg-lost", world.console_input(json!({})))
        .await;
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    let west = cluster(&world, "us-west-2");
    assert_eq!(west["spec"]["replica"]["primary"], "pg-west", "{west}");
    assert!(
        west["spec"]["replica"]["promotionToken"].is_null(),
        "no token in a failover"
    );
    let promoted = connect(&pair.replica.dsn()).await;
    assert!(!in_recovery(&promoted).await);
    assert_eq!(
        ids(&promoted).await.len(),
        100,
        "nothing lost: the lag was 0"
    );
    // The fence could not reach us-east-1's API: skipped, and the journal says so.
    let report = world
        .object("reports/failover/cnpg-lost.json")
        .await
        .unwrap();
    assert_eq!(report["fence"]["outcome"], "unreachable", "{report}");

    // Written on the new primary after the failover: the rebuilt replica must have them.
    promoted
        .batch_execute("INSERT INTO writes SELECT FROM generate_series(1, 25)")
        .await
        .unwrap();

    // us-east-1 is back. CloudNativePG does not rejoin a former primary by itself: told to
    // follow pg-west (spec.replica.primary alone), it stays down, waiting for a rebuild.
    world.deployment.primary_kube.set_down(false);
    let mut told = cluster(&world, "us-east-1");
    told["spec"]["replica"]["primary"] = json!("pg-west");
    world.deployment.primary_kube.put_cnpg_cluster(told);
    let mut east = cluster(&world, "us-east-1");
    for _ in 0..100 {
        if east["status"]["phase"] == hapilot::local::systems::cnpg::WAITING {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        east = cluster(&world, "us-east-1");
    }
    assert_eq!(
        east["status"]["phase"],
        hapilot::local::systems::cnpg::WAITING,
        "{east}"
    );
    assert_eq!(east["status"]["readyInstances"], 0, "{east}");
    assert!(
        tokio_postgres::connect(&pair.primary.dsn(), tokio_postgres::NoTls)
            .await
            .is_err(),
        "the former primary does not come back by itself"
    );

    // The failback's pre-check says which case it is in.
    world.deployment.primary.set_mode(GatewayMode::Healthy);
    let failback = world
        .stack
        .run("failback", input(json!({"steps": [100]})))
        .await;
    assert!(!failback.succeeded());
    assert!(
        failback
            .cause
            .as_deref()
            .is_some_and(|c| c.contains("Run reprotect")),
        "{}",
        failback.history_text()
    );

    // Re-protection asks first: the rebuild deletes pg-east and its PVCs.
    let name = "cnpg-rebuild";
    let arn = world
        .start_run(
            "reprotect",
            name,
            json!({"region": "us-east-1", "primary_region": "us-west-2"}),
        )
        .await;
    let pending = world.wait_for_approval_of("reprotect", name).await;
    let details = &pending["details"];
    assert!(
        details["deletes"]
            .as_str()
            .is_some_and(|d| d.contains("PersistentVolumeClaims")),
        "{pending}"
    );
    assert_eq!(details["timeline"], 1, "{pending}");
    assert_eq!(details["new_primary_timeline"], 2, "{pending}");
    assert!(cluster(&world, "us-east-1")["metadata"]["uid"] == east["metadata"]["uid"]);
    cli_ok(
        world
            .cli()
            .args([
                "approve",
                name,
                "--machine",
                "reprotect",
                "--bucket",
                "hapilot-audit",
            ])
            .args(["--comment", "rebuild from the test", "--yes"]),
    )
    .await;
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    let east = cluster(&world, "us-east-1");
    assert_eq!(east["spec"]["replica"]["primary"], "pg-west", "{east}");
    assert_eq!(
        east["spec"]["bootstrap"]["pg_basebackup"]["source"], "pg-west",
        "{east}"
    );
    assert_eq!(east["status"]["bootstrappedFrom"], "pg-west", "{east}");
    promoted
        .batch_execute("INSERT INTO writes SELECT FROM generate_series(1, 5)")
        .await
        .unwrap();
    let old = connect(&pair.primary.dsn()).await;
    assert!(
        in_recovery(&old).await,
        "the rebuilt cluster is a replica cluster of pg-west"
    );
    assert_eq!(rows_arrive(&promoted, &old).await.len(), 130);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_switchover_with_the_demotion_token_loses_nothing_and_failback_switches_back_first() {
    let world = FailoverWorld::start(DatabaseSetup::Cloudnativepg).await;
    let pair = world.postgres();
    let Switched { kept, .. } = graceful_under_writes(&world, "cnpg-graceful").await;

    let east = cluster(&world, "us-east-1");
    let west = cluster(&world, "us-west-2");
    assert_eq!(east["spec"]["replica"]["primary"], "pg-west", "{east}");
    assert!(east["status"]["demotionToken"].is_string(), "{east}");
    assert_eq!(
        west["spec"]["replica"]["promotionToken"], east["status"]["demotionToken"],
        "promoted with the demoted cluster's token"
    );
    let promoted = connect(&pair.replica.dsn()).await;
    // The demoted cluster streams from the new primary without a rebuild.
    let old = connect(&pair.primary.dsn()).await;
    assert!(in_recovery(&old).await);
    promoted
        .batch_execute("INSERT INTO writes DEFAULT VALUES")
        .await
        .unwrap();
    rows_arrive(&promoted, &old).await;

    // Failback, switching the database back first: pg-west is demoted, pg-east promoted with
    // pg-west's token.
    world.deployment.primary.traffic().set(200.0, 0.0);
    world.deployment.standby.traffic().set(200.0, 0.0);
    let arn = world
        .start_run(
            "failback",
            "cnpg-db-first",
            input(json!({"steps": [100], "switch_database_first": true})),
        )
        .await;
    let outcome = world.follow(&arn).await;
    assert!(
        outcome.succeeded() && entered(&outcome, "SwitchDatabase"),
        "{}",
        outcome.history_text()
    );
    let east = cluster(&world, "us-east-1");
    let west = cluster(&world, "us-west-2");
    assert_eq!(east["spec"]["replica"]["primary"], "pg-east", "{east}");
    assert_eq!(west["spec"]["replica"]["primary"], "pg-east", "{west}");
    assert_eq!(
        east["spec"]["replica"]["promotionToken"], west["status"]["demotionToken"],
        "{east}"
    );
    let back = connect(&pair.primary.dsn()).await;
    assert!(!in_recovery(&back).await, "pg-east is primary again");
    // pg-west restarted as a replica cluster of pg-east: a new session, the same rows.
    let demoted = connect(&pair.replica.dsn()).await;
    assert!(in_recovery(&demoted).await);
    assert!(
        ids(&back).await.is_superset(&kept),
        "nothing lost either way"
    );
    rows_arrive(&back, &demoted).await;
    assert_eq!(world.weights().await, weights(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_or_stale_promotion_token_is_refused_and_nothing_changes() {
    let world = FailoverWorld::start(DatabaseSetup::Cloudnativepg).await;
    let pair = world.postgres();
    let primary = connect(&pair.primary.dsn()).await;
    primary
        .batch_execute("CREATE TABLE writes (id bigserial PRIMARY KEY); INSERT INTO writes SELECT FROM generate_series(1, 10);")
        .await
        .unwrap();
    drop(primary);
    let a = adapters(&world);
    let (east, west) = (
        a.database("us-east-1").unwrap(),
        a.database("us-west-2").unwrap(),
    );
    let (east_target, west_target) = (target(&world, "us-east-1"), target(&world, "us-west-2"));
    let deadline = Duration::from_secs(60);

    // A first switchover east -> west, with the right token: timeline 2 on pg-west.
    assert!(matches!(
        east.fence(Some(&west_target)).await,
        FenceOutcome::Fenced(_)
    ));
    let first_token = cluster(&world, "us-east-1")["status"]["demotionToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        west.switchover(Some(&east_target), deadline).await.unwrap(),
        PromotionOutcome::Promoted
    );

    // pg-east follows pg-west onto timeline 2 (its WAL receiver reconnects after the switch).
    let east_sql = connect(&pair.primary.dsn()).await;
    let mut timeline = 0;
    for _ in 0..200 {
        timeline = east_sql
            .query_one(hapilot_adapters::database::cnpg::STANDBY_CONTROL_SQL, &[])
            .await
            .unwrap()
            .get::<_, i32>(1);
        if timeline == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(timeline, 2, "pg-east follows the new timeline");

    // Back west -> east, offered first a token from another database system, then the first
    // switchover's token (timeline 1, while pg-east now replays timeline 2).
    assert!(matches!(
        west.fence(Some(&east_target)).await,
        FenceOutcome::Fenced(_)
    ));
    let good = cluster(&world, "us-west-2")["status"]["demotionToken"]
        .as_str()
        .unwrap()
        .to_string();
    let mut other = hapilot_core::cnpg::PromotionToken::decode(&good).unwrap();
    other.database_system_identifier = "7000000000000000001".into();
    let resources = world.deployment.standby_kube.cnpg_resources();
    for (bad, says) in [
        (other.encode(), "wrong token"),
        (first_token.clone(), "stale token"),
    ] {
        resources.update_status("pg-west", |s| s["demotionToken"] = bad.clone().into());
        let e = west_side_switchover(&east, &west_target, deadline, says).await;
        assert!(e.contains(says) && e.contains("nothing changed"), "{e}");
        let east_now = cluster(&world, "us-east-1");
        assert_eq!(
            east_now["spec"]["replica"]["primary"], "pg-west",
            "{east_now}"
        );
        assert!(in_recovery(&connect(&pair.primary.dsn()).await).await);
    }
    // The operator refuses a stale token written straight into the spec, too.
    let http = reqwest::Client::new();
    let url = format!(
        "{}/apis/postgresql.cnpg.io/v1/namespaces/ai-gateway/clusters/pg-east",
        world.deployment.primary_kube.url()
    );
    let patched = http
        .patch(&url)
        .bearer_auth("local-kube-token")
        .header("Content-Type", "application/merge-patch+json")
        .body(
            json!({"spec": {"replica": {"primary": "pg-east", "promotionToken": first_token}}})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert!(patched.status().is_success());
    let mut phase = String::new();
    for _ in 0..100 {
        let r = cluster(&world, "us-east-1");
        phase = format!("{} {}", r["status"]["phase"], r["status"]["phaseReason"]);
        if phase.contains("refused") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(phase.contains("stale token"), "{phase}");
    assert!(in_recovery(&connect(&pair.primary.dsn()).await).await);

    // With the right token it goes through, and nothing was lost.
    resources.update_status("pg-west", |s| s["demotionToken"] = good.clone().into());
    assert_eq!(
        east.switchover(Some(&west_target), deadline).await.unwrap(),
        PromotionOutcome::Promoted
    );
    let back = connect(&pair.primary.dsn()).await;
    assert!(!in_recovery(&back).await);
    assert_eq!(ids(&back).await.len(), 10);

    // A failover's fence, with the old primary's API answering: the fencing annotation, and
    // the operator stops its instance; unfencing starts it again.
    match east.fence(None).await {
        FenceOutcome::Fenced(detail) => {
            assert!(detail.contains("cnpg.io/fencedInstances"), "{detail}")
        }
        other => panic!("not fenced: {other:?}"),
    }
    let fenced = cluster(&world, "us-east-1");
    assert_eq!(
        fenced["metadata"]["annotations"]["cnpg.io/fencedInstances"], "[\"*\"]",
        "{fenced}"
    );
    let mut stopped = false;
    for _ in 0..100 {
        if hapilot_adapters::database::PostgresDatabase::new(pair.primary.dsn())
            .connect()
            .await
            .is_err()
        {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stopped, "a fenced instance takes no connections");
    east.unfence().await.unwrap();
    let mut back = None;
    for _ in 0..100 {
        back = hapilot_adapters::database::PostgresDatabase::new(pair.primary.dsn())
            .connect()
            .await
            .ok();
        if back.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ids(&back.expect("unfenced: it answers again")).await.len(),
        10
    );
}

/// pg-east's switchover from pg-west, which must fail: its error text.
async fn west_side_switchover(
    east: &hapilot_adapters::database::AnyDatabase,
    west_target: &DatabaseTarget,
    deadline: Duration,
    says: &str,
) -> String {
    match east.switchover(Some(west_target), deadline).await {
        Ok(o) => panic!("promoted with a {says}: {o:?}"),
        Err(e) => e.to_string(),
    }
}
