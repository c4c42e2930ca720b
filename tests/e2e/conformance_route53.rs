//! Conformance of the local Route53 with Route53's documented record rules: the front door
//! refuses what Route53 refuses, with its error codes, before moto stores anything. Each case
//! names the page it comes from (Amazon Route 53 API Reference: `ChangeResourceRecordSets`,
//! `ResourceRecordSet`; Developer Guide: "Choosing a routing policy"). The data plane's rules
//! (health-check evaluation, routing answers) are unit-tested in `local/src/aws/route53_rules.rs`.

use aws_sdk_route53::Client;
use aws_sdk_route53::error::ProvideErrorMetadata;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, HealthCheckConfig, HealthCheckType, ResourceRecord,
    ResourceRecordSet, ResourceRecordSetRegion, RrType,
};

use crate::support::TestStack;

const NAME: &str = "gateway.example.com";

fn record(set: &str) -> aws_sdk_route53::types::builders::ResourceRecordSetBuilder {
    ResourceRecordSet::builder()
        .name(NAME)
        .r#type(RrType::Cname)
        .set_identifier(set)
        .ttl(60)
        .resource_records(
            ResourceRecord::builder()
                .value(format!("{set}.example.net"))
                .build()
                .unwrap(),
        )
}

async fn change(
    r53: &Client,
    zone: &str,
    changes: Vec<(ChangeAction, ResourceRecordSet)>,
) -> Result<(), (String, String)> {
    let batch = ChangeBatch::builder()
        .set_changes(Some(
            changes
                .into_iter()
                .map(|(action, set)| {
                    Change::builder()
                        .action(action)
                        .resource_record_set(set)
                        .build()
                        .unwrap()
                })
                .collect(),
        ))
        .build()
        .unwrap();
    r53.change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(batch)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            let e = e.into_service_error();
            (
                e.code().unwrap_or_default().to_string(),
                e.message().unwrap_or_default().to_string(),
            )
        })
}

async fn records(r53: &Client, zone: &str) -> Vec<ResourceRecordSet> {
    r53.list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap()
        .resource_record_sets()
        .iter()
        .filter(|r| r.name().trim_end_matches('.') == NAME)
        .cloned()
        .collect()
}

/// The HA document's section 3.1 shape: two latency records, the primary's with a check.
async fn latency_zone(r53: &Client) -> (String, String) {
    let zone = crate::support::create_zone(r53, "example.com").await;
    let check = r53
        .create_health_check()
        .caller_reference(uuid::Uuid::new_v4().to_string())
        .health_check_config(
            HealthCheckConfig::builder()
                .r#type(HealthCheckType::Http)
                .fully_qualified_domain_name("gateway.us-east-1.example.com")
                .resource_path("/health")
                .port(80)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .health_check()
        .unwrap()
        .id()
        .to_string();
    change(
        r53,
        &zone,
        vec![
            (
                ChangeAction::Create,
                record("primary")
                    .region(ResourceRecordSetRegion::UsEast1)
                    .health_check_id(&check)
                    .build()
                    .unwrap(),
            ),
            (
                ChangeAction::Create,
                record("secondary")
                    .region(ResourceRecordSetRegion::UsWest2)
                    .build()
                    .unwrap(),
            ),
        ],
    )
    .await
    .expect("valid latency records are accepted");
    (zone, check)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route53_refuses_invalid_record_changes_and_stores_nothing() {
    let stack = TestStack::start().await;
    let r53 = stack.route53();
    let (zone, check) = latency_zone(&r53).await;
    let before = records(&r53, &zone).await;
    assert_eq!(before.len(), 2);

    // ResourceRecordSet: "Weight ... weighted resource record sets only"; one record with both
    // policy fields is InvalidInput.
    let both = record("primary")
        .region(ResourceRecordSetRegion::UsEast1)
        .weight(0)
        .health_check_id(&check)
        .build()
        .unwrap();
    let (code, message) = change(&r53, &zone, vec![(ChangeAction::Upsert, both)])
        .await
        .unwrap_err();
    assert_eq!(code, "InvalidInput", "{message}");

    // "Choosing a routing policy": one policy per name and type. What the HA document's
    // failover script (4.2, step 3) sends to its latency records is refused.
    let weighted = record("primary")
        .weight(0)
        .health_check_id(&check)
        .build()
        .unwrap();
    let (code, message) = change(&r53, &zone, vec![(ChangeAction::Upsert, weighted)])
        .await
        .unwrap_err();
    assert_eq!(code, "InvalidChangeBatch", "{message}");
    assert!(message.contains("non weighted rrset"), "{message}");

    // ResourceRecordSet: SetIdentifier is required on every record but a simple one.
    let anonymous = ResourceRecordSet::builder()
        .name(NAME)
        .r#type(RrType::Cname)
        .region(ResourceRecordSetRegion::EuWest1)
        .ttl(60)
        .resource_records(
            ResourceRecord::builder()
                .value("x.example.net")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let (code, message) = change(&r53, &zone, vec![(ChangeAction::Create, anonymous)])
        .await
        .unwrap_err();
    assert_eq!(code, "InvalidInput");
    assert!(message.contains("SetIdentifier"), "{message}");

    // ChangeResourceRecordSets: a DELETE must name the record exactly as it is.
    let stale = record("secondary")
        .region(ResourceRecordSetRegion::UsWest2)
        .ttl(300)
        .build()
        .unwrap();
    let (code, message) = change(&r53, &zone, vec![(ChangeAction::Delete, stale)])
        .await
        .unwrap_err();
    assert_eq!(code, "InvalidChangeBatch");
    assert!(message.contains("do not match"), "{message}");

    // ChangeResourceRecordSets: NoSuchHealthCheck for a check that does not exist.
    let unknown = record("tertiary")
        .region(ResourceRecordSetRegion::EuWest1)
        .health_check_id("00000000-0000-0000-0000-000000000000")
        .build()
        .unwrap();
    let (code, _) = change(&r53, &zone, vec![(ChangeAction::Create, unknown)])
        .await
        .unwrap_err();
    assert_eq!(code, "NoSuchHealthCheck");

    // ChangeResourceRecordSets: all or nothing. A valid change beside an invalid one is not
    // applied either.
    let fine = record("tertiary")
        .region(ResourceRecordSetRegion::EuWest1)
        .build()
        .unwrap();
    let duplicate = record("secondary")
        .region(ResourceRecordSetRegion::UsWest2)
        .build()
        .unwrap();
    let (code, message) = change(
        &r53,
        &zone,
        vec![
            (ChangeAction::Create, fine.clone()),
            (ChangeAction::Create, duplicate),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(code, "InvalidChangeBatch");
    assert!(message.contains("already exists"), "{message}");
    assert_eq!(records(&r53, &zone).await, before, "nothing was stored");

    // What Route53 accepts still goes through: a third latency record, then the exact delete.
    change(&r53, &zone, vec![(ChangeAction::Create, fine.clone())])
        .await
        .unwrap();
    change(&r53, &zone, vec![(ChangeAction::Delete, fine)])
        .await
        .unwrap();
    assert_eq!(records(&r53, &zone).await, before);
}
