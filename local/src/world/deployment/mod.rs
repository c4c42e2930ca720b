//! A complete two-region deployment on the local stack: what the drill fails over and what the
//! end-to-end tests exercise.
//!
//! Two simulated regional gateways (us-east-1 primary, us-west-2 standby), the global name as a
//! weighted Route53 record pair with health checks and a CloudWatch alarm on the primary's
//! check, the audit bucket, the notification topic, a Kubernetes API per region, a database per
//! region (a simulated Patroni cluster, or a real PostgreSQL streaming pair), and the functions'
//! configuration pointing at all of it.

use std::collections::BTreeMap;

use hapilot_core::alarm::FailoverTrigger;
use hapilot_core::tier::Tier;
use hapilot_functions::config::Settings;

use crate::LocalError;
use crate::LocalStack;
use crate::systems::agent::PostgresAgent;
use crate::systems::gateway::{GlobalRouter, SimulatedGateway};
use crate::systems::kubernetes::SimulatedKubernetes;
use crate::systems::patroni::SimulatedPatroni;
use crate::systems::postgres::PostgresPair;
use crate::systems::prometheus::LocalPrometheus;
use crate::systems::user_traffic::{LB_NAMESPACE, LoadBalancerMetrics};
use crate::systems::vault::SimulatedVault;
use hapilot_adapters::canary_metrics::TrafficSource;
use hapilot_adapters::traffic_switch::TrafficSwitchConfig;

mod configuration;
mod databases;
mod gateways;
mod observability;
mod operator;
mod routing;
mod vaults;

pub use operator::{
    DRILL_SCHEDULE, OPERATOR_USER, OperatorLogin, deny_role_actions, put_drill_schedule,
};
pub use routing::{arc_safety_rule, routing_control_arn};

/// One thing per region of the world: the primary's, the standby's and, with a third region,
/// the second secondary's.
pub(super) struct PerRegion<T> {
    pub primary: T,
    pub standby: T,
    pub third: Option<T>,
}

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
        dr: Box<(crate::systems::postgres::PostgresNode, PostgresAgent)>,
        /// The restore test's scratch server (laid down by a test, torn down after) in the
        /// standby region, and its agent.
        scratch: Box<(crate::systems::postgres::PostgresNode, PostgresAgent)>,
        /// The CloudNativePG operator stand-in, when the pair is run as replica clusters.
        operator: Option<crate::systems::cnpg::CnpgOperator>,
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
    pub pace: crate::world::pace::Pace,
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
            pace: crate::world::pace::Pace::compressed(),
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
            pace: crate::world::pace::Pace::compressed(),
            third_region: false,
        }
    }

    /// Refuses the combinations the local world cannot build, before anything starts.
    pub fn check(&self) -> Result<(), LocalError> {
        if self.third_region && self.database == DatabaseSetup::Cloudnativepg {
            return Err(LocalError::Invalid(
                "a third region runs on the Patroni or postgres setup (the CloudNativePG stand-in manages two clusters)"
                    .into(),
            ));
        }
        if self.third_region && self.switch == SwitchSetup::ArcRoutingControl {
            return Err(LocalError::Invalid(
                "a third region needs the weights or health-check switch (the ARC cluster has two controls)".into(),
            ));
        }
        Ok(())
    }

    /// What these options change in a region's configuration after the templates are
    /// deployed, as an operator would with `UpdateFunctionConfiguration`: nothing for
    /// [`WorldOptions::regional`].
    pub fn operator_changes(
        &self,
        settings: &mut Settings,
        arc: Option<&crate::aws::arc::ArcCluster>,
    ) {
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
    Postgres(crate::systems::postgres::PostgresServer),
}

