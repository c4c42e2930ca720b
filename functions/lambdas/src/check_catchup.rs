//! Task `check-catchup`: one look at two databases' WAL positions - the fenced primary's write
//! position against what the standby has replayed. A graceful switchover promotes only when
//! the standby has replayed everything; re-protection ends when the rebuilt replica is within
//! `max_lag_bytes`. The state machine loops (Wait + Choice), this task never sleeps.
//! Input: `{"primary_region", "standby_region", "polls"?, "max_lag_bytes"? (0), "run"}`.

use hapilot_adapters::database::{Database, WalPosition};
use hapilot_adapters::journal::Journal;
use hapilot_core::ErrorName;
use hapilot_core::failover::{CatchupStatus, format_lsn};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    primary_region: String,
    standby_region: String,
    #[serde(default)]
    polls: u64,
    #[serde(default)]
    max_lag_bytes: u64,
    run: RunContext,
}

/// Compares the positions.
pub async fn check_catchup<D: Database>(
    database: impl Fn(&str) -> Result<D, FunctionError>,
    patroni: impl Fn(&str) -> bool,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        primary_region,
        standby_region,
        polls,
        max_lag_bytes,
        run,
    } = parse_input(input)?;
    if patroni(&standby_region) {
        // Patroni's switchover waits for the candidate itself.
        return Ok(json!({
            "caught_up": true, "polls": polls + 1, "lag_bytes": 0,
            "detail": "left to Patroni: POST /switchover waits for the candidate to catch up"
        }));
    }
    let unreachable = FunctionError::from_adapter(ErrorName::DatabaseUnreachable);
    let primary: WalPosition = database(&primary_region)?
        .wal_position()
        .await
        .map_err(unreachable)?;
    let standby: WalPosition = database(&standby_region)?
        .wal_position()
        .await
        .map_err(FunctionError::from_adapter(ErrorName::DatabaseUnreachable))?;
    let status = CatchupStatus {
        primary_lsn: primary.lsn,
        standby_lsn: standby.lsn,
    };
    // Positions are only comparable on a primary/replica pair; a primary that still takes
    // writes could move on after we looked.
    let (caught_up, detail) = if primary.in_recovery {
        (
            false,
            format!("{primary_region} is not a primary (in recovery)"),
        )
    } else if !standby.in_recovery {
        (false, format!("{standby_region} is not a replica"))
    } else {
        let within = status.lag_bytes() <= max_lag_bytes;
        (
            within,
            format!(
                "{primary_region} at {} ({}), {standby_region} replayed {}: {} bytes behind",
                format_lsn(status.primary_lsn),
                if primary.read_only {
                    "fenced"
                } else {
                    "accepting writes"
                },
                format_lsn(status.standby_lsn),
                status.lag_bytes()
            ),
        )
    };
    let out = json!({
        "caught_up": caught_up,
        "polls": polls + 1,
        "lag_bytes": status.lag_bytes(),
        "primary_lsn": format_lsn(status.primary_lsn),
        "standby_lsn": format_lsn(status.standby_lsn),
        "primary_fenced": primary.read_only,
        "standby_in_recovery": standby.in_recovery,
        "detail": detail,
    });
    record(journal, &run, json!({ "after": out })).await?;
    Ok(out)
}
