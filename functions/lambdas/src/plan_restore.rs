//! Task `plan-restore`: the first step of a DR restore. Reads the backup catalog (base
//! backups' `backup.info`, WAL segments with their archive times, `.history` files, Vault
//! snapshots) and chooses the restore point for the target; an unreachable target fails as
//! `hapilot.RestoreTargetUnreachable` naming the closest reachable point. Nothing is touched.
//! Input: `{"request": <statemachines/schemas/dr-restore.input.json>, "run"}`.

use hapilot_adapters::backups::BackupStore;
use hapilot_core::ErrorName;
use hapilot_core::backup::catalog::is_base_data_tar;
use hapilot_core::backup::wal::{self, WalFile};
use hapilot_core::restore::{
    PlanInputs, RestorePlan, RestoreRequest, RestoreTarget, readiness_polls, resolve_restore_point,
    segment_size,
};
use hapilot_core::time::epoch_text;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::backup_catalog::read_restore_catalog;
use crate::config::Settings;
use crate::error::parse_input;
use crate::run::{RunContext, record, take_run_lock};

#[derive(Deserialize)]
struct Input {
    request: RestoreRequest,
    run: RunContext,
}

/// Plans the restore.
pub async fn plan_restore<S: BackupStore>(
    store: &S,
    settings: &Settings,
    (journal, runs): (
        &impl hapilot_adapters::journal::Journal,
        &impl hapilot_adapters::orchestrator::Orchestrator,
    ),
    input: Value,
) -> Result<Value, FunctionError> {
    let Input { request, run } = parse_input(input)?;
    let target = RestoreTarget::parse(&request.target)?;
    let region = settings.restore_region(&request.region, request.postgres, request.vault)?;
    if let Some(check) = &request.data_check {
        check.validate()?;
    }
    let polls = readiness_polls(request.readiness_timeout_seconds)?;
    let bucket = request
        .bucket
        .clone()
        .or_else(|| settings.dr_backup_bucket.clone())
        .ok_or_else(|| {
            hapilot_core::CoreError::invalid(
                "bucket",
                "is not given and HAPILOT_DR_BACKUP_BUCKET is not set",
            )
        })?;
    let unreadable = |e: String| {
        FunctionError::named(
            ErrorName::RestoreTargetUnreachable,
            format!("the backup catalog in s3://{bucket} cannot be read: {e}"),
        )
    };
    let listing = read_restore_catalog(store, &bucket, &request.layout.clone().unwrap_or_default())
        .await
        .map_err(unreadable)?;
    let size = segment_size(request.wal_segment_size, &listing.recorded_sizes);
    let point = resolve_restore_point(&listing.catalog, target, size).map_err(|u| {
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
    let base_data_key = base_data_tar(store, &bucket, &point.base_backup)
        .await?
        .map_err(unreadable)?;
    let history_keys = listing
        .objects
        .iter()
        .filter(|o| matches!(wal::classify(&o.key), Some(WalFile::History(_))))
        .map(|o| o.key.clone())
        .collect();
    let inputs = PlanInputs {
        set_identifier: region.set_identifier.clone(),
        bucket: bucket.clone(),
        base_data_key,
        history_keys,
        wal_segment_size: size,
        polls,
        now: chrono::Utc::now().timestamp(),
    };
    let plan = serde_json::to_value(RestorePlan::new(&request, point, inputs))
        .map_err(|e| FunctionError::Setup(e.to_string()))?;
    // The plan is valid: a restore ends by offering to move traffic, so it is one run that
    // changes the platform, and takes the run lock before anything is touched.
    let lock = take_run_lock(journal, runs, &run).await?;
    record(journal, &run, json!({ "after": plan, "run_lock": lock })).await?;
    Ok(plan)
}

/// The base backup's data tar, stored beside its `backup.info`: the outer error when there is
/// none, the inner when the store cannot be read.
async fn base_data_tar<S: BackupStore>(
    store: &S,
    bucket: &str,
    base: &hapilot_core::restore::CatalogBaseBackup,
) -> Result<Result<String, String>, FunctionError> {
    let files = match store.list_tree(bucket, &base.prefix).await {
        Ok(files) => files,
        Err(e) => return Ok(Err(e.to_string())),
    };
    files
        .iter()
        .map(|o| o.key.clone())
        .find(|k| is_base_data_tar(k))
        .map(Ok)
        .ok_or_else(|| {
            FunctionError::named(
                ErrorName::RestorePointCorrupt,
                format!(
                    "base backup {} has no data tar (data.tar[.gz] or base.tar[.gz])",
                    base.id
                ),
            )
        })
}
