//! The rules of Vault Enterprise performance replication that the loopback Vault in
//! [`crate::systems::vault`] answers by, as pure functions over one cluster's replication state,
//! unit-tested. Source: Vault's API reference, `/sys/replication/performance` (status, primary
//! demote, secondary-token, secondary promote, secondary update-primary), and "Manage
//! performance replication" (promote a secondary: demote the original primary first; there
//! should never be more than one performance primary at a time).
//!
//! - `GET /v1/sys/replication/performance/status` is unauthenticated: `data.mode` is
//!   `primary`, `secondary` or `disabled`; a primary lists `known_secondaries` (the ids it
//!   issued activation tokens for) and `secondaries` with their `connection_status`; a secondary
//!   lists `primaries` and `known_primary_cluster_addrs`, `state` `stream-wals` while connected
//!   and `idle` when it knows no primary (a demoted primary).
//! - `POST .../primary/demote`: a primary becomes a secondary that connects to no primary and
//!   keeps its cluster ID. Refused on a cluster that is not a performance primary.
//! - `POST .../primary/secondary-token {id, ttl="30m"}` (sudo): an activation token, returned
//!   response-wrapped in `wrap_info.token`, for the secondary `id`, which must be unique. Refused
//!   on a secondary, without `id`, or for an `id` that already has one.
//! - `POST .../primary/revoke-secondary {id}`: the secondary `id` may not connect again
//!   without a new token; its id is free for a new one. Refused on a secondary.
//! - `POST .../secondary/promote {force?}`: the secondary becomes the primary; "new secondary
//!   tokens will need to be issued to other secondaries", so it knows no secondary. Refused on
//!   a cluster that is not a performance secondary.
//! - `POST .../secondary/update-primary {token}`: a secondary follows the primary that issued
//!   `token`, without wiping its data. A blank token clears its primary. The token is a
//!   wrapping token: used once, within its TTL. Refused on a primary (demote it first).
//! - Every refusal is Vault's error shape, `{"errors": [...]}` with status 400.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A cluster's performance replication mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Performance primary: takes writes, streams to its secondaries.
    Primary,
    /// Performance secondary: serves reads, forwards writes to its primary.
    Secondary,
    /// Performance replication not enabled.
    Disabled,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Primary => "primary",
            Mode::Secondary => "secondary",
            Mode::Disabled => "disabled",
        }
    }
}

/// One cluster's replication state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    /// Its cluster ID (kept across demote and promote).
    pub cluster_id: String,
    /// Its API address (what a token it issues names).
    pub api_addr: String,
    /// Its mode.
    pub mode: Mode,
    /// A secondary's primary (its API address); None: a secondary that connects to nothing.
    pub primary: Option<String>,
    /// A primary's secondaries: the ids it issued activation tokens for.
    pub secondaries: BTreeSet<String>,
}

impl Replication {
    /// A cluster in `mode` at `api_addr`.
    pub fn new(cluster_id: &str, api_addr: &str, mode: Mode) -> Self {
        Self {
            cluster_id: cluster_id.to_string(),
            api_addr: api_addr.to_string(),
            mode,
            primary: None,
            secondaries: BTreeSet::new(),
        }
    }

    /// The answer to `GET /v1/sys/replication/performance/status`; `state` overrides the
    /// secondary's streaming state (a test's stand-in for a link that stopped talking); a
    /// primary's secondary is connected once it used its token.
    pub fn status(&self, state: Option<&str>, tokens: &ActivationTokens) -> Value {
        match self.mode {
            Mode::Primary => json!({"data": {
                "cluster_id": self.cluster_id,
                "mode": "primary",
                "state": "running",
                "known_secondaries": self.secondaries.iter().collect::<Vec<_>>(),
                "secondaries": self.secondaries.iter().map(|id| json!({
                    "node_id": id,
                    "connection_status": if tokens.redeemed.contains(&(self.cluster_id.clone(), id.clone())) {
                        "connected"
                    } else {
                        "disconnected"
                    },
                })).collect::<Vec<_>>(),
            }}),
            Mode::Secondary => {
                let state = match (&self.primary, state) {
                    (None, _) => "idle",
                    (Some(_), Some(s)) => s,
                    (Some(_), None) => "stream-wals",
                };
                let connection = if state == "idle" {
                    "disconnected"
                } else {
                    "connected"
                };
                json!({"data": {
                    "cluster_id": self.cluster_id,
                    "mode": "secondary",
                    "state": state,
                    "known_primary_cluster_addrs": self.primary.iter().collect::<Vec<_>>(),
                    "primaries": self.primary.iter().map(|p| json!({
                        "api_address": p,
                        "connection_status": connection,
                    })).collect::<Vec<_>>(),
                }})
            }
            Mode::Disabled => json!({"data": {"mode": "disabled"}}),
        }
    }
}

