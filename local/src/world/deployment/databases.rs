//! The regions' databases: simulated Patroni members, or the real PostgreSQL pair (with its
//! host agents, the DR and scratch servers, and optionally the CloudNativePG operator
//! stand-in), and how each region's functions reach them.

use hapilot_adapters::database::DatabaseTarget;
use hapilot_adapters::scaler::KubernetesTarget;

use super::PerRegion;
use super::{
    CNPG_CLUSTERS, DatabaseSetup, Databases, Fronts, KUBE_TOKEN, NAMESPACE, PRIMARY_REGION,
    STANDBY_REGION, THIRD_MEMBER, WITNESS_REGION,
};
use crate::LocalError;
use crate::aws::faults::Faults;
use crate::systems::agent::PostgresAgent;
use crate::systems::kubernetes::SimulatedKubernetes;
use crate::systems::patroni::SimulatedPatroni;
use crate::systems::postgres::PostgresPair;

/// Patroni's `restapi.authentication` in the local world.
const PATRONI_USER: &str = "patroni";
const PATRONI_PASSWORD: &str = "local-patroni-password";

fn patroni_auth() -> hapilot_adapters::http_client::HttpAuth {
    hapilot_adapters::http_client::HttpAuth::Basic {
        username: PATRONI_USER.into(),
        password: PATRONI_PASSWORD.into(),
    }
}

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
        "status": {"phase": crate::systems::cnpg::HEALTHY, "currentPrimary": format!("{name}-1"),
                   "readyInstances": 1}
    })
}

/// Starts the databases `setup` names, with a replica in the third region when it has one
/// (the Patroni setup's third member is returned beside them).
pub(super) async fn start(
    setup: DatabaseSetup,
    kubes: &PerRegion<SimulatedKubernetes>,
    faults: &Faults,
) -> Result<(Databases, Option<SimulatedPatroni>), LocalError> {
    let io = |what: &str| LocalError::io(what.to_string());
    let with_third = kubes.third.is_some();
    match setup {
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
            let mut third_member = None;
            if with_third {
                let eu = member(THIRD_MEMBER, false).await?;
                eu.join(&primary);
                eu.join(&standby);
                eu.attach_faults(faults.clone(), WITNESS_REGION);
                third_member = Some(eu);
            }
            Ok((Databases::Patroni { primary, standby }, third_member))
        }
        DatabaseSetup::Postgres | DatabaseSetup::Cloudnativepg => {
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
            let operator =
                (setup == DatabaseSetup::Cloudnativepg).then(|| start_cnpg_operator(&pair, kubes));
            Ok((
                Databases::Postgres {
                    pair: Box::new(pair),
                    agents,
                    dr: Box::new((dr_node, dr_agent)),
                    scratch: Box::new((scratch_node, scratch_agent)),
                    operator,
                    fronts: Fronts::default(),
                },
                None,
            ))
        }
    }
}

/// The pair as CloudNativePG replica clusters (`pg-east` primary, `pg-west` a replica cluster
/// of it) behind the two regions' Kubernetes APIs, run by the operator stand-in.
fn start_cnpg_operator(
    pair: &PostgresPair,
    kubes: &PerRegion<SimulatedKubernetes>,
) -> crate::systems::cnpg::CnpgOperator {
    let (east, west) = pair.nodes();
    for (kube, name) in [
        (&kubes.primary, CNPG_CLUSTERS.0),
        (&kubes.standby, CNPG_CLUSTERS.1),
    ] {
        kube.put_cnpg_cluster(cnpg_resource(name, CNPG_CLUSTERS.0));
    }
    crate::systems::cnpg::CnpgOperator::start(vec![
        crate::systems::cnpg::ManagedCluster {
            name: CNPG_CLUSTERS.0.into(),
            node: east,
            resources: kubes.primary.cnpg_resources(),
            role: crate::systems::cnpg::Applied::Primary,
        },
        crate::systems::cnpg::ManagedCluster {
            name: CNPG_CLUSTERS.1.into(),
            node: west,
            resources: kubes.standby.cnpg_resources(),
            role: crate::systems::cnpg::Applied::Replica,
        },
    ])
}

/// How each region's functions reach its database: Patroni's REST API, the CloudNativePG
/// `Cluster` through the region's Kubernetes API, or the server itself as they would reach
/// RDS (URI DSNs, TLS verified fully against the pair's CA) through a front where faults act
/// on the connections (`hapilot local fault --service postgres`).
pub(super) async fn targets(
    databases: &Databases,
    third_member: Option<&SimulatedPatroni>,
    kubes: &PerRegion<SimulatedKubernetes>,
    faults: &Faults,
) -> Result<PerRegion<DatabaseTarget>, LocalError> {
    match databases {
        Databases::Patroni { primary, standby } => {
            let member = |m: &SimulatedPatroni| DatabaseTarget::Patroni {
                url: m.url(),
                member: m.name(),
                ca_file: None,
                auth: Some(patroni_auth()),
                // The simulated members have no SQL behind them.
                dsn: None,
            };
            Ok(PerRegion {
                primary: member(primary),
                standby: member(standby),
                third: third_member.map(member),
            })
        }
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
            Ok(PerRegion {
                primary: cluster(
                    &kubes.primary,
                    CNPG_CLUSTERS.0,
                    pair.primary.verified_dsn(&pair.ca_file()),
                ),
                standby: cluster(
                    &kubes.standby,
                    CNPG_CLUSTERS.1,
                    pair.replica.verified_dsn(&pair.ca_file()),
                ),
                third: None,
            })
        }
        Databases::Postgres {
            pair,
            agents,
            fronts,
            ..
        } => {
            let front = async |node: &crate::systems::postgres::PostgresServer, region: &str| {
                let backend = std::net::SocketAddr::from(([127, 0, 0, 1], node.port()));
                let (addr, task) =
                    crate::aws::faults::tcp_front(faults.clone(), region, "postgres", backend)
                        .await
                        .map_err(LocalError::io("starting a PostgreSQL front".to_string()))?;
                fronts.keep(task);
                Ok::<_, LocalError>(node.verified_dsn_at(addr.port(), &pair.ca_file()))
            };
            Ok(PerRegion {
                primary: DatabaseTarget::Postgres {
                    dsn: front(&pair.primary, PRIMARY_REGION).await?.into(),
                    agent_url: Some(agents.0.url()),
                },
                standby: DatabaseTarget::Postgres {
                    dsn: front(&pair.replica, STANDBY_REGION).await?.into(),
                    agent_url: Some(agents.1.url()),
                },
                third: match &pair.third {
                    Some(server) => Some(DatabaseTarget::Postgres {
                        dsn: front(server, WITNESS_REGION).await?.into(),
                        agent_url: None,
                    }),
                    None => None,
                },
            })
        }
    }
}
