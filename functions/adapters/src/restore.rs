//! The database a DR restore lays down, behind one trait with two backends:
//! - `postgres`: the host agent next to the server fetches the base backup and WAL (presigned
//!   URLs), lays down the data directory with `recovery.signal`, `restore_command` and
//!   `recovery_target_time`, and starts it;
//! - `cloudnativepg`: a recovery `Cluster` resource through the Kubernetes API (the HA
//!   document's step 4), bootstrapped from the barman object store with
//!   `recoveryTarget.targetTime`; CloudNativePG does the rest.

use std::future::Future;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AdapterError;

/// Where a region restores PostgreSQL, and how to reach the restored server (`Debug` never
/// shows the DSN or the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum RestoreDatabaseTarget {
    /// A host agent lays down a plain PostgreSQL server.
    Postgres {
        /// The host agent's base URL.
        agent_url: String,
        /// libpq connection string of the restored server (readiness and the data check);
        /// may be left out when `HAPILOT_DATABASE_SECRET` gives it as `restore_dsn`.
        #[serde(default)]
        dsn: crate::SecretText,
    },
    /// CloudNativePG restores a new `Cluster` from the barman object store.
    Cloudnativepg {
        /// The DR region's Kubernetes API.
        kubernetes: crate::scaler::KubernetesTarget,
        /// Name of the recovery Cluster to create (never an existing one).
        cluster: String,
        /// barman-cloud `destinationPath` of the backups, e.g. `s3://backups-dr/postgres/`.
        destination_path: String,
        /// barman-cloud `serverName`, e.g. `gateway-db`.
        server_name: String,
        /// libpq connection string of the restored cluster's `-rw` service (or `restore_dsn`
        /// in `HAPILOT_DATABASE_SECRET`).
        #[serde(default)]
        dsn: crate::SecretText,
    },
}

impl RestoreDatabaseTarget {
    /// How to reach the restored server.
    pub fn dsn(&self) -> &str {
        match self {
            RestoreDatabaseTarget::Postgres { dsn, .. }
            | RestoreDatabaseTarget::Cloudnativepg { dsn, .. } => dsn.expose(),
        }
    }
}

/// One file the restore fetches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchFile {
    /// File name it gets (`base.tar.gz`, `backup_manifest`, a WAL segment or history file).
    pub name: String,
    /// Where to GET it (a presigned URL).
    pub url: String,
}

/// What the agent is asked to restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreJob {
    /// The base backup's data tar (plain or gzip).
    pub base: FetchFile,
    /// Archived WAL and history files, for `restore_command`.
    pub wal: Vec<FetchFile>,
    /// `recovery_target_time`, when restoring to a point in time.
    pub target_time: Option<String>,
    /// The barman backup id of the base backup (CloudNativePG pins it with `backupID`).
    #[serde(default)]
    pub backup_id: Option<String>,
}

/// `POST /restore/redis`: a restore test's Redis check on the scratch host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisRestoreJob {
    /// The RDB file.
    pub rdb: FetchFile,
}

/// What a scratch redis-server loaded from the RDB (it is stopped and removed before the
/// answer: nothing stays behind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisRestoreCheck {
    /// `DBSIZE` once loaded (database 0).
    pub keys: u64,
    /// What was done, for the report.
    pub detail: String,
}

/// A scratch host that loads an RDB into a redis-server of its own, counts its keys and
/// removes it, in one call.
pub trait RedisScratchHost: Send + Sync {
    /// Loads `job`'s RDB; an RDB Redis refuses is an error with what Redis said.
    fn load_rdb(
        &self,
        job: &RedisRestoreJob,
    ) -> impl Future<Output = Result<RedisRestoreCheck, AdapterError>> + Send;
}

impl RedisScratchHost for HttpRestoreAgent {
    async fn load_rdb(&self, job: &RedisRestoreJob) -> Result<RedisRestoreCheck, AdapterError> {
        let url = format!("{}/redis", self.url);
        let r = self.send(&url, self.http.post(&url).json(job)).await?;
        if !r.status().is_success() {
            return Err(Self::refusal(&url, r).await);
        }
        r.json()
            .await
            .map_err(|e| Self::error_at(&url, crate::error::error_chain(&e)))
    }
}

/// The host agent's protocol (`POST /rebuild`, `POST|GET /restore`), shared by the client here
/// and the agent in the local stack: [`RebuildRequest`] -> [`crate::database::RebuildOutcome`],
/// [`RestoreJob`] -> `202` [`RestoreProgress`], `GET` -> [`RestoreProgress`]; any refusal is an
/// [`AgentError`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebuildRequest {
    /// libpq DSN of the new primary, to rewind from or copy (never printed).
    pub source_dsn: crate::SecretText,
}

