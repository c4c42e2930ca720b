//! The regional PostgreSQL databases: replication status, promotion, fencing.
//!
//! Three backends behind one trait, each a sibling file with the fake: [`postgres`] speaks SQL
//! to the server itself (`pg_promote`), [`patroni`] asks the Patroni REST API of the cluster to
//! do it (`POST /failover`), [`cnpg`] changes the CloudNativePG `Cluster` resources and lets the
//! operator do it; `memory` is the in-memory fake (feature `fakes`) for handler unit tests.
//! [`AnyDatabase`] is the one configured per region ([`DatabaseTarget`]).

use std::future::Future;
use std::time::Duration;

use hapilot_core::failover::ReplicationStatus;
use hapilot_core::restore::{DataCheck, RowManifest};
use serde::{Deserialize, Serialize};

use crate::AdapterError;

pub mod cnpg;
#[cfg(any(test, feature = "fakes"))]
pub mod memory;
pub mod patroni;
pub mod postgres;

pub use cnpg::CnpgCluster;
#[cfg(any(test, feature = "fakes"))]
pub use memory::{MemoryDataReader, MemoryDatabase};
pub use patroni::PatroniMember;
pub use postgres::{PostgresDatabase, postgres_failure_is_transient, postgres_refused_credentials};

/// What promotion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromotionOutcome {
    /// It was a replica and is now the primary.
    Promoted,
    /// It already was the primary (a repeated step, or promoted by hand): nothing done.
    AlreadyPrimary,
}

/// What fencing the old primary did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
pub enum FenceOutcome {
    /// New transactions are read-only now.
    ReadOnly,
    /// It could not be reached (the usual case when its region is down); DNS weight 0 is the fence.
    Unreachable(String),
    /// The cluster manager demotes the old leader itself.
    LeftToClusterManager,
    /// The operator stopped its writes (CloudNativePG: fenced instances, or demoted to a
    /// replica cluster of the standby in a switchover); what it did.
    Fenced(String),
}

/// One region's database.
pub trait Database: Send + Sync {
    /// Replication status of this database (as a standby).
    fn replication_status(
        &self,
    ) -> impl Future<Output = Result<ReplicationStatus, AdapterError>> + Send;
    /// Makes it the primary; idempotent.
    fn promote(
        &self,
        deadline: Duration,
    ) -> impl Future<Output = Result<PromotionOutcome, AdapterError>> + Send;
    /// Stops it accepting writes where it can be reached; never fails for an unreachable server.
    /// `toward` is the standby in a planned switchover (CloudNativePG demotes the primary
    /// cluster toward it); `None` in a failover.
    fn fence(&self, toward: Option<&DatabaseTarget>) -> impl Future<Output = FenceOutcome> + Send;
    /// Undoes [`Database::fence`] (a graceful switchover that did not happen).
    fn unfence(&self) -> impl Future<Output = Result<(), AdapterError>> + Send;
    /// Where its WAL stands: the write position on a primary, the replay position on a replica.
    fn wal_position(&self) -> impl Future<Output = Result<WalPosition, AdapterError>> + Send;
    /// Makes it the primary in a planned switchover from `old_primary` (Patroni:
    /// `POST /switchover` naming the leader; plain PostgreSQL: promotion, the caller having
    /// waited for the catch-up; CloudNativePG: promotion with the demoted cluster's token);
    /// idempotent.
    fn switchover(
        &self,
        old_primary: Option<&DatabaseTarget>,
        deadline: Duration,
    ) -> impl Future<Output = Result<PromotionOutcome, AdapterError>> + Send;
    /// Re-protection: turns this (old primary) database into a streaming replica of
    /// `new_primary` (pg_rewind, else a fresh base backup; Patroni: reinitialize).
    fn rebuild_as_replica(
        &self,
        new_primary: &DatabaseTarget,
    ) -> impl Future<Output = Result<RebuildOutcome, AdapterError>> + Send;
    /// What [`Database::rebuild_as_replica`] would destroy when the rebuild deletes data a
    /// human must agree to lose first (CloudNativePG: the former primary's `Cluster` and its
    /// PVCs, re-created from `new_primary`), or `None` when it only rejoins.
    fn rebuild_approval(
        &self,
        new_primary: &DatabaseTarget,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, AdapterError>> + Send {
        let _ = new_primary;
        async { Ok(None) }
    }
    /// After a failover promoted `new_primary`, points this standby (another secondary) at
    /// it and waits up to `deadline` until it streams from it on its new timeline. Changes
    /// nothing on a server that is not a standby.
    fn follow(
        &self,
        new_primary: &DatabaseTarget,
        deadline: Duration,
    ) -> impl Future<Output = Result<FollowOutcome, AdapterError>> + Send;
    /// Where a cluster manager keeps a member list (Patroni's `GET /cluster`): the member a
    /// failover promotes here and every member; None for backends without one.
    fn cluster_members(
        &self,
    ) -> impl Future<Output = Result<Option<ClusterMembers>, AdapterError>> + Send {
        async { Ok(None) }
    }
}

/// What amcheck found on a restored server ([`PostgresDatabase::check_indexes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexCheck {
    /// B-tree indexes checked.
    pub checked: u64,
    /// (index, what amcheck said) for each corrupt one.
    pub corrupt: Vec<(String, String)>,
}

