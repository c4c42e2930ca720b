//! Vault Enterprise with performance replication, as the HA document runs it: the primary
//! region's cluster is the primary, the standby's (and the third region's) its performance
//! secondaries; a scratch Vault in the standby region for restore tests.

use super::{SCRATCH_VAULT_TOKEN, STANDBY_REGION, VAULT_TOKEN, WITNESS_REGION};
use crate::LocalError;
use crate::systems::vault::SimulatedVault;

/// The world's Vaults.
pub(super) struct Vaults {
    pub primary: SimulatedVault,
    pub standby: SimulatedVault,
    pub scratch: SimulatedVault,
    pub third: Option<SimulatedVault>,
}

/// Starts them (the third region's only with `third`).
pub(super) async fn start(third: bool) -> Result<Vaults, LocalError> {
    let io = |what: &str| LocalError::io(what.to_string());
    let primary = SimulatedVault::start_primary(VAULT_TOKEN)
        .await
        .map_err(io("starting Vault"))?;
    let standby = SimulatedVault::start_secondary_of(&primary, STANDBY_REGION, VAULT_TOKEN)
        .await
        .map_err(io("starting Vault"))?;
    let scratch = SimulatedVault::start_scratch(SCRATCH_VAULT_TOKEN)
        .await
        .map_err(io("starting the scratch Vault"))?;
    let third = match third {
        true => Some(
            SimulatedVault::start_secondary_of(&primary, WITNESS_REGION, VAULT_TOKEN)
                .await
                .map_err(io("starting Vault"))?,
        ),
        false => None,
    };
    Ok(Vaults {
        primary,
        standby,
        scratch,
        third,
    })
}