/// The name of `region`'s gateway endpoint (its NLB's DNS name), what the template's health
/// checks probe and the records point at.
pub fn endpoint_host(region: &str) -> String {
    format!("gateway.{region}.internal")
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
    pub redis: Option<crate::systems::redis::RedisPair>,
    /// The second secondary's Redis, with [`WorldOptions::third_region`] (None without
    /// redis-server).
    pub third_redis: Option<crate::systems::redis::RedisPair>,
    /// Route53's health checkers' view, shared by the resolver and the data plane loop.
    pub checkers: std::sync::Arc<crate::aws::data_plane::HealthCheckers>,
    /// What was built.
    pub options: WorldOptions,
    /// Each region's configuration (the standby's and witness's differ from the primary's).
    pub region_settings: BTreeMap<String, Settings>,
    /// The stand-in ARC cluster, when the world's switch is ARC routing controls.
    pub arc: Option<crate::aws::arc::ArcCluster>,
    /// What the templates deployed, by region.
    pub templates: crate::aws::template::world::TemplateDeployment,
    /// The on-call operator's IAM login (user `oncall`, the stacks' `OperatorPolicy` attached,
    /// listed in their `Approvers`).
    pub operator: OperatorLogin,
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
        Self::create_from(
            stack,
            options,
            &crate::aws::template::local_parameters_file(),
        )
        .await
    }

    /// Builds the deployment `options` describe, deploying the stacks of the parameters file
    /// at `parameters` (its templates relative to the file's `infra/` directory). Each concern
    /// is built by its own module, in the order a real deployment needs them: the systems
    /// first, then what the templates take from them, then the templates, then what the
    /// operator attaches to what they created.
    pub async fn create_from(
        stack: &LocalStack,
        options: WorldOptions,
        parameters: &std::path::Path,
    ) -> Result<Self, LocalError> {
        options.check()?;
        let sdk = stack.sdk_config();
        let faults = stack.faults();
        let third = options.third_region;
        let gateways = gateways::start_gateways(third).await?;
        let kubes = gateways::start_clusters(&faults, third).await?;
        let (redis, third_redis) = configuration::start_redis(third).await;
        let (databases, third_member) = databases::start(options.database, &kubes, &faults).await?;
        let targets =
            databases::targets(&databases, third_member.as_ref(), &kubes, &faults).await?;
        let name = routing::start(stack, &options, &gateways).await?;
        let (prometheus, lb_metrics) = observability::start(sdk, &gateways).await?;
        let vaults = vaults::start(third).await?;
        configuration::create_backup_buckets(sdk).await?;
        let regions = configuration::regions(configuration::RegionParts {
            gateways: &gateways,
            kubes: &kubes,
            databases: &databases,
            targets,
            vaults: &vaults,
            redis: redis.as_ref(),
            third_redis: third_redis.as_ref(),
        });
        configuration::put_secrets(stack, &regions).await?;
        let world_values = configuration::world_values(
            &name.zone_id,
            name.global.health_url(),
            &prometheus.url(),
            &options,
            third,
        )?;
        let templates =
            crate::aws::template::world::deploy_templates(stack, parameters, &world_values).await?;
        routing::create_records(&name, &templates, &options, third).await?;
        let (region_settings, settings) =
            configuration::configure_functions(stack, &templates, &options, name.arc.as_ref())
                .await?;
        let topic_arn = settings.topic_arn.clone().unwrap_or_default();
        let operator = operator::create_operator(stack, &templates).await?;
        let third_database = match (third_member, &databases) {
            (Some(member), _) => Some(ThirdDatabase::Patroni(member)),
            (None, Databases::Postgres { pair, .. }) => {
                pair.third.clone().map(ThirdDatabase::Postgres)
            }
            _ => None,
        };
        let PerRegion {
            primary,
            standby,
            third: third_gateway,
        } = gateways;
        let PerRegion {
            primary: primary_kube,
            standby: standby_kube,
            third: third_kube,
        } = kubes;
        let vaults::Vaults {
            primary: primary_vault,
            standby: vault,
            scratch: scratch_vault,
            third: third_vault,
        } = vaults;
        let routing::GlobalName {
            zone_id,
            checkers,
            arc,
            global,
            ..
        } = name;
        Ok(Self {
            third: third_gateway
                .zip(third_database)
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
    ) -> crate::aws::data_plane::DataPlane {
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
        crate::aws::data_plane::DataPlane::start(
            stack.handle(),
            self.checkers.clone(),
            crate::aws::data_plane::DataPlaneOptions {
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
        crate::aws::data_plane::answer(
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
                            BTreeMap::from([(
                                "LoadBalancer".to_string(),
                                observability::load_balancer(r),
                            )]),
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
