//! The database a DR restore lays down, through the host agent next to it (the `postgres`
//! backend): start a restore from a base backup and WAL given as URLs, then watch it.

use std::future::Future;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AdapterError;

/// Where a region restores PostgreSQL: the host agent and how to reach the restored server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreDatabaseTarget {
    /// The host agent's base URL.
    pub agent_url: String,
    /// libpq connection string of the restored server (for readiness and the data check).
    pub dsn: String,
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
        AdapterError::Http {
            system: "hapilot agent",
            url: self.url.clone(),
            detail: detail.into(),
        }
    }
}

impl RestoreAgent for HttpRestoreAgent {
    async fn start(&self, job: &RestoreJob) -> Result<(), AdapterError> {
        let r = self
            .http
            .post(&self.url)
            .json(job)
            .send()
            .await
            .map_err(|e| self.error(e.to_string()))?;
        if r.status().is_success() {
            return Ok(());
        }
        let status = r.status();
        let body: Value = r.json().await.unwrap_or_default();
        Err(self.error(format!(
            "HTTP {status}: {}",
            body["error"].as_str().unwrap_or("no detail")
        )))
    }

    async fn progress(&self) -> Result<RestoreProgress, AdapterError> {
        self.http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| self.error(e.to_string()))?
            .json()
            .await
            .map_err(|e| self.error(e.to_string()))
    }
}
