//! Task `follow-new-primary`: after the promotion, every other secondary of the run (the
//! candidates not chosen, or every other region with a database when the input names none)
//! is pointed at the new primary, all at once, each bounded by `deadline_seconds`. Plain
//! PostgreSQL gets the new primary's host and port in `primary_conninfo` and must then stream
//! on its timeline; Patroni re-points its members itself (checked); CloudNativePG replica
//! clusters are named for the operator. A secondary that cannot follow is reported with what
//! it needs, never an error: the run's traffic does not wait on it.
//!
//! Input: `{"region": <new primary>, "old_region", "candidates"?: [RegionSite], "deadline_seconds"?,
//! "run"}`; output: `{"followers": [Follower], "summary", "attention": bool}`.

use std::time::Duration;

use hapilot_adapters::database::Database;
use hapilot_adapters::journal::Journal;
use hapilot_core::ErrorName;
use hapilot_core::failover::RegionSite;
use hapilot_core::follow::{FollowState, Follower, summarize};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::config::Settings;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
struct Input {
    region: String,
    old_region: String,
    #[serde(default)]
    candidates: Option<Vec<RegionSite>>,
    #[serde(default = "default_deadline")]
    deadline_seconds: u64,
    run: RunContext,
}

fn default_deadline() -> u64 {
    20
}

/// Points the run's other secondaries at `region`'s promoted database.
pub async fn follow_new_primary<D: Database>(
    database: impl Fn(&str) -> Result<D, FunctionError>,
    settings: &Settings,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        region,
        old_region,
        candidates,
        deadline_seconds,
        run,
    } = parse_input(input)?;
    let new_primary = settings.region(&region)?.database.clone().ok_or_else(|| {
        FunctionError::Core(hapilot_core::CoreError::invalid(
            "region",
            format!("{region} has no database in HAPILOT_REGIONS"),
        ))
    })?;
    let others = settings.other_regions(candidates, &region, &old_region, |c| c.database.is_some());
    let deadline = Duration::from_secs(deadline_seconds.clamp(1, 600));
    let (database, new_primary) = (&database, &new_primary);
    let followers: Vec<Follower> =
        futures_util::future::join_all(others.iter().map(|other| async move {
            let outcome = match database(other) {
                Ok(db) => db
                    .follow(new_primary, deadline)
                    .await
                    .map_err(FunctionError::from_adapter(ErrorName::DatabaseUnreachable)),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(o) => Follower {
                    region: other.to_string(),
                    state: o.state,
                    detail: o.detail,
                },
                Err(e) => Follower {
                    region: other.to_string(),
                    state: FollowState::Unreachable,
                    detail: e.to_string(),
                },
            }
        }))
        .await;
    let out = json!({
        "followers": followers,
        "summary": summarize(&followers),
        "attention": followers.iter().any(Follower::needs_attention),
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

    fn run() -> Value {
        json!({"machine": "failover", "execution": "e1", "state": "FollowNewPrimary", "entered": "2026-12-06T00:00:00Z"})
    }

    fn status(in_recovery: bool) -> ReplicationStatus {
        ReplicationStatus {
            in_recovery,
            replay_lag_secs: None,
            unreplayed_bytes: None,
            streaming: Some(false),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn every_other_secondary_follows_and_a_second_primary_is_named() {
        let journal = MemoryJournal::default();
        let dbs = std::collections::BTreeMap::from([
            ("us-west-2", MemoryDatabase::new(status(false))),
            ("eu-west-1", MemoryDatabase::new(status(true))),
            ("ap-south-1", MemoryDatabase::new(status(false))),
        ]);
        let out = follow_new_primary(
            |r| Ok(dbs[r].clone()),
            &Settings::fixture(&["us-east-1", "us-west-2", "eu-west-1", "ap-south-1"]),
            &journal,
            json!({"region": "us-west-2", "old_region": "us-east-1", "run": run()}),
        )
        .await
        .unwrap();
        let followers = out["followers"].as_array().unwrap();
        assert_eq!(followers.len(), 2, "{out:#}");
        assert_eq!(followers[0]["region"], "ap-south-1");
        assert_eq!(followers[0]["state"], "not_a_standby");
        assert_eq!(followers[1]["region"], "eu-west-1");
        assert_eq!(followers[1]["state"], "following");
        assert_eq!(out["attention"], true);
        assert_eq!(journal.list("runs/failover/e1/").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn only_the_candidates_are_re_pointed_and_an_unknown_one_is_reported() {
        let journal = MemoryJournal::default();
        let site = |r: &str| json!({"region": r, "health_url": format!("http://{r}/health"), "set_identifier": r});
        let out = follow_new_primary(
            |r| match r {
                "eu-west-1" => Ok(MemoryDatabase::new(status(true))),
                other => Err(FunctionError::Setup(format!("no database for {other}"))),
            },
            &Settings::fixture(&["us-east-1", "us-west-2", "eu-west-1", "ap-south-1"]),
            &journal,
            json!({
                "region": "eu-west-1", "old_region": "us-east-1",
                "candidates": [site("us-west-2"), site("eu-west-1")],
                "run": run(),
            }),
        )
        .await
        .unwrap();
        assert_eq!(out["followers"].as_array().unwrap().len(), 1, "{out:#}");
        assert_eq!(out["followers"][0]["region"], "us-west-2");
        assert_eq!(out["followers"][0]["state"], "unreachable");
        assert!(
            out["summary"]
                .as_str()
                .unwrap()
                .contains("us-west-2 unreachable")
        );
    }

    #[tokio::test]
    async fn a_new_primary_without_a_database_is_refused() {
        let mut settings = Settings::fixture(&["us-east-1", "us-west-2"]);
        settings.regions.get_mut("us-west-2").unwrap().database = None;
        let e = follow_new_primary(
            |_| Ok(MemoryDatabase::new(status(true))),
            &settings,
            &MemoryJournal::default(),
            json!({"region": "us-west-2", "old_region": "us-east-1", "run": run()}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.error_type(), ErrorName::InvalidInput.as_str());
    }
}
