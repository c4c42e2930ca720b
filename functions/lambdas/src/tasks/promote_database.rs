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

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> Value {
        json!({"machine": "failover", "execution": "f-1", "state": "S", "entered": "2026-12-01T09:00:00Z"})
    }
    use hapilot_adapters::database::{MemoryDatabase, PromotionOutcome};
    use hapilot_adapters::journal::MemoryJournal;
    use hapilot_core::failover::ReplicationStatus;

    /// Promotion over a fake replica is idempotent: promoted, then already primary.
    #[tokio::test]
    async fn a_replica_is_promoted_once() {
        let replica = MemoryDatabase::new(ReplicationStatus {
            in_recovery: true,
            replay_lag_secs: Some(0.2),
            unreplayed_bytes: Some(0),
            streaming: Some(true),
            ..Default::default()
        });
        let (settings, journal) = (
            crate::config::Settings::with_defaults(),
            MemoryJournal::default(),
        );
        let input = json!({"region": "us-west-2", "run": run()});
        let first = promote_database(|_| Ok(replica.clone()), &settings, &journal, input.clone())
            .await
            .unwrap();
        assert_eq!(first["outcome"], json!(PromotionOutcome::Promoted));
        let again = promote_database(|_| Ok(replica.clone()), &settings, &journal, input)
            .await
            .unwrap();
        assert_eq!(again["outcome"], json!(PromotionOutcome::AlreadyPrimary));
    }
}