/// A table's newest row time and its row count ([`DataReader::newest_row`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NewestRow {
    /// The newest row's time (epoch seconds); `None` when no row counts.
    pub newest_epoch: Option<f64>,
    /// Rows counted.
    pub rows: i64,
}

/// What the data checks read by SQL from one PostgreSQL server (a drill's primary or new
/// primary, a restored copy): the queries are core's ([`DataCheck::newest_row_sql`],
/// [`RowManifest::count_sql`]), run here; each call opens its own connection.
pub trait DataReader: Send + Sync {
    /// Whether it is still in recovery (`pg_is_in_recovery()`): a restore still replaying.
    fn in_recovery(&self) -> impl Future<Output = Result<bool, AdapterError>> + Send;
    /// The newest time in `check`'s column and the rows counted, only rows at or before
    /// `not_after` (epoch seconds) when given. Times compare in UTC whatever the server's zone.
    fn newest_row(
        &self,
        check: &DataCheck,
        not_after: Option<f64>,
    ) -> impl Future<Output = Result<NewestRow, AdapterError>> + Send;
    /// The rows of `manifest`'s table at or before its moment.
    fn count_rows_up_to(
        &self,
        manifest: &RowManifest,
    ) -> impl Future<Output = Result<i64, AdapterError>> + Send;
    /// amcheck over every B-tree index (see [`PostgresDatabase::check_indexes`]).
    fn check_indexes(&self) -> impl Future<Output = Result<IndexCheck, AdapterError>> + Send;
}

/// What [`Database::follow`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowOutcome {
    /// The standby's state afterwards.
    pub state: hapilot_core::follow::FollowState,
    /// What the server said, or what to do.
    pub detail: String,
}

impl FollowOutcome {
    fn new(state: hapilot_core::follow::FollowState, detail: impl Into<String>) -> Self {
        Self {
            state,
            detail: detail.into(),
        }
    }
}

/// A cluster manager's member list and the member the failover would promote.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterMembers {
    /// The configured failover candidate (`member` of the Patroni target).
    pub candidate: String,
    /// Every member, as the manager lists it.
    pub members: Vec<hapilot_core::readiness::PatroniMemberView>,
}

/// A database's WAL position (core judges catch-up from two of them).
pub use hapilot_core::failover::WalPosition;

/// How a database was re-protected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildOutcome {
    /// `pg_rewind`, `pg_basebackup` or `patroni_reinitialize`.
    pub method: String,
    /// What the tool said, briefly.
    pub detail: String,
}

