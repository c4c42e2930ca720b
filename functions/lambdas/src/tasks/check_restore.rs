//! Task `check-restore`: one look at a DR restore of PostgreSQL. Ready when the agent has
//! started the server and it is out of recovery (promoted at the target); then the data check
//! runs: the newest row time of the configured table gives the restore's real RPO. The state
//! machine loops (Wait + Choice) until ready or the deadline.
//! Input: `{"region", "polls", "data_check"?, "target_epoch"?, "run"}`.

use hapilot_adapters::database::{DataReader, IndexCheck};
use hapilot_adapters::restore::RestoreAgent;
use hapilot_core::ErrorName;
use hapilot_core::restore::{DataCheck, RowManifest, restored_rpo_secs};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
struct Input {
    region: String,
    #[serde(default)]
    polls: u64,
    #[serde(default)]
    data_check: Option<DataCheck>,
    #[serde(default)]
    target_epoch: Option<i64>,
    /// A restore test's scratch target, not the DR restore's.
    #[serde(default)]
    scratch: bool,
    /// The backup job's count of the data table's rows up to a moment before the target.
    #[serde(default)]
    row_manifest: Option<RowManifest>,
    run: RunContext,
}

/// Looks once.
pub async fn check_restore<A: RestoreAgent, D: DataReader>(
    agent: impl FnOnce(&str, bool) -> Result<(A, D), FunctionError>,
    journal: &impl hapilot_adapters::journal::Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        region,
        polls,
        data_check,
        target_epoch,
        scratch,
        row_manifest,
        run,
    } = parse_input(input)?;
    if let Some(check) = &data_check {
        check.validate()?;
    }
    let (agent, db) = agent(&region, scratch)?;
    let progress = agent.progress().await.map_err(FunctionError::from_adapter(
        ErrorName::DatabaseRestoreFailed,
    ))?;
    let not_yet = |detail: String| json!({"ready": false, "polls": polls + 1, "detail": detail});
    match progress.state.as_str() {
        "failed" => {
            return Err(FunctionError::named(
                ErrorName::DatabaseRestoreFailed,
                format!("the restore agent failed: {}", progress.detail),
            ));
        }
        "started" => {}
        _ => return Ok(not_yet(progress.detail)),
    }
    match db.in_recovery().await {
        // Why it refuses (starting up, a password, a port nobody listens on) is what whoever
        // reads a timed-out restore needs.
        Err(e) => {
            return Ok(not_yet(format!(
                "server started, not answering queries yet: {e}"
            )));
        }
        Ok(true) => return Ok(not_yet("replaying WAL (still in recovery)".into())),
        Ok(false) => {}
    }
    let mut out = json!({"ready": true, "polls": polls + 1, "detail": progress.detail});
    // What was found goes to the journal whatever the verdict: a failed check shows why.
    let checked = check_contents(
        &db,
        (scratch, data_check, row_manifest),
        target_epoch,
        &mut out,
    )
    .await;
    record(journal, &run, json!({ "after": out })).await?;
    checked.map(|()| out)
}

/// The restored copy's content: amcheck on a restore test's scratch copy (a corrupt backup or
/// WAL fails it even when the server starts), the data check's newest row and the restore's
/// real RPO, and the backup job's row count. Each finding goes into `out`.
async fn check_contents(
    db: &impl DataReader,
    (scratch, data_check, row_manifest): (bool, Option<DataCheck>, Option<RowManifest>),
    target_epoch: Option<i64>,
    out: &mut Value,
) -> Result<(), FunctionError> {
    let failed = |what: String| FunctionError::named(ErrorName::DatabaseRestoreFailed, what);
    if scratch {
        let check = db
            .check_indexes()
            .await
            .map_err(|e| failed(format!("amcheck: {e}")))?;
        out["amcheck"] = json!(check);
        if let Some(problem) = corrupt_indexes(&check) {
            return Err(failed(problem));
        }
    }
    if let Some(check) = data_check {
        let newest = db
            .newest_row(&check, None)
            .await
            .map_err(|e| failed(format!("data check on {}: {e}", check.table)))?;
        out["data_check"] = json!({
            "table": check.table,
            "rows": newest.rows,
            "newest_row_epoch": newest.newest_epoch,
            "rpo_secs": restored_rpo_secs(newest.newest_epoch, target_epoch),
        });
    }
    if let Some(manifest) = row_manifest {
        let restored = db
            .count_rows_up_to(&manifest)
            .await
            .map_err(|e| failed(format!("row count of {}: {e}", manifest.table)))?;
        out["row_manifest"] = json!({
            "key": manifest.key,
            "at": manifest.at,
            "table": manifest.table,
            "expected": manifest.rows,
            "restored": restored,
        });
        if restored != manifest.rows {
            return Err(failed(format!(
                "the restored copy holds {restored} rows of {} up to {}; the backup job counted {} ({}): rows were lost or duplicated between the backup and its restore",
                manifest.table,
                hapilot_core::time::epoch_text(manifest.at),
                manifest.rows,
                manifest.key
            )));
        }
    }
    Ok(())
}

