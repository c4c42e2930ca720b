//! A simulated Patroni member: the part of Patroni's REST API hapilot uses, on loopback.
//!
//! `GET /patroni` (role, xlog positions, `replayed_timestamp`), `GET /cluster` (every member
//! [`SimulatedPatroni::join`]ed with its role, state, lag and tags), `GET /primary` (200 only on
//! the leader), `POST /failover {"candidate": ...}` and `POST /switchover {"leader", "candidate"}`
//! (the candidate becomes leader shortly after, as with a real cluster, so callers must poll
//! `GET /primary`), `POST /reinitialize` (a replica again).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};

use crate::http::{Answer, answer, body_bytes, serve_state};

struct Member {
    /// Faults armed for this member's REST API and the region it runs in.
    faults: crate::aws::faults::Attached,
    name: String,
    primary: bool,
    replay_lag: Duration,
    /// Bytes of the leader's WAL a replica has not received (streaming behind).
    received_behind: u64,
    failover_requests: u64,
    switchover_requests: u64,
    reinitialize_requests: u64,
    /// `restapi.authentication`, as the `Authorization` value it requires on unsafe requests.
    authorization: Option<String>,
    /// `tags.nofailover`.
    nofailover: bool,
    /// The other members of its cluster.
    peers: Vec<Arc<Mutex<Member>>>,
}

/// The leader's WAL position (`xlog.location`); replicas report theirs behind it.
const LEADER_LOCATION: u64 = 50_331_648;

impl Member {
    /// This member as `GET /cluster` lists it.
    fn listed(&self) -> Value {
        json!({
            "name": self.name,
            "role": if self.primary { "leader" } else { "replica" },
            "state": if self.primary { "running" } else { "streaming" },
            "host": "127.0.0.1",
            "port": 5432,
            "timeline": 1,
            "lag": if self.primary { json!(null) } else { json!(648) },
            "tags": {"nofailover": self.nofailover}
        })
    }
}

/// A running simulated member; stops when dropped.
pub struct SimulatedPatroni {
    addr: SocketAddr,
    state: Arc<Mutex<Member>>,
    task: tokio::task::JoinHandle<()>,
}

impl SimulatedPatroni {
    /// Starts member `name`, leader or replica.
    pub async fn start(name: &str, primary: bool) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(Member {
            faults: None,
            name: name.to_string(),
            primary,
            replay_lag: Duration::from_millis(500),
            received_behind: 0,
            failover_requests: 0,
            switchover_requests: 0,
            reinitialize_requests: 0,
            authorization: None,
            nofailover: false,
            peers: Vec::new(),
        }));
        let (addr, task) = serve_state(state.clone(), |state, req| async move {
            respond(&state, req).await
        })
        .await?;
        Ok(Self { addr, state, task })
    }

    /// Lets `faults` armed for `region`'s `patroni` service hit this member.
    pub fn attach_faults(&self, faults: crate::aws::faults::Faults, region: &str) {
        self.state.lock().expect("member lock").faults = Some((faults, region.to_string()));
    }

    /// Base URL of its REST API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The member's name.
    pub fn name(&self) -> String {
        self.state.lock().expect("member lock").name.clone()
    }

    /// How far behind the replica's last replayed transaction is.
    pub fn set_replay_lag(&self, lag: Duration) {
        self.state.lock().expect("member lock").replay_lag = lag;
    }

    /// How many bytes of the leader's WAL a replica has not received yet (its
    /// `received_location` and `replayed_location` fall behind the leader's `location`).
    pub fn set_received_behind(&self, bytes: u64) {
        self.state.lock().expect("member lock").received_behind = bytes;
    }

    /// Makes it the leader (`true`) or a replica (`false`), as a rebuilt member would be.
    pub fn set_primary(&self, primary: bool) {
        self.state.lock().expect("member lock").primary = primary;
    }

    /// Whether it is the leader now.
    pub fn is_primary(&self) -> bool {
        self.state.lock().expect("member lock").primary
    }

    /// How many `POST /switchover` and `POST /reinitialize` it received.
    pub fn switchover_and_reinitialize_requests(&self) -> (u64, u64) {
        let m = self.state.lock().expect("member lock");
        (m.switchover_requests, m.reinitialize_requests)
    }

    /// Turns on `restapi.authentication`: as in Patroni, the unsafe requests (POST, PUT,
    /// PATCH, DELETE) then need these basic credentials; reads stay open.
    pub fn require_basic_auth(&self, username: &str, password: &str) {
        self.state.lock().expect("member lock").authorization =
            Some(crate::http::basic_authorization(username, password));
    }

    /// Makes `other` a member of this one's cluster (and this one of `other`'s), as one Patroni
    /// cluster spanning both regions is.
    pub fn join(&self, other: &SimulatedPatroni) {
        self.state
            .lock()
            .expect("member lock")
            .peers
            .push(other.state.clone());
        other
            .state
            .lock()
            .expect("member lock")
            .peers
            .push(self.state.clone());
    }

    /// Tags it `nofailover` (Patroni then refuses to promote it).
    pub fn set_nofailover(&self, nofailover: bool) {
        self.state.lock().expect("member lock").nofailover = nofailover;
    }

    /// How many `POST /failover` it received.
    pub fn failover_requests(&self) -> u64 {
        self.state.lock().expect("member lock").failover_requests
    }
}

