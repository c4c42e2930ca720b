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
    let corrupt = |what: String| {
        FunctionError::named(
            ErrorName::RestorePointCorrupt,
            format!("{what}; nothing was restored"),
        )
    };
    let mut verified = Vec::new();
    if plan.postgres {
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
        if !v.ok {
            return Err(corrupt(format!(
                "base backup {}: {}: {}",
                base.id, v.key, v.detail
            )));
        }
        verified.push(json!({"key": v.key, "detail": v.detail}));
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
        verified.push(json!({"wal_segments": plan.restore_point.wal.len(), "detail": "every segment complete, header matches its name"}));
    }
    if plan.vault
        && let Some(key) = &plan.vault_snapshot
    {
        match store.verify(&plan.bucket, key, verify_vault_snapshot).await {
            Ok(Ok(s)) => verified.push(json!({"key": key, "detail": format!("SHA256SUMS match, raft index {:?}", s.index)})),
            Ok(Err(e)) => return Err(corrupt(format!("Vault snapshot {key}: {e}"))),
            Err(e) => return Err(corrupt(format!("Vault snapshot {key}: {e}"))),
        }
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