/// A refusal: Vault's status and its error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// The text in `errors`.
    pub message: String,
}

impl Refusal {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: message.into(),
        }
    }

    /// The body Vault answers with.
    pub fn body(&self) -> String {
        json!({"errors": [self.message]}).to_string()
    }
}

/// An activation token a primary issued, until a secondary uses it.
#[derive(Debug, Clone)]
struct Activation {
    issuer_api_addr: String,
    issuer_cluster_id: String,
    id: String,
    expires: Instant,
}

/// The activation tokens issued in one replication set (shared by its clusters: a secondary
/// unwraps a token at the primary that issued it).
#[derive(Debug, Default)]
pub struct ActivationTokens {
    issued: BTreeMap<String, Activation>,
    /// (issuer's cluster ID, secondary id) of every token used.
    redeemed: BTreeSet<(String, String)>,
    next: u64,
}

/// `POST .../primary/demote`.
pub fn demote(cluster: &mut Replication) -> Result<(), Refusal> {
    switch_mode(cluster, Mode::Primary, Mode::Secondary)
}

/// `POST .../secondary/promote`.
pub fn promote(cluster: &mut Replication) -> Result<(), Refusal> {
    switch_mode(cluster, Mode::Secondary, Mode::Primary)
}

/// A cluster in `from` becomes `to`, following no primary and knowing no secondary (a
/// demoted primary connects to nothing; a promoted one issues new tokens); refused in any
/// other mode.
fn switch_mode(cluster: &mut Replication, from: Mode, to: Mode) -> Result<(), Refusal> {
    if cluster.mode != from {
        return Err(Refusal::bad(format!(
            "cluster is not a performance {} (mode {})",
            from.as_str(),
            cluster.mode.as_str()
        )));
    }
    cluster.mode = to;
    cluster.primary = None;
    cluster.secondaries.clear();
    Ok(())
}

/// `POST .../primary/secondary-token {id, ttl}`: the wrapped activation token.
pub fn secondary_token(
    cluster: &mut Replication,
    tokens: &mut ActivationTokens,
    id: &str,
    ttl: Duration,
) -> Result<String, Refusal> {
    if cluster.mode != Mode::Primary {
        return Err(Refusal::bad(format!(
            "cluster is not a performance primary (mode {}): secondary tokens are generated on the primary",
            cluster.mode.as_str()
        )));
    }
    if id.trim().is_empty() {
        return Err(Refusal::bad("missing id"));
    }
    if cluster.secondaries.contains(id) {
        return Err(Refusal::bad(format!(
            "a secondary with id {id:?} already exists: revoke it first"
        )));
    }
    tokens.next += 1;
    let token = format!("hvs.activation.{}.{}", cluster.cluster_id, tokens.next);
    tokens.issued.insert(
        token.clone(),
        Activation {
            issuer_api_addr: cluster.api_addr.clone(),
            issuer_cluster_id: cluster.cluster_id.clone(),
            id: id.to_string(),
            expires: Instant::now() + ttl,
        },
    );
    cluster.secondaries.insert(id.to_string());
    Ok(token)
}

/// `POST .../primary/revoke-secondary {id}`.
pub fn revoke_secondary(
    cluster: &mut Replication,
    tokens: &mut ActivationTokens,
    id: &str,
) -> Result<(), Refusal> {
    if cluster.mode != Mode::Primary {
        return Err(Refusal::bad(format!(
            "cluster is not a performance primary (mode {})",
            cluster.mode.as_str()
        )));
    }
    if id.trim().is_empty() {
        return Err(Refusal::bad("missing id"));
    }
    cluster.secondaries.remove(id);
    tokens
        .redeemed
        .remove(&(cluster.cluster_id.clone(), id.to_string()));
    tokens
        .issued
        .retain(|_, a| !(a.issuer_cluster_id == cluster.cluster_id && a.id == id));
    Ok(())
}

