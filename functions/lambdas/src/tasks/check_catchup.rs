//! Task `check-catchup`: one look at two databases' WAL positions - the fenced primary's write
//! position against what the standby has replayed. A graceful switchover promotes only when
//! the standby has replayed everything; re-protection ends when the rebuilt replica is within
//! `max_lag_bytes`. The state machine loops (Wait + Choice), this task never sleeps.
//! Input: `{"primary_region", "standby_region", "polls"?, "max_lag_bytes"? (0), "run"}`.

use hapilot_adapters::database::{Database, WalPosition};
use hapilot_adapters::journal::Journal;
use hapilot_core::ErrorName;
use hapilot_core::failover::{format_lsn, judge_catchup};
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
    let verdict = judge_catchup(
        (&primary_region, primary),
        (&standby_region, standby),
        max_lag_bytes,
    );
    let status = verdict.status;
    let out = json!({
        "caught_up": verdict.caught_up,
        "polls": polls + 1,
        "lag_bytes": status.lag_bytes(),
        "primary_lsn": format_lsn(status.primary_lsn),
        "standby_lsn": format_lsn(status.standby_lsn),
        "primary_fenced": primary.read_only,
        "standby_in_recovery": standby.in_recovery,
        "detail": verdict.detail,
    });
    record(journal, &run, json!({ "after": out })).await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::database::MemoryDatabase;
    use hapilot_adapters::journal::MemoryJournal;
    use hapilot_core::failover::ReplicationStatus;

    fn database(in_recovery: bool, lsn: u64) -> MemoryDatabase {
        MemoryDatabase::new(ReplicationStatus {
            in_recovery,
            replayed_lsn: Some(lsn),
            ..ReplicationStatus::default()
        })
    }

    fn input(polls: u64) -> Value {
        json!({
            "primary_region": "us-east-1", "standby_region": "us-west-2", "polls": polls,
            "run": RunContext::fixture_json("failover", "CheckCatchup"),
        })
    }

    #[tokio::test]
    async fn a_standby_behind_the_fenced_primary_is_not_caught_up_until_it_replays_all() {
        let primary = database(false, 2_000);
        hapilot_adapters::database::Database::fence(&primary, None).await;
        let standby = database(true, 1_500);
        let journal = MemoryJournal::default();
        let dbs = |p: &MemoryDatabase, s: &MemoryDatabase| {
            let (p, s) = (p.clone(), s.clone());
            move |region: &str| {
                Ok(if region == "us-east-1" {
                    p.clone()
                } else {
                    s.clone()
                })
            }
        };
        let out = check_catchup(dbs(&primary, &standby), |_| false, &journal, input(0))
            .await
            .unwrap();
        assert_eq!(out["caught_up"], false);
        assert_eq!(out["lag_bytes"], 500);
        assert_eq!(out["polls"], 1);
        assert_eq!(out["primary_fenced"], true);
        let step = RunContext::fixture("failover", "CheckCatchup").key();
        assert_eq!(journal.get(&step).await.unwrap().unwrap()["after"], out);

        let standby = database(true, 2_000);
        let out = check_catchup(dbs(&primary, &standby), |_| false, &journal, input(1))
            .await
            .unwrap();
        assert_eq!(out["caught_up"], true, "{out}");
        assert_eq!(out["polls"], 2);
    }

    #[tokio::test]
    async fn patroni_is_left_to_wait_for_its_candidate_itself() {
        let journal = MemoryJournal::default();
        let never = |_: &str| -> Result<MemoryDatabase, FunctionError> {
            panic!("Patroni's catch-up reads no positions")
        };
        let out = check_catchup(never, |_| true, &journal, input(3))
            .await
            .unwrap();
        assert_eq!(out["caught_up"], true);
        assert_eq!(out["polls"], 4);
    }

    #[tokio::test]
    async fn an_unknown_field_is_refused_before_any_database_is_asked() {
        let journal = MemoryJournal::default();
        let never = |_: &str| -> Result<MemoryDatabase, FunctionError> {
            panic!("nothing is read on bad input")
        };
        let mut bad = input(0);
        bad["max_lag"] = json!(5);
        assert!(
            check_catchup(never, |_| false, &journal, bad)
                .await
                .is_err()
        );
    }
}