/// The agent's answer when it refuses or fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentError {
    /// What went wrong.
    pub error: String,
}

/// A restore's progress as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreProgress {
    /// `idle`, `running`, `started` (the server runs) or `failed`.
    pub state: String,
    /// What it is doing or why it failed.
    pub detail: String,
}

/// A restore agent.
pub trait RestoreAgent: Send + Sync {
    /// Starts a restore (returns at once; the agent works in the background).
    fn start(&self, job: &RestoreJob) -> impl Future<Output = Result<(), AdapterError>> + Send;
    /// How the restore is going.
    fn progress(&self) -> impl Future<Output = Result<RestoreProgress, AdapterError>> + Send;
    /// Removes what a restore laid down (a restore test's scratch server or cluster); nothing
    /// there is success.
    fn tear_down(&self) -> impl Future<Output = Result<String, AdapterError>> + Send;
}

/// In-memory [`RestoreAgent`] for handler unit tests: a restore that "starts" at once and is
/// reported with whatever progress the test sets; tear-down removes it.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone)]
pub struct MemoryRestoreAgent {
    /// Every job started, in order.
    pub jobs: std::sync::Arc<std::sync::Mutex<Vec<RestoreJob>>>,
    /// What `progress` answers (`idle` before any job).
    pub state: std::sync::Arc<std::sync::Mutex<Option<RestoreProgress>>>,
    /// How many tear-downs were asked for.
    pub tear_downs: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// What loading an RDB answers: the keys counted, or what Redis said refusing it.
    pub redis: std::sync::Arc<std::sync::Mutex<Result<RedisRestoreCheck, String>>>,
    /// Every RDB job loaded, in order.
    pub redis_jobs: std::sync::Arc<std::sync::Mutex<Vec<RedisRestoreJob>>>,
}

#[cfg(any(test, feature = "fakes"))]
impl MemoryRestoreAgent {
    /// From now on the restore reports `state` with `detail`.
    pub fn set_progress(&self, state: &str, detail: &str) {
        *self.state.lock().expect("state") = Some(RestoreProgress {
            state: state.into(),
            detail: detail.into(),
        });
    }
}

#[cfg(any(test, feature = "fakes"))]
impl Default for MemoryRestoreAgent {
    fn default() -> Self {
        Self {
            jobs: Default::default(),
            state: Default::default(),
            tear_downs: Default::default(),
            redis: std::sync::Arc::new(std::sync::Mutex::new(Err(
                "no RDB answer set in the test".into()
            ))),
            redis_jobs: Default::default(),
        }
    }
}

#[cfg(any(test, feature = "fakes"))]
impl RedisScratchHost for MemoryRestoreAgent {
    async fn load_rdb(&self, job: &RedisRestoreJob) -> Result<RedisRestoreCheck, AdapterError> {
        self.redis_jobs.lock().expect("jobs").push(job.clone());
        self.redis
            .lock()
            .expect("redis")
            .clone()
            .map_err(|detail| AdapterError::Http {
                system: "restore agent",
                url: "memory://redis".into(),
                detail,
            })
    }
}

#[cfg(any(test, feature = "fakes"))]
impl RestoreAgent for MemoryRestoreAgent {
    async fn start(&self, job: &RestoreJob) -> Result<(), AdapterError> {
        self.jobs.lock().expect("jobs").push(job.clone());
        self.set_progress("running", "restoring in memory");
        Ok(())
    }

    async fn progress(&self) -> Result<RestoreProgress, AdapterError> {
        Ok(self
            .state
            .lock()
            .expect("state")
            .clone()
            .unwrap_or(RestoreProgress {
                state: "idle".into(),
                detail: "no restore".into(),
            }))
    }

    async fn tear_down(&self) -> Result<String, AdapterError> {
        self.tear_downs
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let had = self.state.lock().expect("state").take();
        Ok(match had {
            Some(_) => "the scratch server was stopped and removed".into(),
            None => "nothing to tear down".into(),
        })
    }
}

/// [`RestoreAgent`] over HTTP.
#[derive(Debug, Clone)]
pub struct HttpRestoreAgent {
    http: reqwest::Client,
    url: String,
}

impl HttpRestoreAgent {
    /// The agent at `url`.
    pub fn new(http: reqwest::Client, url: &str) -> Self {
        Self {
            http,
            url: format!("{}/restore", url.trim_end_matches('/')),
        }
    }

    fn error(&self, detail: impl Into<String>) -> AdapterError {
        Self::error_at(&self.url, detail)
    }

