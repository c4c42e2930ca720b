//! Task `read-replication`: the data-loss guard. Bounds the data a promotion of the standby
//! would lose from what can be known with the primary dark ([`hapilot_core::data_at_risk`]):
//! the primary's last position as the lag publisher kept it in the journal, the end of the WAL
//! archive in the DR bucket, the standby's receive and replay positions. When the archive
//! reaches beyond what the standby holds (streaming was cut before the primary died), it waits
//! for the standby to replay it through its `restore_command` before judging, so the archive
//! shrinks the loss. Output: `{"region", "status", "data_at_risk", "archive_replay"?,
//! "before_archive_replay"?, "assessment"}`; the state machine asks a human when
//! `assessment.within_rpo` is false, with all of it.

use std::time::Duration;

use hapilot_adapters::backups::BackupStore;
use hapilot_adapters::database::Database;
use hapilot_adapters::journal::Journal;
use hapilot_core::ErrorName;
use hapilot_core::backup::catalog::Layout;
use hapilot_core::data_at_risk::{
    DataAtRisk, PublishedPosition, RiskInputs, WalMark, archive_end, bound_data_at_risk,
    published_position_key,
};
use hapilot_core::failover::{ReplicationStatus, assess_bound, format_lsn};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::backup_catalog::read_restore_catalog;
use crate::error::parse_input;
use crate::run::{RunContext, record};

/// How long the standby may take to replay the archive before the guard judges what it has.
pub const ARCHIVE_REPLAY_WAIT: Duration = Duration::from_secs(30);
/// A standby whose replay position has not moved for this long has replayed what it can.
const ARCHIVE_REPLAY_STALL: Duration = Duration::from_secs(8);

#[derive(Deserialize)]
struct Input {
    region: String,
    rpo_secs: u64,
    /// The failing primary's region: whose published position bounds the loss.
    #[serde(default)]
    primary_region: Option<String>,
    run: RunContext,
}

/// Where the WAL archive is: the DR bucket's store and name.
pub struct WalArchive<'a, S> {
    /// The DR bucket's region.
    pub store: &'a S,
    /// The bucket (`HAPILOT_DR_BACKUP_BUCKET`).
    pub bucket: &'a str,
}

/// Bounds, replays the archive where it helps, and judges replication of `region`'s database
/// (`database` finds it by region); `archive` is `None` without a DR bucket.
pub async fn read_replication<D: Database, S: BackupStore>(
    database: impl FnOnce(&str) -> Result<D, FunctionError>,
    journal: &impl Journal,
    archive: Option<WalArchive<'_, S>>,
    input: Value,
) -> Result<Value, FunctionError> {
    read_replication_paced(database, journal, archive, input, Duration::from_secs(1)).await
}

/// [`read_replication`] polling the standby's replay every `poll` (tests use a short one).
pub async fn read_replication_paced<D: Database, S: BackupStore>(
    database: impl FnOnce(&str) -> Result<D, FunctionError>,
    journal: &impl Journal,
    archive: Option<WalArchive<'_, S>>,
    input: Value,
    poll: Duration,
) -> Result<Value, FunctionError> {
    let Input {
        region,
        rpo_secs,
        primary_region,
        run,
    } = parse_input(input)?;
    let db = database(&region)?;
    let read = || async {
        db.replication_status()
            .await
            .map_err(FunctionError::from_adapter(ErrorName::DatabaseUnreachable))
    };
    let mut status = read().await?;
    let (primary, primary_from) = published_position(journal, primary_region.as_deref()).await;
    let (archive, archive_from) = archive_end_of(archive).await;
    let mut inputs = RiskInputs {
        now: chrono::Utc::now().timestamp(),
        primary,
        primary_from,
        archive,
        archive_from,
        standby: status.standby_wal(),
        standby_from: format!("the standby in {region}"),
    };
    let first = bound_data_at_risk(&inputs);
    let mut replay = None;
    if let Some(to) = first.replay_archive_to {
        let (after, waited) = wait_for_archive_replay(&read, status.clone(), to, poll).await?;
        replay = Some(json!({
            "from": status.standby_wal().holds().map(format_lsn),
            "to": format_lsn(to),
            "reached": after.replayed_lsn.map(format_lsn),
            "complete": after.replayed_lsn.is_some_and(|r| r >= to),
            "waited_secs": waited.as_secs_f64(),
        }));
        status = after;
        inputs.now = chrono::Utc::now().timestamp();
        inputs.standby = status.standby_wal();
    }
    let risk: DataAtRisk = match replay {
        Some(_) => bound_data_at_risk(&inputs),
        None => first.clone(),
    };
    let assessment = assess_bound(&risk, rpo_secs);
    let mut out = json!({
        "region": region,
        "status": status,
        "data_at_risk": risk,
        "assessment": assessment,
    });
    if let Some(replay) = replay {
        out["archive_replay"] = replay;
        out["before_archive_replay"] = json!(first);
    }
    record(journal, &run, json!({ "measurements": out })).await?;
    Ok(out)
}

