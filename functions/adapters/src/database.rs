//! The regional PostgreSQL databases: replication status, promotion, fencing.
//!
//! Three backends behind one trait: `postgres` speaks SQL to the server itself (`pg_promote`),
//! `patroni` asks the Patroni REST API of the cluster to do it (`POST /failover`),
//! `cloudnativepg` changes the `Cluster` resources and lets the operator do it (see `cnpg`).

use std::future::Future;
use std::time::{Duration, Instant};

use hapilot_core::failover::ReplicationStatus;
use hapilot_core::restore::{DataCheck, RowManifest};
use serde::{Deserialize, Serialize};

use crate::AdapterError;

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
        /// PostgreSQL has no API for it. See `hapilot::local::agent`.
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
    Cloudnativepg(crate::cnpg::CnpgCluster),
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
            } => AnyDatabase::Cloudnativepg(crate::cnpg::CnpgCluster::new(
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

/// [`Database`] over SQL with tokio-postgres (`Debug` shows the target, never the DSN).
#[derive(Clone)]
pub struct PostgresDatabase {
    /// As given (libpq's forms); also what the host agent is told for re-protection.
    dsn: crate::SecretText,
    /// HTTP client and URL of the host agent, for re-protection.
    agent: Option<(reqwest::Client, String)>,
}

impl std::fmt::Debug for PostgresDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresDatabase")
            .field("target", &self.target())
            .finish()
    }
}

impl PostgresDatabase {
    /// A database reached with `dsn` (URI or key=value; `sslmode`, `sslrootcert` honoured; a
    /// `connect_timeout` of 5 s unless it sets one). A bad DSN fails at the first connection.
    pub fn new(dsn: impl Into<crate::SecretText>) -> Self {
        Self {
            dsn: dsn.into(),
            agent: None,
        }
    }

    /// The host and port its DSN names (the first of each), where another server's
    /// replication connection would reach it.
    pub fn host_and_port(&self) -> Result<(String, u16), AdapterError> {
        Ok(crate::postgres_dsn::PostgresDsn::parse(self.dsn.expose())?.host_and_port())
    }

    /// host:port for messages (the DSN may hold a password).
    fn target(&self) -> String {
        crate::postgres_dsn::PostgresDsn::parse(self.dsn.expose())
            .map(|d| d.target())
            .unwrap_or_else(|_| "?:?".into())
    }

    /// Opens a connection (its driver runs on a background task until the client drops).
    pub async fn connect(&self) -> Result<tokio_postgres::Client, AdapterError> {
        let dsn = crate::postgres_dsn::PostgresDsn::parse(self.dsn.expose())?;
        // `connect_timeout` bounds the socket's connect only; a server that accepts and then
        // says nothing (a hung backend, a half-dead proxy) would hold the step until the Lambda
        // times out. The whole handshake gets the same bound again.
        let bound = dsn
            .config
            .get_connect_timeout()
            .copied()
            .unwrap_or(Duration::from_secs(5))
            * 2;
        tokio::time::timeout(bound, self.connect_with(dsn))
            .await
            .map_err(|_| {
                AdapterError::Transient(format!(
                    "database {}: the connection was not ready within {} s (the server accepted it and did not finish the handshake)",
                    self.target(),
                    bound.as_secs()
                ))
            })?
    }

    async fn connect_with(
        &self,
        dsn: crate::postgres_dsn::PostgresDsn,
    ) -> Result<tokio_postgres::Client, AdapterError> {
        let client = match dsn.tls_config()? {
            None => {
                let (client, connection) = dsn
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| self.error(e))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
            Some(tls) => {
                let (client, connection) = dsn
                    .config
                    .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                    .await
                    .map_err(|e| self.error(e))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
        };
        Ok(client)
    }

    /// A query core would not build (identifiers that are not plain names): nothing was sent.
    fn refused_query(&self, e: hapilot_core::CoreError) -> AdapterError {
        AdapterError::Database {
            target: self.target(),
            detail: format!("not queried: {e}"),
        }
    }

    fn error(&self, e: tokio_postgres::Error) -> AdapterError {
        let detail = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => crate::error::error_chain(&e),
        };
        AdapterError::Database {
            target: self.target(),
            detail,
        }
        .transient_if(postgres_failure_is_transient(&e))
        .credentials_refused_if(postgres_refused_credentials(&e))
    }

