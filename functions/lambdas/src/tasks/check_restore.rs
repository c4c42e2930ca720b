//! Task `check-restore`: one look at a DR restore of PostgreSQL. Ready when the agent has
//! started the server and it is out of recovery (promoted at the target); then the data check
//! runs: the newest row time of the configured table gives the restore's real RPO. The state
//! machine loops (Wait + Choice) until ready or the deadline.
//! Input: `{"region", "polls", "data_check"?, "target_epoch"?, "run"}`.

use hapilot_adapters::database::PostgresDatabase;
use hapilot_adapters::restore::RestoreAgent;
use hapilot_core::ErrorName;
use hapilot_core::restore::DataCheck;
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
    row_manifest: Option<hapilot_core::restore::RowManifest>,
    run: RunContext,
}

/// Looks once.
pub async fn check_restore<A: RestoreAgent>(
    agent: impl FnOnce(&str, bool) -> Result<(A, String), FunctionError>,
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
    let (agent, dsn) = agent(&region, scratch)?;
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
    let db = PostgresDatabase::new(dsn.as_str());
    let client = match db.connect().await {
        Ok(client) => client,
        // Why it refuses (starting up, a password, a port nobody listens on) is what whoever
        // reads a timed-out restore needs.
        Err(e) => {
            return Ok(not_yet(format!(
                "server started, not accepting connections yet: {e}"
            )));
        }
    };
    let in_recovery: bool = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(true);
    if in_recovery {
        return Ok(not_yet("replaying WAL (still in recovery)".into()));
    }
    let mut out = json!({"ready": true, "polls": polls + 1, "detail": progress.detail});
    // A restore test's scratch copy is checked by content: amcheck over every B-tree index
    // (catalog and data), which a corrupt backup or WAL fails even when the server starts.
    if scratch {
        let check = db.check_indexes().await.map_err(|e| {
            FunctionError::named(ErrorName::DatabaseRestoreFailed, format!("amcheck: {e}"))
        })?;
        out["amcheck"] = json!(check);
        if !check.corrupt.is_empty() {
            record(journal, &run, json!({ "after": out })).await?;
            return Err(FunctionError::named(
                ErrorName::DatabaseRestoreFailed,
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
                ),
            ));
        }
    }
    if let Some(check) = data_check {
        let sql = check.newest_row_sql(false)?;
        let row = client.query_one(sql.as_str(), &[]).await.map_err(|e| {
            FunctionError::named(
                ErrorName::DatabaseRestoreFailed,
                format!("data check on {}: {e}", check.table),
            )
        })?;
        let newest: Option<f64> = row.get(0);
        let rows: i64 = row.get(1);
        out["data_check"] = json!({
            "table": check.table,
            "rows": rows,
            "newest_row_epoch": newest,
            // The restore's real RPO: how far before the target the newest restored row is.
            "rpo_secs": match (newest, target_epoch) {
                (Some(n), Some(t)) => Some((t as f64 - n).max(0.0)),
                _ => None,
            },
        });
    }
    if let Some(manifest) = row_manifest {
        let sql = manifest.count_sql()?;
        let restored: i64 = client
            .query_one(sql.as_str(), &[&(manifest.at as f64)])
            .await
            .map(|r| r.get(0))
            .map_err(|e| {
                FunctionError::named(
                    ErrorName::DatabaseRestoreFailed,
                    format!("row count of {}: {e}", manifest.table),
                )
            })?;
        out["row_manifest"] = json!({
            "key": manifest.key,
            "at": manifest.at,
            "table": manifest.table,
            "expected": manifest.rows,
            "restored": restored,
        });
        if restored != manifest.rows {
            record(journal, &run, json!({ "after": out })).await?;
            return Err(FunctionError::named(
                ErrorName::DatabaseRestoreFailed,
                format!(
                    "the restored copy holds {restored} rows of {} up to {}; the backup job counted {} ({}): rows were lost or duplicated between the backup and its restore",
                    manifest.table,
                    hapilot_core::time::epoch_text(manifest.at),
                    manifest.rows,
                    manifest.key
                ),
            ));
        }
    }
    record(journal, &run, json!({ "after": out })).await?;
    Ok(out)
}
