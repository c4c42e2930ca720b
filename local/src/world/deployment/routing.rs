//! The global name: its hosted zone, Route53's health checkers and resolver as the local
//! data plane plays them, the ARC cluster stand-in when the switch is ARC, and the records
//! with the checks the switch needs.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, HealthCheckConfig, HealthCheckType, ResourceRecord,
    ResourceRecordSet, RrType,
};

use super::PerRegion;
use super::{
    PRIMARY_REGION, PRIMARY_SET, RECORD_NAME, RECORD_TTL_SECONDS, RecordRouting, STANDBY_REGION,
    STANDBY_SET, SwitchSetup, THIRD_SET, WITNESS_REGION, WorldOptions, endpoint_host,
};
use crate::LocalError;
use crate::LocalStack;
use crate::aws::data_plane::HealthCheckers;
use crate::aws::template::world::TemplateDeployment;
use crate::systems::gateway::{GlobalRouter, SimulatedGateway};

/// The global name before its records exist.
pub(super) struct GlobalName {
    pub route53: aws_sdk_route53::Client,
    pub zone_id: String,
    pub checkers: Arc<HealthCheckers>,
    pub arc: Option<crate::aws::arc::ArcCluster>,
    pub global: GlobalRouter,
}

/// The hosted zone, the health checkers (each endpoint host resolving, as an NLB's DNS name
/// would, to its simulated gateway: the template's checks probe
/// `https://<endpoint host>:443/health`), the ARC cluster when the switch is ARC, and the
/// resolver of the global name.
pub(super) async fn start(
    stack: &LocalStack,
    options: &WorldOptions,
    gateways: &PerRegion<SimulatedGateway>,
) -> Result<GlobalName, LocalError> {
    let route53 = aws_sdk_route53::Client::new(stack.sdk_config());
    let zone_id = route53
        .create_hosted_zone()
        .name("example.com")
        .caller_reference(uuid::Uuid::new_v4().to_string())
        .send()
        .await
        .map_err(LocalError::aws("CreateHostedZone"))?
        .hosted_zone()
        .map(|z| z.id().trim_start_matches("/hostedzone/").to_string())
        .unwrap_or_default();
    let checkers = Arc::new(HealthCheckers::default());
    let mut hosts = BTreeMap::from([
        (
            endpoint_host(PRIMARY_REGION),
            origin(&gateways.primary.health_url()),
        ),
        (
            endpoint_host(STANDBY_REGION),
            origin(&gateways.standby.health_url()),
        ),
    ]);
    let mut targets = BTreeMap::from([
        (PRIMARY_SET.to_string(), gateways.primary.health_url()),
        (STANDBY_SET.to_string(), gateways.standby.health_url()),
    ]);
    if let Some(eu) = &gateways.third {
        hosts.insert(endpoint_host(WITNESS_REGION), origin(&eu.health_url()));
        targets.insert(THIRD_SET.to_string(), eu.health_url());
    }
    checkers.set_endpoint_hosts(hosts);
    let arc = match options.switch {
        SwitchSetup::ArcRoutingControl => Some(start_arc_cluster(stack, &checkers).await?),
        _ => None,
    };
    let global = GlobalRouter::start(
        stack.handle(),
        checkers.clone(),
        &zone_id,
        RECORD_NAME,
        targets,
        options.pace.local(RECORD_TTL_SECONDS as f64),
    )
    .await
    .map_err(LocalError::io("starting the global router".to_string()))?;
    Ok(GlobalName {
        route53,
        zone_id,
        checkers,
        arc,
        global,
    })
}