/// Polls the standby until it has replayed up to `to`, stops advancing, or
/// [`ARCHIVE_REPLAY_WAIT`] passes; its last status and how long it took.
async fn wait_for_archive_replay<F, Fut>(
    read: &F,
    mut status: ReplicationStatus,
    to: u64,
    poll: Duration,
) -> Result<(ReplicationStatus, Duration), FunctionError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<ReplicationStatus, FunctionError>>,
{
    let started = tokio::time::Instant::now();
    let mut last_move = started;
    while status.in_recovery
        && status.replayed_lsn.is_some_and(|r| r < to)
        && started.elapsed() < ARCHIVE_REPLAY_WAIT
        && last_move.elapsed() < ARCHIVE_REPLAY_STALL.max(poll * 3)
    {
        tokio::time::sleep(poll).await;
        let next = read().await?;
        if next.replayed_lsn != status.replayed_lsn {
            last_move = tokio::time::Instant::now();
        }
        status = next;
    }
    Ok((status, started.elapsed()))
}

/// The primary's last published position and where it came from (or why it is unknown).
async fn published_position(
    journal: &impl Journal,
    primary_region: Option<&str>,
) -> (Option<WalMark>, String) {
    let Some(region) = primary_region else {
        return (None, "no primary region given".into());
    };
    let key = published_position_key(region);
    match journal.get(&key).await {
        Ok(Some(v)) => match serde_json::from_value::<PublishedPosition>(v) {
            Ok(p) => (
                Some(p.mark()),
                format!("journal {key} (publish-replication-lag)"),
            ),
            Err(e) => (None, format!("journal {key} is not a position ({e})")),
        },
        Ok(None) => (
            None,
            format!("journal {key}: none published (is publish-replication-lag scheduled?)"),
        ),
        Err(e) => (None, format!("journal {key} cannot be read: {e}")),
    }
}

