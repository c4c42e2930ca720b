//! What the functions are told: each region's configuration (its gateway, database,
//! Kubernetes API, Vault, Redis, restore targets) in the secrets the templates name, the backup
//! buckets, the values the templates' parameters take from the world, and each region's
//! functions configured from what its deployed template set.

use std::collections::BTreeMap;

use hapilot_adapters::canary_metrics::TrafficSource;
use hapilot_adapters::database::DatabaseTarget;
use hapilot_adapters::restore::RestoreDatabaseTarget;
use hapilot_adapters::scaler::KubernetesTarget;
use hapilot_adapters::vault::VaultTarget;
use hapilot_functions::config::{RegionConfig, Settings};

use super::PerRegion;
use super::observability::{PROMETHEUS_TOKEN, prometheus_source};
use super::vaults::Vaults;
use super::{
    BACKUP_BUCKET, DR_BACKUP_BUCKET, Databases, KUBE_TOKEN, NAMESPACE, PRIMARY_REGION, PRIMARY_SET,
    SCRATCH_VAULT_TOKEN, SECRET_CANARY, SECRET_DATABASE, SECRET_KUBERNETES, SECRET_REGIONS,
    SECRET_VAULT, STANDBY_REGION, STANDBY_SET, THIRD_SET, VAULT_TOKEN, WITNESS_REGION,
    WorldOptions, endpoint_host,
};
use crate::LocalError;
use crate::LocalStack;
use crate::systems::gateway::SimulatedGateway;
use crate::systems::kubernetes::SimulatedKubernetes;
use crate::systems::redis::RedisPair;
use crate::systems::vault::SimulatedVault;

/// The standby's Redis with its replica, and the third region's, when redis-server is
/// installed (readiness reads it; scripts/ensure-redis installs it).
pub(super) async fn start_redis(third: bool) -> (Option<RedisPair>, Option<RedisPair>) {
    let redis = match RedisPair::start().await {
        Ok(pair) => Some(pair),
        Err(e) => {
            tracing::warn!(error = %e, "no Redis in the local world");
            None
        }
    };
    let third_redis = match (third, &redis) {
        (true, Some(_)) => RedisPair::start().await.ok(),
        _ => None,
    };
    (redis, third_redis)
}

/// The backup buckets of the primary region and their DR copy.
pub(super) async fn create_backup_buckets(sdk: &aws_config::SdkConfig) -> Result<(), LocalError> {
    for bucket in [BACKUP_BUCKET, DR_BACKUP_BUCKET] {
        hapilot_adapters::sdk::s3(sdk)
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(LocalError::aws("CreateBucket"))?;
    }
    Ok(())
}

/// Everything a region's configuration points at.
pub(super) struct RegionParts<'a> {
    pub gateways: &'a PerRegion<SimulatedGateway>,
    pub kubes: &'a PerRegion<SimulatedKubernetes>,
    pub databases: &'a Databases,
    pub targets: PerRegion<DatabaseTarget>,
    pub vaults: &'a Vaults,
    pub redis: Option<&'a RedisPair>,
    pub third_redis: Option<&'a RedisPair>,
}

/// Each region's configuration (`HAPILOT_REGIONS`): the standby region also restores (the DR
/// server and the restore tests' scratch server, with the scratch Vault whose token comes from
/// the Vault secret) and has the Redis pair.
pub(super) fn regions(parts: RegionParts<'_>) -> BTreeMap<String, RegionConfig> {
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
    let vault_target = |vault: &SimulatedVault| VaultTarget {
        ca_file: None,
        url: vault.url(),
        token: VAULT_TOKEN.into(),
        performance_replication: true,
        known_secret: Some(crate::systems::vault::GATEWAY_SECRET.to_string()),
    };
    let (restore, restore_test) = match parts.databases {
        Databases::Postgres { dr, scratch, .. } => (
            Some(RestoreDatabaseTarget::Postgres {
                agent_url: dr.1.url(),
                dsn: dr.0.server.dsn().into(),
            }),
            Some(RestoreDatabaseTarget::Postgres {
                agent_url: scratch.1.url(),
                dsn: scratch.0.server.dsn().into(),
            }),
        ),
        Databases::Patroni { .. } => (None, None),
    };
    let PerRegion {
        primary: primary_db,
        standby: standby_db,
        third: third_db,
    } = parts.targets;
    let mut regions = BTreeMap::from([
        (
            PRIMARY_REGION.to_string(),
            RegionConfig {
                vault: Some(vault_target(&parts.vaults.primary)),
                ..region(
                    &parts.gateways.primary,
                    PRIMARY_SET,
                    primary_db,
                    &parts.kubes.primary,
                )
            },
        ),
        (
            STANDBY_REGION.to_string(),
            RegionConfig {
                vault: Some(vault_target(&parts.vaults.standby)),
                restore,
                restore_test,
                redis: parts.redis.map(redis_target),
                // Its token comes from the Vault secret (`us-west-2.restore_test`).
                restore_test_vault: Some(VaultTarget {
                    performance_replication: false,
                    token: "".into(),
                    ..vault_target(&parts.vaults.scratch)
                }),
                ..region(
                    &parts.gateways.standby,
                    STANDBY_SET,
                    standby_db,
                    &parts.kubes.standby,
                )
            },
        ),
    ]);
    // The second secondary: a gateway, a replica (a Patroni member or a PostgreSQL server),
    // its Kubernetes API, Vault and Redis.
    if let (Some(eu), Some(database), Some(kube)) =
        (&parts.gateways.third, third_db, &parts.kubes.third)
    {
        regions.insert(
            WITNESS_REGION.to_string(),
            RegionConfig {
                vault: parts.vaults.third.as_ref().map(vault_target),
                redis: parts.third_redis.map(redis_target),
                ..region(eu, THIRD_SET, database, kube)
            },
        );
    }
    regions
}

