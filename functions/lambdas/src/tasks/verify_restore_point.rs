//! Task `verify-restore-point`: before anything is touched, verify by content exactly what the
//! restore will use - the base backup (tar, compression, `backup_label` against `backup.info`,
//! `pg_control`, manifest), every WAL segment it replays, and the Vault snapshot - with the
//! backup audit's verifiers. Any failure is `hapilot.RestorePointCorrupt`.
//! Input: `{"plan": <plan-restore output>, "run"}`.

use hapilot_adapters::backups::BackupStore;
use hapilot_core::ErrorName;
use hapilot_core::backup::info::BackupInfo;
use hapilot_core::backup::rdb::verify_rdb;
use hapilot_core::backup::vault::verify_vault_snapshot;
use hapilot_core::backup::wal::{self, WalFile, verify_wal_segment};
use hapilot_core::restore::RestorePoint;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::backup_catalog::verify_base;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
struct Plan {
    bucket: String,
    restore_point: RestorePoint,
    base_info_key: String,
    vault_snapshot: Option<String>,
    postgres: bool,
    vault: bool,
    wal_segment_size: u64,
    #[serde(default)]
    redis: bool,
    #[serde(default)]
    redis_rdb: Option<String>,
}

#[derive(Deserialize)]
struct Input {
    plan: Plan,
    run: RunContext,
}

/// Verifies the restore point's objects.
pub async fn verify_restore_point<S: BackupStore>(
    store: &S,
    journal: &impl hapilot_adapters::journal::Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input { plan, run } = parse_input(input)?;
    let mut verified = Vec::new();
    if plan.postgres {
        verified.extend(verify_postgres(store, &plan).await?);
    }
    if plan.vault
        && let Some(key) = &plan.vault_snapshot
    {
        let s = match store.verify(&plan.bucket, key, verify_vault_snapshot).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(corrupt(format!("Vault snapshot {key}: {e}"))),
            Err(e) => return Err(corrupt(format!("Vault snapshot {key}: {e}"))),
        };
        verified.push(
            json!({"key": key, "detail": format!("SHA256SUMS match, raft index {:?}", s.index)}),
        );
    }
    // The RDB's own key count goes on to the Redis check, which compares what loads with it.
    let mut redis = None;
    if plan.redis
        && let Some(key) = &plan.redis_rdb
    {
        let s = match store.verify(&plan.bucket, key, verify_rdb).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(corrupt(format!("Redis RDB {key}: {e}"))),
            Err(e) => return Err(corrupt(format!("Redis RDB {key}: {e}"))),
        };
        let checksum = match s.checksummed {
            true => "matches",
            false => "not written (rdbchecksum no)",
        };
        verified.push(json!({"key": key, "detail": format!("RDB version {}, {} bytes, checksum {checksum}", s.version, s.bytes)}));
        redis = Some(json!({"key": key, "keys": s.keys, "version": s.version}));
    }
    let mut out = json!({ "verified": verified });
    if let Some(redis) = redis {
        out["redis"] = redis;
    }
    record(journal, &run, json!({ "after": out })).await?;
    Ok(out)
}

/// The refusal: what is corrupt, and that nothing was restored.
fn corrupt(what: String) -> FunctionError {
    FunctionError::named(
        ErrorName::RestorePointCorrupt,
        format!("{what}; nothing was restored"),
    )
}

