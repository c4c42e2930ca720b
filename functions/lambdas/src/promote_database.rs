//! Task `promote-database`: make the standby region's database the primary. Idempotent: an
//! already-promoted database is success (`"outcome": "already_primary"`). In a graceful run
//! (`"mode": "graceful"`, `"primary_region"`) it is a switchover from the old primary: Patroni
//! gets `POST /switchover` naming the leader; plain PostgreSQL is promoted (the run has already
//! waited for it to replay everything); CloudNativePG is promoted with the demoted cluster's
//! token, refused as `hapilot.PromotionTokenRefused` when the token does not fit.

use std::time::Duration;

use hapilot_adapters::database::Database;
use hapilot_adapters::journal::Journal;
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
    #[serde(default)]
    mode: Option<hapilot_core::failover::FailoverMode>,
    #[serde(default)]
    primary_region: Option<String>,
    run: RunContext,
}

fn default_deadline() -> u64 {
    60
}

/// Promotes `region`'s database.
pub async fn promote_database<D: Database>(
    database: impl FnOnce(&str) -> Result<D, FunctionError>,
    settings: &crate::config::Settings,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        region,
        deadline_seconds,
        mode,
        primary_region,
        run,
    } = parse_input(input)?;
    let deadline = Duration::from_secs(deadline_seconds);
    let db = database(&region)?;
    let graceful = mode == Some(hapilot_core::failover::FailoverMode::Graceful);
    let outcome = match (&primary_region, graceful) {
        (Some(primary), true) => {
            let old_primary = settings.region(primary)?.database.clone();
            db.switchover(old_primary.as_ref(), deadline).await
        }
        _ => db.promote(deadline).await,
    }
    .map_err(FunctionError::from_adapter(ErrorName::PromotionFailed))?;
    let out = json!({ "region": region, "outcome": outcome, "switchover": graceful });
    record(journal, &run, json!({ "after": out })).await?;
    Ok(out)
}