/// What amcheck's corrupt indexes say, when there are any.
fn corrupt_indexes(check: &IndexCheck) -> Option<String> {
    (!check.corrupt.is_empty()).then(|| {
        format!(
            "amcheck found {} corrupt index(es) of {}: {}",
            check.corrupt.len(),
            check.checked,
            check
                .corrupt
                .iter()
                .map(|(index, said)| format!("{index}: {said}"))
                .collect::<Vec<_>>()
                .join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::database::MemoryDataReader;
    use hapilot_adapters::journal::{Journal, MemoryJournal};
    use hapilot_adapters::restore::MemoryRestoreAgent;

    const TARGET: i64 = 1_796_000_060;

    fn input(scratch: bool, manifest_rows: Option<i64>) -> Value {
        let manifest = manifest_rows.map(|rows| {
            json!({"key": "pg/manifests/x.json", "at": TARGET - 30, "table": "spend",
                   "column": "at", "rows": rows})
        });
        json!({
            "region": "us-west-2", "polls": 2, "scratch": scratch,
            "data_check": {"table": "spend", "column": "at"}, "target_epoch": TARGET,
            "row_manifest": manifest,
            "run": RunContext::fixture_json("restore", "CheckRestore"),
        })
    }

    fn restored() -> MemoryDataReader {
        MemoryDataReader {
            rows: vec![
                (TARGET - 100) as f64,
                (TARGET - 40) as f64,
                (TARGET - 12) as f64,
            ],
            indexes: IndexCheck {
                checked: 12,
                corrupt: Vec::new(),
            },
            ..MemoryDataReader::default()
        }
    }

    async fn look(
        state: &str,
        db: MemoryDataReader,
        input: Value,
    ) -> (Result<Value, FunctionError>, MemoryJournal) {
        let (agent, journal) = (MemoryRestoreAgent::default(), MemoryJournal::default());
        agent.set_progress(state, "the agent's word");
        let out = check_restore(|_: &str, _: bool| Ok((agent, db)), &journal, input).await;
        (out, journal)
    }

    #[tokio::test]
    async fn not_ready_while_the_agent_works_the_server_refuses_or_it_still_replays() {
        for (state, db, says) in [
            ("running", restored(), "the agent's word"),
            (
                "started",
                MemoryDataReader {
                    unreachable: Some("connection refused".into()),
                    ..restored()
                },
                "not answering queries yet",
            ),
            (
                "started",
                MemoryDataReader {
                    in_recovery: true,
                    ..restored()
                },
                "still in recovery",
            ),
        ] {
            let (out, _) = look(state, db, input(false, None)).await;
            let out = out.unwrap();
            assert_eq!(
                (out["ready"].as_bool(), out["polls"].as_u64()),
                (Some(false), Some(3))
            );
            assert!(out["detail"].as_str().unwrap().contains(says), "{out}");
        }
        let (err, _) = look("failed", restored(), input(false, None)).await;
        assert_eq!(
            err.unwrap_err().error_type(),
            "hapilot.DatabaseRestoreFailed"
        );
    }

    #[tokio::test]
    async fn a_ready_restore_reports_its_real_rpo_and_matches_the_backup_jobs_count() {
        let (out, journal) = look("started", restored(), input(true, Some(2))).await;
        let out = out.unwrap();
        assert_eq!(out["ready"], true);
        assert_eq!(out["data_check"]["rows"], 3);
        assert_eq!(out["data_check"]["rpo_secs"], 12.0);
        assert_eq!(out["amcheck"]["checked"], 12);
        assert_eq!(out["row_manifest"]["restored"], 2);
        let step = RunContext::fixture("restore", "CheckRestore").key();
        assert_eq!(journal.get(&step).await.unwrap().unwrap()["after"], out);
    }

    #[tokio::test]
    async fn lost_rows_or_a_corrupt_index_fail_the_restore_test_and_are_recorded() {
        let (err, journal) = look("started", restored(), input(true, Some(3))).await;
        let err = err.unwrap_err();
        assert_eq!(err.error_type(), "hapilot.DatabaseRestoreFailed");
        assert!(err.to_string().contains("holds 2 rows of spend"), "{err}");
        let step = RunContext::fixture("restore", "CheckRestore").key();
        assert_eq!(
            journal.get(&step).await.unwrap().unwrap()["after"]["row_manifest"]["expected"],
            3
        );

        let mut db = restored();
        db.indexes.corrupt = vec![(
            "public.spend_pkey".into(),
            "item order invariant violated".into(),
        )];
        let (err, _) = look("started", db, input(true, None)).await;
        let err = err.unwrap_err().to_string();
        assert!(
            err.contains("1 corrupt index(es) of 12: public.spend_pkey"),
            "{err}"
        );
    }
}
