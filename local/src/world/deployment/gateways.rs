//! The regions' front ends: a simulated gateway per region and the Kubernetes API its
//! workloads run on, as the HA document deploys them.

use super::{KUBE_TOKEN, NAMESPACE, PRIMARY_REGION, PerRegion, STANDBY_REGION, WITNESS_REGION};
use crate::LocalError;
use crate::aws::faults::Faults;
use crate::systems::gateway::SimulatedGateway;
use crate::systems::kubernetes::SimulatedKubernetes;

/// A gateway in each region.
pub(super) async fn start_gateways(third: bool) -> Result<PerRegion<SimulatedGateway>, LocalError> {
    let start = async |region: &str| {
        SimulatedGateway::start(region)
            .await
            .map_err(LocalError::io("starting a gateway".to_string()))
    };
    Ok(PerRegion {
        primary: start(PRIMARY_REGION).await?,
        standby: start(STANDBY_REGION).await?,
        third: match third {
            true => Some(start(WITNESS_REGION).await?),
            false => None,
        },
    })
}

/// A Kubernetes API in each region with the gateway workloads, spread over three zones with
/// PDBs and probes: three of each in the primary, two of each in the warm standbys (a
/// failover that chooses one scales it to 5 and 3). Faults act on each.
pub(super) async fn start_clusters(
    faults: &Faults,
    third: bool,
) -> Result<PerRegion<SimulatedKubernetes>, LocalError> {
    let start = async |region: &str, replicas: i64| {
        let kube = SimulatedKubernetes::start_in(
            KUBE_TOKEN,
            NAMESPACE,
            &[
                ("litellm", replicas),
                ("agentgateway", replicas),
                ("vllm", 2),
            ],
            region,
        )
        .await
        .map_err(LocalError::io("starting a Kubernetes API".to_string()))?;
        kube.attach_faults(faults.clone(), region);
        Ok::<_, LocalError>(kube)
    };
    Ok(PerRegion {
        primary: start(PRIMARY_REGION, 3).await?,
        standby: start(STANDBY_REGION, 2).await?,
        third: match third {
            true => Some(start(WITNESS_REGION, 2).await?),
            false => None,
        },
    })
}
