//! A complete two-region deployment on the local stack: what the drill fails over and what the
//! end-to-end tests exercise.
//!
//! Two simulated regional gateways (us-east-1 primary, us-west-2 standby), the global name as a
//! weighted Route53 record pair with health checks and a CloudWatch alarm on the primary's
//! check, the audit bucket, the notification topic, a Kubernetes API per region, a database per
//! region (a simulated Patroni cluster, or a real PostgreSQL streaming pair), and the functions'
//! configuration pointing at all of it.

use std::collections::BTreeMap;

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, HealthCheckConfig, HealthCheckType, ResourceRecord,
    ResourceRecordSet, RrType,
};
use hapilot_adapters::database::DatabaseTarget;
use hapilot_adapters::scaler::KubernetesTarget;
use hapilot_core::alarm::FailoverTrigger;
use hapilot_core::tier::Tier;
use hapilot_functions::config::{RegionConfig, Settings};

use super::LocalStack;
use super::agent::PostgresAgent;
use super::gateway::{GlobalRouter, SimulatedGateway};
use super::kubernetes::SimulatedKubernetes;
use super::patroni::SimulatedPatroni;
use super::postgres::PostgresPair;
use super::prometheus::LocalPrometheus;
use super::traffic::{LB_NAMESPACE, LoadBalancerMetrics};
use super::vault::SimulatedVault;
use crate::LocalError;
use hapilot_adapters::traffic::TrafficSource;
use hapilot_adapters::traffic_switch::TrafficSwitchConfig;

/// The failing region in the local deployment.
pub const PRIMARY_REGION: &str = "us-east-1";
/// The region that takes over.
pub const STANDBY_REGION: &str = "us-west-2";
/// SetIdentifier of the primary's weighted record (as in the HA document).
pub const PRIMARY_SET: &str = "primary";
/// SetIdentifier of the standby's weighted record.
pub const STANDBY_SET: &str = "secondary";
/// The Patroni member of the second secondary.
pub const THIRD_MEMBER: &str = "pg-eu";
/// SetIdentifier of the second secondary's record (eu-west-1, with [`WorldOptions::third_region`]).
pub const THIRD_SET: &str = "tertiary";
/// The global name.
pub const RECORD_NAME: &str = "gateway.example.com";
/// The audit bucket.
pub const AUDIT_BUCKET: &str = "hapilot-audit";
/// The backups of the primary region (barman-cloud layout, Vault snapshots, RDB files).
pub const BACKUP_BUCKET: &str = "hapilot-backups";
/// Their copy in the DR (standby) region: DR restores read this one.
pub const DR_BACKUP_BUCKET: &str = "hapilot-backups-dr";
/// The DR region Vault's token (a secret in AWS; a constant on loopback).
pub const VAULT_TOKEN: &str = "hapilot-local-vault-token";
/// The restore tests' scratch Vault's own token (given to the functions through the Vault
/// secret as `us-west-2.restore_test`, as an operator would).
pub const SCRATCH_VAULT_TOKEN: &str = "hapilot-local-scratch-vault-token";
/// The alarm on the primary's Route53 health check.
pub const PRIMARY_ALARM: &str = "hapilot-primary-health";
/// Namespace of the gateway deployments (the HA document's).
pub const NAMESPACE: &str = "ai-gateway";
const KUBE_TOKEN: &str = "local-kube-token";

/// Which database each region runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseSetup {
    /// A simulated Patroni member per region (fast; the `patroni` backend).
    Patroni,
    /// A real PostgreSQL primary + streaming replica (the `postgres` backend).
    Postgres,
    /// The same real pair as CloudNativePG replica clusters (`pg-east` primary, `pg-west` a
    /// replica cluster of it; distributed topology) behind each region's Kubernetes API, run by
    /// the operator stand-in (the `cloudnativepg` backend).
    Cloudnativepg,
}

/// The databases of the deployment.
pub enum Databases {
    /// Simulated Patroni members.
    Patroni {
        /// The primary region's member (the leader).
        primary: SimulatedPatroni,
        /// The standby region's member (a replica).
        standby: SimulatedPatroni,
    },
    /// A real PostgreSQL pair, each server with its host agent (re-protection).
    Postgres {
        /// The servers.
        pair: Box<PostgresPair>,
        /// Host agents of (the primary region's, the standby region's) server.
        agents: (PostgresAgent, PostgresAgent),
        /// The DR restore's server (laid down by a restore) in the standby region, and its agent.
        dr: Box<(super::postgres::PostgresNode, PostgresAgent)>,
        /// The restore test's scratch server (laid down by a test, torn down after) in the
        /// standby region, and its agent.
        scratch: Box<(super::postgres::PostgresNode, PostgresAgent)>,
        /// The CloudNativePG operator stand-in, when the pair is run as replica clusters.
        operator: Option<super::cnpg::CnpgOperator>,
        /// The fronts the functions reach each server through (faults act on their
        /// connections, service `postgres`); stopped with the deployment.
        fronts: Fronts,
    },
}

/// Loopback fronts that stop when dropped.
#[derive(Default)]
pub struct Fronts(std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>);

impl Fronts {
    fn keep(&self, task: tokio::task::JoinHandle<()>) {
        self.0.lock().expect("fronts lock").push(task);
    }
}

impl Drop for Fronts {
    fn drop(&mut self) {
        for task in self.0.lock().expect("fronts lock").iter() {
            task.abort();
        }
    }
}

/// The CloudNativePG `Cluster` names of (the primary region, the standby region).
pub const CNPG_CLUSTERS: (&str, &str) = ("pg-east", "pg-west");

/// A `Cluster` resource of the local distributed topology, as its operator reports it.
fn cnpg_resource(name: &str, primary: &str) -> serde_json::Value {
    let peer = if name == CNPG_CLUSTERS.0 {
        CNPG_CLUSTERS.1
    } else {
        CNPG_CLUSTERS.0
    };
    serde_json::json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "instances": 1,
            "replica": {"self": name, "primary": primary, "source": peer},
            "externalClusters": [{"name": peer}]
        },
        "status": {"phase": super::cnpg::HEALTHY, "currentPrimary": format!("{name}-1"),
                   "readyInstances": 1}
    })
}

/// The witness and DR region: its prober is the third vantage point.
pub const WITNESS_REGION: &str = "eu-west-1";
/// The prober alarm's name, in the standby and the witness region.
pub const WATCH_ALARM: &str = "hapilot-watch-us-east-1";
/// The control alarms (in the standby region) of the `health_check` traffic switch.
pub const CONTROL_ALARMS: [(&str, &str); 2] = [
    (PRIMARY_SET, "hapilot-control-primary"),
    (STANDBY_SET, "hapilot-control-standby"),
];

