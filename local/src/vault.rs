//! A simulated Vault server: the part of Vault's HTTP API a DR restore uses.
//!
//! `POST /v1/sys/storage/raft/snapshot-force` (token in `X-Vault-Token`; the body must be a
//! valid raft snapshot - checked with the same verifier as the backup audit; the one applied is
//! kept), `GET /v1/sys/health` (200 when unsealed), `GET /v1/sys/storage/raft/configuration`
//! (the raft servers, three voters by default; readiness reads it), and Vault Enterprise's
//! unauthenticated `GET /v1/sys/replication/performance/status` of a performance secondary
//! (`stream-wals` with its primary connected; [`SimulatedVault::set_replication_state`]
//! changes it). `refuse(true)` makes it answer 503 to restores, as a sealed or broken cluster
//! would.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper::{Method, StatusCode};
use serde_json::json;

use super::http::{answer, body_bytes, serve_state};

#[derive(Default)]
struct State {
    token: String,
    refuse: bool,
    restored: Vec<u64>,
    voters: usize,
    /// Performance replication's `state` (`stream-wals` by default).
    replication_state: String,
}

/// A running simulated Vault; stops when dropped.
pub struct SimulatedVault {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl SimulatedVault {
    /// Starts one that accepts `token`.
    pub async fn start(token: &str) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(State {
            token: token.to_string(),
            voters: 3,
            replication_state: "stream-wals".into(),
            ..State::default()
        }));
        let (addr, task) = serve_state(state.clone(), |state, req| async move {
            let path = req.uri().path().to_string();
            match (req.method().clone(), path.as_str()) {
                (Method::GET, "/v1/sys/health") => answer(
                    StatusCode::OK,
                    "application/json",
                    json!({"initialized": true, "sealed": false, "standby": false}).to_string(),
                ),
                (Method::GET, "/v1/sys/replication/performance/status") => {
                    let state = state.lock().expect("vault state").replication_state.clone();
                    let connection = if state == "idle" { "disconnected" } else { "connected" };
                    answer(
                        StatusCode::OK,
                        "application/json",
                        json!({"data": {
                            "cluster_id": "d4095d41-3aee-8791-c421-9bc7f88f7c3e",
                            "known_primary_cluster_addrs": ["https://vault.us-east-1.internal:8201"],
                            "mode": "secondary",
                            "state": state,
                            "primaries": [{"api_address": "https://vault.us-east-1.internal:8200",
                                           "cluster_address": "https://vault.us-east-1.internal:8201",
                                           "connection_status": connection}]
                        }})
                        .to_string(),
                    )
                }
                (Method::GET, "/v1/sys/storage/raft/configuration") => {
                    let token = req
                        .headers()
                        .get("x-vault-token")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    let s = state.lock().expect("vault state");
                    if token != s.token {
                        return answer(
                            StatusCode::FORBIDDEN,
                            "application/json",
                            json!({"errors": ["permission denied"]}).to_string(),
                        );
                    }
                    let servers: Vec<_> = (0..s.voters)
                        .map(|i| {
                            json!({"node_id": format!("vault-{i}"),
                                   "address": format!("vault-{i}.vault-internal:8201"),
                                   "leader": i == 0, "protocol_version": "3", "voter": true})
                        })
                        .collect();
                    answer(
                        StatusCode::OK,
                        "application/json",
                        json!({"data": {"config": {"index": 42, "servers": servers}}}).to_string(),
                    )
                }
                (Method::POST, "/v1/sys/storage/raft/snapshot-force") => {
                    let token = req
                        .headers()
                        .get("x-vault-token")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let body = body_bytes(req).await;
                    let mut s = state.lock().expect("vault state");
                    if token != s.token {
                        return answer(
                            StatusCode::FORBIDDEN,
                            "application/json",
                            json!({"errors": ["permission denied"]}).to_string(),
                        );
                    }
                    if s.refuse {
                        return answer(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "application/json",
                            json!({"errors": ["Vault is sealed"]}).to_string(),
                        );
                    }
                    match hapilot_core::backup::vault::verify_vault_snapshot(&body[..]) {
                        Ok(summary) => {
                            s.restored.push(summary.index.unwrap_or(0));
                            answer(StatusCode::NO_CONTENT, "application/json", "")
                        }
                        Err(e) => answer(
                            StatusCode::BAD_REQUEST,
                            "application/json",
                            json!({"errors": [format!("failed to read snapshot: {e}")]})
                                .to_string(),
                        ),
                    }
                }
                _ => answer(
                    StatusCode::NOT_FOUND,
                    "application/json",
                    json!({"errors": []}).to_string(),
                ),
            }
        })
        .await?;
        Ok(Self { addr, state, task })
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes restores fail (503), or work again.
    pub fn refuse(&self, refuse: bool) {
        self.state.lock().expect("vault state").refuse = refuse;
    }

    /// How many raft voters its configuration lists (3 by default; 1 is a single point of
    /// failure).
    pub fn set_voters(&self, voters: usize) {
        self.state.lock().expect("vault state").voters = voters;
    }

    /// Performance replication's state as `/v1/sys/replication/performance/status` reports it
    /// (`stream-wals`; `idle` is a secondary that lost its primary).
    pub fn set_replication_state(&self, state: &str) {
        self.state.lock().expect("vault state").replication_state = state.to_string();
    }

    /// Raft indexes of the snapshots applied, in order.
    pub fn restored(&self) -> Vec<u64> {
        self.state.lock().expect("vault state").restored.clone()
    }
}

impl Drop for SimulatedVault {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The local Vault's raft snapshot, as its snapshot agent would upload it.
pub fn local_snapshot() -> Result<Vec<u8>, crate::LocalError> {
    hapilot_core::backup::vault::build_vault_snapshot(
        &serde_json::json!({"Index": 7, "Term": 1}),
        b"the gateway's secrets",
    )
    .map_err(crate::LocalError::io("building a Vault snapshot"))
}