    fn error_at(url: &str, detail: impl Into<String>) -> AdapterError {
        AdapterError::Http {
            system: "hapilot agent",
            url: url.to_string(),
            detail: detail.into(),
        }
    }

    /// Sends `request` to `url`; a failure to send is transient when trying again may cure it.
    async fn send(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, AdapterError> {
        request.send().await.map_err(|e| {
            Self::error_at(url, crate::error::error_chain(&e))
                .transient_if(crate::error::send_failure_is_transient(&e))
        })
    }

    /// The agent's refusal (`HTTP <status>: <its error>`).
    async fn refusal(url: &str, r: reqwest::Response) -> AdapterError {
        let status = r.status();
        let refused = r.json::<AgentError>().await.map(|e| e.error);
        Self::error_at(
            url,
            format!(
                "HTTP {status}: {}",
                refused.unwrap_or_else(|_| "no detail".into())
            ),
        )
    }
}

impl RestoreAgent for HttpRestoreAgent {
    async fn start(&self, job: &RestoreJob) -> Result<(), AdapterError> {
        let r = self
            .send(&self.url, self.http.post(&self.url).json(job))
            .await?;
        if r.status().is_success() {
            return Ok(());
        }
        Err(Self::refusal(&self.url, r).await)
    }

    async fn tear_down(&self) -> Result<String, AdapterError> {
        let r = self.send(&self.url, self.http.delete(&self.url)).await?;
        let status = r.status();
        if status.is_success() {
            return Ok(r
                .json::<RestoreProgress>()
                .await
                .map(|p| p.detail)
                .unwrap_or_else(|_| "torn down".into()));
        }
        Err(Self::refusal(&self.url, r)
            .await
            .transient_if(status.is_server_error()))
    }

    async fn progress(&self) -> Result<RestoreProgress, AdapterError> {
        self.send(&self.url, self.http.get(&self.url))
            .await?
            .json()
            .await
            .map_err(|e| {
                self.error(crate::error::error_chain(&e))
                    .transient_if(crate::error::send_failure_is_transient(&e))
            })
    }
}

/// [`RestoreAgent`] through CloudNativePG: creates the recovery `Cluster`, then reads its
/// status.
#[derive(Debug, Clone)]
pub struct CloudNativePgRestore {
    http: reqwest::Client,
    kubernetes: crate::scaler::KubernetesTarget,
    cluster: String,
    destination_path: String,
    server_name: String,
}

impl CloudNativePgRestore {
    fn url(&self, name: Option<&str>) -> String {
        let base = format!(
            "{}/apis/postgresql.cnpg.io/v1/namespaces/{}/clusters",
            self.kubernetes.url.trim_end_matches('/'),
            self.kubernetes.namespace
        );
        match name {
            Some(n) => format!("{base}/{n}"),
            None => base,
        }
    }

    /// Sends `request` with the Kubernetes token; a failure to send names the cluster, never
    /// the URL's query, and is transient when trying again may cure it.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, AdapterError> {
        request
            .bearer_auth(self.kubernetes.token.expose())
            .send()
            .await
            .map_err(|e| {
                let transient = crate::error::send_failure_is_transient(&e);
                self.error(crate::error::error_chain(&e.without_url()))
                    .transient_if(transient)
            })
    }

    fn error(&self, detail: impl Into<String>) -> AdapterError {
        AdapterError::Http {
            system: "Kubernetes (CloudNativePG)",
            url: self.url(Some(&self.cluster)),
            detail: detail.into(),
        }
    }

    /// The recovery Cluster resource for `job` (the HA document's `disaster-recovery.sh` step 4).
    pub fn cluster_resource(&self, job: &RestoreJob) -> Value {
        let mut target = serde_json::Map::new();
        if let Some(id) = &job.backup_id {
            target.insert("backupID".into(), id.clone().into());
        }
        if let Some(t) = &job.target_time {
            target.insert("targetTime".into(), t.clone().into());
        }
        serde_json::json!({
            "apiVersion": "postgresql.cnpg.io/v1",
            "kind": "Cluster",
            "metadata": {"name": self.cluster, "namespace": self.kubernetes.namespace,
                         "labels": {"app.kubernetes.io/managed-by": "hapilot"}},
            "spec": {
                "instances": 1,
                "storage": {"size": "20Gi"},
                "bootstrap": {"recovery": {"source": "origin", "recoveryTarget": target}},
                "externalClusters": [{
                    "name": "origin",
                    "barmanObjectStore": {
                        "destinationPath": self.destination_path,
                        "serverName": self.server_name,
                        "s3Credentials": {"inheritFromIAMRole": true},
                        "wal": {"maxParallel": 8}
                    }
                }]
            }
        })
    }
}