/// The records of the global name, each carrying the check the switch needs (the template's
/// outputs are what the operator attaches them to): the primary at weight 100, the standby
/// at 0, and the third region's at 0 with its check where the emergency path moves traffic
/// through health checks (none where weights move it: the primary's stack has endpoint checks
/// for two records).
pub(super) async fn create_records(
    name: &GlobalName,
    templates: &TemplateDeployment,
    options: &WorldOptions,
    third: bool,
) -> Result<(), LocalError> {
    let mut changes = Vec::new();
    for (set, region, weight) in [
        (PRIMARY_SET, PRIMARY_REGION, 100),
        (STANDBY_SET, STANDBY_REGION, 0),
    ] {
        let endpoint_check = templates
            .stack(PRIMARY_REGION)?
            .reference(if set == PRIMARY_SET {
                "PrimaryHealthCheck"
            } else {
                "StandbyHealthCheck"
            })
            .ok_or_else(|| {
                LocalError::Invalid(format!(
                    "the {PRIMARY_REGION} stack has no endpoint health check for {set}"
                ))
            })?;
        let record_check = match options.switch {
            SwitchSetup::Weights => endpoint_check,
            SwitchSetup::HealthCheck => {
                let output = if set == PRIMARY_SET {
                    "PrimaryRecordHealthCheckId"
                } else {
                    "StandbyRecordHealthCheckId"
                };
                standby_output(templates, output)?
            }
            SwitchSetup::ArcRoutingControl => {
                routing_control_check(&name.route53, set, &endpoint_check).await?
            }
        };
        changes.push(record_change(
            set,
            region,
            weight,
            options.routing,
            Some(record_check),
        )?);
    }
    if third {
        let check = match options.switch {
            SwitchSetup::HealthCheck => Some(
                standby_output(templates, "ThirdRecordHealthCheckId").map_err(|_| {
                    LocalError::Invalid(format!(
                        "the {STANDBY_REGION} stack has no output ThirdRecordHealthCheckId (ThirdSetIdentifier not passed?)"
                    ))
                })?,
            ),
            _ => None,
        };
        changes.push(record_change(
            THIRD_SET,
            WITNESS_REGION,
            0,
            options.routing,
            check,
        )?);
    }
    name.route53
        .change_resource_record_sets()
        .hosted_zone_id(&name.zone_id)
        .change_batch(
            ChangeBatch::builder()
                .set_changes(Some(changes))
                .build()
                .map_err(LocalError::aws("ChangeResourceRecordSets"))?,
        )
        .send()
        .await
        .map_err(LocalError::aws("ChangeResourceRecordSets"))?;
    Ok(())
}

/// An output of the standby region's stack.
fn standby_output(templates: &TemplateDeployment, output: &str) -> Result<String, LocalError> {
    templates
        .stack(STANDBY_REGION)?
        .outputs
        .get(output)
        .cloned()
        .ok_or_else(|| {
            LocalError::Invalid(format!("the {STANDBY_REGION} stack has no output {output}"))
        })
}

/// The creation of `region`'s record of the global name, `set`: weighted (`weight`) or a
/// latency record, answering with the region's endpoint, carrying `check` when given.
fn record_change(
    set: &str,
    region: &str,
    weight: i64,
    routing: RecordRouting,
    check: Option<String>,
) -> Result<Change, LocalError> {
    let record = ResourceRecordSet::builder()
        .name(RECORD_NAME)
        .r#type(RrType::Cname)
        .set_identifier(set)
        .ttl(RECORD_TTL_SECONDS)
        .set_health_check_id(check);
    let record = match routing {
        RecordRouting::Weighted => record.weight(weight),
        RecordRouting::Latency => record.region(
            aws_sdk_route53::types::ResourceRecordSetRegion::from(region),
        ),
    };
    let record = record
        .resource_records(
            ResourceRecord::builder()
                .value(endpoint_host(region))
                .build()
                .map_err(LocalError::aws("ChangeResourceRecordSets"))?,
        )
        .build()
        .map_err(LocalError::aws("ChangeResourceRecordSets"))?;
    Change::builder()
        .action(ChangeAction::Create)
        .resource_record_set(record)
        .build()
        .map_err(LocalError::aws("ChangeResourceRecordSets"))
}

/// `scheme://host:port` of a URL.
fn origin(url: &str) -> String {
    match url.find("://") {
        Some(at) => {
            let rest = &url[at + 3..];
            let end = rest.find('/').unwrap_or(rest.len());
            format!("{}{}", &url[..at + 3], &rest[..end])
        }
        None => url.to_string(),
    }
}

