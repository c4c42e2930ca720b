//! The in-memory fakes of [`Database`](super::Database) and [`DataReader`](super::DataReader)
//! for handler unit tests.

use std::time::Duration;

use hapilot_core::failover::ReplicationStatus;
use hapilot_core::restore::{DataCheck, RowManifest};

use super::{
    ClusterMembers, DataReader, Database, DatabaseTarget, FenceOutcome, FollowOutcome, IndexCheck,
    NewestRow, PromotionOutcome, RebuildOutcome, WalPosition,
};
use crate::AdapterError;

/// In-memory [`Database`] for handler unit tests: a replica or a primary that promotes,
/// fences and rebuilds in memory, with an optional cluster-manager member list.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone)]
pub struct MemoryDatabase {
    state: std::sync::Arc<std::sync::Mutex<ReplicationStatus>>,
    read_only: std::sync::Arc<std::sync::Mutex<bool>>,
    /// What `cluster_members` answers.
    pub members: Option<ClusterMembers>,
}

#[cfg(any(test, feature = "fakes"))]
impl MemoryDatabase {
    /// A database reporting `status`.
    pub fn new(status: ReplicationStatus) -> Self {
        Self {
            state: std::sync::Arc::new(std::sync::Mutex::new(status)),
            read_only: Default::default(),
            members: None,
        }
    }

    /// From now on it reports `status` (its clones too: a test plays the standby's progress).
    pub fn set_status(&self, status: ReplicationStatus) {
        *self.state.lock().expect("state") = status;
    }

    /// Whether it is fenced (read-only).
    pub fn is_read_only(&self) -> bool {
        *self.read_only.lock().expect("read only")
    }
}

#[cfg(any(test, feature = "fakes"))]
impl Database for MemoryDatabase {
    async fn replication_status(&self) -> Result<ReplicationStatus, AdapterError> {
        Ok(self.state.lock().expect("state").clone())
    }

    async fn promote(&self, _deadline: Duration) -> Result<PromotionOutcome, AdapterError> {
        let mut state = self.state.lock().expect("state");
        if !state.in_recovery {
            return Ok(PromotionOutcome::AlreadyPrimary);
        }
        state.in_recovery = false;
        state.replay_lag_secs = None;
        state.streaming = None;
        Ok(PromotionOutcome::Promoted)
    }

    async fn fence(&self, _toward: Option<&DatabaseTarget>) -> FenceOutcome {
        *self.read_only.lock().expect("read only") = true;
        FenceOutcome::ReadOnly
    }

    async fn unfence(&self) -> Result<(), AdapterError> {
        *self.read_only.lock().expect("read only") = false;
        Ok(())
    }

    async fn wal_position(&self) -> Result<WalPosition, AdapterError> {
        // One guard: a second lock inside the same expression would wait on the first.
        let state = self.state.lock().expect("state").clone();
        Ok(WalPosition {
            in_recovery: state.in_recovery,
            read_only: self.is_read_only(),
            lsn: state.replayed_lsn.unwrap_or(0),
        })
    }

    async fn switchover(
        &self,
        _old_primary: Option<&DatabaseTarget>,
        deadline: Duration,
    ) -> Result<PromotionOutcome, AdapterError> {
        self.promote(deadline).await
    }

    async fn rebuild_as_replica(
        &self,
        _new_primary: &DatabaseTarget,
    ) -> Result<RebuildOutcome, AdapterError> {
        let mut state = self.state.lock().expect("state");
        state.in_recovery = true;
        state.streaming = Some(true);
        Ok(RebuildOutcome {
            method: "pg_basebackup".into(),
            detail: "rebuilt in memory".into(),
        })
    }

    async fn follow(
        &self,
        _new_primary: &DatabaseTarget,
        _deadline: Duration,
    ) -> Result<FollowOutcome, AdapterError> {
        use hapilot_core::follow::FollowState;
        let mut state = self.state.lock().expect("state");
        if !state.in_recovery {
            return Ok(FollowOutcome::new(
                FollowState::NotAStandby,
                "it accepts writes",
            ));
        }
        state.streaming = Some(true);
        Ok(FollowOutcome::new(
            FollowState::Following { timeline: 2 },
            "followed in memory",
        ))
    }

    async fn cluster_members(&self) -> Result<Option<ClusterMembers>, AdapterError> {
        Ok(self.members.clone())
    }
}

/// In-memory [`DataReader`] for handler unit tests: one table's row times, a recovery flag and
/// amcheck's answer; `unreachable` makes every call fail as a server not accepting
/// connections would.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone, Default)]
pub struct MemoryDataReader {
    /// Whether the server still replays.
    pub in_recovery: bool,
    /// The time of each row of the checked table (epoch seconds).
    pub rows: Vec<f64>,
    /// What amcheck answers.
    pub indexes: IndexCheck,
    /// When set, what every call fails with.
    pub unreachable: Option<String>,
}

#[cfg(any(test, feature = "fakes"))]
impl MemoryDataReader {
    fn reachable(&self) -> Result<(), AdapterError> {
        match &self.unreachable {
            Some(detail) => Err(AdapterError::Transient(detail.clone())),
            None => Ok(()),
        }
    }
}

#[cfg(any(test, feature = "fakes"))]
impl DataReader for MemoryDataReader {
    async fn in_recovery(&self) -> Result<bool, AdapterError> {
        self.reachable()?;
        Ok(self.in_recovery)
    }

    async fn newest_row(
        &self,
        _check: &DataCheck,
        not_after: Option<f64>,
    ) -> Result<NewestRow, AdapterError> {
        self.reachable()?;
        let counted: Vec<f64> = self
            .rows
            .iter()
            .copied()
            .filter(|t| not_after.is_none_or(|n| *t <= n))
            .collect();
        Ok(NewestRow {
            newest_epoch: counted.iter().copied().reduce(f64::max),
            rows: counted.len() as i64,
        })
    }

    async fn count_rows_up_to(&self, manifest: &RowManifest) -> Result<i64, AdapterError> {
        self.reachable()?;
        Ok(self
            .rows
            .iter()
            .filter(|t| **t <= manifest.at as f64)
            .count() as i64)
    }

    async fn check_indexes(&self) -> Result<IndexCheck, AdapterError> {
        self.reachable()?;
        Ok(self.indexes.clone())
    }
}