impl RestoreAgent for CloudNativePgRestore {
    async fn start(&self, job: &RestoreJob) -> Result<(), AdapterError> {
        let r = self
            .send(
                self.http
                    .post(self.url(None))
                    .json(&self.cluster_resource(job)),
            )
            .await?;
        if r.status().is_success() {
            return Ok(());
        }
        let status = r.status();
        let body: Value = r.json().await.unwrap_or_default();
        Err(self.error(format!(
            "HTTP {status}: {}{}",
            body["message"].as_str().unwrap_or("no detail"),
            if status.as_u16() == 409 {
                " (a restore never reuses a cluster: delete it or name another)"
            } else {
                ""
            }
        )))
    }

    async fn tear_down(&self) -> Result<String, AdapterError> {
        // Deleting the Cluster lets the operator remove its pods and PVCs (owner references).
        let r = self
            .send(self.http.delete(self.url(Some(&self.cluster))))
            .await?;
        match r.status().as_u16() {
            200..=299 => Ok(format!("Cluster {} deleted", self.cluster)),
            404 => Ok(format!("Cluster {} was not there", self.cluster)),
            _ => {
                let status = r.status();
                let body: Value = r.json().await.unwrap_or_default();
                Err(self
                    .error(format!(
                        "HTTP {status}: {}",
                        body["message"].as_str().unwrap_or("no detail")
                    ))
                    .transient_if(status.is_server_error()))
            }
        }
    }

    async fn progress(&self) -> Result<RestoreProgress, AdapterError> {
        let r = self
            .send(self.http.get(self.url(Some(&self.cluster))))
            .await?;
        if r.status().as_u16() == 404 {
            return Ok(RestoreProgress {
                state: "idle".into(),
                detail: "no recovery cluster yet".into(),
            });
        }
        let cluster: Value = r.json().await.map_err(|e| {
            let transient = crate::error::send_failure_is_transient(&e);
            self.error(crate::error::error_chain(&e.without_url()))
                .transient_if(transient)
        })?;
        let phase = cluster["status"]["phase"]
            .as_str()
            .unwrap_or("pending")
            .to_string();
        let ready = cluster["status"]["readyInstances"].as_i64().unwrap_or(0);
        let state = if phase == "Cluster in healthy state" && ready > 0 {
            "started"
        } else if phase.to_ascii_lowercase().contains("fail") {
            "failed"
        } else {
            "running"
        };
        Ok(RestoreProgress {
            state: state.into(),
            detail: format!("CloudNativePG: {phase} ({ready} ready)"),
        })
    }
}

/// A restore agent of either backend.
#[derive(Debug, Clone)]
pub enum AnyRestoreAgent {
    /// The host agent.
    Postgres(HttpRestoreAgent),
    /// CloudNativePG.
    Cloudnativepg(CloudNativePgRestore),
}

impl AnyRestoreAgent {
    /// The agent for `target`.
    pub fn new(http: reqwest::Client, target: &RestoreDatabaseTarget) -> Self {
        match target {
            RestoreDatabaseTarget::Postgres { agent_url, .. } => {
                AnyRestoreAgent::Postgres(HttpRestoreAgent::new(http, agent_url))
            }
            RestoreDatabaseTarget::Cloudnativepg {
                kubernetes,
                cluster,
                destination_path,
                server_name,
                ..
            } => AnyRestoreAgent::Cloudnativepg(CloudNativePgRestore {
                http,
                kubernetes: kubernetes.clone(),
                cluster: cluster.clone(),
                destination_path: destination_path.clone(),
                server_name: server_name.clone(),
            }),
        }
    }
}

impl RestoreAgent for AnyRestoreAgent {
    async fn start(&self, job: &RestoreJob) -> Result<(), AdapterError> {
        match self {
            AnyRestoreAgent::Postgres(a) => a.start(job).await,
            AnyRestoreAgent::Cloudnativepg(a) => a.start(job).await,
        }
    }

    async fn progress(&self) -> Result<RestoreProgress, AdapterError> {
        match self {
            AnyRestoreAgent::Postgres(a) => a.progress().await,
            AnyRestoreAgent::Cloudnativepg(a) => a.progress().await,
        }
    }

    async fn tear_down(&self) -> Result<String, AdapterError> {
        match self {
            AnyRestoreAgent::Postgres(a) => a.tear_down().await,
            AnyRestoreAgent::Cloudnativepg(a) => a.tear_down().await,
        }
    }
}