    /// Makes new transactions read-only (the fence) or not, for every session, through the
    /// configuration file so it survives a restart; returns the connection for more work.
    async fn set_read_only(&self, on: bool) -> Result<tokio_postgres::Client, AdapterError> {
        let client = self.connect().await?;
        // Two statements, not one batch: ALTER SYSTEM refuses to run inside the implicit
        // transaction of a multi-statement query.
        client
            .batch_execute(if on {
                "ALTER SYSTEM SET default_transaction_read_only = on"
            } else {
                "ALTER SYSTEM RESET default_transaction_read_only"
            })
            .await
            .map_err(|e| self.error(e))?;
        client
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .map_err(|e| self.error(e))?;
        Ok(client)
    }

    /// The timeline the server is on: a primary's current WAL file's, a standby's last
    /// checkpoint's.
    pub async fn timeline(&self) -> Result<i64, AdapterError> {
        let client = self.connect().await?;
        let row = client
            .query_one(
                "SELECT CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())::int8 \
                 ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int8 END",
                &[],
            )
            .await
            .map_err(|e| AdapterError::Database {
                target: "timeline".into(),
                detail: crate::error::error_chain(&e),
            })?;
        Ok(row.get(0))
    }

    /// amcheck over a restored server (a restore test's scratch copy: it installs the
    /// extension): `bt_index_check` with `heapallindexed` on every B-tree index of the system
    /// catalog and of the user's tables. Returns how many were checked and each corrupt one
    /// with what amcheck said.
    pub async fn check_indexes(&self) -> Result<IndexCheck, AdapterError> {
        let client = self.connect().await?;
        client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS amcheck")
            .await
            .map_err(|e| self.error(e))?;
        let indexes = client
            .query(
                "SELECT c.oid, n.nspname || '.' || c.relname FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_am am ON am.oid = c.relam \
                 WHERE am.amname = 'btree' AND c.relpersistence <> 't' AND i.indisready AND i.indisvalid \
                 AND n.nspname NOT IN ('information_schema') AND n.nspname NOT LIKE 'pg_toast%' \
                 AND n.nspname NOT LIKE 'pg_temp%' ORDER BY 2",
                &[],
            )
            .await
            .map_err(|e| self.error(e))?;
        let mut out = IndexCheck::default();
        for row in indexes {
            let (oid, name): (tokio_postgres::types::Oid, String) = (row.get(0), row.get(1));
            out.checked += 1;
            // Only amcheck's own verdicts (SQLSTATE XX001 data_corrupted, XX002
            // index_corrupted) are corruption; any other failure is this check failing, which
            // must never read as "corrupt" nor as "clean".
            if let Err(e) = client
                .execute("SELECT bt_index_check($1::oid::regclass, true)", &[&oid])
                .await
            {
                use tokio_postgres::error::SqlState;
                match e.code() {
                    Some(code)
                        if *code == SqlState::INDEX_CORRUPTED
                            || *code == SqlState::DATA_CORRUPTED =>
                    {
                        let said = e
                            .as_db_error()
                            .map_or_else(|| e.to_string(), |d| d.message().to_string());
                        out.corrupt.push((name, said));
                    }
                    _ => return Err(self.error(e)),
                }
            }
        }
        Ok(out)
    }

    async fn in_recovery(&self, client: &tokio_postgres::Client) -> Result<bool, AdapterError> {
        let row = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(|e| self.error(e))?;
        Ok(row.get(0))
    }
}

impl DataReader for PostgresDatabase {
    async fn in_recovery(&self) -> Result<bool, AdapterError> {
        let client = self.connect().await?;
        PostgresDatabase::in_recovery(self, &client).await
    }

