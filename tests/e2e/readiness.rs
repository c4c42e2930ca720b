//! Readiness end to end: the `readiness` state machine over a healthy two-region world (AWS's
//! data plane running, so Route53 publishes its health checks' status) passes every check;
//! each defect the issue lists, and one per check it asks for beyond them (capacity, Sentinel,
//! Vault replication, traffic health, the drill schedule), injected alone into the standby,
//! fails exactly its check (with its fix), and is undone before the next. Patroni's member
//! list is read from simulated members through the adapter.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hapilot::local::world::deployment::DatabaseSetup;
use hapilot_adapters::database::PostgresDatabase;
use hapilot_adapters::journal::{Journal, S3Journal};
use serde_json::{Value, json};

use crate::support::FailoverWorld;

const DAY: i64 = 86_400;

fn journal(world: &FailoverWorld) -> S3Journal {
    S3Journal::from_sdk(world.stack.stack().sdk_config(), "hapilot-audit")
}

/// hapilot's records of practice: a passed drill `drill_age` ago, a passed audit 10 minutes
/// ago, a passed restore test 5 days ago.
async fn seed_practice(world: &FailoverWorld, drill_age: i64) {
    seed_practice_with_restore_test(world, drill_age, 5 * DAY).await
}

/// [`seed_practice`] with the passed restore test `restore_age` ago.
async fn seed_practice_with_restore_test(world: &FailoverWorld, drill_age: i64, restore_age: i64) {
    let now = chrono::Utc::now().timestamp();
    let at = |age: i64| {
        chrono::DateTime::from_timestamp(now - age, 0)
            .unwrap()
            .to_rfc3339()
    };
    let j = journal(world);
    j.put(
        "reports/dr-drill/drill-1.json",
        &json!({"execution": "drill-1", "verdict": "PASSED", "finished_at": at(drill_age)}),
    )
    .await
    .unwrap();
    let audit_at = now - 600;
    j.put(
        &format!(
            "reports/backup-audit/{}.json",
            hapilot_core::backup::audit::epoch_text(audit_at)
        ),
        &json!({"now": audit_at, "verdict": "PASSED"}),
    )
    .await
    .unwrap();
    j.put(
        "reports/restore-test/restore-test-1.json",
        &json!({"outcome": "passed", "finished_at": at(restore_age)}),
    )
    .await
    .unwrap();
}

/// Points the replica's WAL receiver at `conninfo` (`ALTER SYSTEM` cannot share a transaction
/// with the reload).
async fn set_primary_conninfo(replica: &tokio_postgres::Client, conninfo: &str) {
    replica
        .batch_execute(&format!(
            "ALTER SYSTEM SET primary_conninfo = '{}'",
            conninfo.replace('\'', "''")
        ))
        .await
        .unwrap();
    replica
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
}

/// Runs the readiness state machine; returns (status, the report it wrote).
async fn evaluate(world: &FailoverWorld) -> (String, Value) {
    let name = format!("readiness-{}", uuid::Uuid::new_v4().simple());
    let arn = world.start_run("readiness", &name, json!({})).await;
    let outcome = world.follow(&arn).await;
    let report = journal(world)
        .get(hapilot_functions::evaluate_readiness::LATEST_KEY)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no readiness report\n{}", outcome.history_text()));
    (outcome.status.clone(), report)
}

/// The ids of the checks that failed.
fn failed(report: &Value) -> BTreeSet<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["check"].as_str().unwrap().to_string())
        .collect()
}

/// The check `id` of a report.
fn find<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == id)
        .unwrap_or_else(|| panic!("no {id} check: {report:#}"))
}