/// The WAL archive's end in the DR bucket and where it came from (or why it is unknown).
async fn archive_end_of<S: BackupStore>(
    archive: Option<WalArchive<'_, S>>,
) -> (Option<WalMark>, String) {
    let Some(WalArchive { store, bucket }) = archive else {
        return (
            None,
            "no DR backup bucket (HAPILOT_DR_BACKUP_BUCKET)".into(),
        );
    };
    match read_restore_catalog(store, bucket, &Layout::default()).await {
        Ok(listing) => {
            let size = hapilot_core::restore::segment_size(None, &listing.recorded_sizes);
            let size_from = match listing.recorded_sizes.is_empty() {
                true => "the default: no backup.info records one",
                false => "the newest backup.info",
            };
            match archive_end(&listing.catalog.wal, size) {
                Some((end, key)) => (
                    Some(end),
                    format!(
                        "s3://{bucket}/{key} (segments of {} MiB, {size_from})",
                        size >> 20
                    ),
                ),
                None => (None, format!("s3://{bucket}: no archived WAL")),
            }
        }
        Err(e) => (None, format!("the archive cannot be read: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::backups::MemoryBackupStore;
    use hapilot_adapters::database::MemoryDatabase;
    use hapilot_adapters::journal::MemoryJournal;

    fn standby(received: u64, replayed: u64, age: f64) -> ReplicationStatus {
        ReplicationStatus {
            in_recovery: true,
            replay_lag_secs: Some(age),
            unreplayed_bytes: Some(received.saturating_sub(replayed)),
            streaming: Some(false),
            received_lsn: Some(received),
            replayed_lsn: Some(replayed),
        }
    }

    fn input() -> Value {
        json!({
            "region": "us-west-2",
            "rpo_secs": 300,
            "primary_region": "us-east-1",
            "run": {"machine": "failover", "execution": "e", "state": "ReadReplication", "entered": "2026-12-06T00:00:00Z"},
        })
    }

    #[tokio::test]
    async fn the_archive_beyond_the_standby_is_replayed_before_the_verdict() {
        const SEG: u64 = 16 << 20;
        let journal = MemoryJournal::default();
        let now = chrono::Utc::now().timestamp();
        journal
            .put(
                &published_position_key("us-east-1"),
                &json!(PublishedPosition::new("us-east-1", 5 * SEG + 100, now - 20)),
            )
            .await
            .unwrap();
        let store = MemoryBackupStore::default();
        for seg in 1..=4 {
            store.insert(
                "dr",
                &format!(
                    "postgres/gateway-db/wals/0000000100000000/00000001000000000000000{seg}.gz"
                ),
                b"segment".to_vec(),
            );
        }
        let db = MemoryDatabase::new(standby(2 * SEG, 2 * SEG, 400.0));
        // The standby replays the archive as soon as it is asked for its status again.
        let replaying = db.clone();
        let database = move |_: &str| {
            let replaying = replaying.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                replaying.set_status(standby(2 * SEG, 5 * SEG, 25.0));
            });
            Ok(db)
        };
        let archive = WalArchive {
            store: &store,
            bucket: "dr",
        };
        let out = read_replication_paced(
            database,
            &journal,
            Some(archive),
            input(),
            Duration::from_millis(20),
        )
        .await
        .unwrap();
        let before = &out["before_archive_replay"];
        assert_eq!(before["bytes"], 3 * SEG + 100, "{out}");
        assert_eq!(before["replay_archive_to"], 5 * SEG);
        assert_eq!(out["archive_replay"]["complete"], true, "{out}");
        assert_eq!(out["data_at_risk"]["bytes"], 100);
        assert_eq!(out["assessment"]["at_risk_bytes"], 100);
        assert!(out["assessment"]["within_rpo"].as_bool().unwrap(), "{out}");
        let sources = out["data_at_risk"]["sources"].to_string();
        assert!(
            sources.contains("journal wal-positions/us-east-1.json"),
            "{sources}"
        );
        assert!(
            sources.contains(
                "s3://dr/postgres/gateway-db/wals/0000000100000000/000000010000000000000004.gz"
            ),
            "{sources}"
        );
        assert_eq!(
            journal.list("").await.unwrap().len(),
            2,
            "the position and the measurement"
        );
    }

    #[tokio::test]
    async fn without_a_published_position_or_an_archive_it_says_where_it_looked() {
        let journal = MemoryJournal::default();
        let store = MemoryBackupStore::default();
        let db = MemoryDatabase::new(standby(100, 100, 600.0));
        let out = read_replication_paced(
            |_: &str| Ok(db),
            &journal,
            Some(WalArchive {
                store: &store,
                bucket: "dr",
            }),
            input(),
            Duration::from_millis(10),
        )
        .await
        .unwrap();
        assert_eq!(out["assessment"]["within_rpo"], false);
        assert_eq!(out["data_at_risk"]["bytes"], Value::Null);
        assert_eq!(out["data_at_risk"]["secs"], 600.0);
        assert!(out.get("archive_replay").is_none());
        let sources = out["data_at_risk"]["sources"].to_string();
        assert!(
            sources.contains("none published (is publish-replication-lag scheduled?)"),
            "{sources}"
        );
        assert!(sources.contains("s3://dr: no archived WAL"), "{sources}");
    }
}