/// How to reach one region's database, from configuration (`Debug` never shows the DSN,
/// which holds the password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum DatabaseTarget {
    /// Direct SQL; `dsn` is a libpq key=value string (password from a secret, never logged).
    Postgres {
        /// Connection string (may be left out when `HAPILOT_DATABASE_SECRET` gives it).
        #[serde(default)]
        dsn: crate::SecretText,
        /// The host agent that can rewind/rebuild this server (re-protection only); plain
        /// PostgreSQL has no API for it. See `hapilot::local::systems::agent`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent_url: Option<String>,
    },
    /// Patroni REST API of the member to promote / read.
    Patroni {
        /// Base URL of this member's Patroni API, e.g. `http://10.0.0.5:8008`.
        url: String,
        /// This member's Patroni name (the failover candidate).
        member: String,
        /// PEM file of the CA that signed Patroni's REST API certificate.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca_file: Option<String>,
        /// Patroni's `restapi.authentication` (basic), when it is on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auth: Option<crate::http_client::HttpAuth>,
        /// libpq connection string of this region's leader (its primary service or a proxy's
        /// write port), when SQL checks (the DR drill's data check) should read it; may come
        /// from `HAPILOT_DATABASE_SECRET`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dsn: Option<crate::SecretText>,
    },
    /// A CloudNativePG `Cluster` (operator 1.24+ distributed topology, or the older
    /// `replica.enabled` form), changed declaratively through the Kubernetes API; SQL through
    /// its read-write service for positions, lag and checks.
    Cloudnativepg {
        /// This region's Kubernetes API (`namespace`: the Cluster's).
        kubernetes: crate::scaler::KubernetesTarget,
        /// The `Cluster`'s name (`metadata.name`, which other clusters' `spec.replica.primary`
        /// names).
        cluster: String,
        /// libpq connection string of its `-rw` service (may be left out when
        /// `HAPILOT_DATABASE_SECRET` gives it).
        #[serde(default)]
        dsn: crate::SecretText,
    },
}

impl DatabaseTarget {
    /// The connection string SQL checks read through: the postgres backend's, a CloudNativePG
    /// cluster's `-rw` service, a Patroni leader's when configured.
    pub fn sql_dsn(&self) -> Option<&crate::SecretText> {
        match self {
            DatabaseTarget::Postgres { dsn, .. } | DatabaseTarget::Cloudnativepg { dsn, .. } => {
                Some(dsn)
            }
            DatabaseTarget::Patroni { dsn, .. } => dsn.as_ref(),
        }
        .filter(|d| !d.expose().trim().is_empty())
    }

    /// The backend's name, as `HAPILOT_REGIONS` spells it.
    pub fn backend(&self) -> &'static str {
        match self {
            DatabaseTarget::Postgres { .. } => "postgres",
            DatabaseTarget::Patroni { .. } => "patroni",
            DatabaseTarget::Cloudnativepg { .. } => "cloudnativepg",
        }
    }
}

/// A database of either backend.
#[derive(Debug, Clone)]
pub enum AnyDatabase {
    /// Direct SQL.
    Postgres(PostgresDatabase),
    /// Patroni REST.
    Patroni(PatroniMember),
    /// A CloudNativePG `Cluster` through the Kubernetes API.
    Cloudnativepg(crate::database::cnpg::CnpgCluster),
}

impl AnyDatabase {
    /// The adapter for `target`.
    pub fn new(target: &DatabaseTarget, http: reqwest::Client) -> Self {
        match target {
            DatabaseTarget::Postgres { dsn, agent_url } => {
                AnyDatabase::Postgres(PostgresDatabase {
                    dsn: dsn.clone(),
                    agent: agent_url.clone().map(|url| (http.clone(), url)),
                })
            }
            DatabaseTarget::Patroni {
                url, member, auth, ..
            } => AnyDatabase::Patroni(PatroniMember {
                http,
                url: url.trim_end_matches('/').to_string(),
                member: member.clone(),
                auth: auth.clone(),
            }),
            DatabaseTarget::Cloudnativepg {
                kubernetes,
                cluster,
                dsn,
            } => AnyDatabase::Cloudnativepg(crate::database::cnpg::CnpgCluster::new(
                http,
                kubernetes.clone(),
                cluster.clone(),
                PostgresDatabase::new(dsn),
            )),
        }
    }
}

