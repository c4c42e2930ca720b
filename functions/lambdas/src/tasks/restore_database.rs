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

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::backups::MemoryBackupStore;
    use hapilot_adapters::journal::{Journal, MemoryJournal};
    use hapilot_adapters::restore::MemoryRestoreAgent;
    use hapilot_core::backup::wal::WalSegment;
    use hapilot_core::restore::{CatalogBaseBackup, CatalogWal, RestoreTarget};

    fn segment(seg: u32) -> WalSegment {
        WalSegment {
            timeline: 1,
            log: 0,
            seg,
        }
    }

    fn input(target: Option<&str>, scratch: bool) -> Value {
        let point = RestorePoint {
            target: RestoreTarget::Latest,
            base_backup: CatalogBaseBackup {
                id: "base-1".into(),
                prefix: "pg/main/base/base-1".into(),
                begin_wal: segment(2),
                end_wal: segment(2),
                end_time: 1_700_000_000,
            },
            wal: (2..=4)
                .map(|seg| CatalogWal {
                    segment: segment(seg),
                    key: format!("pg/main/wals/00000001000000000000000{seg}"),
                    archived: 1_700_000_000 + i64::from(seg),
                })
                .collect(),
            reachable_until: 1_700_000_004,
            vault_snapshot: None,
            redis_rdb: None,
        };
        json!({
            "plan": {
                "region": "us-west-2",
                "bucket": "backups",
                "restore_point": point,
                "base_data_key": "pg/main/base/base-1/data.tar",
                "history_keys": ["pg/main/wals/00000002.history"],
                "recovery_target_time": target,
                "scratch": scratch,
            },
            "run": RunContext::fixture_json("restore", "RestoreDatabase"),
        })
    }

    #[tokio::test]
    async fn the_agent_gets_the_base_every_wal_and_history_file_and_the_target() {
        let (store, journal, agent) = (
            MemoryBackupStore::default(),
            MemoryJournal::default(),
            MemoryRestoreAgent::default(),
        );
        let mut asked = Vec::new();
        let out = restore_database(
            &store,
            |region: &str, scratch: bool| {
                asked.push((region.to_string(), scratch));
                Ok(agent.clone())
            },
            &journal,
            input(Some("2023-11-14 22:13:21+00"), true),
        )
        .await
        .unwrap();
        assert_eq!(
            asked,
            [("us-west-2".to_string(), true)],
            "the scratch target"
        );
        assert_eq!(
            (out["wal_files"].as_u64(), out["state"].as_str()),
            (Some(4), Some("running"))
        );
        let job = agent.jobs.lock().unwrap()[0].clone();
        assert_eq!(job.base.name, "data.tar");
        assert_eq!(
            job.base.url,
            "memory://backups/pg/main/base/base-1/data.tar"
        );
        let names: Vec<&str> = job.wal.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "000000010000000000000002",
                "000000010000000000000003",
                "000000010000000000000004",
                "00000002.history",
            ]
        );
        assert_eq!(job.target_time.as_deref(), Some("2023-11-14 22:13:21+00"));
        assert_eq!(job.backup_id.as_deref(), Some("base-1"));
        let step = RunContext::fixture("restore", "RestoreDatabase").key();
        assert_eq!(journal.get(&step).await.unwrap().unwrap()["after"], out);
    }

    #[tokio::test]
    async fn an_agent_that_cannot_be_reached_is_a_failed_restore_and_nothing_is_recorded() {
        let (store, journal) = (MemoryBackupStore::default(), MemoryJournal::default());
        let err = restore_database::<_, MemoryRestoreAgent>(
            &store,
            |_: &str, _: bool| {
                Err(FunctionError::named(
                    ErrorName::SetupFailed,
                    "no restore agent configured for us-west-2",
                ))
            },
            &journal,
            input(None, false),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), "hapilot.SetupFailed", "{err}");
        let step = RunContext::fixture("restore", "RestoreDatabase").key();
        assert_eq!(journal.get(&step).await.unwrap(), None);
    }
}
