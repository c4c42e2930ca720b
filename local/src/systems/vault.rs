//! A simulated Vault server: the part of Vault's HTTP API hapilot uses.
//!
//! `POST /v1/sys/storage/raft/snapshot-force` (token in `X-Vault-Token`; the body must be a
//! valid raft snapshot - checked with the same verifier as the backup audit; the one applied is
//! kept), `GET /v1/sys/health` (200 when unsealed), `GET /v1/sys/storage/raft/configuration`
//! (the raft servers, three voters by default; readiness reads it), KV version 2 reads
//! (`GET /v1/secret/data/<path>`: the gateway's secrets, replicated to every cluster of the
//! set), and Vault Enterprise's performance replication (`/v1/sys/replication/performance/...`:
//! status, demote, secondary-token, revoke-secondary, promote, update-primary), whose rules and refusals live in
//! [`crate::systems::vault_rules`]. `refuse(true)` makes it answer 503 to restores, as a sealed or broken
//! cluster would; `set_down(true)` makes it answer 503 to everything, as a region gone dark.
//!
//! A snapshot restore replaces the KV secrets with the snapshot's, as Vault's does: the local
//! world's snapshots ([`local_snapshot`]) carry them as JSON in `state.bin` (a real snapshot's
//! `state.bin` is Vault's own storage, which this stand-in does not read: restored, it holds
//! no secrets here, so a check that reads one fails rather than passes).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::systems::vault_rules::{ActivationTokens, Mode, Refusal, Replication};

use crate::http::{answer, body_bytes, serve_state};

struct State {
    token: String,
    refuse: bool,
    down: bool,
    restored: Vec<u64>,
    voters: usize,
    /// Performance replication (see [`crate::systems::vault_rules`]).
    replication: Replication,
    /// A secondary's streaming state when a test overrides it (`idle`: it lost its primary).
    replication_state: Option<String>,
    /// The replication set's activation tokens, shared by its clusters.
    tokens: Arc<Mutex<ActivationTokens>>,
    /// KV version 2 secrets by path (`secret/data/<path>`).
    secrets: BTreeMap<String, Value>,
}

/// The secret every cluster of the local world holds: the gateway's LiteLLM master key, at
/// `secret/data/gateway/litellm` (the KV version 2 path the deployment's `known_secret` names).
pub const GATEWAY_SECRET: &str = "secret/data/gateway/litellm";

/// A running simulated Vault; stops when dropped.
pub struct SimulatedVault {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl SimulatedVault {
    /// Starts one that accepts `token`: a performance secondary of a primary outside the
    /// local world (the DR restore's and readiness' Vault).
    pub async fn start(token: &str) -> std::io::Result<Self> {
        let vault = Self::start_in(
            token,
            Mode::Secondary,
            Arc::new(Mutex::new(ActivationTokens::default())),
        )
        .await?;
        vault.state.lock().expect("vault state").replication.primary =
            Some("https://vault.us-east-1.internal:8200".into());
        Ok(vault)
    }

    /// Starts a freshly initialized cluster that accepts `token`, without replication and
    /// without secrets: a restore test's scratch Vault, which holds only what it restores.
    pub async fn start_scratch(token: &str) -> std::io::Result<Self> {
        let vault = Self::start_in(
            token,
            Mode::Disabled,
            Arc::new(Mutex::new(ActivationTokens::default())),
        )
        .await?;
        vault.state.lock().expect("vault state").secrets.clear();
        Ok(vault)
    }

    /// Starts a performance primary that accepts `token`, the first of a replication set.
    pub async fn start_primary(token: &str) -> std::io::Result<Self> {
        Self::start_in(
            token,
            Mode::Primary,
            Arc::new(Mutex::new(ActivationTokens::default())),
        )
        .await
    }

    /// Starts a performance secondary of `primary`, activated as `id` with a token `primary`
    /// issues (as an operator enables one).
    pub async fn start_secondary_of(
        primary: &Self,
        id: &str,
        token: &str,
    ) -> std::io::Result<Self> {
        let tokens = primary.state.lock().expect("vault state").tokens.clone();
        let vault = Self::start_in(token, Mode::Secondary, tokens).await?;
        follow(&vault, primary, id).map_err(|r| std::io::Error::other(r.message))?;
        Ok(vault)
    }

