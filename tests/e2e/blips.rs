//! One incident, one run, pushed through the blips a regional outage brings: faults injected
//! as AWS Fault Injection Service would (a 503 from the standby's Kubernetes API, a throttle on
//! the report's write, a promote request that never gets an answer) are retried by the steps
//! that may run twice, and the run's report lists each retry (a permanent error is not retried: `failover::a_failure_after_the_promotion_keeps_traffic_on_the_new_primary`).

use hapilot::local::aws::faults::{FaultKind, FaultSpec};
use hapilot::local::systems::gateway::GatewayMode;
use hapilot::local::world::deployment::DatabaseSetup;
use serde_json::json;

use crate::support::FailoverWorld;

fn fault(region: &str, service: &str, kind: FaultKind, matching: &str) -> FaultSpec {
    FaultSpec {
        region: region.into(),
        service: service.into(),
        kind,
        count: 1,
        matching: Some(matching.into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failover_goes_through_a_503_a_throttle_and_a_timeout() {
    let world = FailoverWorld::start(DatabaseSetup::Patroni).await;
    world.deployment.primary.set_mode(GatewayMode::Failing);
    let faults = world.stack.stack().faults();
    let functions_region = world.stack.stack().region().to_string();
    let name = "through-the-blips";
    for f in [
        fault("us-west-2", "kubernetes", FaultKind::Unavailable, "/scale"),
        fault(
            &functions_region,
            "s3",
            FaultKind::Throttle,
            &format!("reports/failover/{name}.json"),
        ),
        fault("us-west-2", "patroni", FaultKind::Timeout, "POST /failover"),
    ] {
        faults.inject(f).unwrap();
    }
    let arn = world
        .start_failover(name, world.console_input(json!({})))
        .await;
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    let hit: Vec<String> = faults
        .injected()
        .iter()
        .map(|f| f.service.clone())
        .collect();
    assert_eq!(hit.len(), 3, "every fault fired: {hit:?}");
    assert!(faults.armed().is_empty());

    let report = world
        .object(&format!("reports/failover/{name}.json"))
        .await
        .expect("the report was written on the second attempt");
    let retried: Vec<(String, String)> = report["retries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["state"].as_str().unwrap().to_string(),
                r["error"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for state in ["PromoteStandby", "ScaleStandby", "RecordSuccess"] {
        assert!(
            retried
                .iter()
                .any(|(s, e)| s == state && e == "hapilot.Transient"),
            "{state} not listed as retried: {retried:?}\n{}",
            outcome.history_text()
        );
    }
    let scale = report["retries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["state"] == "ScaleStandby")
        .unwrap();
    assert!(scale["cause"].as_str().unwrap().contains("503"), "{scale}");
    assert_eq!(world.deployment.standby_kube.replicas("litellm"), Some(5));
}

/// The standby's PostgreSQL refuses one connection and leaves the next unanswered (a restart,
/// a stuck proxy): the steps that read it try again and the failover completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failover_goes_through_a_reset_and_a_hung_postgresql_connection() {
    let world = FailoverWorld::start(DatabaseSetup::Postgres).await;
    world.deployment.primary.set_mode(GatewayMode::Failing);
    // A fresh write, so the standby's measured lag is recent (an idle pair's grows).
    let primary = hapilot_adapters::database::PostgresDatabase::new(world.postgres().primary.dsn())
        .connect()
        .await
        .unwrap();
    primary
        .batch_execute("CREATE TABLE blips (id int); INSERT INTO blips VALUES (1);")
        .await
        .unwrap();
    let faults = world.stack.stack().faults();
    for kind in [FaultKind::Unavailable, FaultKind::Timeout] {
        faults
            .inject(FaultSpec {
                region: "us-west-2".into(),
                service: "postgres".into(),
                kind,
                count: 1,
                matching: None,
            })
            .unwrap();
    }
    let refused = faults.inject(FaultSpec {
        region: "us-west-2".into(),
        service: "postgres".into(),
        kind: FaultKind::Throttle,
        count: 1,
        matching: None,
    });
    assert!(
        refused
            .unwrap_err()
            .contains("unavailable, timeout or latency")
    );
    let name = "through-postgres-blips";
    let arn = world
        .start_failover(name, world.console_input(json!({})))
        .await;
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    assert_eq!(faults.injected().len(), 2, "{:?}", faults.injected());
    let report = world
        .object(&format!("reports/failover/{name}.json"))
        .await
        .unwrap();
    let retries = report["retries"].as_array().unwrap();
    assert!(
        retries.len() >= 2 && retries.iter().all(|r| r["error"] == "hapilot.Transient"),
        "{retries:#?}"
    );
}