    async fn newest_row(
        &self,
        check: &DataCheck,
        not_after: Option<f64>,
    ) -> Result<NewestRow, AdapterError> {
        let sql = check
            .newest_row_sql(true)
            .map_err(|e| self.refused_query(e))?;
        let client = self.connect().await?;
        // A `timestamp without time zone` column (Prisma's, LiteLLM's) holds UTC and is
        // compared with the bound as UTC whatever the server's default time zone.
        client
            .batch_execute("SET TIME ZONE 'UTC'")
            .await
            .map_err(|e| self.error(e))?;
        let row = client
            .query_one(sql.as_str(), &[&not_after])
            .await
            .map_err(|e| self.error(e))?;
        Ok(NewestRow {
            newest_epoch: row.get(0),
            rows: row.get(1),
        })
    }

    async fn count_rows_up_to(&self, manifest: &RowManifest) -> Result<i64, AdapterError> {
        let sql = manifest.count_sql().map_err(|e| self.refused_query(e))?;
        let client = self.connect().await?;
        client
            .batch_execute("SET TIME ZONE 'UTC'")
            .await
            .map_err(|e| self.error(e))?;
        client
            .query_one(sql.as_str(), &[&(manifest.at as f64)])
            .await
            .map(|r| r.get(0))
            .map_err(|e| self.error(e))
    }

    async fn check_indexes(&self) -> Result<IndexCheck, AdapterError> {
        PostgresDatabase::check_indexes(self).await
    }
}

impl Database for PostgresDatabase {
    async fn replication_status(&self) -> Result<ReplicationStatus, AdapterError> {
        let client = self.connect().await?;
        let row = client
            .query_one(
                "SELECT pg_is_in_recovery(),
                        CASE WHEN pg_is_in_recovery()
                             THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END,
                        CASE WHEN pg_is_in_recovery()
                             THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8 END,
                        EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'),
                        CASE WHEN pg_is_in_recovery()
                             THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0')::float8 END,
                        CASE WHEN pg_is_in_recovery()
                             THEN pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::float8 END",
                &[],
            )
            .await
            .map_err(|e| self.error(e))?;
        let unreplayed: Option<f64> = row.get(2);
        // LSNs as float8: exact below 2^53 bytes (8 PiB of WAL).
        let lsn = |i: usize| row.get::<_, Option<f64>>(i).map(|b| b.max(0.0) as u64);
        Ok(ReplicationStatus {
            in_recovery: row.get(0),
            replay_lag_secs: row.get::<_, Option<f64>>(1).map(|s| s.max(0.0)),
            unreplayed_bytes: unreplayed.map(|b| b.max(0.0) as u64),
            streaming: Some(row.get(3)),
            received_lsn: lsn(4),
            replayed_lsn: lsn(5),
        })
    }

    async fn promote(&self, deadline: Duration) -> Result<PromotionOutcome, AdapterError> {
        let client = self.connect().await?;
        if !self.in_recovery(&client).await? {
            return Ok(PromotionOutcome::AlreadyPrimary);
        }
        let secs = deadline.as_secs().clamp(1, 3_600) as i32;
        let row = client
            .query_one("SELECT pg_promote(true, $1)", &[&secs])
            .await
            .map_err(|e| self.error(e))?;
        if row.get::<_, bool>(0) {
            Ok(PromotionOutcome::Promoted)
        } else {
            Err(AdapterError::Database {
                target: self.target(),
                detail: format!(
                    "pg_promote did not finish within {secs} s; the server log says why"
                ),
            })
        }
    }