/// A `CALCULATED` check healthy when both children are.
async fn both_healthy(
    route53: &aws_sdk_route53::Client,
    endpoint_check: &str,
    control: &str,
) -> Result<String, LocalError> {
    Ok(route53
        .create_health_check()
        .caller_reference(uuid::Uuid::new_v4().to_string())
        .health_check_config(
            HealthCheckConfig::builder()
                .r#type(HealthCheckType::Calculated)
                .child_health_checks(endpoint_check)
                .child_health_checks(control)
                .health_threshold(2)
                .build()
                .map_err(LocalError::aws("CreateHealthCheck"))?,
        )
        .send()
        .await
        .map_err(LocalError::aws("CreateHealthCheck"))?
        .health_check()
        .map(|h| h.id().to_string())
        .unwrap_or_default())
}

/// The ARN of `set`'s routing control in the local ARC cluster.
pub fn routing_control_arn(set: &str) -> String {
    format!(
        "arn:aws:route53-recovery-control::{}:controlpanel/hapilot/routingcontrol/{set}",
        hapilot_adapters::sdk::LOCAL_ACCOUNT_ID
    )
}

/// The local ARC cluster's safety rule: at least one region's control stays `On`.
pub fn arc_safety_rule() -> String {
    format!(
        "arn:aws:route53-recovery-control::{}:controlpanel/hapilot/safetyrule/one-region-on",
        hapilot_adapters::sdk::LOCAL_ACCOUNT_ID
    )
}

/// Starts the stand-in ARC cluster (endpoints in every region, us-east-1 first as a client's
/// list would have it), both controls `On`, the safety rule in place; Route53's local data
/// plane hears every change.
async fn start_arc_cluster(
    stack: &LocalStack,
    checkers: &std::sync::Arc<crate::aws::data_plane::HealthCheckers>,
) -> Result<crate::aws::arc::ArcCluster, LocalError> {
    use crate::aws::arc_rules::{AssertionRule, ClusterState, RoutingControl};
    let controls = [PRIMARY_SET, STANDBY_SET]
        .iter()
        .map(|set| {
            (
                routing_control_arn(set),
                RoutingControl {
                    name: format!("hapilot-{set}"),
                    control_panel_arn: format!(
                        "arn:aws:route53-recovery-control::{}:controlpanel/hapilot",
                        hapilot_adapters::sdk::LOCAL_ACCOUNT_ID
                    ),
                    on: true,
                },
            )
        })
        .collect();
    let state = ClusterState {
        controls,
        rules: vec![AssertionRule {
            arn: arc_safety_rule(),
            asserted_controls: vec![
                routing_control_arn(PRIMARY_SET),
                routing_control_arn(STANDBY_SET),
            ],
            min_on: 1,
        }],
    };
    let heard = checkers.clone();
    crate::aws::arc::ArcCluster::start(
        &[PRIMARY_REGION, STANDBY_REGION, WITNESS_REGION],
        state,
        stack.handle(),
        std::sync::Arc::new(move |states| heard.set_routing_controls(states)),
    )
    .await
    .map_err(LocalError::io("starting the ARC cluster stand-in"))
}

/// `set`'s record check with ARC: its endpoint check AND a `RECOVERY_CONTROL` check on its
/// routing control.
async fn routing_control_check(
    route53: &aws_sdk_route53::Client,
    set: &str,
    endpoint_check: &str,
) -> Result<String, LocalError> {
    let arn = routing_control_arn(set);
    let control = route53
        .create_health_check()
        .caller_reference(uuid::Uuid::new_v4().to_string())
        .health_check_config(
            HealthCheckConfig::builder()
                .r#type(HealthCheckType::RecoveryControl)
                .routing_control_arn(&arn)
                .build()
                .map_err(LocalError::aws("CreateHealthCheck"))?,
        )
        .send()
        .await
        .map_err(LocalError::aws("CreateHealthCheck"))?
        .health_check()
        .map(|h| h.id().to_string())
        .unwrap_or_default();
    // moto drops RoutingControlArn: the local data plane reads it from this tag instead.
    route53
        .change_tags_for_resource()
        .resource_type(aws_sdk_route53::types::TagResourceType::Healthcheck)
        .resource_id(&control)
        .add_tags(tag(crate::aws::data_plane::TAG_ROUTING_CONTROL, &arn))
        .send()
        .await
        .map_err(LocalError::aws("ChangeTagsForResource"))?;
    both_healthy(route53, endpoint_check, &control).await
}

fn tag(key: &str, value: &str) -> aws_sdk_route53::types::Tag {
    aws_sdk_route53::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
}
