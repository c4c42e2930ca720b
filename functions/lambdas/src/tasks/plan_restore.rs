//! Task `plan-restore`: the first step of a DR restore. Reads the backup catalog (base
//! backups' `backup.info`, WAL segments with their archive times, `.history` files, Vault
//! snapshots) and chooses the restore point for the target; an unreachable target fails as
//! `hapilot.RestoreTargetUnreachable` naming the closest reachable point. Nothing is touched.
//! Input: `{"request": <statemachines/schemas/dr-restore.input.json>, "test"?, "run"}`.
//!
//! A restore test (`"test": true`, the restore-test state machine) restores onto the region's
//! scratch target (`restore_test`), to a moment drawn at random inside the restore window
//! unless the request names a target (`"random"` is the default; the seed, the window and the
//! moment are in the plan), and takes no run lock: it changes nothing of the platform, and a
//! failover must never wait for a weekly test.

use hapilot_adapters::backups::BackupStore;
use hapilot_core::ErrorName;
use hapilot_core::backup::catalog::is_base_data_tar;
use hapilot_core::backup::wal::{self, WalFile};
use hapilot_core::restore::{
    PlanInputs, RestorePlan, RestoreRequest, RestoreTarget, random_target, readiness_polls,
    resolve_restore_point, seed_of, segment_size,
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
    request: Value,
    #[serde(default)]
    test: bool,
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
    let Input { request, test, run } = parse_input(input)?;
    let (request, region, random) = shape_request(settings, request, test)?;
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
    let (point, drawn) = choose_point(&listing.catalog, &request, (random, &run), size)?;
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
    let row_manifest = row_manifest(store, &bucket, &listing, &request, &point).await?;
    let mut plan = RestorePlan::new(&request, point, inputs);
    plan.scratch = test;
    plan.random = drawn;
    plan.row_manifest = row_manifest;
    let plan = serde_json::to_value(plan).map_err(|e| FunctionError::Setup(e.to_string()))?;
    if test {
        record(journal, &run, json!({ "after": plan })).await?;
        return Ok(plan);
    }
    // The plan is valid: a restore ends by offering to move traffic, so it is one run that
    // changes the platform, and takes the run lock before anything is touched.
    let lock = take_run_lock(journal, runs, &run).await?;
    record(journal, &run, json!({ "after": plan, "run_lock": lock })).await?;
    Ok(plan)
}

/// The request as this run restores it, checked before anything is read: a restore test's
/// defaults (a random moment, no DR Vault, Redis on a host agent) and refusals (a DR restore
/// neither draws a moment nor loads Redis), with the region's configuration and whether the
/// moment is drawn at random.
fn shape_request(
    settings: &Settings,
    request: Value,
    test: bool,
) -> Result<(RestoreRequest, &crate::config::RegionConfig, bool), FunctionError> {
    let named_target = request.get("target").is_some();
    let mut request: RestoreRequest = parse_input(request)?;
    if test && !named_target {
        request.target = "random".into();
    }
    let random = request.target.trim().eq_ignore_ascii_case("random");
    if random && !test {
        return Err(hapilot_core::CoreError::invalid(
            "target",
            "\"random\" is a restore test's target (the restore-test state machine); a DR restore names a moment or \"latest\"",
        )
        .into());
    }
    // A test never restores the DR Vault (a snapshot restored into it would replace what it
    // serves): only a scratch Vault, when the region has one.
    let vault_asked = request.vault;
    if test {
        request.vault = false;
        request.offer_dns_switch = false;
        request.redis = Some(request.redis.unwrap_or(true));
    } else if request.redis == Some(true) {
        return Err(hapilot_core::CoreError::invalid(
            "redis",
            "a DR restore does not restore Redis (the gateway's cache and counters rebuild themselves); a restore test loads the RDB onto its scratch host",
        )
        .into());
    }
    let region = match test {
        true => settings.restore_test_region(&request.region)?,
        false => settings.restore_region(&request.region, request.postgres, request.vault)?,
    };
    if test {
        request.vault = vault_asked && region.restore_test_vault.is_some();
    }
    // RDBs are loaded by a host agent; a CloudNativePG scratch target has none.
    if test
        && !matches!(
            region.restore_test,
            Some(hapilot_adapters::restore::RestoreDatabaseTarget::Postgres { .. })
        )
    {
        request.redis = Some(false);
    }
    if let Some(check) = &request.data_check {
        check.validate()?;
    }
    Ok((request, region, random))
}

