//! Vault's HTTP API: restoring a raft snapshot (`POST /v1/sys/storage/raft/snapshot-force`),
//! health, and the raft configuration readiness reads (`GET /v1/sys/storage/raft/configuration`). The token comes from configuration and is never logged or put in an error.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::AdapterError;

/// Where one region's Vault answers, and the token allowed to restore snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultTarget {
    /// Base URL, e.g. `https://vault.dr.internal:8200`.
    pub url: String,
    /// A token with `sudo` on `sys/storage/raft/snapshot-force` (may be left out when
    /// `HAPILOT_VAULT_SECRET` gives it).
    #[serde(default)]
    pub token: crate::SecretText,
    /// PEM file of the CA that signed Vault's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Vault Enterprise performance replication is configured between the regions: readiness
    /// reads `/v1/sys/replication/performance/status`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub performance_replication: bool,
}

/// A Vault cluster.
pub trait Vault: Send + Sync {
    /// Replaces Vault's state with `snapshot` (forced: the snapshot may come from another
    /// cluster, as in a DR restore).
    fn restore_snapshot(
        &self,
        snapshot: Vec<u8>,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;
    /// Whether it answers healthy and unsealed (`GET /v1/sys/health`).
    fn healthy(&self) -> impl Future<Output = Result<bool, AdapterError>> + Send;
    /// The raft servers (`GET /v1/sys/storage/raft/configuration`: `data.config.servers`).
    fn raft_servers(
        &self,
    ) -> impl Future<Output = Result<Vec<hapilot_core::readiness::RaftServer>, AdapterError>> + Send;
    /// Enterprise performance replication (`GET /v1/sys/replication/performance/status`,
    /// unauthenticated); None when the target does not use it.
    fn performance_replication(
        &self,
    ) -> impl Future<
        Output = Result<Option<hapilot_core::readiness::VaultReplicationView>, AdapterError>,
    > + Send;
}

/// [`Vault`] over HTTP.
#[derive(Debug, Clone)]
pub struct HttpVault {
    http: reqwest::Client,
    target: VaultTarget,
}

impl HttpVault {
    /// The Vault of `target`.
    pub fn new(http: reqwest::Client, target: VaultTarget) -> Self {
        Self { http, target }
    }

    fn error(&self, path: &str, detail: impl Into<String>) -> AdapterError {
        AdapterError::Http {
            system: "Vault",
            url: format!("{}{path}", self.target.url.trim_end_matches('/')),
            detail: detail.into(),
        }
    }
}

impl Vault for HttpVault {
    async fn restore_snapshot(&self, snapshot: Vec<u8>) -> Result<(), AdapterError> {
        let path = "/v1/sys/storage/raft/snapshot-force";
        let r = self
            .http
            .post(format!("{}{path}", self.target.url.trim_end_matches('/')))
            .header("X-Vault-Token", self.target.token.expose())
            .body(snapshot)
            .send()
            .await
            .map_err(|e| {
                let transient = crate::error::send_failure_is_transient(&e);
                self.error(path, crate::error::error_chain(&e.without_url()))
                    .transient_if(transient)
            })?;
        if r.status().is_success() {
            return Ok(());
        }
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        Err(self
            .error(path, format!("HTTP {status}: {}", body.trim()))
            .transient_if(vault_blip(status.as_u16(), &body))
            .credentials_refused_if(matches!(status.as_u16(), 401 | 403)))
    }

    async fn healthy(&self) -> Result<bool, AdapterError> {
        let path = "/v1/sys/health";
        let r = self
            .http
            .get(format!("{}{path}", self.target.url.trim_end_matches('/')))
            .send()
            .await
            .map_err(|e| {
                let transient = crate::error::send_failure_is_transient(&e);
                self.error(path, crate::error::error_chain(&e.without_url()))
                    .transient_if(transient)
            })?;
        Ok(r.status().as_u16() == 200)
    }

