//! Task `read-replication`: the data-loss guard. Reads the standby database's replication lag
//! and judges it against the tier's RPO. Output: `{"region", "status", "assessment"}`; the state
//! machine asks a human when `assessment.within_rpo` is false.

use hapilot_adapters::database::Database;
use hapilot_adapters::journal::Journal;
use hapilot_core::ErrorName;
use hapilot_core::failover::assess_data_loss;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
struct Input {
    region: String,
    rpo_secs: u64,
    run: RunContext,
}

/// Reads and judges replication of `region`'s database (`database` finds it by region).
pub async fn read_replication<D: Database>(
    database: impl FnOnce(&str) -> Result<D, FunctionError>,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        region,
        rpo_secs,
        run,
    } = parse_input(input)?;
    let status = database(&region)?
        .replication_status()
        .await
        .map_err(FunctionError::from_adapter(ErrorName::DatabaseUnreachable))?;
    let assessment = assess_data_loss(&status, rpo_secs);
    let out = json!({ "region": region, "status": status, "assessment": assessment });
    record(journal, &run, json!({ "measurements": out })).await?;
    Ok(out)
}