/// The restore point: for the request's target, or for a moment drawn at random inside the
/// restore window (a restore test); an unreachable target names the closest reachable point.
fn choose_point(
    catalog: &hapilot_core::restore::RestoreCatalog,
    request: &RestoreRequest,
    (random, run): (bool, &RunContext),
    size: u64,
) -> Result<
    (
        hapilot_core::restore::RestorePoint,
        Option<hapilot_core::restore::RandomTarget>,
    ),
    FunctionError,
> {
    let drawn = match random {
        true => Some(
            random_target(
                catalog,
                request.seed.unwrap_or_else(|| seed_of(&run.execution)),
                size,
            )
            .map_err(|u| {
                FunctionError::named(
                    ErrorName::RestoreTargetUnreachable,
                    format!("no restore window to test: {}", u.reason),
                )
            })?,
        ),
        false => None,
    };
    let target = match drawn {
        Some(d) => RestoreTarget::Time(d.chosen),
        None => RestoreTarget::parse(&request.target)?,
    };
    let point = resolve_restore_point(catalog, target, size).map_err(|u| {
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
    Ok((point, drawn))
}

/// The backup job's row count for the data table at the newest moment at or before the
/// target it recorded one (a restore to `latest`: the newest), when there is one. A manifest
/// that cannot be read is a corrupt restore point: nothing is laid down on a guess.
async fn row_manifest<S: BackupStore>(
    store: &S,
    bucket: &str,
    listing: &crate::backup_catalog::RestoreListing,
    request: &RestoreRequest,
    point: &hapilot_core::restore::RestorePoint,
) -> Result<Option<hapilot_core::restore::RowManifest>, FunctionError> {
    let Some(check) = &request.data_check else {
        return Ok(None);
    };
    let target = match point.target {
        RestoreTarget::Time(t) => t,
        RestoreTarget::Latest => i64::MAX,
    };
    let Some((key, _)) = hapilot_core::restore::manifest_for(&listing.catalog.manifests, target)
    else {
        return Ok(None);
    };
    let corrupt = |why: String| FunctionError::named(ErrorName::RestorePointCorrupt, why);
    let body = store
        .read_small(bucket, key)
        .await
        .map_err(|e| {
            corrupt(format!(
                "the row manifest s3://{bucket}/{key} cannot be read: {e}"
            ))
        })?
        .unwrap_or_default();
    let manifest = hapilot_core::restore::RowManifest::for_check(key, &body, check)
        .map_err(|e| corrupt(format!("the row manifest is not one: {e}")))?;
    Ok(manifest.filter(|m| m.at <= target))
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

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::backups::MemoryBackupStore;
    use hapilot_adapters::journal::{Journal, MemoryJournal};
    use hapilot_adapters::orchestrator::MemoryOrchestrator;
    use hapilot_adapters::restore::RestoreDatabaseTarget;
    use hapilot_core::run_lock::LOCK_KEY;

    const PG: &str = "postgres/gateway-db/";
    /// A base backup that ended at 2026-11-25 09:00:04 UTC.
    const INFO: &str = "backup_label=None\nbackup_id=20261125T090000\n\
        begin_time=2026-11-25 09:00:00+00:00\nbegin_wal=000000010000000000000002\n\
        begin_xlog=0/2000028\nend_time=2026-11-25 09:00:04+00:00\n\
        end_wal=000000010000000000000002\nend_xlog=0/2000100\nstatus=DONE\ntimeline=1\n\
        version=160000\n";
    const BASE_END: i64 = 1_795_597_204;

    fn store() -> MemoryBackupStore {
        let store = MemoryBackupStore::default();
        let base = format!("{PG}base/20261125T090000/");
        store.insert_at("dr", &format!("{base}backup.info"), INFO.into(), BASE_END);
        store.insert_at(
            "dr",
            &format!("{base}data.tar.gz"),
            b"tar".to_vec(),
            BASE_END,
        );
        for seg in 2..=4 {
            store.insert_at(
                "dr",
                &format!("{PG}wals/0000000100000000/00000001000000000000000{seg}.gz"),
                b"wal".to_vec(),
                BASE_END + 60 * i64::from(seg),
            );
        }
        store
    }

    fn settings(with_test_target: bool) -> Settings {
        let mut settings = Settings::fixture(&["us-east-1", "us-west-2"]);
        settings.dr_backup_bucket = Some("dr".into());
        let target = RestoreDatabaseTarget::Postgres {
            agent_url: "http://agent".into(),
            dsn: "host=restore".into(),
        };
        let west = settings.regions.get_mut("us-west-2").unwrap();
        west.restore = Some(target.clone());
        west.restore_test = with_test_target.then_some(target);
        settings
    }

    async fn plan(
        settings: &Settings,
        request: Value,
        test: bool,
    ) -> (Result<Value, FunctionError>, MemoryJournal) {
        let journal = MemoryJournal::default();
        let mut run = RunContext::fixture_json("dr-restore", "PlanRestore");
        run["execution_arn"] = json!("arn:aws:states:us-west-2:0:execution:dr-restore:unit");
        let input = json!({"request": request, "test": test, "run": run});
        let out = plan_restore(
            &store(),
            settings,
            (&journal, &MemoryOrchestrator::default()),
            input,
        )
        .await;
        (out, journal)
    }

    #[tokio::test]
    async fn latest_restores_the_newest_base_and_every_wal_after_it_under_the_run_lock() {
        let (out, journal) = plan(
            &settings(false),
            json!({"region": "us-west-2", "vault": false}),
            false,
        )
        .await;
        let out = out.unwrap();
        assert_eq!(
            out["restore_point"]["base_backup"]["id"], "20261125T090000",
            "{out:#}"
        );
        assert_eq!(out["restore_point"]["wal"].as_array().unwrap().len(), 3);
        assert!(
            out["base_data_key"]
                .as_str()
                .unwrap()
                .ends_with("/data.tar.gz"),
            "{out:#}"
        );
        assert_eq!(out["scratch"], false);
        let lock = journal.get(LOCK_KEY).await.unwrap().expect("the run lock");
        assert_eq!(lock["machine"], "dr-restore");
    }

    #[tokio::test]
    async fn a_restore_test_draws_a_moment_in_the_window_and_takes_no_lock() {
        let (out, journal) = plan(
            &settings(true),
            json!({"region": "us-west-2", "seed": 7}),
            true,
        )
        .await;
        let out = out.unwrap();
        let chosen = out["random"]["chosen"].as_i64().unwrap();
        assert!((BASE_END..=BASE_END + 240).contains(&chosen), "{out:#}");
        assert_eq!(
            (out["scratch"].as_bool(), out["vault"].as_bool()),
            (Some(true), Some(false))
        );
        assert_eq!(journal.get(LOCK_KEY).await.unwrap(), None);
    }

    #[tokio::test]
    async fn what_cannot_be_restored_is_refused_before_anything_is_touched() {
        // A moment before the only base backup: unreachable, with the closest reachable point.
        let (out, journal) = plan(
            &settings(false),
            json!({"region": "us-west-2", "vault": false, "target": "2026-11-25T08:00:00Z"}),
            false,
        )
        .await;
        let err = out.unwrap_err();
        assert_eq!(
            err.error_type(),
            "hapilot.RestoreTargetUnreachable",
            "{err}"
        );
        assert!(err.to_string().contains("closest reachable point"), "{err}");
        assert_eq!(journal.get(LOCK_KEY).await.unwrap(), None);
        // "random" is a restore test's; Redis is not restored by a DR restore; a test needs
        // a scratch target.
        for (request, test, says) in [
            (
                json!({"region": "us-west-2", "target": "random"}),
                false,
                "restore test's target",
            ),
            (
                json!({"region": "us-west-2", "redis": true}),
                false,
                "does not restore Redis",
            ),
            (
                json!({"region": "us-west-2"}),
                true,
                "no restore_test target",
            ),
        ] {
            let (out, _) = plan(&settings(false), request, test).await;
            let err = out.unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }
}