/// How the global name's records are routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordRouting {
    /// Weighted records (primary 100, secondary 0).
    Weighted,
    /// Latency records per region (the HA document's section 3.1).
    Latency,
}

/// The emergency path's traffic switch in the local world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchSetup {
    /// Route53 weights (control plane).
    Weights,
    /// Control alarms behind `CALCULATED` health checks (data plane).
    HealthCheck,
    /// ARC routing controls behind `CALCULATED` health checks, through the stand-in cluster.
    ArcRoutingControl,
}

/// What to build beyond the databases. Every world is the templates deployed
/// (`infra/parameters/local.json`); options other than [`WorldOptions::regional`]'s add what an
/// operator would change on top, by name ([`WorldOptions::operator_changes`]).
#[derive(Debug, Clone, Copy)]
pub struct WorldOptions {
    /// The databases.
    pub database: DatabaseSetup,
    /// Record routing.
    pub routing: RecordRouting,
    /// The emergency path's switch.
    pub switch: SwitchSetup,
    /// Detection from the standby with a witness quorum (vantage alarms, probers, data plane).
    pub quorum: bool,
    /// How fast AWS's clock runs.
    pub pace: crate::pace::Pace,
    /// eu-west-1 is also a secondary a failover may choose, as in the HA document's section
    /// 3: its gateway, its record of the global name (with the template's third record check),
    /// a Patroni member of the cluster (the Patroni setup only).
    pub third_region: bool,
}

impl WorldOptions {
    /// The templates with two operator changes most tests use: every region's alarm router
    /// acts on the one alarm on the primary's Route53 check (`HAPILOT_FAILOVER_TRIGGERS`), and
    /// the emergency path moves weights (`HAPILOT_TRAFFIC_SWITCH`).
    pub fn classic(database: DatabaseSetup) -> Self {
        Self {
            database,
            routing: RecordRouting::Weighted,
            switch: SwitchSetup::Weights,
            quorum: false,
            pace: crate::pace::Pace::compressed(),
            third_region: false,
        }
    }

    /// The world exactly as the templates deploy it: detection from the standby with a
    /// witness quorum, DNS moved through the data plane.
    pub fn regional(database: DatabaseSetup, routing: RecordRouting) -> Self {
        Self {
            database,
            routing,
            switch: SwitchSetup::HealthCheck,
            quorum: true,
            pace: crate::pace::Pace::compressed(),
            third_region: false,
        }
    }

    /// What these options change in a region's configuration after the templates are
    /// deployed, as an operator would with `UpdateFunctionConfiguration`: nothing for
    /// [`WorldOptions::regional`].
    pub fn operator_changes(&self, settings: &mut Settings, arc: Option<&super::arc::ArcCluster>) {
        if !self.quorum {
            settings.triggers = vec![FailoverTrigger {
                alarm_name: PRIMARY_ALARM.to_string(),
                primary_region: PRIMARY_REGION.to_string(),
                standby_region: STANDBY_REGION.to_string(),
                tier: Tier::Critical,
                vantage_alarms: Vec::new(),
                quorum: None,
                standby_candidates: Vec::new(),
            }];
        }
        match (self.switch, arc) {
            (SwitchSetup::Weights, _) => settings.traffic_switch = TrafficSwitchConfig::Weights {},
            (SwitchSetup::ArcRoutingControl, Some(arc)) => {
                settings.traffic_switch = TrafficSwitchConfig::ArcRoutingControl {
                    endpoints: arc
                        .endpoints()
                        .into_iter()
                        .map(
                            |(region, url)| hapilot_adapters::traffic_switch::ArcEndpoint {
                                region,
                                url,
                            },
                        )
                        .collect(),
                    controls: [PRIMARY_SET, STANDBY_SET]
                        .iter()
                        .map(|set| (set.to_string(), routing_control_arn(set)))
                        .collect(),
                }
            }
            _ => {}
        }
    }
}

/// eu-west-1 as a second secondary: its gateway and its Patroni member.
pub struct ThirdRegion {
    /// Its gateway.
    pub gateway: SimulatedGateway,
    /// Its database, a replica of the primary's.
    pub database: ThirdDatabase,
    /// Its Kubernetes API (the gateway's deployments, warm at two of each).
    pub kube: SimulatedKubernetes,
    /// Its Vault, a performance secondary of the primary's.
    pub vault: SimulatedVault,
}

impl ThirdRegion {
    /// Its Patroni member, in the Patroni setup.
    pub fn patroni_member(&self) -> Option<&SimulatedPatroni> {
        match &self.database {
            ThirdDatabase::Patroni(member) => Some(member),
            ThirdDatabase::Postgres(_) => None,
        }
    }
}

/// The second secondary's database.
pub enum ThirdDatabase {
    /// A Patroni member of the cluster (the Patroni setup).
    Patroni(SimulatedPatroni),
    /// A real PostgreSQL server streaming from the primary (the postgres setup; the same
    /// server as the pair's `third`).
    Postgres(super::postgres::PostgresServer),
}

