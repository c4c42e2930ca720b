//! The `postgres` backend: SQL to the server itself with tokio-postgres (`pg_promote`, fencing
//! by `ALTER SYSTEM`), and re-protection through the host agent.

use std::time::{Duration, Instant};

use hapilot_core::failover::ReplicationStatus;
use hapilot_core::restore::{DataCheck, RowManifest};

use super::{
    DataReader, Database, DatabaseTarget, FenceOutcome, FollowOutcome, IndexCheck, NewestRow,
    PromotionOutcome, RebuildOutcome, WalPosition,
};
use crate::AdapterError;

/// [`Database`] over SQL with tokio-postgres (`Debug` shows the target, never the DSN).
#[derive(Clone)]
pub struct PostgresDatabase {
    /// As given (libpq's forms); also what the host agent is told for re-protection.
    pub(super) dsn: crate::SecretText,
    /// HTTP client and URL of the host agent, for re-protection.
    pub(super) agent: Option<(reqwest::Client, String)>,
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