    async fn start_in(
        token: &str,
        mode: Mode,
        tokens: Arc<Mutex<ActivationTokens>>,
    ) -> std::io::Result<Self> {
        let listener_state = Arc::new(Mutex::new(State {
            token: token.to_string(),
            refuse: false,
            down: false,
            restored: Vec::new(),
            voters: 3,
            replication: Replication::new("", "", mode),
            replication_state: None,
            tokens,
            secrets: BTreeMap::from([(
                GATEWAY_SECRET.to_string(),
                json!({"master_key": "sk-local-gateway"}),
            )]),
        }));
        let state = listener_state.clone();
        let (addr, task) = serve_state(listener_state, |state, req| async move {
            let path = req.uri().path().to_string();
            let token = req
                .headers()
                .get("x-vault-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            if state.lock().expect("vault state").down {
                return vault_error(StatusCode::SERVICE_UNAVAILABLE, "Vault is unavailable");
            }
            let authorized = token == state.lock().expect("vault state").token;
            match (req.method().clone(), path.as_str()) {
                (Method::GET, "/v1/sys/health") => answer(
                    StatusCode::OK,
                    "application/json",
                    json!({"initialized": true, "sealed": false, "standby": false}).to_string(),
                ),
                (Method::GET, "/v1/sys/replication/performance/status") => {
                    let s = state.lock().expect("vault state");
                    let tokens = s.tokens.lock().expect("vault tokens");
                    answer(
                        StatusCode::OK,
                        "application/json",
                        s.replication
                            .status(s.replication_state.as_deref(), &tokens)
                            .to_string(),
                    )
                }
                (Method::POST, p) if p.starts_with("/v1/sys/replication/performance/") => {
                    if !authorized {
                        return vault_error(StatusCode::FORBIDDEN, "permission denied");
                    }
                    let body: Value =
                        serde_json::from_slice(&body_bytes(req).await).unwrap_or(json!({}));
                    let mut s = state.lock().expect("vault state");
                    let tokens = s.tokens.clone();
                    let mut tokens = tokens.lock().expect("vault tokens");
                    let outcome = match p.trim_start_matches("/v1/sys/replication/performance/") {
                        "primary/demote" => crate::systems::vault_rules::demote(&mut s.replication)
                            .map(|()| Value::Null),
                        "secondary/promote" => {
                            crate::systems::vault_rules::promote(&mut s.replication)
                                .map(|()| Value::Null)
                        }
                        "primary/secondary-token" => crate::systems::vault_rules::secondary_token(
                            &mut s.replication,
                            &mut tokens,
                            body["id"].as_str().unwrap_or_default(),
                            ttl(body["ttl"].as_str().unwrap_or("30m")),
                        )
                        .map(|t| json!({"data": null, "wrap_info": {"token": t, "ttl": 1800}})),
                        "primary/revoke-secondary" => {
                            crate::systems::vault_rules::revoke_secondary(
                                &mut s.replication,
                                &mut tokens,
                                body["id"].as_str().unwrap_or_default(),
                            )
                            .map(|()| Value::Null)
                        }
                        "secondary/update-primary" => crate::systems::vault_rules::update_primary(
                            &mut s.replication,
                            &mut tokens,
                            body["token"].as_str().unwrap_or_default(),
                        )
                        .map(|_| Value::Null),
                        _ => return vault_error(StatusCode::NOT_FOUND, "unsupported path"),
                    };
                    match outcome {
                        Ok(Value::Null) => answer(StatusCode::NO_CONTENT, "application/json", ""),
                        Ok(body) => answer(StatusCode::OK, "application/json", body.to_string()),
                        Err(Refusal { status, message }) => vault_error(
                            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                            &message,
                        ),
                    }
                }
                (Method::GET, p) if p.starts_with("/v1/secret/data/") => {
                    if !authorized {
                        return vault_error(StatusCode::FORBIDDEN, "permission denied");
                    }
                    let s = state.lock().expect("vault state");
                    match s.secrets.get(p.trim_start_matches("/v1/")) {
                        Some(data) => answer(
                            StatusCode::OK,
                            "application/json",
                            json!({"data": {"data": data, "metadata": {"version": 1}}}).to_string(),
                        ),
                        None => answer(
                            StatusCode::NOT_FOUND,
                            "application/json",
                            json!({"errors": []}).to_string(),
                        ),
                    }
                }
                (Method::GET, "/v1/sys/storage/raft/configuration") => {
                    if !authorized {
                        return vault_error(StatusCode::FORBIDDEN, "permission denied");
                    }
                    let s = state.lock().expect("vault state");
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
                    if !authorized {
                        return vault_error(StatusCode::FORBIDDEN, "permission denied");
                    }
                    let body = body_bytes(req).await;
                    let mut s = state.lock().expect("vault state");
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
                            s.secrets = secrets_in(&body);
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
        {
            let mut s = state.lock().expect("vault state");
            s.replication.api_addr = format!("http://{addr}");
            s.replication.cluster_id = format!("vault-{}", addr.port());
        }
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
        self.state.lock().expect("vault state").replication_state = Some(state.to_string());
    }

    /// Takes it down (`true`: every request answers 503, as a cluster in a region gone dark),
    /// or brings it back as it was.
    pub fn set_down(&self, down: bool) {
        self.state.lock().expect("vault state").down = down;
    }

    /// Its performance replication mode now: `primary`, `secondary` or `disabled`.
    pub fn mode(&self) -> &'static str {
        match self.state.lock().expect("vault state").replication.mode {
            Mode::Primary => "primary",
            Mode::Secondary => "secondary",
            Mode::Disabled => "disabled",
        }
    }

    /// A secondary's primary (its API address), if it follows one.
    pub fn primary(&self) -> Option<String> {
        self.state
            .lock()
            .expect("vault state")
            .replication
            .primary
            .clone()
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

/// Makes `new` the performance primary and `old` its secondary (registered as `old_id`),
/// as an operator would after a failover: a test's starting point for a failback.
pub fn fail_over(old: &SimulatedVault, new: &SimulatedVault, old_id: &str) {
    crate::systems::vault_rules::demote(&mut old.state.lock().expect("vault state").replication)
        .expect("the old cluster is the primary");
    crate::systems::vault_rules::promote(&mut new.state.lock().expect("vault state").replication)
        .expect("the new cluster is a secondary");
    follow(old, new, old_id).expect("the old cluster follows the new one");
}

/// `secondary` follows `primary` as `id`: a token from `primary`, used on `secondary`. Locks
/// a cluster's state before the set's tokens, as the request handler does.
fn follow(secondary: &SimulatedVault, primary: &SimulatedVault, id: &str) -> Result<(), Refusal> {
    let token = {
        let mut p = primary.state.lock().expect("vault state");
        let tokens = p.tokens.clone();
        let mut tokens = tokens.lock().expect("vault tokens");
        crate::systems::vault_rules::secondary_token(
            &mut p.replication,
            &mut tokens,
            id,
            Duration::from_secs(1800),
        )?
    };
    let mut s = secondary.state.lock().expect("vault state");
    let tokens = s.tokens.clone();
    let mut tokens = tokens.lock().expect("vault tokens");
    crate::systems::vault_rules::update_primary(&mut s.replication, &mut tokens, &token).map(drop)
}

/// Vault's error answer: `{"errors": [message]}`.
fn vault_error(status: StatusCode, message: &str) -> crate::http::Answer {
    answer(
        status,
        "application/json",
        json!({"errors": [message]}).to_string(),
    )
}

/// A TTL as Vault writes it (`30m`, `1h`, `90s`); 30 minutes when unreadable.
fn ttl(text: &str) -> Duration {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = number.parse().unwrap_or(30);
    match unit {
        "s" => Duration::from_secs(n),
        "h" => Duration::from_secs(n * 3600),
        _ => Duration::from_secs(n * 60),
    }
}

/// The local Vault's raft snapshot, as its snapshot agent would upload it: the gateway's
/// secret in its state.
pub fn local_snapshot() -> Result<Vec<u8>, crate::LocalError> {
    let secrets = json!({GATEWAY_SECRET: {"master_key": "sk-local-gateway"}});
    hapilot_core::backup::vault::build_vault_snapshot(
        &serde_json::json!({"Index": 7, "Term": 1}),
        secrets.to_string().as_bytes(),
    )
    .map_err(crate::LocalError::io("building a Vault snapshot"))
}

/// The KV secrets a (verified) local snapshot carries in `state.bin`; none otherwise.
fn secrets_in(snapshot: &[u8]) -> BTreeMap<String, Value> {
    use std::io::Read;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(snapshot));
    let Ok(entries) = archive.entries() else {
        return BTreeMap::new();
    };
    for mut entry in entries.flatten() {
        if entry.path().is_ok_and(|p| p.as_os_str() == "state.bin") {
            let mut state = Vec::new();
            if entry.read_to_end(&mut state).is_ok()
                && let Ok(secrets) = serde_json::from_slice::<BTreeMap<String, Value>>(&state)
            {
                return secrets;
            }
            break;
        }
    }
    BTreeMap::new()
}
