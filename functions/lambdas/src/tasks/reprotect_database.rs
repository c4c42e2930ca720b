//! Task `reprotect-database`: after a failover, turn the old primary's database into a
//! streaming replica of the new primary (pg_rewind, else a fresh base backup; Patroni:
//! reinitialize), so the pair is protected again and a failback has somewhere to go.
//!
//! Never overwrites a database that still accepts writes: that is split brain, reported as
//! `hapilot.SplitBrain` for a human to resolve. Idempotent: a database that already is a
//! replica is left alone.
//!
//! A rebuild that deletes data (CloudNativePG re-creates a former primary that lost its role
//! from the new primary) is not done without a human: the first call answers
//! `outcome: needs_approval` with what would be deleted, and the state machine asks; the call
//! after an approval (`"approval": {"approved": true, ...}`) rebuilds.
//! Input: `{"request": {"region": <old primary>, "primary_region": <new primary>,
//! "max_lag_bytes"?, "timeout_seconds"?, "approval_timeout_seconds"?}, "approval"?, "run"}`;
//! the output carries the plan of the wait that follows.

use hapilot_adapters::database::Database;
use hapilot_adapters::journal::Journal;
use hapilot_core::reprotect::ReprotectDecision;
use hapilot_core::{CoreError, ErrorName};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::config::Settings;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    region: String,
    primary_region: String,
    #[serde(default)]
    max_lag_bytes: Option<u64>,
    #[serde(default)]
    timeout_seconds: Option<u64>,
    /// How long a rebuild's approval waits.
    #[serde(default)]
    approval_timeout_seconds: Option<u64>,
}

#[derive(Deserialize)]
struct Approval {
    approved: bool,
}

#[derive(Deserialize)]
struct Input {
    request: Request,
    #[serde(default)]
    approval: Option<Approval>,
    run: RunContext,
}

/// A replica within one WAL segment of the primary counts as streaming.
const DEFAULT_MAX_LAG_BYTES: u64 = 16 * 1024 * 1024;
const DEFAULT_TIMEOUT_SECS: u64 = 600;
const POLL_SECS: u64 = 2;
const DEFAULT_APPROVAL_TIMEOUT_SECS: u64 = 900;

/// The wait's and the approval's limits, checked before anything is read.
fn limits(
    region: &str,
    primary_region: &str,
    timeout_seconds: Option<u64>,
    approval_timeout_seconds: Option<u64>,
) -> Result<(u64, u64), FunctionError> {
    let approval_timeout = approval_timeout_seconds.unwrap_or(DEFAULT_APPROVAL_TIMEOUT_SECS);
    if !(60..=86_400).contains(&approval_timeout) {
        return Err(CoreError::invalid("approval_timeout_seconds", "must be 60 to 86400").into());
    }
    if region == primary_region {
        return Err(CoreError::invalid("primary_region", "must differ from region").into());
    }
    let timeout = timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if !(10..=7_200).contains(&timeout) {
        return Err(CoreError::invalid("timeout_seconds", "must be 10 to 7200").into());
    }
    Ok((timeout, approval_timeout))
}

/// The new primary's database as configured, once it is confirmed to be one: reachable and
/// out of recovery.
async fn new_primary(
    settings: &Settings,
    db: &impl Database,
    primary_region: &str,
) -> Result<hapilot_adapters::database::DatabaseTarget, FunctionError> {
    let target = settings
        .region(primary_region)?
        .database
        .clone()
        .ok_or_else(|| {
            FunctionError::Setup(format!(
                "HAPILOT_REGIONS has no database for {primary_region}"
            ))
        })?;
    let failed = |detail: String| FunctionError::named(ErrorName::ReprotectFailed, detail);
    let position = db.wal_position().await.map_err(|e| {
        failed(format!(
            "the new primary {primary_region} cannot be reached: {e}"
        ))
    })?;
    if position.in_recovery {
        return Err(failed(format!(
            "{primary_region} is a replica, not the primary: re-protect from the region that is primary now"
        )));
    }
    Ok(target)
}

/// The refusal when the old primary still accepts writes, with what a human does about it.
fn split_brain(region: &str, primary_region: &str) -> FunctionError {
    FunctionError::named(
        ErrorName::SplitBrain,
        format!(
            "{region} is a primary that accepts writes while {primary_region} is primary too: split brain. \
             hapilot will not overwrite it. Compare both, decide whose writes win, fence or stop {region}, then run reprotect again."
        ),
    )
}

/// The answer that makes the state machine ask a human before a rebuild deletes data.
fn approval_request(
    (region, primary_region): (&str, &str),
    approval_timeout: u64,
    details: Value,
) -> Value {
    json!({
        "region": region,
        "primary_region": primary_region,
        "outcome": "needs_approval",
        "approval_timeout_seconds": approval_timeout,
        "approval_request": {
            "reason": format!(
                "Re-protect {region}: its database must be rebuilt from {primary_region}. {} Approve to delete and rebuild it; deny to leave it as it is.",
                details["deletes"].as_str().unwrap_or_default()
            ),
            "details": details,
        },
    })
}