impl Database for AnyDatabase {
    async fn replication_status(&self) -> Result<ReplicationStatus, AdapterError> {
        match self {
            AnyDatabase::Postgres(d) => d.replication_status().await,
            AnyDatabase::Patroni(d) => d.replication_status().await,
            AnyDatabase::Cloudnativepg(d) => d.replication_status().await,
        }
    }

    async fn promote(&self, deadline: Duration) -> Result<PromotionOutcome, AdapterError> {
        match self {
            AnyDatabase::Postgres(d) => d.promote(deadline).await,
            AnyDatabase::Patroni(d) => d.promote(deadline).await,
            AnyDatabase::Cloudnativepg(d) => d.promote(deadline).await,
        }
    }

    async fn fence(&self, toward: Option<&DatabaseTarget>) -> FenceOutcome {
        match self {
            AnyDatabase::Postgres(d) => d.fence(toward).await,
            AnyDatabase::Patroni(d) => d.fence(toward).await,
            AnyDatabase::Cloudnativepg(d) => d.fence(toward).await,
        }
    }

    async fn unfence(&self) -> Result<(), AdapterError> {
        match self {
            AnyDatabase::Postgres(d) => d.unfence().await,
            AnyDatabase::Patroni(d) => d.unfence().await,
            AnyDatabase::Cloudnativepg(d) => d.unfence().await,
        }
    }

    async fn wal_position(&self) -> Result<WalPosition, AdapterError> {
        match self {
            AnyDatabase::Postgres(d) => d.wal_position().await,
            AnyDatabase::Patroni(d) => d.wal_position().await,
            AnyDatabase::Cloudnativepg(d) => d.wal_position().await,
        }
    }

    async fn switchover(
        &self,
        old_primary: Option<&DatabaseTarget>,
        deadline: Duration,
    ) -> Result<PromotionOutcome, AdapterError> {
        match self {
            AnyDatabase::Postgres(d) => d.switchover(old_primary, deadline).await,
            AnyDatabase::Patroni(d) => d.switchover(old_primary, deadline).await,
            AnyDatabase::Cloudnativepg(d) => d.switchover(old_primary, deadline).await,
        }
    }

    async fn rebuild_as_replica(
        &self,
        new_primary: &DatabaseTarget,
    ) -> Result<RebuildOutcome, AdapterError> {
        match self {
            AnyDatabase::Postgres(d) => d.rebuild_as_replica(new_primary).await,
            AnyDatabase::Patroni(d) => d.rebuild_as_replica(new_primary).await,
            AnyDatabase::Cloudnativepg(d) => d.rebuild_as_replica(new_primary).await,
        }
    }

    async fn follow(
        &self,
        new_primary: &DatabaseTarget,
        deadline: Duration,
    ) -> Result<FollowOutcome, AdapterError> {
        match self {
            AnyDatabase::Postgres(d) => d.follow(new_primary, deadline).await,
            AnyDatabase::Patroni(d) => d.follow(new_primary, deadline).await,
            AnyDatabase::Cloudnativepg(d) => d.follow(new_primary, deadline).await,
        }
    }

    async fn rebuild_approval(
        &self,
        new_primary: &DatabaseTarget,
    ) -> Result<Option<serde_json::Value>, AdapterError> {
        match self {
            AnyDatabase::Cloudnativepg(d) => d.rebuild_approval(new_primary).await,
            AnyDatabase::Postgres(_) | AnyDatabase::Patroni(_) => Ok(None),
        }
    }

    async fn cluster_members(&self) -> Result<Option<ClusterMembers>, AdapterError> {
        match self {
            AnyDatabase::Patroni(d) => d.cluster_members().await,
            AnyDatabase::Postgres(_) | AnyDatabase::Cloudnativepg(_) => Ok(None),
        }
    }
}