    async fn fence(&self, _toward: Option<&DatabaseTarget>) -> FenceOutcome {
        let fence = async {
            let client = self.set_read_only(true).await?;
            // A transaction already running keeps its read-write mode and could commit after
            // the standby is promoted: end every session holding a transaction id. Its client
            // sees an error and no commit - nothing it was told succeeded is lost.
            client
                .batch_execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
                       AND backend_xid IS NOT NULL",
                )
                .await
                .map_err(|e| self.error(e))
        };
        match tokio::time::timeout(Duration::from_secs(5), fence).await {
            Ok(Ok(())) => FenceOutcome::ReadOnly,
            Ok(Err(e)) => FenceOutcome::Unreachable(e.to_string()),
            Err(_) => FenceOutcome::Unreachable(format!(
                "database {}: no answer within 5 s",
                self.target()
            )),
        }
    }
    async fn unfence(&self) -> Result<(), AdapterError> {
        self.set_read_only(false).await.map(drop)
    }

    async fn wal_position(&self) -> Result<WalPosition, AdapterError> {
        let client = self.connect().await?;
        // The fence is read from the configuration file's value as reloaded, not the session's.
        let row = client
            .query_one(
                "SELECT pg_is_in_recovery(),
                        (SELECT setting = 'on' FROM pg_settings WHERE name = 'default_transaction_read_only'),
                        (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                              ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::float8",
                &[],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(WalPosition {
            in_recovery: row.get(0),
            read_only: row.get(1),
            lsn: row.get::<_, Option<f64>>(2).unwrap_or(0.0) as u64,
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
        new_primary: &DatabaseTarget,
    ) -> Result<RebuildOutcome, AdapterError> {
        let Some((http, url)) = &self.agent else {
            return Err(AdapterError::NotFound(format!(
                "database {} has no agent_url: plain PostgreSQL cannot be rewound over SQL; run the hapilot host agent next to it, or use the patroni backend",
                self.target()
            )));
        };
        let DatabaseTarget::Postgres { dsn, .. } = new_primary else {
            return Err(AdapterError::NotFound(
                "the new primary must use the postgres backend too".into(),
            ));
        };
        let url = format!("{}/rebuild", url.trim_end_matches('/'));
        let fail = |detail: String| AdapterError::Http {
            system: "hapilot agent",
            url: url.clone(),
            detail,
        };
        let request = crate::restore::RebuildRequest {
            source_dsn: dsn.clone(),
        };
        let r = http
            .post(&url)
            .json(&request)
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .map_err(|e| {
                fail(crate::error::error_chain(&e))
                    .transient_if(crate::error::send_failure_is_transient(&e))
            })?;
        let status = r.status();
        if !status.is_success() {
            let refused = r
                .json::<crate::restore::AgentError>()
                .await
                .map(|e| e.error);
            return Err(fail(format!(
                "HTTP {status}: {}",
                refused.unwrap_or_else(|_| "no detail".into())
            )));
        }
        r.json::<RebuildOutcome>().await.map_err(|e| {
            fail(crate::error::error_chain(&e))
                .transient_if(crate::error::send_failure_is_transient(&e))
        })
    }

    async fn follow(
        &self,
        new_primary: &DatabaseTarget,
        deadline: Duration,
    ) -> Result<FollowOutcome, AdapterError> {
        use hapilot_core::follow::{FollowState, repoint_conninfo};
        let Some(new_dsn) = new_primary.sql_dsn() else {
            return Ok(FollowOutcome::new(
                FollowState::ByHand,
                "the new primary has no SQL connection string to point this standby at",
            ));
        };
        let new = PostgresDatabase::new(new_dsn.clone());
        let (host, port) = new.host_and_port()?;
        let timeline = new.timeline().await?;
        let client = self.connect().await?;
        if !self.in_recovery(&client).await? {
            return Ok(FollowOutcome::new(
                FollowState::NotAStandby,
                format!(
                    "{} accepts writes: not re-pointed (a second primary beside the promoted one: fence it and re-protect it)",
                    self.target()
                ),
            ));
        }
        let current: String = client
            .query_one("SHOW primary_conninfo", &[])
            .await
            .map_err(|e| self.error(e))?
            .get(0);
        let conninfo = match repoint_conninfo(&current, &host, port) {
            Ok(conninfo) => conninfo,
            Err(e) => return Ok(FollowOutcome::new(FollowState::ByHand, e.to_string())),
        };
        if conninfo != current {
            // primary_conninfo is reloadable since PostgreSQL 13: the WAL receiver restarts
            // with it. ALTER SYSTEM takes no parameters, hence the quoted literal.
            client
                .batch_execute(&format!(
                    "ALTER SYSTEM SET primary_conninfo = '{}'",
                    conninfo.replace('\'', "''")
                ))
                .await
                .map_err(|e| self.error(e))?;
            client
                .batch_execute("SELECT pg_reload_conf()")
                .await
                .map_err(|e| self.error(e))?;
        }
        let started = Instant::now();
        let mut last = String::from("no WAL receiver");
        loop {
            let row = client
                .query_opt(
                    "SELECT status, received_tli::int8 FROM pg_stat_wal_receiver",
                    &[],
                )
                .await
                .map_err(|e| self.error(e))?;
            if let Some(row) = row {
                let (status, received): (String, Option<i64>) = (row.get(0), row.get(1));
                if status == "streaming" && received.is_some_and(|t| t >= timeline) {
                    return Ok(FollowOutcome::new(
                        FollowState::Following { timeline },
                        format!("streams from {host}:{port} on timeline {timeline}"),
                    ));
                }
                last = format!(
                    "WAL receiver {status} on timeline {}",
                    received.map_or("?".into(), |t| t.to_string())
                );
            }
            if started.elapsed() >= deadline {
                return Ok(FollowOutcome::new(
                    FollowState::NotFollowing,
                    format!(
                        "{} did not stream from {host}:{port} on timeline {timeline} within {} s ({last}): it most likely replayed WAL beyond the promotion point; rebuild it from the new primary (hapilot reprotect) and see its server log",
                        self.target(),
                        deadline.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Whether PostgreSQL refused the login itself: SQLSTATE 28P01 (invalid_password) or 28000
/// (invalid_authorization_specification, e.g. no pg_hba entry for a rotated user).
pub fn postgres_refused_credentials(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|code| {
        *code == tokio_postgres::error::SqlState::INVALID_PASSWORD
            || *code == tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    })
}

/// Whether a PostgreSQL failure may pass when tried again: the connection could not be made or
/// broke (refused, reset, timed out, closed), or the server said so itself (SQLSTATE class 08
/// connection exceptions, `57P01`-`57P03` shutting down / cannot connect now, `53300` too many
/// connections, `40001` / `40P01` serialization failure and deadlock; PostgreSQL's appendix A).
/// A refused password, a TLS certificate that does not verify or bad SQL fail the same way again.
pub fn postgres_failure_is_transient(e: &tokio_postgres::Error) -> bool {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        return code.starts_with("08")
            || matches!(
                code,
                "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
            );
    }
    if e.is_closed() {
        return true;
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | TimedOut
                    | BrokenPipe
                    | UnexpectedEof
                    | NotConnected
                    | AddrNotAvailable
                    | HostUnreachable
                    | NetworkUnreachable
            );
        }
        cause = c.source();
    }
    false
}

/// [`Database`] through one Patroni member's REST API.
#[derive(Debug, Clone)]
pub struct PatroniMember {
    http: reqwest::Client,
    url: String,
    member: String,
    auth: Option<crate::http_client::HttpAuth>,
}

#[derive(Debug, Deserialize)]
struct PatroniStatus {
    role: Option<String>,
    xlog: Option<PatroniXlog>,
    /// A replica's `streaming` / `in archive recovery` (Patroni 3.0 and later).
    #[serde(default)]
    replication_state: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PatroniXlog {
    /// The leader's write position.
    location: Option<u64>,
    received_location: Option<u64>,
    replayed_location: Option<u64>,
    replayed_timestamp: Option<String>,
}

impl PatroniMember {
    /// A request to `path` with the member's authentication, when it has one.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        // Patroni answers at once (a failover is acted on after the answer): a member that has
        // not answered in 10 s is hung, and the step's retry does better than waiting on.
        let request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .timeout(Duration::from_secs(10));
        match &self.auth {
            Some(auth) => auth.apply(request),
            None => request,
        }
    }

    fn error(&self, path: &str, detail: impl Into<String>) -> AdapterError {
        AdapterError::Http {
            system: "Patroni",
            url: format!("{}{path}", self.url),
            detail: detail.into(),
        }
    }

    /// `GET /patroni`: role and WAL positions of this member.
    async fn status(&self) -> Result<PatroniStatus, AdapterError> {
        self.request(reqwest::Method::GET, "/patroni")
            .send()
            .await
            .map_err(|e| {
                self.error("/patroni", crate::error::error_chain(&e))
                    .transient_if(crate::error::send_failure_is_transient(&e))
            })?
            .json()
            .await
            .map_err(|e| {
                self.error("/patroni", crate::error::error_chain(&e))
                    .transient_if(crate::error::send_failure_is_transient(&e))
            })
    }

    /// POSTs `body` to `path`; a non-2xx answer is an error carrying Patroni's text. Returns
    /// the answer's text.
    async fn post(&self, path: &str, body: serde_json::Value) -> Result<String, AdapterError> {
        let r = self
            .request(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                self.error(path, crate::error::error_chain(&e))
                    .transient_if(crate::error::send_failure_is_transient(&e))
            })?;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        if matches!(status.as_u16(), 401 | 403) {
            return Err(self.error(
                path,
                format!(
                    "HTTP {status}: {}: Patroni's restapi.authentication refused the credentials \
                     or got none (set patroni_auth for this region in HAPILOT_DATABASE_SECRET)",
                    text.trim()
                ),
            )
            .credentials_refused_if(true));
        }
        if !status.is_success() {
            return Err(self
                .error(path, format!("HTTP {status}: {}", text.trim()))
                .for_status(status.as_u16()));
        }
        Ok(text)
    }

    /// Patroni answers a failover/switchover at once and acts a moment later: poll `/primary`.
    async fn wait_until_primary(
        &self,
        deadline: Duration,
        request: &str,
    ) -> Result<PromotionOutcome, AdapterError> {
        let started = Instant::now();
        while started.elapsed() < deadline {
            if self.is_primary().await? {
                return Ok(PromotionOutcome::Promoted);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(self.error(
            "/primary",
            format!(
                "{} was not primary within {} s of the {request} request",
                self.member,
                deadline.as_secs()
            ),
        ))
    }

    async fn is_primary(&self) -> Result<bool, AdapterError> {
        let r = self
            .request(reqwest::Method::GET, "/primary")
            .send()
            .await
            .map_err(|e| {
                self.error("/primary", crate::error::error_chain(&e))
                    .transient_if(crate::error::send_failure_is_transient(&e))
            })?;
        Ok(r.status().is_success())
    }
}

impl Database for PatroniMember {
    async fn replication_status(&self) -> Result<ReplicationStatus, AdapterError> {
        let status = self.status().await?;
        let in_recovery = !matches!(status.role.as_deref(), Some("master" | "primary"));
        let xlog = status.xlog.unwrap_or(PatroniXlog {
            location: None,
            received_location: None,
            replayed_location: None,
            replayed_timestamp: None,
        });
        let lag = xlog.replayed_timestamp.as_deref().and_then(|t| {
            chrono::DateTime::parse_from_rfc3339(t).ok().map(|t| {
                (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64
                    / 1000.0
            })
        });
        Ok(ReplicationStatus {
            in_recovery,
            replay_lag_secs: if in_recovery {
                lag.map(|l| l.max(0.0))
            } else {
                None
            },
            unreplayed_bytes: match (xlog.received_location, xlog.replayed_location) {
                (Some(r), Some(p)) if in_recovery => Some(r.saturating_sub(p)),
                _ => None,
            },
            streaming: status
                .replication_state
                .as_deref()
                .map(|s| s == "streaming"),
            received_lsn: xlog.received_location.filter(|_| in_recovery),
            replayed_lsn: xlog.replayed_location.filter(|_| in_recovery),
        })
    }

    async fn promote(&self, deadline: Duration) -> Result<PromotionOutcome, AdapterError> {
        if self.is_primary().await? {
            return Ok(PromotionOutcome::AlreadyPrimary);
        }
        self.post("/failover", serde_json::json!({ "candidate": self.member }))
            .await?;
        self.wait_until_primary(deadline, "failover").await
    }

    async fn fence(&self, _toward: Option<&DatabaseTarget>) -> FenceOutcome {
        FenceOutcome::LeftToClusterManager
    }

    async fn unfence(&self) -> Result<(), AdapterError> {
        Ok(())
    }

    async fn wal_position(&self) -> Result<WalPosition, AdapterError> {
        let status = self.status().await?;
        let in_recovery = !matches!(status.role.as_deref(), Some("master" | "primary"));
        let lsn = status.xlog.and_then(|x| {
            if in_recovery {
                x.replayed_location
            } else {
                x.location
            }
        });
        Ok(WalPosition {
            in_recovery,
            read_only: false,
            lsn: lsn.unwrap_or(0),
        })
    }

    async fn switchover(
        &self,
        old_primary: Option<&DatabaseTarget>,
        deadline: Duration,
    ) -> Result<PromotionOutcome, AdapterError> {
        let leader = match old_primary {
            Some(DatabaseTarget::Patroni { member, .. }) => Some(member.as_str()),
            _ => None,
        };
        if self.is_primary().await? {
            return Ok(PromotionOutcome::AlreadyPrimary);
        }
        let Some(leader) = leader else {
            return Err(self.error(
                "/switchover",
                "a switchover needs the current leader's member name",
            ));
        };
        // Patroni itself waits for the candidate to catch up, then demotes the leader.
        self.post(
            "/switchover",
            serde_json::json!({ "leader": leader, "candidate": self.member }),
        )
        .await?;
        self.wait_until_primary(deadline, "switchover").await
    }

    async fn rebuild_as_replica(
        &self,
        _new_primary: &DatabaseTarget,
    ) -> Result<RebuildOutcome, AdapterError> {
        let body = self
            .post("/reinitialize", serde_json::json!({ "force": true }))
            .await?;
        Ok(RebuildOutcome {
            method: "patroni_reinitialize".into(),
            detail: body.trim().to_string(),
        })
    }

    async fn follow(
        &self,
        _new_primary: &DatabaseTarget,
        _deadline: Duration,
    ) -> Result<FollowOutcome, AdapterError> {
        use hapilot_core::follow::FollowState;
        // Patroni re-points its replicas at the new leader itself (from the DCS); hapilot
        // only checks that this member did not take the lead too.
        Ok(if self.is_primary().await? {
            FollowOutcome::new(
                FollowState::NotAStandby,
                format!("Patroni member {} is a leader too", self.member),
            )
        } else {
            FollowOutcome::new(
                FollowState::ManagedByCluster,
                format!(
                    "Patroni member {} follows the cluster's leader",
                    self.member
                ),
            )
        })
    }

    async fn cluster_members(&self) -> Result<Option<ClusterMembers>, AdapterError> {
        let path = "/cluster";
        let body: serde_json::Value = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .map_err(|e| {
                self.error(path, crate::error::error_chain(&e))
                    .transient_if(crate::error::send_failure_is_transient(&e))
            })?
            .json()
            .await
            .map_err(|e| {
                self.error(path, crate::error::error_chain(&e))
                    .transient_if(crate::error::send_failure_is_transient(&e))
            })?;
        let members = body["members"]
            .as_array()
            .ok_or_else(|| self.error(path, "no members in the answer"))?;
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        Ok(Some(ClusterMembers {
            candidate: self.member.clone(),
            members: members
                .iter()
                .map(|m| hapilot_core::readiness::PatroniMemberView {
                    name: text(&m["name"]),
                    role: text(&m["role"]),
                    state: text(&m["state"]),
                    // A number of bytes, or "unknown" when Patroni cannot tell.
                    lag_bytes: m["lag"].as_u64(),
                    nofailover: m["tags"]["nofailover"].as_bool().unwrap_or(false),
                })
                .collect(),
        }))
    }
}

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