/// Re-protects `region`'s database from `primary_region`'s.
pub async fn reprotect_database<D: Database>(
    database: impl Fn(&str) -> Result<D, FunctionError>,
    settings: &Settings,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        request,
        approval,
        run,
    } = parse_input(input)?;
    let Request {
        region,
        primary_region,
        max_lag_bytes,
        timeout_seconds,
        approval_timeout_seconds,
    } = request;
    let (timeout, approval_timeout) = limits(
        &region,
        &primary_region,
        timeout_seconds,
        approval_timeout_seconds,
    )?;
    let new_primary_target =
        new_primary(settings, &database(&primary_region)?, &primary_region).await?;
    let failed = |detail: String| FunctionError::named(ErrorName::ReprotectFailed, detail);
    let old = database(&region)?;
    let seen = old
        .wal_position()
        .await
        .ok()
        .map(|p| (p.in_recovery, p.read_only));
    let outcome = match hapilot_core::reprotect::decide(seen) {
        ReprotectDecision::RefuseSplitBrain => {
            let out = json!({ "region": region, "outcome": "refused_split_brain" });
            record(journal, &run, json!({ "after": out })).await?;
            return Err(split_brain(&region, &primary_region));
        }
        ReprotectDecision::AlreadyReplica => {
            json!({ "outcome": "already_replica", "method": null, "detail": "already a replica: nothing to do" })
        }
        // Fenced (read-only) or down: safe to rebuild, once a human agreed when the rebuild
        // deletes data.
        ReprotectDecision::Rebuild => {
            let risk = old
                .rebuild_approval(&new_primary_target)
                .await
                .map_err(|e| failed(e.to_string()))?;
            if let Some(details) = risk
                && !approval.as_ref().is_some_and(|a| a.approved)
            {
                let out = approval_request((&region, &primary_region), approval_timeout, details);
                record(journal, &run, json!({ "after": out })).await?;
                return Ok(out);
            }
            let rebuilt = old
                .rebuild_as_replica(&new_primary_target)
                .await
                .map_err(|e| failed(e.to_string()))?;
            json!({ "outcome": "rebuilt", "method": rebuilt.method, "detail": rebuilt.detail })
        }
    };
    let out = json!({
        "region": region,
        "primary_region": primary_region,
        "outcome": outcome["outcome"],
        "method": outcome["method"],
        "detail": outcome["detail"],
        "max_lag_bytes": max_lag_bytes.unwrap_or(DEFAULT_MAX_LAG_BYTES),
        "poll_seconds": POLL_SECS,
        "max_polls": timeout.div_ceil(POLL_SECS),
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

    const OLD: &str = "us-east-1";
    const NEW: &str = "us-west-2";

    fn database(in_recovery: bool) -> MemoryDatabase {
        MemoryDatabase::new(ReplicationStatus {
            in_recovery,
            replayed_lsn: Some(1_000),
            ..ReplicationStatus::default()
        })
    }

    fn input(region: &str) -> Value {
        json!({
            "request": {"region": region, "primary_region": NEW},
            "run": RunContext::fixture_json("reprotect", "ReprotectDatabase"),
        })
    }

    async fn reprotect(
        old: &MemoryDatabase,
        new: &MemoryDatabase,
        input: Value,
    ) -> (Result<Value, FunctionError>, MemoryJournal) {
        let journal = MemoryJournal::default();
        let dbs = |region: &str| {
            Ok(if region == OLD {
                old.clone()
            } else {
                new.clone()
            })
        };
        let out = reprotect_database(dbs, &Settings::fixture(&[OLD, NEW]), &journal, input).await;
        (out, journal)
    }

    async fn recorded(journal: &MemoryJournal) -> Value {
        let step = RunContext::fixture("reprotect", "ReprotectDatabase").key();
        journal.get(&step).await.unwrap().unwrap()["after"].clone()
    }

    #[tokio::test]
    async fn an_old_primary_that_still_takes_writes_is_split_brain_and_is_left_alone() {
        let (old, new) = (database(false), database(false));
        let (out, journal) = reprotect(&old, &new, input(OLD)).await;
        let err = out.unwrap_err();
        assert_eq!(err.error_type(), "hapilot.SplitBrain", "{err}");
        assert!(!old.is_read_only(), "nothing was done to it");
        assert_eq!(recorded(&journal).await["outcome"], "refused_split_brain");
    }

    #[tokio::test]
    async fn a_fenced_old_primary_is_rebuilt_and_a_replica_is_left_as_it_is() {
        let (old, new) = (database(false), database(false));
        Database::fence(&old, None).await;
        let (out, journal) = reprotect(&old, &new, input(OLD)).await;
        let out = out.unwrap();
        assert_eq!(
            (out["outcome"].as_str(), out["method"].as_str()),
            (Some("rebuilt"), Some("pg_basebackup"))
        );
        assert_eq!(out["max_polls"], 300);
        assert_eq!(recorded(&journal).await, out);

        // Run again: now a replica, nothing to do (idempotent).
        let (again, _) = reprotect(&old, &new, input(OLD)).await;
        assert_eq!(again.unwrap()["outcome"], "already_replica");
    }

    #[tokio::test]
    async fn a_new_primary_that_is_a_replica_or_the_same_region_is_refused_first() {
        let (old, new) = (database(false), database(true));
        Database::fence(&old, None).await;
        let (out, _) = reprotect(&old, &new, input(OLD)).await;
        let err = out.unwrap_err();
        assert_eq!(err.error_type(), "hapilot.ReprotectFailed", "{err}");
        assert!(
            err.to_string().contains("is a replica, not the primary"),
            "{err}"
        );
        assert!(old.is_read_only(), "the old primary was not touched");

        let (out, _) = reprotect(&old, &new, input(NEW)).await;
        assert!(
            out.unwrap_err()
                .to_string()
                .contains("must differ from region")
        );
    }
}