impl Drop for SimulatedPatroni {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn respond(state: &Arc<Mutex<Member>>, req: Request<Incoming>) -> Answer {
    let faults = state.lock().expect("member lock").faults.clone();
    if let Some(refused) = crate::aws::faults::apply_attached(
        faults,
        "patroni",
        &req,
        crate::aws::faults::Protocol::Plain,
    )
    .await
    {
        return refused;
    }
    if req.method() != Method::GET {
        let required = state.lock().expect("member lock").authorization.clone();
        if !crate::http::authorized(&req, required.as_deref()) {
            return crate::http::unauthorized("Patroni", "not authenticated");
        }
    }
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/patroni") => {
            let m = state.lock().expect("member lock");
            let body = if m.primary {
                json!({ "state": "running", "role": "master", "xlog": { "location": LEADER_LOCATION } })
            } else {
                let replayed = chrono::Utc::now()
                    - chrono::Duration::milliseconds(m.replay_lag.as_millis() as i64);
                json!({
                    "state": "running",
                    "role": "replica",
                    "xlog": {
                        "received_location": LEADER_LOCATION - m.received_behind,
                        "replayed_location": LEADER_LOCATION - m.received_behind - 648,
                        "replayed_timestamp": replayed.to_rfc3339(),
                        "paused": false
                    }
                })
            };
            answer(StatusCode::OK, "application/json", body.to_string())
        }
        (Method::GET, "/cluster") => {
            let m = state.lock().expect("member lock");
            let mut members = vec![m.listed()];
            let peers = m.peers.clone();
            drop(m);
            members.extend(
                peers
                    .iter()
                    .map(|p| p.lock().expect("member lock").listed()),
            );
            answer(
                StatusCode::OK,
                "application/json",
                json!({"members": members, "scope": "gateway"}).to_string(),
            )
        }
        (Method::GET, "/primary" | "/master" | "/leader") => {
            let primary = state.lock().expect("member lock").primary;
            let code = if primary {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            answer(
                code,
                "application/json",
                json!({ "role": if primary { "master" } else { "replica" } }).to_string(),
            )
        }
        (Method::POST, "/reinitialize") => {
            let mut m = state.lock().expect("member lock");
            m.reinitialize_requests += 1;
            // Patroni's Ha.reinitialize: the leader is never wiped.
            if m.primary {
                return answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "I am the leader, can not reinitialize",
                );
            }
            answer(StatusCode::OK, "text/plain", "reinitialize started")
        }
        (Method::POST, path @ ("/failover" | "/switchover")) => {
            let body = body_bytes(req).await;
            let parsed = serde_json::from_slice::<Value>(&body).unwrap_or_default();
            {
                let mut m = state.lock().expect("member lock");
                if path == "/switchover" {
                    m.switchover_requests += 1;
                } else {
                    m.failover_requests += 1;
                }
            }
            let members = cluster_members(state);
            let listed: Vec<(String, bool, bool)> = members
                .iter()
                .map(|member| {
                    let m = member.lock().expect("member lock");
                    (m.name.clone(), m.primary, m.nofailover)
                })
                .collect();
            match failover_decision(path == "/switchover", &parsed, &listed) {
                Err((code, message)) => answer(code, "text/plain", message),
                Ok((candidate, message)) => {
                    // The leader key moves; the candidate is promoted shortly after (callers
                    // poll GET /primary), and a member that sees another leader demotes.
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        for member in members {
                            let mut m = member.lock().expect("member lock");
                            m.primary = m.name == candidate;
                        }
                    });
                    answer(StatusCode::OK, "text/plain", message)
                }
            }
        }
        _ => answer(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// This member and its peers.
fn cluster_members(state: &Arc<Mutex<Member>>) -> Vec<Arc<Mutex<Member>>> {
    let peers = state.lock().expect("member lock").peers.clone();
    let mut all = vec![state.clone()];
    all.extend(peers);
    all
}

/// Patroni's answer to `POST /failover` or `POST /switchover` (`patroni/api.py`,
/// `do_POST_failover` and `is_failover_possible`) over the cluster's members (name, leader,
/// `nofailover`): the candidate to promote and the success message, or the refusal's status and
/// message.
pub fn failover_decision(
    switchover: bool,
    request: &Value,
    members: &[(String, bool, bool)],
) -> Result<(String, String), (StatusCode, String)> {
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let leader = text(&request["leader"]);
    let candidate = text(&request["candidate"]).or_else(|| text(&request["member"]));
    let refused = |message: &str| Err((StatusCode::BAD_REQUEST, message.to_string()));
    if !switchover && candidate.is_none() {
        return refused("Failover could be performed only to a specific candidate");
    }
    if switchover && leader.is_none() {
        return refused("Switchover could be performed only from a specific leader");
    }
    // A failover naming the leader is performed as a switchover.
    let action = if switchover || leader.is_some() {
        "switchover"
    } else {
        "failover"
    };
    if leader.is_some() && leader == candidate {
        return refused("Switchover target and source are the same");
    }
    let not_possible = |message: String| Err((StatusCode::PRECONDITION_FAILED, message));
    let current = members.iter().find(|(_, primary, _)| *primary);
    if let Some(leader) = &leader
        && current.is_none_or(|(name, _, _)| name != leader)
    {
        return not_possible("leader name does not match".into());
    }
    let eligible: Vec<&(String, bool, bool)> = match &candidate {
        Some(c) => {
            let named: Vec<_> = members.iter().filter(|(name, _, _)| name == c).collect();
            if named.is_empty() {
                return not_possible("candidate does not exists".into());
            }
            named
        }
        None => {
            let others: Vec<_> = members.iter().filter(|(_, primary, _)| !primary).collect();
            if others.is_empty() {
                return not_possible(format!(
                    "{action} is not possible: cluster does not have members except leader"
                ));
            }
            others
        }
    };
    // `failover_limitation`: a member tagged nofailover is no good candidate.
    match eligible.iter().find(|(_, _, nofailover)| !nofailover) {
        Some((name, _, _)) => Ok((
            name.clone(),
            format!(
                "Successfully {} over to \"{name}\"",
                if action == "switchover" {
                    "switched"
                } else {
                    "failed"
                }
            ),
        )),
        None => not_possible(format!(
            "{action} is not possible: no good candidates have been found"
        )),
    }
}
