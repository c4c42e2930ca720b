//! The front door speaks Lambda's Invoke contract for our functions and forwards every other
//! AWS API to moto unchanged; bad invokes get Lambda-shaped errors and the host keeps serving.

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecordSet, RrType};
use std::sync::Arc;

use hapilot_functions::registry::Handler;
use serde_json::Value;

use crate::support::TestStack;

async fn invoke(stack: &TestStack, function: &str, body: &'static str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!(
            "{}/2015-03-31/functions/{function}/invocations",
            stack.endpoint_url()
        ))
        .body(body)
        .send()
        .await
        .expect("the front door answers")
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn assert_still_serving(stack: &TestStack) {
    let r = invoke(stack, "check-health", r#"{"url":"ftp://nowhere"}"#).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-amz-function-error"), "Unhandled");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errorType"], "hapilot.InvalidInput", "{body}");
    assert!(
        body["errorMessage"].as_str().unwrap().contains("`url`"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_invokes_get_lambda_shaped_errors_and_the_host_keeps_serving() {
    let panics: Handler = Arc::new(|_| Box::pin(async { panic!("handler bug on purpose") }));
    let stack = TestStack::with_extra_functions(vec![("panics".to_string(), panics)]).await;

    // Unknown function: Lambda's ResourceNotFoundException, by full ARN as the executor sends it.
    let r = invoke(
        &stack,
        "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Ano-such-function",
        "{}",
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(header(&r, "x-amzn-errortype"), "ResourceNotFoundException");
    assert!(!header(&r, "x-amzn-requestid").is_empty());
    let body: Value = r.json().await.unwrap();
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .contains("function:no-such-function"),
        "{body}"
    );
    assert_still_serving(&stack).await;

    // A payload that is not JSON.
    let r = invoke(&stack, "check-health", "url=http://x").await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        header(&r, "x-amzn-errortype"),
        "InvalidRequestContentException"
    );
    assert!(!header(&r, "x-amzn-requestid").is_empty());
    assert_still_serving(&stack).await;

    // A handler that panics: an Unhandled function error, as lambda_runtime reports it in AWS.
    let r = invoke(&stack, "panics", "{}").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-amz-function-error"), "Unhandled");
    assert!(!header(&r, "x-amzn-requestid").is_empty());
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["errorMessage"], "Lambda panicked: handler bug on purpose",
        "{body}"
    );
    assert_still_serving(&stack).await;

    // DryRun checks the function exists and runs nothing.
    let r = reqwest::Client::new()
        .post(format!(
            "{}/2015-03-31/functions/panics/invocations",
            stack.endpoint_url()
        ))
        .header("X-Amz-Invocation-Type", "DryRun")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_other_api_reaches_moto_through_the_front_door() {
    let stack = TestStack::start().await;

    let s3 = stack.s3();
    s3.create_bucket()
        .bucket("hapilot-audit")
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket("hapilot-audit")
        .key("runs/x/1.json")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"{\"ok\":true}",
        ))
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket("hapilot-audit")
        .key("runs/x/1.json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"{\"ok\":true}"
    );

    let r53 = stack.route53();
    let zone_id = crate::support::create_zone(&r53, "example.com").await;
    let record = ResourceRecordSet::builder()
        .name("gateway.example.com")
        .r#type(RrType::Cname)
        .set_identifier("primary")
        .weight(100)
        .ttl(60)
        .resource_records(
            aws_sdk_route53::types::ResourceRecord::builder()
                .value("primary.example.com")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    r53.change_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Upsert)
                        .resource_record_set(record)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let sets = r53
        .list_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .send()
        .await
        .unwrap();
    let weighted = sets
        .resource_record_sets()
        .iter()
        .find(|s| s.set_identifier() == Some("primary"))
        .expect("the weighted record is there");
    assert_eq!(weighted.weight(), Some(100));

    let cw = stack.cloudwatch();
    cw.put_metric_data()
        .namespace("hapilot")
        .metric_data(
            MetricDatum::builder()
                .metric_name("HarnessProbe")
                .dimensions(
                    Dimension::builder()
                        .name("Region")
                        .value("us-east-1")
                        .build(),
                )
                .value(1.0)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let metrics = cw.list_metrics().namespace("hapilot").send().await.unwrap();
    assert!(
        metrics
            .metrics()
            .iter()
            .any(|m| m.metric_name() == Some("HarnessProbe"))
    );

    let machines = stack.sfn().list_state_machines().send().await.unwrap();
    let names: Vec<_> = machines
        .state_machines()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    assert!(names.contains(&"health-proof".to_string()), "{names:?}");
}

/// What a Lambda that needs the regions does at start when the template gives them as secrets:
/// GetSecretValue through the real SDK (served by moto) of the regions (no credentials in them)
/// and of exactly the credentials that function uses, each from its own secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_regions_and_each_functions_own_credentials_are_read_from_secrets_manager_at_start() {
    use hapilot_adapters::database::DatabaseTarget;
    use hapilot_adapters::secrets::SecretsManager;
    use hapilot_functions::catalog::find;
    use hapilot_functions::config::Settings;

    let stack = TestStack::start().await;
    let sdk = stack.stack().sdk_config();
    let sm = aws_sdk_secretsmanager::Client::new(sdk);
    for (name, value) in [
        (
            "hapilot/regions",
            serde_json::json!({
                "us-east-1": {"health_url": "https://east.example.com/health", "set_identifier": "primary",
                              "database": {"backend": "postgres"},
                              "kubernetes": {"url": "https://k8s-east.example.com", "namespace": "ai-gateway"}},
                "us-west-2": {"health_url": "https://west.example.com/health", "set_identifier": "secondary"}
            }),
        ),
        (
            "hapilot/database",
            serde_json::json!({"us-east-1": {"dsn": "postgres://app:s3cret@east/app"}}),
        ),
        (
            "hapilot/kubernetes",
            serde_json::json!({"us-east-1": "kube-token"}),
        ),
        (
            "hapilot/database-wrong",
            serde_json::json!({"eu-north-1": {"dsn": "postgres://x:y@z/w"}}),
        ),
    ] {
        sm.create_secret()
            .name(name)
            .secret_string(value.to_string())
            .send()
            .await
            .unwrap();
    }
    let secrets = SecretsManager::from_sdk(sdk);
    let load = |database: &'static str| {
        Settings::from_lookup(move |k| match k {
            "HAPILOT_REGIONS_SECRET" => Some("hapilot/regions".to_string()),
            "HAPILOT_DATABASE_SECRET" => Some(database.to_string()),
            "HAPILOT_KUBERNETES_SECRET" => Some("hapilot/kubernetes".to_string()),
            _ => None,
        })
        .unwrap()
    };
    let dsn = |s: &Settings| match &s.region("us-east-1").unwrap().database {
        Some(DatabaseTarget::Postgres { dsn, .. }) => dsn.clone(),
        other => panic!("{other:?}"),
    };
    let token = |s: &Settings| {
        s.region("us-east-1")
            .unwrap()
            .kubernetes
            .clone()
            .unwrap()
            .token
    };

    // plan-failover needs the regions and no credential: it reads neither credentials secret.
    let spec = find("plan-failover").unwrap();
    let mut plan = load("hapilot/database");
    assert!(
        plan.require(spec.requires).is_err(),
        "no regions before the secret is read"
    );
    plan.read_secrets(&secrets, spec.credentials).await.unwrap();
    assert_eq!(
        plan.regions.keys().collect::<Vec<_>>(),
        ["us-east-1", "us-west-2"]
    );
    assert_eq!(
        (dsn(&plan), token(&plan)),
        (Default::default(), Default::default())
    );

    // check-data gets the DSN only; scale-region the Kubernetes token only (the database
    // steps read both: a cloudnativepg database is reached through Kubernetes).
    let spec = find("check-data").unwrap();
    let mut read = load("hapilot/database");
    read.read_secrets(&secrets, spec.credentials).await.unwrap();
    assert_eq!(
        (dsn(&read).expose(), token(&read).expose()),
        ("postgres://app:s3cret@east/app", "")
    );
    let spec = find("scale-region").unwrap();
    let mut scale = load("hapilot/database");
    scale
        .read_secrets(&secrets, spec.credentials)
        .await
        .unwrap();
    assert_eq!(
        (dsn(&scale).expose(), token(&scale).expose()),
        ("", "kube-token")
    );

    // A credentials secret naming a region the deployment does not have stops the function,
    // naming the variable and the region, never the secret's text.
    let spec = find("read-replication").unwrap();
    let e = load("hapilot/database-wrong")
        .read_secrets(&secrets, spec.credentials)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("HAPILOT_DATABASE_SECRET") && e.contains("eu-north-1") && !e.contains("x:y"),
        "{e}"
    );

    // A secret that is not there stops the function at start, naming the variable and the call.
    let mut missing = Settings::from_lookup(|k| {
        (k == "HAPILOT_REGIONS_SECRET").then(|| "hapilot/no-such-secret".to_string())
    })
    .unwrap();
    let e = missing
        .read_secrets(&secrets, &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("HAPILOT_REGIONS_SECRET: GetSecretValue failed")
            && e.contains("ResourceNotFoundException"),
        "{e}"
    );
}