/// The secrets the templates name, as the operator creates them before deploying (in every
/// region: each region's functions read their own region's copy).
pub(super) async fn put_secrets(
    stack: &LocalStack,
    regions: &BTreeMap<String, RegionConfig>,
) -> Result<(), LocalError> {
    let regions_json = serde_json::to_string(regions)
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
            crate::aws::template::world::put_secret(stack, &r, name, text).await?;
        }
    }
    Ok(())
}

/// The values the parameters file takes from the world (`{{world.<name>}}`): the hosted zone,
/// the global health URL, the canary provider (its token from the canary secret, as
/// deployed), the failover defaults at the world's pace, the third region's record.
pub(super) fn world_values(
    zone_id: &str,
    global_health_url: String,
    prometheus_url: &str,
    options: &WorldOptions,
    third: bool,
) -> Result<BTreeMap<String, String>, LocalError> {
    let mut canary = prometheus_source(prometheus_url);
    if let TrafficSource::Prometheus { auth, .. } = &mut canary {
        *auth = None;
    }
    let if_third = |value: String| if third { value } else { String::new() };
    Ok(BTreeMap::from([
        ("hosted_zone_id".to_string(), zone_id.to_string()),
        ("global_health_url".to_string(), global_health_url),
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
            if_third(THIRD_SET.to_string()),
        ),
        (
            "third_endpoint_host".to_string(),
            if_third(endpoint_host(WITNESS_REGION)),
        ),
    ]))
}

/// Each region's functions, configured from what its template set plus the operator's
/// changes the options name: (by region, the primary region's).
pub(super) async fn configure_functions(
    stack: &LocalStack,
    templates: &crate::aws::template::world::TemplateDeployment,
    options: &WorldOptions,
    arc: Option<&crate::aws::arc::ArcCluster>,
) -> Result<(BTreeMap<String, Settings>, Settings), LocalError> {
    let mut region_settings = BTreeMap::new();
    for (r, deployed) in &templates.stacks {
        stack.adopt(deployed).await?;
        let mut own = crate::aws::template::world::region_settings(stack, deployed).await?;
        options.operator_changes(&mut own, arc);
        stack.configure_region(r, own.clone())?;
        region_settings.insert(r.clone(), own);
    }
    let settings = region_settings
        .get(PRIMARY_REGION)
        .cloned()
        .ok_or_else(|| LocalError::Invalid(format!("no stack in {PRIMARY_REGION}")))?;
    Ok((region_settings, settings))
}

/// How a region's functions reach a local Redis pair: over TLS, verified against the master's
/// own CA (as ElastiCache with in-transit encryption is reached), with its Sentinels.
fn redis_target(pair: &crate::systems::redis::RedisPair) -> hapilot_adapters::redis::RedisTarget {
    hapilot_adapters::redis::RedisTarget {
        address: pair
            .master
            .tls_url()
            .unwrap_or_else(|| pair.master.address()),
        ca_pem: pair.master.ca_pem(),
        password: Default::default(),
        sentinel: Some(hapilot_adapters::redis::SentinelTarget {
            addresses: pair.sentinel_addresses(),
            master_name: crate::systems::redis::SENTINEL_MASTER.to_string(),
            password: Default::default(),
        }),
    }
}
