//! Task `plan-restore`: the first step of a DR restore. Reads the backup catalog (base
//! backups' `backup.info`, WAL segments with their archive times, `.history` files, Vault
//! snapshots) and chooses the restore point for the target; an unreachable target fails as
//! `hapilot.RestoreTargetUnreachable` naming the closest reachable point. Nothing is touched.
//! Input: `{"request": <statemachines/schemas/dr-restore.input.json>, "run"}`.

use hapilot_aws::backups::BackupStore;
use hapilot_core::backup::audit::epoch_text;
use hapilot_core::backup::catalog::{Item, classify, is_base_data_tar, time_in_name};
use hapilot_core::backup::info::BackupInfo;
use hapilot_core::backup::wal::{self, DEFAULT_SEGMENT_SIZE, WalFile};
use hapilot_core::restore::{
    CatalogBaseBackup, CatalogWal, RestoreCatalog, RestoreRequest, RestoreTarget,
    resolve_restore_point,
};
use hapilot_core::{CoreError, ErrorName};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::backup_catalog::list_all;
use crate::config::Settings;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
struct Input {
    request: RestoreRequest,
    run: RunContext,
}

const POLL_SECS: u64 = 2;

/// Plans the restore.
pub async fn plan_restore<S: BackupStore>(
    store: &S,
    settings: &Settings,
    journal: &impl hapilot_aws::journal::Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input { request, run } = parse_input(input)?;
    let target = RestoreTarget::parse(&request.target)?;
    let region = settings.region(&request.region)?;
    if request.postgres && region.restore.is_none() {
        return Err(FunctionError::Setup(format!(
            "HAPILOT_REGIONS has no restore target for {} (restore.agent_url, restore.dsn)",
            request.region
        )));
    }
    if request.vault && region.vault.is_none() {
        return Err(FunctionError::Setup(format!(
            "HAPILOT_REGIONS has no vault for {} (vault.url, vault.token)",
            request.region
        )));
    }
    if let Some(check) = &request.data_check {
        check.validate()?;
    }
    let readiness = request.readiness_timeout_seconds.unwrap_or(900);
    if !(10..=86_400).contains(&readiness) {
        return Err(CoreError::invalid("readiness_timeout_seconds", "must be 10 to 86400").into());
    }
    let bucket = request
        .bucket
        .clone()
        .or_else(|| settings.dr_backup_bucket.clone())
        .ok_or_else(|| {
            CoreError::invalid(
                "bucket",
                "is not given and HAPILOT_DR_BACKUP_BUCKET is not set",
            )
        })?;
    let layout = request.layout.clone().unwrap_or_default();
    // The override, else what the newest usable backup.info records (below), else 16 MiB.
    let mut recorded_size: Option<(i64, u64)> = None;
    let unreadable = |e: String| {
        FunctionError::named(
            ErrorName::RestoreTargetUnreachable,
            format!("the backup catalog in s3://{bucket} cannot be read: {e}"),
        )
    };
    let objects = list_all(
        store,
        &bucket,
        &[
            format!("{}base/", layout.postgres),
            format!("{}wals/", layout.postgres),
            layout.vault.clone(),
        ],
    )
    .await
    .map_err(unreadable)?;
    let mut catalog = RestoreCatalog::default();
    for o in &objects {
        match classify(&o.key, &layout) {
            Some((_, Item::BaseBackup(id))) => {
                let text = store
                    .read_small(&bucket, &o.key)
                    .await
                    .map_err(|e| unreadable(e.to_string()))?
                    .unwrap_or_default();
                // Unusable base backups (not DONE, unreadable) are not restore candidates.
                if let Ok(info) = BackupInfo::parse(&String::from_utf8_lossy(&text))
                    && info.is_done()
                    && let Ok(end_time) = info.end_epoch()
                {
                    if let Some(size) = info.xlog_segment_size
                        && recorded_size.is_none_or(|(t, _)| t < end_time)
                    {
                        recorded_size = Some((end_time, size));
                    }
                    catalog.base_backups.push(CatalogBaseBackup {
                        id,
                        prefix: o.key.trim_end_matches("backup.info").to_string(),
                        begin_wal: info.begin_wal,
                        end_wal: info.end_wal,
                        end_time,
                    });
                }
            }
            Some((_, Item::Wal(segment))) => catalog.wal.push(CatalogWal {
                segment,
                key: o.key.clone(),
                archived: o.time,
            }),
            Some((_, Item::Snapshot)) => {
                catalog
                    .snapshots
                    .push((o.key.clone(), time_in_name(&o.key).unwrap_or(o.time)));
            }
            _ => {
                if let Some(WalFile::History(tli)) = wal::classify(&o.key) {
                    let body = store
                        .read_small(&bucket, &o.key)
                        .await
                        .map_err(|e| unreadable(e.to_string()))?
                        .unwrap_or_default();
                    if let Ok(s) = wal::parse_history(tli, &String::from_utf8_lossy(&body)) {
                        catalog.switches.extend(s);
                    }
                }
            }
        }
    }
    let segment_size = request
        .wal_segment_size
        .or(recorded_size.map(|(_, size)| size))
        .unwrap_or(DEFAULT_SEGMENT_SIZE);
    let point = resolve_restore_point(&catalog, target, segment_size).map_err(|u| {
        FunctionError::named(
            ErrorName::RestoreTargetUnreachable,
            format!(
                "{}: {}; closest reachable point: {}",
                request.target,
                u.reason,
                u.closest.map_or("none".to_string(), epoch_text)
            ),
        )
    })?;
    // The base backup's data tar and its manifest, if stored beside it.
    let files = store
        .list_tree(&bucket, &point.base_backup.prefix)
        .await
        .map_err(|e| unreadable(e.to_string()))?;
    let data_key = files
        .iter()
        .map(|o| o.key.clone())
        .find(|k| is_base_data_tar(k))
        .ok_or_else(|| {
            FunctionError::named(
                ErrorName::RestorePointCorrupt,
                format!(
                    "base backup {} has no data tar (data.tar[.gz] or base.tar[.gz])",
                    point.base_backup.id
                ),
            )
        })?;
    let history_keys: Vec<String> = objects
        .iter()
        .filter(|o| matches!(wal::classify(&o.key), Some(WalFile::History(_))))
        .map(|o| o.key.clone())
        .collect();
    let plan = json!({
        "region": request.region,
        "set_identifier": region.set_identifier,
        "bucket": bucket,
        "target": request.target,
        "target_epoch": match target { RestoreTarget::Time(t) => Some(t), RestoreTarget::Latest => None },
        // What the data check's RPO is measured against: the target, or now for "latest".
        "rpo_reference_epoch": match target { RestoreTarget::Time(t) => t, RestoreTarget::Latest => chrono::Utc::now().timestamp() },
        // PostgreSQL's recovery_target_time, in UTC.
        "recovery_target_time": match target {
            RestoreTarget::Time(t) => Some(epoch_text(t).replace('T', " ").replace('Z', "+00")),
            RestoreTarget::Latest => None,
        },
        "restore_point": point,
        "base_data_key": data_key,
        "base_info_key": format!("{}backup.info", point.base_backup.prefix),
        "history_keys": history_keys,
        "postgres": request.postgres,
        "vault": request.vault && point.vault_snapshot.is_some(),
        "vault_snapshot": point.vault_snapshot.as_ref().map(|(k, _)| k.clone()),
        "data_check": request.data_check,
        "offer_dns_switch": request.offer_dns_switch,
        "wal_segment_size": segment_size,
        "readiness": { "poll_seconds": POLL_SECS, "max_polls": readiness.div_ceil(POLL_SECS) },
        "summary": format!(
            "base backup {} (ended {}) + {} WAL segment(s) reaching {}{}",
            point.base_backup.id,
            epoch_text(point.base_backup.end_time),
            point.wal.len(),
            epoch_text(point.reachable_until),
            point.vault_snapshot.as_ref().map(|(k, _)| format!("; Vault snapshot {k}")).unwrap_or_default()
        ),
    });
    record(journal, &run, json!({ "after": plan })).await?;
    Ok(plan)
}
