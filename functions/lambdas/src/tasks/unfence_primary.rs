//! Task `unfence-primary`: undo the database fence of a graceful switchover that did not
//! happen (the standby could not catch up in time): the primary accepts writes again. The
//! Route53 weights are put back by the run's compensation step.
//! Input: `{"region", "run"}`.

use hapilot_adapters::database::Database;
use hapilot_adapters::journal::Journal;
use hapilot_core::ErrorName;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    region: String,
    run: RunContext,
}

/// Lifts the fence of `region`'s database.
pub async fn unfence_primary<D: Database>(
    database: impl FnOnce(&str) -> Result<D, FunctionError>,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input { region, run } = parse_input(input)?;
    database(&region)?
        .unfence()
        .await
        .map_err(FunctionError::from_adapter(ErrorName::DatabaseUnreachable))?;
    let out = json!({ "region": region, "database": "read_write" });
    record(journal, &run, json!({ "after": out })).await?;
    Ok(out)
}