/// The base backup, then every WAL segment the restore replays, in order.
async fn verify_postgres<S: BackupStore>(
    store: &S,
    plan: &Plan,
) -> Result<Vec<Value>, FunctionError> {
    let base = &plan.restore_point.base_backup;
    let info_text = store
        .read_small(&plan.bucket, &plan.base_info_key)
        .await
        .map_err(|e| corrupt(e.to_string()))?
        .unwrap_or_default();
    let info = BackupInfo::parse(&String::from_utf8_lossy(&info_text)).ok();
    let v = verify_base(
        store,
        &plan.bucket,
        &plan.base_info_key,
        &base.id,
        info.as_ref(),
    )
    .await;
    if !v.ok() {
        return Err(corrupt(format!(
            "base backup {}: {}: {}",
            base.id, v.key, v.detail
        )));
    }
    let mut previous: Option<u32> = None;
    for w in &plan.restore_point.wal {
        let compression = match wal::classify(&w.key) {
            Some(WalFile::Segment(_, c)) => c,
            _ => None,
        };
        let (segment, size) = (w.segment, plan.wal_segment_size);
        // Where the chain moves to a child timeline, that segment is the switch segment:
        // its first page may carry the parent's timeline (PostgreSQL copied it there).
        let parent = previous.filter(|p| *p != segment.timeline);
        previous = Some(segment.timeline);
        let result = store
            .verify(&plan.bucket, &w.key, move |r| {
                verify_wal_segment(r, segment, compression.as_deref(), size, parent)
            })
            .await
            .map_err(|e| corrupt(format!("{}: {e}", w.key)))?;
        if let Err(e) = result {
            return Err(corrupt(format!("WAL segment {}: {e}", w.key)));
        }
    }
    Ok(vec![
        json!({"key": v.key, "detail": v.detail}),
        json!({"wal_segments": plan.restore_point.wal.len(), "detail": "every segment complete, header matches its name"}),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::backups::MemoryBackupStore;
    use hapilot_adapters::journal::{Journal, MemoryJournal};
    use hapilot_core::backup::vault::build_vault_snapshot;
    use hapilot_core::backup::wal::WalSegment;
    use hapilot_core::restore::{CatalogBaseBackup, RestoreTarget};

    const SNAPSHOT: &str = "vault/raft-20261206T000000Z.snap";

    fn input(rdb: Option<&str>) -> Value {
        let segment = WalSegment {
            timeline: 1,
            log: 0,
            seg: 2,
        };
        let point = RestorePoint {
            target: RestoreTarget::Latest,
            base_backup: CatalogBaseBackup {
                id: "base-1".into(),
                prefix: "pg/base/base-1".into(),
                begin_wal: segment,
                end_wal: segment,
                end_time: 0,
            },
            wal: Vec::new(),
            reachable_until: 0,
            vault_snapshot: Some((SNAPSHOT.into(), 0)),
            redis_rdb: None,
        };
        json!({
            "plan": {
                "bucket": "backups", "restore_point": point, "base_info_key": "pg/base/base-1/backup.info",
                "vault_snapshot": SNAPSHOT, "postgres": false, "vault": true,
                "wal_segment_size": 16_777_216, "redis": rdb.is_some(), "redis_rdb": rdb,
            },
            "run": RunContext::fixture_json("restore", "VerifyRestorePoint"),
        })
    }

    fn store() -> MemoryBackupStore {
        let store = MemoryBackupStore::default();
        let snapshot =
            build_vault_snapshot(&json!({"Index": 42, "Term": 3}), b"raft state").unwrap();
        store.insert("backups", SNAPSHOT, snapshot);
        store
    }

    #[tokio::test]
    async fn a_sound_vault_snapshot_is_verified_and_recorded() {
        let journal = MemoryJournal::default();
        let out = verify_restore_point(&store(), &journal, input(None))
            .await
            .unwrap();
        assert_eq!(out["verified"][0]["key"], SNAPSHOT);
        assert!(
            out["verified"][0]["detail"]
                .as_str()
                .unwrap()
                .contains("raft index Some(42)"),
            "{out}"
        );
        let step = RunContext::fixture("restore", "VerifyRestorePoint").key();
        assert_eq!(journal.get(&step).await.unwrap().unwrap()["after"], out);
    }

    #[tokio::test]
    async fn a_corrupt_object_refuses_the_restore_by_name_and_records_nothing() {
        let s = store();
        // The same snapshot cut short: its gzip stream ends early.
        let whole = s.read_small("backups", SNAPSHOT).await.unwrap().unwrap();
        s.insert("backups", SNAPSHOT, whole[..whole.len() / 2].to_vec());
        let journal = MemoryJournal::default();
        let err = verify_restore_point(&s, &journal, input(None))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "hapilot.RestorePointCorrupt", "{err}");
        assert!(
            err.to_string().contains(SNAPSHOT) && err.to_string().ends_with("nothing was restored"),
            "{err}"
        );
        let step = RunContext::fixture("restore", "VerifyRestorePoint").key();
        assert_eq!(journal.get(&step).await.unwrap(), None);

        // Bytes that are no RDB at all.
        let s = store();
        s.insert("backups", "redis/dump.rdb", b"not an rdb".to_vec());
        let err = verify_restore_point(&s, &journal, input(Some("redis/dump.rdb")))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("Redis RDB redis/dump.rdb"),
            "{err}"
        );
    }
}
