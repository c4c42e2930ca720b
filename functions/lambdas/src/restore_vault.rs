//! Task `restore-vault`: apply the restore point's raft snapshot to the DR region's Vault
//! (`POST /v1/sys/storage/raft/snapshot-force`, token from `HAPILOT_REGIONS`, never logged),
//! then verify it answers healthy (`GET /v1/sys/health`).
//! Input: `{"plan": <plan-restore output>, "run"}`.

use hapilot_adapters::backups::BackupStore;
use hapilot_adapters::vault::Vault;
use hapilot_core::ErrorName;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
struct Plan {
    region: String,
    bucket: String,
    vault_snapshot: Option<String>,
}

#[derive(Deserialize)]
struct Input {
    plan: Plan,
    run: RunContext,
}

/// Restores the snapshot.
pub async fn restore_vault<S: BackupStore, V: Vault>(
    store: &S,
    vault: impl FnOnce(&str) -> Result<V, FunctionError>,
    journal: &impl hapilot_adapters::journal::Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input { plan, run } = parse_input(input)?;
    let failed = FunctionError::from_adapter(ErrorName::VaultRestoreFailed);
    let Some(key) = plan.vault_snapshot else {
        return Ok(
            json!({"restored": null, "detail": "no Vault snapshot at or before the target"}),
        );
    };
    let vault = vault(&plan.region)?;
    let snapshot = store
        .read_small(&plan.bucket, &key)
        .await
        .map_err(FunctionError::from_adapter(ErrorName::VaultRestoreFailed))?
        .ok_or_else(|| {
            FunctionError::named(ErrorName::VaultRestoreFailed, format!("{key} is gone"))
        })?;
    let bytes = snapshot.len();
    vault.restore_snapshot(snapshot).await.map_err(failed)?;
    // Verify: the restored Vault must answer healthy (initialized, unsealed, active).
    let healthy = vault
        .healthy()
        .await
        .map_err(FunctionError::from_adapter(ErrorName::VaultRestoreFailed))?;
    if !healthy {
        return Err(FunctionError::named(
            ErrorName::VaultRestoreFailed,
            format!(
                "Vault took {key} but does not answer healthy (GET /v1/sys/health): unseal it and check its log"
            ),
        ));
    }
    let out = json!({ "restored": key, "bytes": bytes, "healthy": true });
    record(journal, &run, json!({ "after": out })).await?;
    Ok(out)
}
