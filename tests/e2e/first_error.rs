//! The first error is the error: a run that fails and then also fails to record ends with its
//! own error name and cause, the recording failure added to the cause; `hapilot.RecordFailed` is
//! the end only when recording is the only failure. One run per state machine.

use std::sync::Arc;

use hapilot::local::systems::gateway::SimulatedGateway;
use hapilot_core::error::ErrorName;
use hapilot_functions::FunctionError;
use hapilot_functions::config::Settings;
use hapilot_functions::registry::Handler;
use serde_json::{Value, json};

use crate::support::TestStack;

const AUDIT_BUCKET: &str = "hapilot-audit-first-error";
const RECORDING_FAILED: &str = "recording the run failed too: hapilot.RecordFailed";

/// record-run as it fails when S3 is unavailable; snapshot-weights without a hosted zone.
fn harness_functions() -> Vec<(String, Handler)> {
    let record_fails: Handler = Arc::new(|_| {
        Box::pin(async {
            Err(FunctionError::named(
                ErrorName::RecordFailed,
                "PutObject reports/...: service unavailable (S3 down)",
            ))
        })
    });
    let snapshot: Handler =
        Arc::new(|_| Box::pin(async { Ok(json!({"weights": {"primary": 100, "secondary": 0}})) }));
    vec![
        ("record-run".to_string(), record_fails),
        ("snapshot-weights".to_string(), snapshot),
    ]
}

/// Two regions whose primary answers `primary_health` and whose other endpoints refuse.
fn settings(primary_health: &str, zone: &str) -> Settings {
    let closed = "http://127.0.0.1:9/health";
    let regions = json!({
        "us-east-1": {"health_url": primary_health, "set_identifier": "primary",
            "database": {"backend": "postgres", "dsn": "postgresql://u@127.0.0.1:9/db"},
            "kubernetes": {"url": "http://127.0.0.1:9", "token": "t", "namespace": "gateway"}},
        "us-west-2": {"health_url": closed, "set_identifier": "secondary",
            "database": {"backend": "postgres", "dsn": "postgresql://u@127.0.0.1:9/db"},
            "kubernetes": {"url": "http://127.0.0.1:9", "token": "t", "namespace": "gateway"}},
    });
    let vars = [
        ("HAPILOT_REGIONS", regions.to_string()),
        ("HAPILOT_AUDIT_BUCKET", AUDIT_BUCKET.to_string()),
        ("HAPILOT_GLOBAL_HEALTH_URL", closed.to_string()),
        ("HAPILOT_HOSTED_ZONE_ID", zone.to_string()),
        ("HAPILOT_RECORD_NAME", "gateway.example.com".to_string()),
        ("HAPILOT_ALLOW_PLAIN_HTTP", "true".to_string()),
    ];
    Settings::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("test settings parse")
}

async fn stack(primary_health: &str) -> TestStack {
    let stack =
        TestStack::with_settings_and_functions(settings(primary_health, "Z1"), harness_functions())
            .await;
    stack
        .s3()
        .create_bucket()
        .bucket(AUDIT_BUCKET)
        .send()
        .await
        .expect("CreateBucket");
    // The global name's weighted records: a graceful plan reads them to pick its switch.
    use aws_sdk_route53::types::{
        Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
    };
    let r53 = stack.route53();
    let zone = crate::support::create_zone(&r53, "example.com").await;
    let mut batch = ChangeBatch::builder();
    for (set, weight) in [("primary", 100), ("secondary", 0)] {
        batch = batch.changes(
            Change::builder()
                .action(ChangeAction::Create)
                .resource_record_set(
                    ResourceRecordSet::builder()
                        .name("gateway.example.com")
                        .r#type(RrType::Cname)
                        .set_identifier(set)
                        .weight(weight)
                        .ttl(60)
                        .resource_records(
                            ResourceRecord::builder()
                                .value(format!("{set}.example.net"))
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        );
    }
    r53.change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(batch.build().unwrap())
        .send()
        .await
        .unwrap();
    stack
        .stack()
        .configure_region("us-east-1", settings(primary_health, &zone))
        .unwrap();
    stack
}

/// Runs `machine` and asserts it ends FAILED with `error`, the cause holding every `needles`.
async fn assert_ends(
    stack: &TestStack,
    machine: &str,
    input: Value,
    error: &str,
    needles: &[&str],
) {
    let outcome = stack.run(machine, input).await;
    let cause = outcome.cause.clone().unwrap_or_default();
    assert_eq!(
        (outcome.status.as_str(), outcome.error.as_deref()),
        ("FAILED", Some(error)),
        "{machine}: unexpected end\n{}",
        outcome.history_text()
    );
    for needle in needles {
        assert!(
            cause.contains(needle),
            "{machine}: cause {cause:?} lacks {needle:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_that_cannot_be_recorded_ends_with_its_own_error() {
    let stack = stack("http://127.0.0.1:9/health").await;
    let regions = json!({"primary_region": "us-east-1", "standby_region": "us-west-2"});
    // failover: a graceful switchover refused because the primary is not healthy.
    let mut graceful = regions.clone();
    graceful["mode"] = json!("graceful");
    assert_ends(
        &stack,
        "failover",
        graceful,
        "hapilot.PrecheckFailed",
        &[
            "graceful switchover needs a healthy primary",
            RECORDING_FAILED,
        ],
    )
    .await;
    // failback: the recovered primary's health precheck fails.
    assert_ends(
        &stack,
        "failback",
        regions,
        "hapilot.PrecheckFailed",
        &[RECORDING_FAILED],
    )
    .await;
    // reprotect and dr-restore: refused input, reported before anything is touched.
    for machine in ["reprotect", "dr-restore"] {
        assert_ends(
            &stack,
            machine,
            json!({}),
            "hapilot.InvalidInput",
            &[RECORDING_FAILED],
        )
        .await;
    }
    // backup-audit and dr-drill record only at their end: a refused input is their only error.
    for machine in ["backup-audit", "dr-drill"] {
        let outcome = stack.run(machine, json!({})).await;
        assert_eq!(
            outcome.error.as_deref(),
            Some("hapilot.InvalidInput"),
            "{machine}\n{}",
            outcome.history_text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_only_failure_is_recording_ends_record_failed() {
    // The primary is healthy: an ungraceful failover finds a false alarm, changes nothing, and
    // then cannot record it.
    let primary = SimulatedGateway::start("us-east-1").await.unwrap();
    let stack = stack(&primary.health_url()).await;
    let outcome = stack
        .run(
            "failover",
            json!({"primary_region": "us-east-1", "standby_region": "us-west-2",
                   "mode": "ungraceful", "probe_samples": 2, "probe_interval_ms": 10}),
        )
        .await;
    assert_eq!(
        (outcome.status.as_str(), outcome.error.as_deref()),
        ("FAILED", Some("hapilot.RecordFailed")),
        "{}",
        outcome.history_text()
    );
    assert!(
        crate::support::entered(&outcome, "RecordFalseAlarm"),
        "{}",
        outcome.history_text()
    );
}
