//! The `patroni` backend: one Patroni member's REST API does promotion and fencing
//! (`POST /failover`, `PATCH /config`).

use std::time::{Duration, Instant};

use hapilot_core::failover::ReplicationStatus;
use serde::Deserialize;

use super::{
    ClusterMembers, Database, DatabaseTarget, FenceOutcome, FollowOutcome, PromotionOutcome,
    RebuildOutcome, WalPosition,
};
use crate::AdapterError;

/// [`Database`] through one Patroni member's REST API.
#[derive(Debug, Clone)]
pub struct PatroniMember {
    pub(super) http: reqwest::Client,
    pub(super) url: String,
    pub(super) member: String,
    pub(super) auth: Option<crate::http_client::HttpAuth>,
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