/// How a region's functions reach a local Redis pair: over TLS, verified against the master's
/// own CA (as ElastiCache with in-transit encryption is reached), with its Sentinels.
fn redis_target(pair: &super::redis::RedisPair) -> hapilot_adapters::redis::RedisTarget {
    hapilot_adapters::redis::RedisTarget {
        address: pair
            .master
            .tls_url()
            .unwrap_or_else(|| pair.master.address()),
        ca_pem: pair.master.ca_pem(),
        password: Default::default(),
        sentinel: Some(hapilot_adapters::redis::SentinelTarget {
            addresses: pair.sentinel_addresses(),
            master_name: super::redis::SENTINEL_MASTER.to_string(),
            password: Default::default(),
        }),
    }
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

/// The name of `region`'s gateway endpoint (its NLB's DNS name), what the template's health
/// checks probe and the records point at.
pub fn endpoint_host(region: &str) -> String {
    format!("gateway.{region}.internal")
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

/// The TTL of the global name's records: an alias to a load balancer answers with 60 s.
pub const RECORD_TTL_SECONDS: i64 = 60;

/// The secrets `infra/parameters/local.json` names.
pub const SECRET_REGIONS: &str = "hapilot/regions";
/// See [`SECRET_REGIONS`].
pub const SECRET_DATABASE: &str = "hapilot/database";
/// See [`SECRET_REGIONS`].
pub const SECRET_KUBERNETES: &str = "hapilot/kubernetes";
/// See [`SECRET_REGIONS`].
pub const SECRET_VAULT: &str = "hapilot/vault";
/// See [`SECRET_REGIONS`].
pub const SECRET_CANARY: &str = "hapilot/canary";

/// The ARN of alarm `name` in `region` on the local stack.
pub fn alarm_arn(region: &str, name: &str) -> String {
    format!(
        "arn:aws:cloudwatch:{region}:{}:alarm:{name}",
        hapilot_adapters::sdk::LOCAL_ACCOUNT_ID
    )
}

/// Everything of one local two-region deployment; stops what it started when dropped.
pub struct LocalDeployment {
    /// The primary region's gateway.
    pub primary: SimulatedGateway,
    /// The standby region's gateway.
    pub standby: SimulatedGateway,
    /// The global name.
    pub global: GlobalRouter,
    /// The primary region's Kubernetes API.
    pub primary_kube: SimulatedKubernetes,
    /// The standby region's Kubernetes API.
    pub standby_kube: SimulatedKubernetes,
    /// The databases.
    pub databases: Databases,
    /// Prometheus over both regions' traffic (the default canary metrics provider).
    pub prometheus: LocalPrometheus,
    /// The load balancers' CloudWatch metrics (the other provider).
    pub lb_metrics: LoadBalancerMetrics,
    /// The hosted zone of the global name.
    pub zone_id: String,
    /// The notification topic.
    pub topic_arn: String,
    /// The functions' configuration (also handed to the stack).
    pub settings: Settings,
    /// The standby (DR) region's Vault: a performance secondary of the primary's.
    pub vault: SimulatedVault,
    /// The primary region's Vault: the performance primary.
    pub primary_vault: SimulatedVault,
    /// The standby region's scratch Vault for restore tests: no replication, no secrets but
    /// what a snapshot restores.
    pub scratch_vault: SimulatedVault,
    /// eu-west-1 as a second secondary, with [`WorldOptions::third_region`].
    pub third: Option<ThirdRegion>,
    /// The standby's Redis master and replica (None without redis-server).
    pub redis: Option<super::redis::RedisPair>,
    /// The second secondary's Redis, with [`WorldOptions::third_region`] (None without
    /// redis-server).
    pub third_redis: Option<super::redis::RedisPair>,
    /// Route53's health checkers' view, shared by the resolver and the data plane loop.
    pub checkers: std::sync::Arc<super::data_plane::HealthCheckers>,
    /// What was built.
    pub options: WorldOptions,
    /// Each region's configuration (the standby's and witness's differ from the primary's).
    pub region_settings: BTreeMap<String, Settings>,
    /// The stand-in ARC cluster, when the world's switch is ARC routing controls.
    pub arc: Option<super::arc::ArcCluster>,
    /// What the templates deployed, by region.
    pub templates: super::template::world::TemplateDeployment,
    /// The on-call operator's IAM login (user `oncall`, the stacks' `OperatorPolicy` attached,
    /// listed in their `Approvers`).
    pub operator: OperatorLogin,
}

/// An IAM user's access key, as an operator's shell holds it.
#[derive(Debug, Clone)]
pub struct OperatorLogin {
    /// The user's ARN.
    pub arn: String,
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
}

/// The IAM user the local world's operator signs in as.
pub const OPERATOR_USER: &str = "oncall";

/// Creates the operator's IAM user with the `OperatorPolicy` of every deployed stack that has
/// one, and an access key.
async fn create_operator(
    stack: &LocalStack,
    templates: &super::template::world::TemplateDeployment,
) -> Result<OperatorLogin, LocalError> {
    let iam = aws_sdk_iam::Client::new(&stack.observer_config(PRIMARY_REGION));
    let user = iam
        .create_user()
        .user_name(OPERATOR_USER)
        .send()
        .await
        .map_err(LocalError::aws("CreateUser"))?;
    for deployed in templates.stacks.values() {
        if let Some(policy) = deployed.refs.get("OperatorPolicy").and_then(|v| v.as_str()) {
            iam.attach_user_policy()
                .user_name(OPERATOR_USER)
                .policy_arn(policy)
                .send()
                .await
                .map_err(LocalError::aws("AttachUserPolicy"))?;
        }
    }
    let key = iam
        .create_access_key()
        .user_name(OPERATOR_USER)
        .send()
        .await
        .map_err(LocalError::aws("CreateAccessKey"))?;
    let key = key
        .access_key()
        .ok_or_else(|| LocalError::Invalid("CreateAccessKey answered without a key".into()))?;
    Ok(OperatorLogin {
        arn: user.user().map(|u| u.arn().to_string()).unwrap_or_default(),
        access_key_id: key.access_key_id().to_string(),
        secret_access_key: key.secret_access_key().to_string(),
    })
}

impl LocalDeployment {
    /// Builds the deployment on `stack` and configures the stack's functions for it.
    pub async fn create(stack: &LocalStack, database: DatabaseSetup) -> Result<Self, LocalError> {
        Self::create_with(stack, WorldOptions::classic(database)).await
    }

    /// Builds the deployment `options` describe, the templates deployed from the repository's
    /// `infra/parameters/local.json`.
    pub async fn create_with(
        stack: &LocalStack,
        options: WorldOptions,
    ) -> Result<Self, LocalError> {
        Self::create_from(stack, options, &super::template::local_parameters_file()).await
    }

    /// Builds the deployment `options` describe, deploying the stacks of the parameters file
    /// at `parameters` (its templates relative to the file's `infra/` directory).
    pub async fn create_from(
        stack: &LocalStack,
        options: WorldOptions,
        parameters: &std::path::Path,
    ) -> Result<Self, LocalError> {
        let database = options.database;
        let sdk = stack.sdk_config();
        let io = |what: &str| LocalError::io(what.to_string());
        let primary = SimulatedGateway::start(PRIMARY_REGION)
            .await
            .map_err(io("starting a gateway"))?;
        let standby = SimulatedGateway::start(STANDBY_REGION)
            .await
            .map_err(io("starting a gateway"))?;
        if options.third_region && database == DatabaseSetup::Cloudnativepg {
            return Err(LocalError::Invalid(
                "a third region runs on the Patroni or postgres setup (the CloudNativePG stand-in manages two clusters)"
                    .into(),
            ));
        }
        if options.third_region && options.switch == SwitchSetup::ArcRoutingControl {
            return Err(LocalError::Invalid(
                "a third region needs the weights or health-check switch (the ARC cluster has two controls)".into(),
            ));
        }
        let third = match options.third_region {
            true => Some(
                SimulatedGateway::start(WITNESS_REGION)
                    .await
                    .map_err(io("starting a gateway"))?,
            ),
            false => None,
        };
        // The gateway workloads as the HA document deploys them: spread over three zones, with
        // PDBs and probes; the warm standby runs two of each (its failover scale is 5 and 3).
        let primary_kube = SimulatedKubernetes::start_in(
            KUBE_TOKEN,
            NAMESPACE,
            &[("litellm", 3), ("agentgateway", 3), ("vllm", 2)],
            PRIMARY_REGION,
        )
        .await
        .map_err(io("starting a Kubernetes API"))?;
        let standby_kube = SimulatedKubernetes::start_in(
            KUBE_TOKEN,
            NAMESPACE,
            &[("litellm", 2), ("agentgateway", 2), ("vllm", 2)],
            STANDBY_REGION,
        )
        .await
        .map_err(io("starting a Kubernetes API"))?;
        let faults = stack.faults();
        primary_kube.attach_faults(faults.clone(), PRIMARY_REGION);
        standby_kube.attach_faults(faults.clone(), STANDBY_REGION);
        // The second secondary is warm like the first: two of each, scaled up by a failover
        // that chooses it.
        let third_kube = match third.is_some() {
            true => {
                let kube = SimulatedKubernetes::start_in(
                    KUBE_TOKEN,
                    NAMESPACE,
                    &[("litellm", 2), ("agentgateway", 2), ("vllm", 2)],
                    WITNESS_REGION,
                )
                .await
                .map_err(io("starting a Kubernetes API"))?;
                kube.attach_faults(faults.clone(), WITNESS_REGION);
                Some(kube)
            }
            false => None,
        };
        // The standby's Redis with its replica, when redis-server is installed (readiness reads
        // it; scripts/ensure-redis installs it).
        let redis = match super::redis::RedisPair::start().await {
            Ok(pair) => Some(pair),
            Err(e) => {
                tracing::warn!(error = %e, "no Redis in the local world");
                None
            }
        };
        let third_redis = match (&third, &redis) {
            (Some(_), Some(_)) => super::redis::RedisPair::start().await.ok(),
            _ => None,
        };
        let mut third_member = None;
        let databases = match database {
            DatabaseSetup::Patroni => {
                let member = |name: &'static str, leader: bool| async move {
                    let m = SimulatedPatroni::start(name, leader)
                        .await
                        .map_err(io("starting Patroni"))?;
                    // As deployed: restapi.authentication on, so every promotion the tests
                    // drive goes through the basic auth the functions are configured with.
                    m.require_basic_auth(PATRONI_USER, PATRONI_PASSWORD);
                    Ok::<_, LocalError>(m)
                };
                let (primary, standby) = (
                    member("pg-east", true).await?,
                    member("pg-west", false).await?,
                );
                primary.join(&standby);
                primary.attach_faults(faults.clone(), PRIMARY_REGION);
                standby.attach_faults(faults.clone(), STANDBY_REGION);
                if third.is_some() {
                    let eu = member(THIRD_MEMBER, false).await?;
                    eu.join(&primary);
                    eu.join(&standby);
                    eu.attach_faults(faults.clone(), WITNESS_REGION);
                    third_member = Some(eu);
                }
                Databases::Patroni { primary, standby }
            }
            DatabaseSetup::Postgres | DatabaseSetup::Cloudnativepg => {
                let with_third = third.is_some();
                let pair = tokio::task::spawn_blocking(move || {
                    let mut pair = PostgresPair::start()?;
                    if with_third {
                        pair.start_third_replica()?;
                    }
                    Ok::<_, LocalError>(pair)
                })
                .await
                .map_err(|e| LocalError::io("starting PostgreSQL")(std::io::Error::other(e)))??;
                let (old, new) = pair.nodes();
                let agents = (
                    PostgresAgent::start(old)
                        .await
                        .map_err(io("starting a host agent"))?,
                    PostgresAgent::start(new)
                        .await
                        .map_err(io("starting a host agent"))?,
                );
                let scratch_node = pair.scratch_node()?;
                let scratch_agent = PostgresAgent::start(scratch_node.clone())
                    .await
                    .map_err(io("starting a host agent"))?;
                let dr_node = pair.dr_node()?;
                let dr_agent = PostgresAgent::start(dr_node.clone())
                    .await
                    .map_err(io("starting a host agent"))?;
                let operator = (database == DatabaseSetup::Cloudnativepg).then(|| {
                    let (east, west) = pair.nodes();
                    for (kube, name) in [
                        (&primary_kube, CNPG_CLUSTERS.0),
                        (&standby_kube, CNPG_CLUSTERS.1),
                    ] {
                        kube.put_cnpg_cluster(cnpg_resource(name, CNPG_CLUSTERS.0));
                    }
                    super::cnpg::CnpgOperator::start(vec![
                        super::cnpg::ManagedCluster {
                            name: CNPG_CLUSTERS.0.into(),
                            node: east,
                            resources: primary_kube.cnpg_resources(),
                            role: super::cnpg::Applied::Primary,
                        },
                        super::cnpg::ManagedCluster {
                            name: CNPG_CLUSTERS.1.into(),
                            node: west,
                            resources: standby_kube.cnpg_resources(),
                            role: super::cnpg::Applied::Replica,
                        },
                    ])
                });
                Databases::Postgres {
                    pair: Box::new(pair),
                    agents,
                    dr: Box::new((dr_node, dr_agent)),
                    scratch: Box::new((scratch_node, scratch_agent)),
                    operator,
                    fronts: Fronts::default(),
                }
            }
        };
        let (primary_db, standby_db, third_db) = match &databases {
            Databases::Patroni { primary, standby } => (
                DatabaseTarget::Patroni {
                    url: primary.url(),
                    member: primary.name(),
                    ca_file: None,
                    auth: Some(patroni_auth()),
                    // The simulated members have no SQL behind them.
                    dsn: None,
                },
                DatabaseTarget::Patroni {
                    url: standby.url(),
                    member: standby.name(),
                    ca_file: None,
                    auth: Some(patroni_auth()),
                    // The simulated members have no SQL behind them.
                    dsn: None,
                },
                third_member.as_ref().map(|member| DatabaseTarget::Patroni {
                    url: member.url(),
                    member: member.name(),
                    ca_file: None,
                    auth: Some(patroni_auth()),
                    dsn: None,
                }),
            ),
            // The functions reach the pair as they would RDS: URI DSNs, TLS verified fully
            // against the pair's CA.
            Databases::Postgres {
                pair,
                operator: Some(_),
                ..
            } => {
                let cluster = |kube: &SimulatedKubernetes, name: &str, dsn: String| {
                    DatabaseTarget::Cloudnativepg {
                        kubernetes: KubernetesTarget {
                            url: kube.url(),
                            token: KUBE_TOKEN.into(),
                            namespace: NAMESPACE.into(),
                            ca_file: None,
                        },
                        cluster: name.into(),
                        dsn: dsn.into(),
                    }
                };
                (
                    cluster(
                        &primary_kube,
                        CNPG_CLUSTERS.0,
                        pair.primary.verified_dsn(&pair.ca_file()),
                    ),
                    cluster(
                        &standby_kube,
                        CNPG_CLUSTERS.1,
                        pair.replica.verified_dsn(&pair.ca_file()),
                    ),
                    None,
                )
            }
            Databases::Postgres {
                pair,
                agents,
                fronts,
                ..
            } => {
                // The functions reach each server through a front where faults act on their
                // connections (`hapilot local fault --service postgres`).
                let front = async |node: &super::postgres::PostgresServer, region: &str| {
                    let backend = std::net::SocketAddr::from(([127, 0, 0, 1], node.port()));
                    let (addr, task) =
                        super::faults::tcp_front(faults.clone(), region, "postgres", backend)
                            .await
                            .map_err(io("starting a PostgreSQL front"))?;
                    fronts.keep(task);
                    Ok::<_, LocalError>(node.verified_dsn_at(addr.port(), &pair.ca_file()))
                };
                let (primary_dsn, standby_dsn) = (
                    front(&pair.primary, PRIMARY_REGION).await?,
                    front(&pair.replica, STANDBY_REGION).await?,
                );
                (
                    DatabaseTarget::Postgres {
                        dsn: primary_dsn.into(),
                        agent_url: Some(agents.0.url()),
                    },
                    DatabaseTarget::Postgres {
                        dsn: standby_dsn.into(),
                        agent_url: Some(agents.1.url()),
                    },
                    match &pair.third {
                        Some(server) => Some(DatabaseTarget::Postgres {
                            dsn: front(server, WITNESS_REGION).await?.into(),
                            agent_url: None,
                        }),
                        None => None,
                    },
                )
            }
        };

        let route53 = aws_sdk_route53::Client::new(sdk);
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
        let checkers = std::sync::Arc::new(super::data_plane::HealthCheckers::default());
        // The template's health checks probe https://<endpoint host>:443/health; each name
        // resolves, as an NLB's DNS name would, to its simulated gateway on loopback.
        let mut hosts = BTreeMap::from([
            (endpoint_host(PRIMARY_REGION), origin(&primary.health_url())),
            (endpoint_host(STANDBY_REGION), origin(&standby.health_url())),
        ]);
        let mut targets = BTreeMap::from([
            (PRIMARY_SET.to_string(), primary.health_url()),
            (STANDBY_SET.to_string(), standby.health_url()),
        ]);
        if let Some(eu) = &third {
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
        .map_err(io("starting the global router"))?;

        let mut scraped = vec![primary.metrics_target(), standby.metrics_target()];
        scraped.extend(third.iter().map(|eu| eu.metrics_target()));
        let prometheus = LocalPrometheus::start(&scraped).await?;
        prometheus.require_authorization(&format!("Bearer {PROMETHEUS_TOKEN}"));
        let mut balancers = BTreeMap::from([
            (
                PRIMARY_REGION.to_string(),
                (load_balancer(PRIMARY_REGION), primary.traffic()),
            ),
            (
                STANDBY_REGION.to_string(),
                (load_balancer(STANDBY_REGION), standby.traffic()),
            ),
        ]);
        if let Some(eu) = &third {
            balancers.insert(
                WITNESS_REGION.to_string(),
                (load_balancer(WITNESS_REGION), eu.traffic()),
            );
        }
        let lb_metrics = LoadBalancerMetrics::start(sdk, balancers);
        // Vault Enterprise with performance replication, as the HA document runs it: the
        // primary region's cluster is the primary, the standby's its secondary.
        let primary_vault = SimulatedVault::start_primary(VAULT_TOKEN)
            .await
            .map_err(io("starting Vault"))?;
        let vault = SimulatedVault::start_secondary_of(&primary_vault, STANDBY_REGION, VAULT_TOKEN)
            .await
            .map_err(io("starting Vault"))?;
        let scratch_vault = SimulatedVault::start_scratch(SCRATCH_VAULT_TOKEN)
            .await
            .map_err(io("starting the scratch Vault"))?;
        // The second secondary's cluster is a performance secondary of the primary too.
        let third_vault = match third.is_some() {
            true => Some(
                SimulatedVault::start_secondary_of(&primary_vault, WITNESS_REGION, VAULT_TOKEN)
                    .await
                    .map_err(io("starting Vault"))?,
            ),
            false => None,
        };
        for bucket in [BACKUP_BUCKET, DR_BACKUP_BUCKET] {
            hapilot_adapters::sdk::s3(sdk)
                .create_bucket()
                .bucket(bucket)
                .send()
                .await
                .map_err(LocalError::aws("CreateBucket"))?;
        }
        let region = |gateway: &SimulatedGateway,
                      set: &str,
                      db: DatabaseTarget,
                      kube: &SimulatedKubernetes| RegionConfig {
            health_url: gateway.health_url(),
            set_identifier: set.to_string(),
            database: Some(db),
            kubernetes: Some(KubernetesTarget {
                ca_file: None,
                url: kube.url(),
                token: KUBE_TOKEN.into(),
                namespace: NAMESPACE.to_string(),
            }),
            vault: None,
            redis: None,
            restore: None,
            restore_test: None,
            restore_test_vault: None,
        };
        let vault_target = |vault: &SimulatedVault| hapilot_adapters::vault::VaultTarget {
            ca_file: None,
            url: vault.url(),
            token: VAULT_TOKEN.into(),
            performance_replication: true,
            known_secret: Some(super::vault::GATEWAY_SECRET.to_string()),
        };
        let regions = BTreeMap::from([
            (
                PRIMARY_REGION.to_string(),
                RegionConfig {
                    vault: Some(vault_target(&primary_vault)),
                    ..region(&primary, PRIMARY_SET, primary_db, &primary_kube)
                },
            ),
            (
                STANDBY_REGION.to_string(),
                RegionConfig {
                    vault: Some(vault_target(&vault)),
                    restore: match &databases {
                        Databases::Postgres { dr, .. } => {
                            Some(hapilot_adapters::restore::RestoreDatabaseTarget::Postgres {
                                agent_url: dr.1.url(),
                                dsn: dr.0.server.dsn().into(),
                            })
                        }
                        Databases::Patroni { .. } => None,
                    },
                    restore_test: match &databases {
                        Databases::Postgres { scratch, .. } => {
                            Some(hapilot_adapters::restore::RestoreDatabaseTarget::Postgres {
                                agent_url: scratch.1.url(),
                                dsn: scratch.0.server.dsn().into(),
                            })
                        }
                        Databases::Patroni { .. } => None,
                    },
                    redis: redis.as_ref().map(redis_target),
                    // Its token comes from the Vault secret (`us-west-2.restore_test`).
                    restore_test_vault: Some(hapilot_adapters::vault::VaultTarget {
                        performance_replication: false,
                        token: "".into(),
                        ..vault_target(&scratch_vault)
                    }),
                    ..region(&standby, STANDBY_SET, standby_db, &standby_kube)
                },
            ),
        ]);
        // The second secondary: a gateway, a replica (a Patroni member or a PostgreSQL
        // server), its Kubernetes API, Vault and Redis.
        let mut regions = regions;
        if let (Some(eu), Some(database), Some(kube)) = (&third, &third_db, &third_kube) {
            regions.insert(
                WITNESS_REGION.to_string(),
                RegionConfig {
                    vault: third_vault.as_ref().map(vault_target),
                    redis: third_redis.as_ref().map(redis_target),
                    ..region(eu, THIRD_SET, database.clone(), kube)
                },
            );
        }
        // The secrets the templates name, as the operator creates them before deploying (in
        // every region: each region's functions read their own region's copy).
        let regions_json = serde_json::to_string(&regions)
            .map_err(|e| LocalError::Invalid(format!("the regions' configuration: {e}")))?;
        let canary_auth = serde_json::json!({"kind": "bearer", "token": PROMETHEUS_TOKEN});
        let vault_secret = serde_json::json!({
            format!("{STANDBY_REGION}.restore_test"): SCRATCH_VAULT_TOKEN
        })
        .to_string();
        for r in stack.regions() {
            for (name, text) in [
                (SECRET_REGIONS, regions_json.as_str()),
                (SECRET_DATABASE, "{}"),
                (SECRET_KUBERNETES, "{}"),
                (SECRET_VAULT, vault_secret.as_str()),
                (SECRET_CANARY, &canary_auth.to_string()),
            ] {
                super::template::world::put_secret(stack, &r, name, text).await?;
            }
        }
        let mut canary = prometheus_source(&prometheus.url());
        if let TrafficSource::Prometheus { auth, .. } = &mut canary {
            // The token comes from the canary secret, as deployed.
            *auth = None;
        }
        let world_values = BTreeMap::from([
            ("hosted_zone_id".to_string(), zone_id.clone()),
            ("global_health_url".to_string(), global.health_url()),
            (
                "canary_provider".to_string(),
                serde_json::to_string(&canary)
                    .map_err(|e| LocalError::Invalid(format!("the canary provider: {e}")))?,
            ),
            (
                "failover_input_defaults".to_string(),
                options.pace.failover_input_defaults().to_string(),
            ),
            (
                "third_set_identifier".to_string(),
                if third.is_some() {
                    THIRD_SET.to_string()
                } else {
                    String::new()
                },
            ),
            (
                "third_endpoint_host".to_string(),
                if third.is_some() {
                    endpoint_host(WITNESS_REGION)
                } else {
                    String::new()
                },
            ),
        ]);
        let templates =
            super::template::world::deploy_templates(stack, parameters, &world_values).await?;

        // The records of the global name, each carrying the check the switch needs (the
        // template's outputs are what the operator attaches them to).
        let mut changes = Vec::new();
        for (set, gateway, weight) in [(PRIMARY_SET, &primary, 100), (STANDBY_SET, &standby, 0)] {
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
                    templates
                        .stack(STANDBY_REGION)?
                        .outputs
                        .get(output)
                        .cloned()
                        .ok_or_else(|| {
                            LocalError::Invalid(format!(
                                "the {STANDBY_REGION} stack has no output {output}"
                            ))
                        })?
                }
                SwitchSetup::ArcRoutingControl => {
                    routing_control_check(&route53, set, &endpoint_check).await?
                }
            };
            changes.push(record_change(
                set,
                gateway.region(),
                weight,
                options.routing,
                Some(record_check),
            )?);
        }
        if third.is_some() {
            // Its check where the emergency path moves traffic through health checks; none
            // where weights move it (the primary's stack has endpoint checks for two records).
            let check = match options.switch {
                SwitchSetup::HealthCheck => Some(
                    templates
                        .stack(STANDBY_REGION)?
                        .outputs
                        .get("ThirdRecordHealthCheckId")
                        .cloned()
                        .ok_or_else(|| {
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
        route53
            .change_resource_record_sets()
            .hosted_zone_id(&zone_id)
            .change_batch(
                ChangeBatch::builder()
                    .set_changes(Some(changes))
                    .build()
                    .map_err(LocalError::aws("ChangeResourceRecordSets"))?,
            )
            .send()
            .await
            .map_err(LocalError::aws("ChangeResourceRecordSets"))?;

        // Each region's functions, configured from what its template set.
        let mut region_settings = BTreeMap::new();
        for (r, deployed) in &templates.stacks {
            stack.adopt(deployed).await?;
            let mut own = super::template::world::region_settings(stack, deployed).await?;
            options.operator_changes(&mut own, arc.as_ref());
            stack.configure_region(r, own.clone())?;
            region_settings.insert(r.clone(), own);
        }
        let settings = region_settings
            .get(PRIMARY_REGION)
            .cloned()
            .ok_or_else(|| LocalError::Invalid(format!("no stack in {PRIMARY_REGION}")))?;
        let topic_arn = settings.topic_arn.clone().unwrap_or_default();
        let operator = create_operator(stack, &templates).await?;
        Ok(Self {
            third: third
                .zip(match (third_member, &databases) {
                    (Some(member), _) => Some(ThirdDatabase::Patroni(member)),
                    (None, Databases::Postgres { pair, .. }) => {
                        pair.third.clone().map(ThirdDatabase::Postgres)
                    }
                    _ => None,
                })
                .zip(third_kube.zip(third_vault))
                .map(|((gateway, database), (kube, vault))| ThirdRegion {
                    gateway,
                    database,
                    kube,
                    vault,
                }),
            operator,
            prometheus,
            lb_metrics,
            primary,
            standby,
            global,
            primary_kube,
            standby_kube,
            databases,
            zone_id,
            topic_arn,
            settings,
            vault,
            primary_vault,
            scratch_vault,
            redis,
            third_redis,
            checkers,
            options,
            region_settings,
            arc,
            templates,
        })
    }

    /// `region`'s approval function URL (its stack's `ApprovalUrl` output).
    pub fn approval_url(&self, region: &str) -> Option<String> {
        self.templates
            .stacks
            .get(region)?
            .outputs
            .get("ApprovalUrl")
            .cloned()
    }

    /// What an operator's shell sets to answer approvals in `region` as [`OPERATOR_USER`]:
    /// its credentials and the approval URL.
    pub fn operator_env(&self, region: &str) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "AWS_ACCESS_KEY_ID".to_string(),
                self.operator.access_key_id.clone(),
            ),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                self.operator.secret_access_key.clone(),
            ),
        ];
        if let Some(url) = self.approval_url(region) {
            env.push(("HAPILOT_APPROVAL_URL".to_string(), url));
        }
        env
    }

    /// The DR drill's data check as the deployed standby stack sets it (`DrillDataTable`,
    /// `DrillDataColumn`: LiteLLM's `LiteLLM_SpendLogs`.`startTime` unless the parameters file
    /// says otherwise): (table, column).
    pub fn drill_data_check(&self) -> Result<(String, String), LocalError> {
        let stack = self.templates.stack(STANDBY_REGION)?;
        let parameter = |name: &str| {
            stack
                .parameters
                .get(name)
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| LocalError::Invalid(format!("the standby's stack has no {name}")))
        };
        Ok((parameter("DrillDataTable")?, parameter("DrillDataColumn")?))
    }

    /// Applies a change to every region's functions (kill switch, cool-down, ...), as an
    /// operator would to each region's stack; what differs between regions stays.
    pub fn reconfigure(
        &mut self,
        stack: &LocalStack,
        change: impl Fn(&mut Settings),
    ) -> Result<(), LocalError> {
        change(&mut self.settings);
        for (region, own) in self.region_settings.iter_mut() {
            change(own);
            stack.configure_region(region, own.clone())?;
        }
        Ok(())
    }

    /// The operator's change that makes eu-west-1 (the world's third region) a candidate of
    /// the standby's alarm-driven failovers, after us-west-2 (`standby_candidates` of its
    /// `HAPILOT_FAILOVER_TRIGGERS`).
    pub fn offer_third_region_as_candidate(
        &mut self,
        stack: &LocalStack,
    ) -> Result<(), LocalError> {
        self.reconfigure_region(stack, STANDBY_REGION, |s| {
            for trigger in &mut s.triggers {
                trigger.standby_candidates = vec![WITNESS_REGION.into()];
            }
        })
    }

    /// The gateway serving `region`, if the world has one there.
    pub fn gateway_in(&self, region: &str) -> Option<&SimulatedGateway> {
        match region {
            PRIMARY_REGION => Some(&self.primary),
            STANDBY_REGION => Some(&self.standby),
            WITNESS_REGION => self.third.as_ref().map(|t| &t.gateway),
            _ => None,
        }
    }

    /// Changes one region's settings only (e.g. what its prober sees).
    pub fn reconfigure_region(
        &mut self,
        stack: &LocalStack,
        region: &str,
        change: impl FnOnce(&mut Settings),
    ) -> Result<(), LocalError> {
        let own = self.region_settings.get_mut(region).ok_or_else(|| {
            LocalError::io("reconfiguring a region")(std::io::Error::other(format!(
                "no region {region}"
            )))
        })?;
        change(own);
        stack.configure_region(region, own.clone())
    }

    /// Starts AWS's machinery the local world plays: Route53's health checkers, CloudWatch's
    /// evaluation of hapilot's alarms, the probers' schedule in the standby and witness
    /// regions, and EventBridge's delivery of the vantage alarms' changes to the standby's
    /// alarm router. `tick` stands for one 10-second period.
    pub fn start_data_plane(
        &self,
        stack: &LocalStack,
        tick: std::time::Duration,
    ) -> super::data_plane::DataPlane {
        let deliveries = if self.options.quorum {
            [
                alarm_arn(STANDBY_REGION, WATCH_ALARM),
                alarm_arn(WITNESS_REGION, WATCH_ALARM),
                alarm_arn(PRIMARY_REGION, PRIMARY_ALARM),
            ]
            .into_iter()
            .map(|arn| (arn, STANDBY_REGION.to_string()))
            .collect()
        } else {
            BTreeMap::from([(
                alarm_arn(PRIMARY_REGION, PRIMARY_ALARM),
                STANDBY_REGION.to_string(),
            )])
        };
        super::data_plane::DataPlane::start(
            stack.handle(),
            self.checkers.clone(),
            super::data_plane::DataPlaneOptions {
                tick,
                probe_timeout: std::time::Duration::from_millis(500),
                watchers: if self.options.quorum {
                    vec![STANDBY_REGION.to_string(), WITNESS_REGION.to_string()]
                } else {
                    Vec::new()
                },
                deliveries,
            },
        )
    }

    /// Which SetIdentifier the global name answers a client in `region` now (Route53's data
    /// plane, as the local stack plays it).
    pub async fn dns_answer(
        &self,
        stack: &LocalStack,
        region: &str,
    ) -> Result<Option<String>, LocalError> {
        let handle = stack.handle();
        let observer = move |r: &str| handle.observer_config(r);
        super::data_plane::answer(
            &observer,
            &self.checkers,
            &self.zone_id,
            RECORD_NAME,
            region,
        )
        .await
    }

    /// The current weights of the global name: SetIdentifier -> weight.
    pub async fn weights(&self, stack: &LocalStack) -> Result<BTreeMap<String, i64>, LocalError> {
        let sets = aws_sdk_route53::Client::new(stack.sdk_config())
            .list_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .send()
            .await
            .map_err(LocalError::aws("ListResourceRecordSets"))?;
        Ok(sets
            .resource_record_sets()
            .iter()
            .filter_map(|r| Some((r.set_identifier()?.to_string(), r.weight()?)))
            .collect())
    }

    /// Sets the global name's weights (e.g. to the state after a failover).
    pub async fn set_weights(
        &self,
        stack: &LocalStack,
        weights: &[(&str, i64)],
    ) -> Result<(), LocalError> {
        use hapilot_adapters::dns::Dns;
        let weights: Vec<(String, i64)> =
            weights.iter().map(|(s, w)| (s.to_string(), *w)).collect();
        hapilot_adapters::dns::Route53Dns::from_sdk(stack.sdk_config())
            .set_weights(&self.zone_id, RECORD_NAME, &weights, "local deployment")
            .await
            .map(|_| ())
            .map_err(|e| LocalError::Aws {
                operation: "ChangeResourceRecordSets",
                detail: e.to_string(),
            })
    }

    /// Reads canary traffic from the load balancers' CloudWatch metrics instead of Prometheus.
    pub fn use_cloudwatch_traffic(&mut self, stack: &LocalStack) -> Result<(), LocalError> {
        self.reconfigure(stack, |s| {
            s.canary_provider = Some(TrafficSource::Cloudwatch {
                namespace: LB_NAMESPACE.to_string(),
                request_metric: "RequestCount".to_string(),
                error_metric: "HTTPCode_Target_5XX_Count".to_string(),
                dimensions: [PRIMARY_REGION, STANDBY_REGION]
                    .iter()
                    .map(|r| {
                        (
                            r.to_string(),
                            BTreeMap::from([("LoadBalancer".to_string(), load_balancer(r))]),
                        )
                    })
                    .collect(),
            })
        })
    }

    /// Whether the probers of the standby and the witness both see the primary up (their
    /// watch alarms `OK`), read straight from moto.
    pub async fn vantage_points_see_primary_up(
        &self,
        stack: &LocalStack,
    ) -> Result<bool, LocalError> {
        for region in [STANDBY_REGION, WITNESS_REGION] {
            let alarms = aws_sdk_cloudwatch::Client::new(&stack.observer_config(region))
                .describe_alarms()
                .alarm_names(WATCH_ALARM)
                .send()
                .await
                .map_err(LocalError::aws("DescribeAlarms"))?;
            let ok = alarms
                .metric_alarms()
                .first()
                .and_then(|a| a.state_value())
                .is_some_and(|s| s.as_str() == "OK");
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Sets the primary's alarm state in CloudWatch (moto never evaluates alarms itself).
    pub async fn set_alarm(
        &self,
        stack: &LocalStack,
        state: &str,
        reason: &str,
    ) -> Result<(), LocalError> {
        aws_sdk_cloudwatch::Client::new(stack.sdk_config())
            .set_alarm_state()
            .alarm_name(PRIMARY_ALARM)
            .state_value(aws_sdk_cloudwatch::types::StateValue::from(state))
            .state_reason(reason)
            .send()
            .await
            .map_err(LocalError::aws("SetAlarmState"))?;
        Ok(())
    }
}

/// The EventBridge "CloudWatch Alarm State Change" event for `alarm` going OK -> `state` at
/// `at` (RFC 3339), as EventBridge delivers it to the alarm router.
pub fn alarm_event(alarm: &str, state: &str, at: &str) -> serde_json::Value {
    serde_json::json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": at,
        "region": PRIMARY_REGION,
        "resources": [format!("arn:aws:cloudwatch:{PRIMARY_REGION}:123456789012:alarm:{alarm}")],
        "detail": {
            "alarmName": alarm,
            "state": { "value": state, "reason": "Threshold Crossed: 3 datapoints were less than the threshold (1.0).", "timestamp": at },
            "previousState": { "value": if state == "ALARM" { "OK" } else { "ALARM" }, "reason": "", "timestamp": at },
            "configuration": { "metrics": [] }
        }
    })
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
    checkers: &std::sync::Arc<super::data_plane::HealthCheckers>,
) -> Result<super::arc::ArcCluster, LocalError> {
    use super::arc_rules::{AssertionRule, ClusterState, RoutingControl};
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
    super::arc::ArcCluster::start(
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
        .add_tags(tag(super::data_plane::TAG_ROUTING_CONTROL, &arn))
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

/// The load balancer dimension value of a region's (simulated) ALB.
fn load_balancer(region: &str) -> String {
    format!("app/gateway-{region}/0123456789abcdef")
}

/// Patroni's `restapi.authentication` in the local world.
const PATRONI_USER: &str = "patroni";
const PATRONI_PASSWORD: &str = "local-patroni-password";
/// The token of the proxy in front of the local Prometheus.
const PROMETHEUS_TOKEN: &str = "local-prometheus-token";

fn patroni_auth() -> hapilot_adapters::http_client::HttpAuth {
    hapilot_adapters::http_client::HttpAuth::Basic {
        username: PATRONI_USER.into(),
        password: PATRONI_PASSWORD.into(),
    }
}

/// The DR drill schedule's name in the local world (the template's `DrDrillSchedule`,
/// `<stack>-dr-drill`).
pub const DRILL_SCHEDULE: &str = "hapilot-dr-drill";

/// Sets the DR drill schedule's `State` (`ENABLED` / `DISABLED`) in the primary's and the
/// standby's stack, as an operator does once the drill was rehearsed: the template's schedule
/// keeps its expression, target and input (UpdateSchedule replaces the whole schedule, so
/// they are read first and given back). Returns its name.
pub async fn put_drill_schedule(stack: &LocalStack, state: &str) -> Result<String, LocalError> {
    use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode, ScheduleState};
    for region in [PRIMARY_REGION, STANDBY_REGION] {
        let scheduler = aws_sdk_scheduler::Client::new(&stack.sdk_config_in(region));
        let found = scheduler
            .get_schedule()
            .name(DRILL_SCHEDULE)
            .send()
            .await
            .map_err(LocalError::aws("GetSchedule"))?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(LocalError::aws("UpdateSchedule"))?;
        scheduler
            .update_schedule()
            .name(DRILL_SCHEDULE)
            .set_schedule_expression(found.schedule_expression().map(str::to_string))
            .set_schedule_expression_timezone(
                found.schedule_expression_timezone().map(str::to_string),
            )
            .flexible_time_window(window)
            .set_target(found.target().cloned())
            .state(ScheduleState::from(state))
            .send()
            .await
            .map_err(LocalError::aws("UpdateSchedule"))?;
    }
    Ok(DRILL_SCHEDULE.to_string())
}

/// The inline policy [`deny_role_actions`] puts on a role.
const DENIAL_POLICY: &str = "hapilot-local-denial";

/// Takes `actions` away from the deployed role `role_arn` with an explicit `Deny` (what a
/// permission boundary or an SCP does to a template's role); with no actions, gives them back.
pub async fn deny_role_actions(
    stack: &LocalStack,
    role_arn: &str,
    actions: &[&str],
) -> Result<(), LocalError> {
    let iam = aws_sdk_iam::Client::new(stack.sdk_config());
    let name = role_arn.rsplit('/').next().unwrap_or(role_arn);
    if actions.is_empty() {
        let _ = iam
            .delete_role_policy()
            .role_name(name)
            .policy_name(DENIAL_POLICY)
            .send()
            .await;
        return Ok(());
    }
    iam.put_role_policy()
        .role_name(name)
        .policy_name(DENIAL_POLICY)
        .policy_document(
            serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny",
                "Action": actions, "Resource": "*"}]})
            .to_string(),
        )
        .send()
        .await
        .map_err(LocalError::aws("PutRolePolicy"))?;
    Ok(())
}

/// The Prometheus provider with the HA document's style of queries, through the bearer-token
/// proxy the local Prometheus sits behind.
fn prometheus_source(url: &str) -> TrafficSource {
    TrafficSource::Prometheus {
        url: url.to_string(),
        request_query: r#"sum(increase(http_requests_total{region="{region}"}[{window}]))"#
            .to_string(),
        error_query:
            r#"sum(increase(http_requests_total{region="{region}",status=~"5.."}[{window}]))"#
                .to_string(),
        ca_file: None,
        auth: Some(hapilot_adapters::http_client::HttpAuth::Bearer {
            token: PROMETHEUS_TOKEN.into(),
        }),
        // The gateways' own latency histogram; Prometheus scrapes every 250 ms, so a rate()
        // over one second has four points.
        latency: hapilot_adapters::traffic::LatencyQueries {
            preset: Some(hapilot_adapters::traffic::LatencyPreset::Http),
            rate_window_ms: 1_000,
            ..Default::default()
        },
    }
}
