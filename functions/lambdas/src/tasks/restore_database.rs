//! Task `restore-database`: start laying down PostgreSQL in the DR region from the restore
//! point: the region's restore agent gets presigned URLs of the base backup and every WAL and
//! history file (it has no AWS access of its own) and `recovery_target_time` for a point in
//! time; it works in the background, `check-restore` watches.
//! Input: `{"plan": <plan-restore output>, "run"}`.

use std::time::Duration;

use hapilot_adapters::backups::BackupStore;
use hapilot_adapters::restore::{FetchFile, RestoreAgent, RestoreJob};
use hapilot_core::ErrorName;
use hapilot_core::restore::RestorePoint;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
struct Plan {
    region: String,
    bucket: String,
    restore_point: RestorePoint,
    base_data_key: String,
    history_keys: Vec<String>,
    recovery_target_time: Option<String>,
    #[serde(default)]
    scratch: bool,
}

#[derive(Deserialize)]
struct Input {
    plan: Plan,
    run: RunContext,
}

/// Presigned URLs live as long as a restore may take to fetch them.
const URL_LIFETIME: Duration = Duration::from_secs(3_600);

/// Starts the restore.
pub async fn restore_database<S: BackupStore, A: RestoreAgent>(
    store: &S,
    agent: impl FnOnce(&str, bool) -> Result<A, FunctionError>,
    journal: &impl hapilot_adapters::journal::Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input { plan, run } = parse_input(input)?;
    let failed = |e: hapilot_adapters::AdapterError| {
        FunctionError::named(ErrorName::DatabaseRestoreFailed, e.to_string())
    };
    let keys: Vec<&str> = std::iter::once(plan.base_data_key.as_str())
        .chain(plan.restore_point.wal.iter().map(|w| w.key.as_str()))
        .chain(plan.history_keys.iter().map(String::as_str))
        .collect();
    let mut files = Vec::with_capacity(keys.len());
    for key in keys {
        files.push(FetchFile {
            name: key.rsplit('/').next().unwrap_or(key).to_string(),
            url: store
                .presigned_get(&plan.bucket, key, URL_LIFETIME)
                .await
                .map_err(failed)?,
        });
    }
    let base = files.remove(0);
    let wal = files;
    let job = RestoreJob {
        base,
        wal,
        target_time: plan.recovery_target_time.clone(),
        backup_id: Some(plan.restore_point.base_backup.id.clone()),
    };
    agent(&plan.region, plan.scratch)?
        .start(&job)
        .await
        .map_err(failed)?;
    let out = json!({
        "region": plan.region,
        "base": job.base.name,
        "wal_files": job.wal.len(),
        "recovery_target_time": job.target_time,
        "state": "running",
    });
    record(journal, &run, json!({ "after": out })).await?;
    Ok(out)
}