    async fn raft_servers(&self) -> Result<Vec<hapilot_core::readiness::RaftServer>, AdapterError> {
        let path = "/v1/sys/storage/raft/configuration";
        let body = self.read(path).await?;
        let servers = body["data"]["config"]["servers"]
            .as_array()
            .ok_or_else(|| self.error(path, "no data.config.servers in the answer"))?;
        Ok(servers
            .iter()
            .map(|s| hapilot_core::readiness::RaftServer {
                node_id: s["node_id"].as_str().unwrap_or("?").to_string(),
                leader: s["leader"].as_bool().unwrap_or(false),
                voter: s["voter"].as_bool().unwrap_or(false),
            })
            .collect())
    }

    async fn performance_replication(
        &self,
    ) -> Result<Option<hapilot_core::readiness::VaultReplicationView>, AdapterError> {
        if !self.target.performance_replication {
            return Ok(None);
        }
        let path = "/v1/sys/replication/performance/status";
        let body = self.read(path).await?;
        let data = &body["data"];
        let mode = data["mode"]
            .as_str()
            .ok_or_else(|| self.error(path, "no data.mode in the answer"))?;
        // A primary lists its secondaries, a secondary its primaries.
        let peers = data["secondaries"]
            .as_array()
            .or(data["primaries"].as_array())
            .cloned()
            .unwrap_or_default();
        Ok(Some(hapilot_core::readiness::VaultReplicationView {
            mode: mode.to_string(),
            state: data["state"].as_str().unwrap_or_default().to_string(),
            connections: peers
                .iter()
                .map(|p| {
                    p["connection_status"]
                        .as_str()
                        .unwrap_or("unknown")
                        .to_string()
                })
                .collect(),
        }))
    }
}

impl HttpVault {
    /// GETs `path` with the token; a non-2xx answer is an error with Vault's text.
    async fn read(&self, path: &str) -> Result<serde_json::Value, AdapterError> {
        let r = self
            .http
            .get(format!("{}{path}", self.target.url.trim_end_matches('/')))
            .header("X-Vault-Token", self.target.token.expose())
            .send()
            .await
            .map_err(|e| {
                let transient = crate::error::send_failure_is_transient(&e);
                self.error(path, crate::error::error_chain(&e.without_url()))
                    .transient_if(transient)
            })?;
        let status = r.status();
        if !status.is_success() {
            let body = r.text().await.unwrap_or_default();
            return Err(self
                .error(path, format!("HTTP {status}: {}", body.trim()))
                .transient_if(vault_blip(status.as_u16(), &body))
                .credentials_refused_if(matches!(status.as_u16(), 401 | 403)));
        }
        r.json().await.map_err(|e| {
            let transient = crate::error::send_failure_is_transient(&e);
            self.error(path, crate::error::error_chain(&e.without_url()))
                .transient_if(transient)
        })
    }
}

/// In-memory [`Vault`]: raft servers, replication status, and the snapshots restored.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone, Default)]
pub struct MemoryVault {
    /// The raft configuration.
    pub servers: Vec<hapilot_core::readiness::RaftServer>,
    /// Performance replication, when configured.
    pub replication: Option<hapilot_core::readiness::VaultReplicationView>,
    restored: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
}

#[cfg(any(test, feature = "fakes"))]
impl MemoryVault {
    /// The sizes of the snapshots restored, in order.
    pub fn restored(&self) -> Vec<usize> {
        self.restored.lock().expect("restored").clone()
    }
}

#[cfg(any(test, feature = "fakes"))]
impl Vault for MemoryVault {
    async fn restore_snapshot(&self, snapshot: Vec<u8>) -> Result<(), AdapterError> {
        self.restored.lock().expect("restored").push(snapshot.len());
        Ok(())
    }

    async fn healthy(&self) -> Result<bool, AdapterError> {
        Ok(self.servers.iter().any(|s| s.leader))
    }

    async fn raft_servers(&self) -> Result<Vec<hapilot_core::readiness::RaftServer>, AdapterError> {
        Ok(self.servers.clone())
    }

    async fn performance_replication(
        &self,
    ) -> Result<Option<hapilot_core::readiness::VaultReplicationView>, AdapterError> {
        Ok(self.replication.clone())
    }
}

/// Whether Vault's answer is worth another try: throttled or failing on its side, but not
/// sealed (Vault answers 503 while sealed, which lasts until someone unseals it).
fn vault_blip(status: u16, body: &str) -> bool {
    crate::error::status_is_transient(status) && !body.contains("sealed")
}