/// Re-evaluates until `expected` are exactly the failed checks (a change like a stopped WAL
/// receiver takes a moment to show); returns the report.
async fn expect_failed(world: &FailoverWorld, expected: &[&str], what: &str) -> Value {
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    // Route53's status metric is read in 10 s buckets: a recovered check shows in the next.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, report) = evaluate(world).await;
        if failed(&report) == expected {
            let want = if expected.is_empty() {
                "SUCCEEDED"
            } else {
                "FAILED"
            };
            assert_eq!(status, want, "{what}: {report:#}");
            for c in report["checks"].as_array().unwrap() {
                if c["status"] == "fail" {
                    assert!(
                        !c["fix"].as_str().unwrap_or("").is_empty(),
                        "{what}: a failed check says how to fix it: {c}"
                    );
                }
            }
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: failed checks {:?}, expected {expected:?}\n{report:#}",
            failed(&report)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_world_is_ready_and_each_defect_fails_exactly_its_check() {
    let mut world = FailoverWorld::start(DatabaseSetup::Postgres).await;
    assert!(
        world.deployment.redis.is_some(),
        "redis-server is needed (scripts/ensure-redis)"
    );
    assert!(
        world
            .deployment
            .redis
            .as_ref()
            .unwrap()
            .master
            .tls_url()
            .is_some(),
        "the world's Redis is read over TLS"
    );
    seed_practice(&world, 10 * DAY).await;
    let data_plane = world
        .deployment
        .start_data_plane(world.stack.stack(), Duration::from_millis(300));
    // The template deploys the drill schedule DISABLED; a ready world has it on, as the
    // operator turns it on once the drill was rehearsed.
    hapilot::local::world::deployment::put_drill_schedule(world.stack.stack(), "ENABLED")
        .await
        .unwrap();
    // Route53 has probed every check and published its HealthCheckStatus.
    data_plane.settle(2).await;
    // A committed transaction the replica replays: its lag becomes measurable.
    PostgresDatabase::new(world.postgres().primary.dsn())
        .connect()
        .await
        .unwrap()
        .batch_execute(
            "CREATE TABLE readiness_writes (id int); INSERT INTO readiness_writes VALUES (1)",
        )
        .await
        .unwrap();

    let healthy = expect_failed(&world, &[], "a healthy world").await;
    assert_eq!(healthy["verdict"], "ready");
    let not_passed: Vec<&Value> = healthy["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] != "pass")
        .collect();
    assert_eq!(healthy["score"], 100.0, "not passed: {not_passed:#?}");
    let checks: BTreeSet<&str> = healthy["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    for id in [
        "kubernetes.replicas",
        "kubernetes.zones",
        "kubernetes.zone_spread",
        "kubernetes.pdb",
        "kubernetes.probe.liveness",
        "kubernetes.probe.readiness",
        "kubernetes.probe.startup",
        "database.replication",
        "redis.replication",
        "vault.raft",
        "practice.drill",
        "practice.backup_audit",
        "practice.restore",
        "permissions.emergency_path",
        "parity.images",
        "kubernetes.capacity",
        "redis.sentinel",
        "vault.replication",
        "traffic.record",
        "traffic.health",
        "practice.drill_schedule",
    ] {
        assert!(checks.contains(id), "{id} was not evaluated: {checks:?}");
    }

    let kube = &world.deployment.standby_kube;
    // All pods in one zone.
    kube.put_all_nodes_in("us-west-2a");
    let report = expect_failed(&world, &["kubernetes.zones"], "all pods in one zone").await;
    assert!(
        report["newly_failed"]
            .as_array()
            .unwrap()
            .contains(&json!("us-west-2/kubernetes.zones/litellm")),
        "{report:#}"
    );
    kube.reset_workloads();
    // A missing PDB.
    kube.delete_disruption_budget("litellm-pdb");
    expect_failed(&world, &["kubernetes.pdb"], "a missing PDB").await;
    kube.reset_workloads();
    // A missing readiness probe.
    kube.edit_pod_spec("agentgateway", |spec| {
        spec["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("readinessProbe");
    });
    expect_failed(
        &world,
        &["kubernetes.probe.readiness"],
        "a missing readiness probe",
    )
    .await;
    kube.reset_workloads();
    // Replicas below 50 % (2 of 5 available, still in two zones).
    kube.set_replicas("litellm", 5);
    kube.set_available("litellm", 2);
    expect_failed(&world, &["kubernetes.replicas"], "replicas below 50 %").await;
    kube.reset_workloads();

    // The standby on another version than the primary.
    kube.edit_pod_spec("vllm", |spec| {
        spec["containers"][0]["image"] = json!("ghcr.io/example/vllm:1.1.0");
    });
    expect_failed(&world, &["parity.images"], "image drift").await;
    kube.reset_workloads();

    // The standby's nodes too small for the failover's replica counts.
    kube.set_node_allocatable("1", "2Gi");
    let report = expect_failed(
        &world,
        &["kubernetes.capacity"],
        "nodes too small for the failover's scale",
    )
    .await;
    let capacity = find(&report, "kubernetes.capacity");
    assert!(
        capacity["seen"]
            .as_str()
            .unwrap()
            .contains("2 litellm pod(s) would not schedule: 1.0 CPU / 2.0 GiB free on 3 node(s)"),
        "{capacity}"
    );
    kube.reset_workloads();

    // The standby's gateway failing its Route53 health check.
    world
        .deployment
        .standby
        .set_mode(hapilot::local::systems::gateway::GatewayMode::Failing);
    expect_failed(
        &world,
        &["traffic.health"],
        "the standby's health check failing",
    )
    .await;
    world
        .deployment
        .standby
        .set_mode(hapilot::local::systems::gateway::GatewayMode::Healthy);
    expect_failed(&world, &[], "the standby's health check healthy again").await;

    // A replica not streaming: its WAL receiver pointed at nothing.
    let replica = PostgresDatabase::new(world.postgres().replica.dsn())
        .connect()
        .await
        .unwrap();
    let conninfo: String = replica
        .query_one("SHOW primary_conninfo", &[])
        .await
        .unwrap()
        .get(0);
    set_primary_conninfo(&replica, "host=127.0.0.1 port=1 connect_timeout=1").await;
    expect_failed(&world, &["database.replication"], "a replica not streaming").await;
    set_primary_conninfo(&replica, &conninfo).await;
    expect_failed(&world, &[], "streaming again").await;

    // Redis without a replica.
    let redis = world.deployment.redis.as_mut().unwrap();
    redis.stop_replica().await.unwrap();
    expect_failed(&world, &["redis.replication"], "Redis without a replica").await;
    world
        .deployment
        .redis
        .as_mut()
        .unwrap()
        .restart_replica()
        .await
        .unwrap();

    // Two of the three Sentinels gone: below the quorum of 2.
    world.deployment.redis.as_mut().unwrap().stop_sentinels(2);
    let report = expect_failed(&world, &["redis.sentinel"], "Sentinels below quorum").await;
    let sentinel = find(&report, "redis.sentinel");
    assert!(
        sentinel["seen"].as_str().unwrap().contains("quorum is 2"),
        "{sentinel}"
    );
    world
        .deployment
        .redis
        .as_mut()
        .unwrap()
        .restart_sentinels()
        .await
        .unwrap();

    // Vault with one voter.
    world.deployment.vault.set_voters(1);
    expect_failed(&world, &["vault.raft"], "Vault with one voter").await;
    world.deployment.vault.set_voters(3);
    // Vault's performance replication idle.
    world.deployment.vault.set_replication_state("idle");
    expect_failed(&world, &["vault.replication"], "Vault replication idle").await;
    world.deployment.vault.set_replication_state("stream-wals");

    // The DR drill's schedule disabled: a warning (the template ships it disabled until the
    // team has rehearsed), which lowers the score without failing.
    hapilot::local::world::deployment::put_drill_schedule(world.stack.stack(), "DISABLED")
        .await
        .unwrap();
    let report = expect_failed(&world, &[], "the drill schedule disabled").await;
    let schedule = find(&report, "practice.drill_schedule");
    assert_eq!(schedule["status"], "warn", "{schedule}");
    assert!(report["score"].as_f64().unwrap() < 100.0, "{report:#}");
    hapilot::local::world::deployment::put_drill_schedule(world.stack.stack(), "ENABLED")
        .await
        .unwrap();

    // A standby role missing one permission the failover needs there: promote-database's
    // journal write, denied on the template's own role.
    let role = world.deployment.settings.emergency_roles["promote-database"].clone();
    assert!(
        role.contains(":role/hapilot-PromoteDatabaseFunctionRole"),
        "{role}"
    );
    hapilot::local::world::deployment::deny_role_actions(
        world.stack.stack(),
        &role,
        &["s3:PutObject"],
    )
    .await
    .unwrap();
    let report = expect_failed(
        &world,
        &["permissions.emergency_path"],
        "a role missing a permission",
    )
    .await;
    let denied = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["status"] == "fail")
        .unwrap();
    assert_eq!(denied["subject"], "promote-database", "{denied}");
    assert!(
        denied["seen"]
            .as_str()
            .unwrap()
            .contains("may not: s3:PutObject"),
        "{denied}"
    );
    hapilot::local::world::deployment::deny_role_actions(world.stack.stack(), &role, &[])
        .await
        .unwrap();

    // No drill for 91 days.
    seed_practice(&world, 91 * DAY).await;
    let report = expect_failed(&world, &["practice.drill"], "no drill for 91 days").await;
    let drill = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "practice.drill")
        .unwrap();
    assert!(
        drill["seen"].as_str().unwrap().contains("91 days ago"),
        "{drill}"
    );
    // The last passed restore test 31 days ago; a failed one since proves nothing.
    seed_practice_with_restore_test(&world, 10 * DAY, 31 * DAY).await;
    let failed_test = "reports/restore-test/restore-test-2.json";
    journal(&world)
        .put(
            failed_test,
            &json!({"outcome": "failed", "finished_at": chrono::Utc::now().to_rfc3339()}),
        )
        .await
        .unwrap();
    let report = expect_failed(
        &world,
        &["practice.restore"],
        "no passed restore test for 31 days",
    )
    .await;
    let restore = find(&report, "practice.restore");
    assert!(
        restore["seen"].as_str().unwrap().contains("31 days ago"),
        "{restore}"
    );
    journal(&world).delete(failed_test).await.unwrap();
    seed_practice(&world, 10 * DAY).await;
    expect_failed(&world, &[], "everything undone").await;

    // The command: a run and its report; then `hapilot status` shows the score.
    let out = world
        .cli()
        .args(["readiness", "--bucket", "hapilot-audit"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("# Readiness: READY"), "{text}");
    assert!(
        text.contains("| pass | us-west-2 | vault.raft | vault |"),
        "{text}"
    );
    world.deployment.vault.set_voters(1);
    let out = world
        .cli()
        .args(["readiness", "--bucket", "hapilot-audit"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a failed check exits 2");
    let status = world
        .cli()
        .arg("status")
        .env("HAPILOT_AUDIT_BUCKET", "hapilot-audit")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("(NOT READY)") && text.contains("failing: us-west-2/vault.raft/vault"),
        "{text}"
    );
}

/// Patroni's member list, read through the adapter from two simulated members of one cluster:
/// the failover's candidate is a streaming replica; tagged `nofailover`, it is not.
#[tokio::test]
async fn patronis_candidate_is_read_from_the_member_list() {
    use hapilot_adapters::database::{AnyDatabase, Database, DatabaseTarget};
    use hapilot_core::readiness::{CheckStatus, patroni_check};
    let east = hapilot::local::systems::patroni::SimulatedPatroni::start("pg-east", true)
        .await
        .unwrap();
    let west = hapilot::local::systems::patroni::SimulatedPatroni::start("pg-west", false)
        .await
        .unwrap();
    east.join(&west);
    let database = AnyDatabase::new(
        &DatabaseTarget::Patroni {
            url: west.url(),
            member: "pg-west".into(),
            ca_file: None,
            auth: None,
            dsn: None,
        },
        reqwest::Client::new(),
    );
    let judge = || async {
        let m = database.cluster_members().await.unwrap().unwrap();
        patroni_check("us-west-2", &m.candidate, &m.members)
    };
    let ok = judge().await;
    assert_eq!(ok.status, CheckStatus::Pass, "{}", ok.seen);
    assert!(ok.seen.contains("leader pg-east"), "{}", ok.seen);
    west.set_nofailover(true);
    let refused = judge().await;
    assert_eq!(refused.status, CheckStatus::Fail);
    assert!(refused.seen.contains("nofailover"), "{}", refused.seen);
}

/// Redis over TLS as ElastiCache with in-transit encryption serves it: a real redis-server's
/// `tls-port`, verified against the CA given as PEM text, refused under another CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls_is_read_through_its_own_ca_and_refused_under_another() {
    use hapilot::local::systems::redis::RedisServer;
    use hapilot_adapters::redis::{RedisReader, RedisTarget, TcpRedis};
    let (served, other) = (
        RedisServer::start_with_tls().await.unwrap(),
        RedisServer::start_with_tls().await.unwrap(),
    );
    let url = served.tls_url().unwrap();
    assert!(url.starts_with("rediss://localhost:"), "{url}");
    let target = |ca_pem: Option<String>| RedisTarget {
        address: url.clone(),
        ca_pem,
        password: Default::default(),
        sentinel: None,
    };
    let view = TcpRedis::new(target(served.ca_pem()))
        .replication()
        .await
        .unwrap();
    assert_eq!(view.role, "master");
    let refused = TcpRedis::new(target(other.ca_pem()))
        .replication()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("TLS") && refused.contains(&url),
        "{refused}"
    );
}
