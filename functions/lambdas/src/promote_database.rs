//! Task `promote-database`: make the standby region's database the primary. Idempotent: an
//! already-promoted database is success (`"outcome": "already_primary"`).

use std::time::Duration;

use hapilot_aws::database::Database;
use hapilot_aws::journal::Journal;
use hapilot_core::ErrorName;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
struct Input {
    region: String,
    #[serde(default = "default_deadline")]
    deadline_seconds: u64,
    run: RunContext,
}

fn default_deadline() -> u64 {
    60
}

/// Promotes `region`'s database.
pub async fn promote_database<D: Database>(
    database: impl FnOnce(&str) -> Result<D, FunctionError>,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        region,
        deadline_seconds,
        run,
    } = parse_input(input)?;
    let outcome = database(&region)?
        .promote(Duration::from_secs(deadline_seconds))
        .await
        .map_err(FunctionError::from_adapter(ErrorName::PromotionFailed))?;
    let out = json!({ "region": region, "outcome": outcome });
    record(journal, &run, json!({ "after": out })).await?;
    Ok(out)
}
