//! Task `restore-vault`: apply the restore point's raft snapshot to the DR region's Vault
//! (`POST /v1/sys/storage/raft/snapshot-force`, token from `HAPILOT_REGIONS`, never logged),
//! then verify it answers healthy (`GET /v1/sys/health`). A restore test (`"scratch": true`)
//! restores into the region's scratch Vault (`restore_test_vault`) and also reads its
//! `known_secret` through it: a snapshot that restores but holds no secret is no backup.
//! Input: `{"plan": <plan-restore output>, "scratch"?, "run"}`.

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
    #[serde(default)]
    scratch: bool,
    run: RunContext,
}

/// Restores the snapshot.
pub async fn restore_vault<S: BackupStore, V: Vault>(
    store: &S,
    vault: impl FnOnce(&str, bool) -> Result<(V, Option<String>), FunctionError>,
    journal: &impl hapilot_adapters::journal::Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input { plan, scratch, run } = parse_input(input)?;
    let failed = FunctionError::from_adapter(ErrorName::VaultRestoreFailed);
    let Some(key) = plan.vault_snapshot else {
        return Ok(
            json!({"restored": null, "detail": "no Vault snapshot at or before the target"}),
        );
    };
    let (vault, known_secret) = vault(&plan.region, scratch)?;
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
    let mut out = json!({ "restored": key, "bytes": bytes, "healthy": true });
    if scratch {
        let Some(path) = known_secret else {
            return Err(FunctionError::Setup(format!(
                "restore_test_vault of {} names no known_secret: a restore test reads one through the restored Vault",
                plan.region
            )));
        };
        let keys = vault.read_secret(&path).await.map_err(|e| {
            FunctionError::named(
                ErrorName::VaultRestoreFailed,
                format!("Vault took {key} and unsealed, but {path} cannot be read through it: {e}"),
            )
        })?;
        if keys.is_empty() {
            return Err(FunctionError::named(
                ErrorName::VaultRestoreFailed,
                format!("Vault took {key}, but {path} holds no keys"),
            ));
        }
        out["known_secret"] = json!({"path": path, "keys": keys.len()});
    }
    record(journal, &run, json!({ "after": out })).await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::backups::MemoryBackupStore;
    use hapilot_adapters::journal::{Journal, MemoryJournal};
    use hapilot_adapters::vault::MemoryVault;
    use hapilot_core::readiness::RaftServer;

    const SNAPSHOT: &str = "vault/raft-20261206T000000Z.snap";

    fn vault(leader: bool) -> MemoryVault {
        let mut vault = MemoryVault::default();
        vault.servers = vec![RaftServer {
            node_id: "vault-0".into(),
            leader,
            voter: true,
        }];
        vault
    }

    fn input(snapshot: Option<&str>, scratch: bool) -> Value {
        json!({
            "plan": {"region": "us-west-2", "bucket": "backups", "vault_snapshot": snapshot},
            "scratch": scratch,
            "run": RunContext::fixture_json("restore-test", "RestoreVault"),
        })
    }

    fn store() -> MemoryBackupStore {
        let store = MemoryBackupStore::default();
        store.insert("backups", SNAPSHOT, vec![7; 4096]);
        store
    }

    #[tokio::test]
    async fn a_scratch_restore_is_healthy_and_reads_the_known_secret_through_it() {
        let (v, journal) = (vault(true), MemoryJournal::default());
        let out = restore_vault(
            &store(),
            |region: &str, scratch: bool| {
                assert_eq!((region, scratch), ("us-west-2", true));
                Ok((v.clone(), Some("secret/litellm".into())))
            },
            &journal,
            input(Some(SNAPSHOT), true),
        )
        .await
        .unwrap();
        assert_eq!(v.restored(), [4096]);
        assert_eq!(v.calls(), ["read secret/litellm"]);
        assert_eq!(
            out["known_secret"],
            json!({"path": "secret/litellm", "keys": 1})
        );
        let step = RunContext::fixture("restore-test", "RestoreVault").key();
        assert_eq!(journal.get(&step).await.unwrap().unwrap()["after"], out);
    }

    #[tokio::test]
    async fn a_vault_that_does_not_answer_healthy_after_the_snapshot_fails_the_restore() {
        let err = restore_vault(
            &store(),
            |_: &str, _: bool| Ok((vault(false), None)),
            &MemoryJournal::default(),
            input(Some(SNAPSHOT), false),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), "hapilot.VaultRestoreFailed", "{err}");
        assert!(err.to_string().contains("unseal it"), "{err}");
    }

    #[tokio::test]
    async fn no_snapshot_is_no_restore_and_a_scratch_vault_without_known_secret_is_a_setup_error() {
        let out = restore_vault::<_, MemoryVault>(
            &store(),
            |_: &str, _: bool| panic!("no snapshot: no Vault is asked"),
            &MemoryJournal::default(),
            input(None, false),
        )
        .await
        .unwrap();
        assert_eq!(out["restored"], Value::Null);

        let err = restore_vault(
            &store(),
            |_: &str, _: bool| Ok((vault(true), None)),
            &MemoryJournal::default(),
            input(Some(SNAPSHOT), true),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), "hapilot.SetupFailed", "{err}");
        assert!(err.to_string().contains("names no known_secret"), "{err}");
    }
}
