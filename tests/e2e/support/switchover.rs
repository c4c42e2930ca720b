//! The graceful switchover every backend on a real PostgreSQL pair owes, written once: under a
//! steady writer, the run succeeds through the catch-up check, the standby becomes the writer,
//! and no committed row is lost. Each backend's test adds what is its own (PostgreSQL's fence
//! refusals and report, CloudNativePG's demotion token and failback).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use hapilot::runs::RunOutcome;
use serde_json::json;

use super::postgres::{Seen, connect, ids, in_recovery, start_writer};
use super::{FailoverWorld, entered};

/// What a graceful switchover under writes left.
pub struct Switched {
    /// The failover run.
    pub outcome: RunOutcome,
    /// The rows on the promoted standby.
    pub kept: BTreeSet<i64>,
    /// What the writer saw.
    pub seen: Seen,
}

/// Creates the `writes` table, writes to the primary every few ms, runs a graceful failover
/// named `name`, writes a moment longer (the old primary must keep refusing), and asserts what
/// every backend owes. `world` is any setup with a real PostgreSQL pair.
pub async fn graceful_under_writes(world: &FailoverWorld, name: &str) -> Switched {
    let pair = world.postgres();
    let primary = connect(&pair.primary.dsn()).await;
    primary
        .batch_execute("CREATE TABLE writes (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
        .await
        .unwrap();
    drop(primary);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (seen, writer) = start_writer(pair.primary.dsn(), stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    let arn = world
        .start_failover(name, world.console_input(json!({"mode": "graceful"})))
        .await;
    let outcome = world.follow(&arn).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    assert!(
        entered(&outcome, "CheckCatchup"),
        "{}",
        outcome.history_text()
    );

    let promoted = connect(&pair.replica.dsn()).await;
    assert!(
        !in_recovery(&promoted).await,
        "the standby is the primary now"
    );
    let kept = ids(&promoted).await;
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        seen.committed.len() > 20,
        "the writer wrote: {}",
        seen.committed.len()
    );
    let lost: Vec<_> = seen
        .committed
        .iter()
        .filter(|id| !kept.contains(id))
        .collect();
    assert_eq!(
        lost,
        Vec::<&i64>::new(),
        "committed rows lost in a graceful switchover"
    );
    Switched {
        outcome,
        kept,
        seen,
    }
}
