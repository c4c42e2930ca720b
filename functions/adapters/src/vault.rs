//! Vault's HTTP API: restoring a raft snapshot (`POST /v1/sys/storage/raft/snapshot-force`),
//! health, the raft configuration readiness reads (`GET /v1/sys/storage/raft/configuration`),
//! Enterprise performance replication (status, demote, promote, secondary tokens,
//! update-primary: a failover makes the standby's cluster the primary) and KV version 2 reads
//! (the known secret a promotion is verified with). The token comes from configuration and is
//! never logged or put in an error.

use std::future::Future;

use serde::{Deserialize, Serialize};
use serde_json::json;

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
    /// A KV version 2 secret the gateway reads (e.g. `secret/data/gateway/litellm`): after a
    /// promotion hapilot reads it through the promoted cluster to prove it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_secret: Option<String>,
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
    /// Performance replication's status, read whatever the configuration says (the
    /// promotion decides from it).
    fn replication_status(
        &self,
    ) -> impl Future<Output = Result<hapilot_core::readiness::VaultReplicationView, AdapterError>> + Send;
    /// `POST sys/replication/performance/primary/demote`.
    fn demote(&self) -> impl Future<Output = Result<(), AdapterError>> + Send;
    /// `POST sys/replication/performance/secondary/promote`.
    fn promote(&self) -> impl Future<Output = Result<(), AdapterError>> + Send;
    /// `POST sys/replication/performance/primary/revoke-secondary {id}`.
    fn revoke_secondary(&self, id: &str) -> impl Future<Output = Result<(), AdapterError>> + Send;
    /// `POST sys/replication/performance/primary/secondary-token {id}`: the wrapped activation
    /// token (never logged).
    fn secondary_token(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<crate::SecretText, AdapterError>> + Send;
    /// `POST sys/replication/performance/secondary/update-primary {token}`.
    fn update_primary(
        &self,
        token: &crate::SecretText,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;
    /// A KV version 2 read (`GET /v1/<path>`): the secret's `data.data` keys (values are never
    /// returned).
    fn read_secret(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Vec<String>, AdapterError>> + Send;
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
        self.replication_status().await.map(Some)
    }

    async fn replication_status(
        &self,
    ) -> Result<hapilot_core::readiness::VaultReplicationView, AdapterError> {
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
        Ok(hapilot_core::readiness::VaultReplicationView {
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
            known_secondaries: data["known_secondaries"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            primary: data["primaries"][0]["api_address"]
                .as_str()
                .map(str::to_string),
        })
    }

    async fn demote(&self) -> Result<(), AdapterError> {
        self.post("/v1/sys/replication/performance/primary/demote", json!({}))
            .await
            .map(drop)
    }

    async fn promote(&self) -> Result<(), AdapterError> {
        self.post(
            "/v1/sys/replication/performance/secondary/promote",
            json!({}),
        )
        .await
        .map(drop)
    }

    async fn revoke_secondary(&self, id: &str) -> Result<(), AdapterError> {
        self.post(
            "/v1/sys/replication/performance/primary/revoke-secondary",
            json!({ "id": id }),
        )
        .await
        .map(drop)
    }

    async fn secondary_token(&self, id: &str) -> Result<crate::SecretText, AdapterError> {
        let path = "/v1/sys/replication/performance/primary/secondary-token";
        let body = self.post(path, json!({ "id": id })).await?;
        body["wrap_info"]["token"]
            .as_str()
            .map(crate::SecretText::from)
            .ok_or_else(|| self.error(path, "no wrap_info.token in the answer"))
    }

    async fn update_primary(&self, token: &crate::SecretText) -> Result<(), AdapterError> {
        self.post(
            "/v1/sys/replication/performance/secondary/update-primary",
            json!({ "token": token.expose() }),
        )
        .await
        .map(drop)
    }

    async fn read_secret(&self, path: &str) -> Result<Vec<String>, AdapterError> {
        let path = format!("/v1/{}", path.trim_start_matches('/'));
        let body = self.read(&path).await?;
        let data = body["data"]["data"].as_object().ok_or_else(|| {
            self.error(
                &path,
                "no data.data in the answer (is it a KV version 2 path?)",
            )
        })?;
        Ok(data.keys().cloned().collect())
    }
}

impl HttpVault {
    /// GETs `path` with the token; a non-2xx answer is an error with Vault's text.
    async fn read(&self, path: &str) -> Result<serde_json::Value, AdapterError> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// POSTs `body` to `path` with the token: the answer's JSON (null for 204).
    async fn post(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, AdapterError> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, AdapterError> {
        let mut request = self
            .http
            .request(
                method,
                format!("{}{path}", self.target.url.trim_end_matches('/')),
            )
            .header("X-Vault-Token", self.target.token.expose());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.map_err(|e| {
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
        let text = r.text().await.map_err(|e| {
            let transient = crate::error::send_failure_is_transient(&e);
            self.error(path, crate::error::error_chain(&e.without_url()))
                .transient_if(transient)
        })?;
        if text.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| self.error(path, format!("not JSON: {e}")))
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
    /// Replication as the promotion calls change it (see [`MemoryVault::in_mode`]).
    live: std::sync::Arc<std::sync::Mutex<Option<hapilot_core::readiness::VaultReplicationView>>>,
    /// The replication calls made, in order.
    calls: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

#[cfg(any(test, feature = "fakes"))]
impl MemoryVault {
    /// The sizes of the snapshots restored, in order.
    pub fn restored(&self) -> Vec<usize> {
        self.restored.lock().expect("restored").clone()
    }

    /// One in performance replication `mode` (`primary` or `secondary`, following `primary`).
    pub fn in_mode(mode: &str, primary: Option<&str>) -> Self {
        let vault = Self::default();
        *vault.live.lock().expect("live") = Some(hapilot_core::readiness::VaultReplicationView {
            mode: mode.into(),
            state: if primary.is_some() || mode == "primary" {
                "stream-wals".into()
            } else {
                "idle".into()
            },
            connections: vec![],
            known_secondaries: vec![],
            primary: primary.map(str::to_string),
        });
        vault
    }

    /// Its replication mode now.
    pub fn mode(&self) -> Option<String> {
        self.live
            .lock()
            .expect("live")
            .as_ref()
            .map(|v| v.mode.clone())
    }

    /// The replication calls made on it, in order (`demote`, `promote`, `revoke us-east-1`,
    /// `secondary-token us-east-1`, `update-primary`, `read secret/...`).
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("calls").clone()
    }

    fn change(
        &self,
        call: String,
        f: impl FnOnce(&mut hapilot_core::readiness::VaultReplicationView),
    ) -> Result<(), AdapterError> {
        self.calls.lock().expect("calls").push(call.clone());
        let mut live = self.live.lock().expect("live");
        let view = live.as_mut().ok_or_else(|| AdapterError::Http {
            system: "Vault",
            url: "memory".into(),
            detail: format!("{call}: performance replication not enabled"),
        })?;
        f(view);
        Ok(())
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

    async fn replication_status(
        &self,
    ) -> Result<hapilot_core::readiness::VaultReplicationView, AdapterError> {
        self.live
            .lock()
            .expect("live")
            .clone()
            .or_else(|| self.replication.clone())
            .ok_or_else(|| AdapterError::Http {
                system: "Vault",
                url: "memory".into(),
                detail: "performance replication not enabled".into(),
            })
    }

    async fn demote(&self) -> Result<(), AdapterError> {
        self.change("demote".into(), |v| {
            v.mode = "secondary".into();
            v.state = "idle".into();
            v.primary = None;
            v.known_secondaries.clear();
        })
    }

    async fn promote(&self) -> Result<(), AdapterError> {
        self.change("promote".into(), |v| {
            v.mode = "primary".into();
            v.state = "running".into();
            v.primary = None;
            v.known_secondaries.clear();
        })
    }

    async fn revoke_secondary(&self, id: &str) -> Result<(), AdapterError> {
        self.change(format!("revoke {id}"), |v| {
            v.known_secondaries.retain(|k| k != id)
        })
    }

    async fn secondary_token(&self, id: &str) -> Result<crate::SecretText, AdapterError> {
        self.change(format!("secondary-token {id}"), |v| {
            v.known_secondaries.push(id.to_string())
        })?;
        Ok(format!("token-for-{id}").as_str().into())
    }

    async fn update_primary(&self, _token: &crate::SecretText) -> Result<(), AdapterError> {
        self.change("update-primary".into(), |v| {
            v.primary = Some("the new primary".into());
            v.state = "stream-wals".into();
        })
    }

    async fn read_secret(&self, path: &str) -> Result<Vec<String>, AdapterError> {
        self.calls
            .lock()
            .expect("calls")
            .push(format!("read {path}"));
        Ok(vec!["master_key".into()])
    }
}

/// Whether Vault's answer is worth another try: throttled or failing on its side, but not
/// sealed (Vault answers 503 while sealed, which lasts until someone unseals it).
fn vault_blip(status: u16, body: &str) -> bool {
    crate::error::status_is_transient(status) && !body.contains("sealed")
}
