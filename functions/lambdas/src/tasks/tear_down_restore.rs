//! Task `tear-down-restore`: the end of every restore test, passed or failed: the scratch
//! server (or recovery cluster) it laid down is stopped and removed, so the next test starts
//! clean and nothing restored lingers with data in it. Nothing there is success.
//! Input: `{"region", "run"}`; output: `{"region", "torn_down": true, "detail"}`.

use hapilot_adapters::restore::RestoreAgent;
use hapilot_core::ErrorName;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
struct Input {
    region: String,
    run: RunContext,
}

/// Tears the restore test's target down.
pub async fn tear_down_restore<A: RestoreAgent>(
    agent: impl FnOnce(&str) -> Result<A, FunctionError>,
    journal: &impl hapilot_adapters::journal::Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input { region, run } = parse_input(input)?;
    let detail = agent(&region)?
        .tear_down()
        .await
        .map_err(FunctionError::from_adapter(
            ErrorName::DatabaseRestoreFailed,
        ))?;
    let out = json!({"region": region, "torn_down": true, "detail": detail});
    record(journal, &run, json!({ "after": out })).await?;
    Ok(out)
}