/// `POST .../secondary/update-primary {token}`: follows the issuer; returns (issuer's cluster
/// ID, the id the token was issued for). A blank token clears the primary (None).
pub fn update_primary(
    cluster: &mut Replication,
    tokens: &mut ActivationTokens,
    token: &str,
) -> Result<Option<(String, String)>, Refusal> {
    if cluster.mode != Mode::Secondary {
        return Err(Refusal::bad(format!(
            "cluster is not a performance secondary (mode {}): demote it first",
            cluster.mode.as_str()
        )));
    }
    if token.is_empty() {
        cluster.primary = None;
        return Ok(None);
    }
    let activation = tokens.issued.remove(token).ok_or_else(|| {
        Refusal::bad(
            "error unwrapping secondary token: wrapping token is not valid or does not exist",
        )
    })?;
    if Instant::now() > activation.expires {
        return Err(Refusal::bad(
            "error unwrapping secondary token: wrapping token has expired",
        ));
    }
    if activation.issuer_cluster_id == cluster.cluster_id {
        return Err(Refusal::bad("a cluster cannot be its own primary"));
    }
    cluster.primary = Some(activation.issuer_api_addr);
    tokens
        .redeemed
        .insert((activation.issuer_cluster_id.clone(), activation.id.clone()));
    Ok(Some((activation.issuer_cluster_id, activation.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(1800);

    /// The planned switch the manage guide describes: demote the primary, promote the
    /// secondary, point the demoted cluster at the new primary with a fresh token.
    #[test]
    fn a_planned_switch_demotes_promotes_and_rejoins() {
        let mut tokens = ActivationTokens::default();
        let mut east = Replication::new("east", "https://east:8200", Mode::Primary);
        let mut west = Replication::new("west", "https://west:8200", Mode::Secondary);
        let t = secondary_token(&mut east, &mut tokens, "us-west-2", TTL).unwrap();
        update_primary(&mut west, &mut tokens, &t).unwrap();
        assert_eq!(west.status(None, &tokens)["data"]["state"], "stream-wals");

        demote(&mut east).unwrap();
        assert_eq!(east.status(None, &tokens)["data"]["state"], "idle");
        promote(&mut west).unwrap();
        assert_eq!(west.status(None, &tokens)["data"]["mode"], "primary");
        assert_eq!(
            west.status(None, &tokens)["data"]["known_secondaries"],
            json!([]),
            "a promoted primary issues new tokens to the others"
        );
        let t = secondary_token(&mut west, &mut tokens, "us-east-1", TTL).unwrap();
        assert_eq!(
            update_primary(&mut east, &mut tokens, &t).unwrap(),
            Some(("west".into(), "us-east-1".into()))
        );
        assert_eq!(east.primary.as_deref(), Some("https://west:8200"));
        assert_eq!(east.cluster_id, "east", "demotion keeps the cluster ID");
    }

    /// What Vault refuses: promoting a primary, demoting a secondary, tokens from a
    /// secondary, a duplicate or missing id, a used, unknown or expired token, a primary told
    /// to follow another.
    #[test]
    fn refusals_are_vaults() {
        let mut tokens = ActivationTokens::default();
        let mut east = Replication::new("east", "https://east:8200", Mode::Primary);
        let mut west = Replication::new("west", "https://west:8200", Mode::Secondary);
        assert_eq!(promote(&mut east).unwrap_err().status, 400);
        assert!(
            demote(&mut west)
                .unwrap_err()
                .message
                .contains("not a performance primary")
        );
        assert!(secondary_token(&mut west, &mut tokens, "x", TTL).is_err());
        assert!(secondary_token(&mut east, &mut tokens, " ", TTL).is_err());
        let t = secondary_token(&mut east, &mut tokens, "us-west-2", TTL).unwrap();
        assert!(
            secondary_token(&mut east, &mut tokens, "us-west-2", TTL)
                .unwrap_err()
                .message
                .contains("already exists")
        );
        assert!(
            update_primary(&mut east.clone(), &mut tokens, &t)
                .unwrap_err()
                .message
                .contains("demote it first")
        );
        update_primary(&mut west, &mut tokens, &t).unwrap();
        assert!(
            update_primary(&mut west, &mut tokens, &t).is_err(),
            "a wrapping token is used once"
        );
        assert!(update_primary(&mut west, &mut tokens, "hvs.made-up").is_err());
        let expired = secondary_token(&mut east, &mut tokens, "eu", Duration::ZERO).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            update_primary(&mut west, &mut tokens, &expired)
                .unwrap_err()
                .message
                .contains("expired")
        );
        assert!(revoke_secondary(&mut west, &mut tokens, "eu").is_err());
        revoke_secondary(&mut east, &mut tokens, "eu").unwrap();
        assert!(
            secondary_token(&mut east, &mut tokens, "eu", TTL).is_ok(),
            "a revoked id can have a new token"
        );
        assert_eq!(update_primary(&mut west, &mut tokens, "").unwrap(), None);
        assert_eq!(west.status(None, &tokens)["data"]["state"], "idle");
        let disabled = Replication::new("d", "https://d:8200", Mode::Disabled);
        assert_eq!(disabled.status(None, &tokens)["data"]["mode"], "disabled");
        let primary = east.status(None, &tokens);
        assert_eq!(
            primary["data"]["secondaries"],
            json!([{"node_id": "eu", "connection_status": "disconnected"},
                   {"node_id": "us-west-2", "connection_status": "connected"}]),
            "{primary:#}"
        );
    }
}
