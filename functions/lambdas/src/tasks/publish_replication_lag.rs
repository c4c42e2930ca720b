//! Task `publish-replication-lag` (every minute, EventBridge Scheduler): the HA document's
//! alert "database replication lag > 30 s" needs a metric. For every replica among the
//! configured regions' databases, puts `hapilot/Database ReplicationLagSeconds` (dimension
//! `Region`): 0 when it has replayed everything the primary wrote, else the age of its last
//! replayed transaction. A database that cannot be read is logged in the output and skipped:
//! missing data makes the alarm fire (it treats missing data as breaching).
//!
//! It also keeps the primary's write position and the time it read it in the journal
//! (`wal-positions/<region>.json`): with the primary dark, the failover's data-at-risk bound
//! starts from it ([`hapilot_core::data_at_risk`]).

use hapilot_adapters::database::Database;
use hapilot_adapters::journal::Journal;
use hapilot_adapters::monitoring::{MetricValue, Metrics};
use hapilot_core::ErrorName;
use hapilot_core::data_at_risk::{PublishedPosition, published_position_key};
use hapilot_core::failover::{CatchupStatus, replication_lag_secs};
use serde_json::{Value, json};

use crate::FunctionError;
use crate::config::Settings;

/// Measures and publishes.
pub async fn publish_replication_lag<D: Database>(
    settings: &Settings,
    database: impl Fn(&str) -> Result<D, FunctionError>,
    (metrics, journal): (&impl Metrics, &impl Journal),
    _event: Value,
) -> Result<Value, FunctionError> {
    let mut positions = Vec::new();
    let mut problems = Vec::new();
    for (region, config) in &settings.regions {
        if config.database.is_none() {
            continue;
        }
        let db = database(region)?;
        match (db.wal_position().await, db.replication_status().await) {
            (Ok(p), Ok(s)) => positions.push((region.clone(), p, s.replay_lag_secs)),
            (Err(e), _) | (_, Err(e)) => problems.push(format!("{region}: {e}")),
        }
    }
    let primary = positions.iter().find(|(_, p, _)| !p.in_recovery);
    let primary_lsn = primary.map(|(_, p, _)| p.lsn);
    let mut published_position = Value::Null;
    if let Some((region, p, _)) = primary {
        let position = PublishedPosition::new(region, p.lsn, chrono::Utc::now().timestamp());
        published_position = json!(position);
        journal
            .put(&published_position_key(region), &published_position)
            .await
            .map_err(FunctionError::from_adapter(ErrorName::RecordFailed))?;
    }
    let mut published = serde_json::Map::new();
    for (region, position, age) in positions.iter().filter(|(_, p, _)| p.in_recovery) {
        let lag = match primary_lsn {
            Some(primary_lsn) => replication_lag_secs(
                CatchupStatus {
                    primary_lsn,
                    standby_lsn: position.lsn,
                },
                *age,
            ),
            None => *age,
        };
        let Some(lag) = lag else {
            problems.push(format!("{region}: no replayed transaction yet"));
            continue;
        };
        metrics
            .put(
                "hapilot/Database",
                &[("Region".into(), region.clone())],
                &[MetricValue::seconds("ReplicationLagSeconds", lag)],
            )
            .await
            .map_err(FunctionError::from_adapter(ErrorName::RecordFailed))?;
        published.insert(region.clone(), json!(lag));
    }
    Ok(
        json!({ "lag_secs": published, "primary_position": published_position, "problems": problems }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::database::MemoryDatabase;
    use hapilot_adapters::journal::MemoryJournal;
    use hapilot_adapters::monitoring::MemoryMonitoring;
    use hapilot_core::failover::ReplicationStatus;

    fn database(in_recovery: bool, lsn: u64, age: Option<f64>) -> MemoryDatabase {
        MemoryDatabase::new(ReplicationStatus {
            in_recovery,
            replay_lag_secs: age,
            replayed_lsn: Some(lsn),
            ..ReplicationStatus::default()
        })
    }

    fn lag_put(metrics: &MemoryMonitoring) -> Vec<(String, f64)> {
        metrics
            .values()
            .into_iter()
            .map(|(_, dims, v)| (dims[0].1.clone(), v.value))
            .collect()
    }

    #[tokio::test]
    async fn each_replica_gets_its_lag_and_the_primarys_position_is_kept() {
        let settings = Settings::fixture(&["us-east-1", "us-west-2", "eu-west-1"]);
        let dbs = [
            ("us-east-1", database(false, 5_000, None)),
            // Replayed everything the primary wrote: no lag, however old its last commit.
            ("us-west-2", database(true, 5_000, Some(120.0))),
            ("eu-west-1", database(true, 4_000, Some(7.5))),
        ];
        let (metrics, journal) = (MemoryMonitoring::default(), MemoryJournal::default());
        let out = publish_replication_lag(
            &settings,
            |region: &str| Ok(dbs.iter().find(|(r, _)| *r == region).unwrap().1.clone()),
            (&metrics, &journal),
            json!({}),
        )
        .await
        .unwrap();
        assert_eq!(
            lag_put(&metrics),
            [
                ("eu-west-1".to_string(), 7.5),
                ("us-west-2".to_string(), 0.0)
            ]
        );
        assert_eq!(out["problems"], json!([]));
        let kept = journal
            .get(&published_position_key("us-east-1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (kept["region"].as_str(), kept["lsn"].as_u64()),
            (Some("us-east-1"), Some(5_000))
        );
    }

    #[tokio::test]
    async fn a_replica_that_replayed_nothing_is_named_and_gets_no_metric() {
        let settings = Settings::fixture(&["us-east-1", "us-west-2"]);
        let dbs = [
            ("us-east-1", database(false, 5_000, None)),
            ("us-west-2", database(true, 0, None)),
        ];
        let (metrics, journal) = (MemoryMonitoring::default(), MemoryJournal::default());
        let out = publish_replication_lag(
            &settings,
            |region: &str| Ok(dbs.iter().find(|(r, _)| *r == region).unwrap().1.clone()),
            (&metrics, &journal),
            json!({}),
        )
        .await
        .unwrap();
        assert!(
            lag_put(&metrics).is_empty(),
            "missing data lets the alarm fire"
        );
        assert_eq!(
            out["problems"],
            json!(["us-west-2: no replayed transaction yet"])
        );
    }
}
