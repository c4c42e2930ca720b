//! The `cloudnativepg` database backend: a region's PostgreSQL is a CloudNativePG `Cluster`
//! (`postgresql.cnpg.io/v1`), changed declaratively through that region's Kubernetes API with
//! JSON merge patches, as the operator documents for replica clusters and distributed
//! topologies (1.24+). SQL through the cluster's read-write service gives positions, lag and
//! the standby's control data for the token check. Which patch to send and whether a token
//! fits are decided in `hapilot_core::cnpg`.

use std::time::{Duration, Instant};

use hapilot_core::ErrorName;
use hapilot_core::cnpg::{
    DesiredRole, StandbyControl, TokenRefusal, check_promotion_token, desired_role, follow_patch,
    is_rebuild_from, promote_patch, rebuild_resource,
};
use hapilot_core::failover::ReplicationStatus;
use serde_json::{Value, json};

use crate::AdapterError;
use crate::database::{
    Database, DatabaseTarget, FenceOutcome, PostgresDatabase, PromotionOutcome, RebuildOutcome,
    WalPosition,
};
use crate::scaler::KubernetesTarget;

/// CloudNativePG's fencing annotation: a JSON list of instance names, `["*"]` for all.
pub const FENCED_INSTANCES: &str = "cnpg.io/fencedInstances";

/// A standby's database system identifier and the newest timeline it knows: what a promotion
/// token must match. The timeline is the highest of the WAL receiver's (only while it is
/// connected: a demotion disconnects it), the last restartpoint's (which can lag a timeline
/// behind) and the newest `.history` file in `pg_wal` (fetched when it followed a promotion;
/// `pg_ls_waldir` needs `pg_monitor`).
pub const STANDBY_CONTROL_SQL: &str =
    "SELECT (SELECT system_identifier::text FROM pg_control_system()),
        GREATEST(
          COALESCE((SELECT received_tli FROM pg_stat_wal_receiver), 0),
          (SELECT timeline_id FROM pg_control_checkpoint()),
          COALESCE((SELECT max(('x' || substr(name, 1, 8))::bit(32)::int) FROM pg_ls_waldir()
                    WHERE name ~ '^[0-9A-F]{8}\\.history$'), 0)
        )::int4";

/// One region's CloudNativePG `Cluster`.
#[derive(Debug, Clone)]
pub struct CnpgCluster {
    http: reqwest::Client,
    kubernetes: KubernetesTarget,
    cluster: String,
    sql: PostgresDatabase,
}

impl CnpgCluster {
    /// The `Cluster` named `cluster` in `kubernetes`' namespace, its `-rw` service at `sql`.
    pub fn new(
        http: reqwest::Client,
        kubernetes: KubernetesTarget,
        cluster: String,
        sql: PostgresDatabase,
    ) -> Self {
        Self {
            http,
            kubernetes,
            cluster,
            sql,
        }
    }

    fn url(&self) -> String {
        format!(
            "{}/apis/postgresql.cnpg.io/v1/namespaces/{}/clusters/{}",
            self.kubernetes.url.trim_end_matches('/'),
            self.kubernetes.namespace,
            self.cluster
        )
    }

    fn error(&self, detail: impl Into<String>) -> AdapterError {
        AdapterError::Http {
            system: "Kubernetes (CloudNativePG)",
            url: self.url(),
            detail: detail.into(),
        }
    }

    async fn answer(&self, request: reqwest::RequestBuilder) -> Result<Value, AdapterError> {
        let response = request
            .bearer_auth(self.kubernetes.token.expose())
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| {
                self.error(crate::error::error_chain(&e))
                    .transient_if(crate::error::send_failure_is_transient(&e))
            })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(self
                .error(format!(
                    "HTTP {status}: {}",
                    body["message"].as_str().unwrap_or("no message")
                ))
                .for_status(status.as_u16()));
        }
        Ok(body)
    }

    /// The `Cluster` resource now.
    pub async fn resource(&self) -> Result<Value, AdapterError> {
        self.answer(self.http.get(self.url())).await
    }

    /// Applies a JSON merge patch (RFC 7386) to the `Cluster`.
    async fn patch(&self, patch: &Value) -> Result<Value, AdapterError> {
        self.answer(
            self.http
                .patch(self.url())
                .header("Content-Type", "application/merge-patch+json")
                .body(patch.to_string()),
        )
        .await
    }

    /// The standby's own control data, to check a promotion token against.
    async fn standby_control(&self) -> Result<StandbyControl, AdapterError> {
        let client = self.sql.connect().await?;
        let row = client
            .query_one(STANDBY_CONTROL_SQL, &[])
            .await
            .map_err(|e| AdapterError::Database {
                target: self.cluster.clone(),
                detail: crate::error::error_chain(&e),
            })?;
        Ok(StandbyControl {
            system_identifier: row.get(0),
            timeline: row.get::<_, i32>(1) as u32,
        })
    }

    /// Waits until the operator reports a current primary and the read-write service takes
    /// writes.
    async fn wait_until_primary(&self, deadline: Duration) -> Result<(), AdapterError> {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < deadline {
            match self.resource().await {
                Ok(r) => {
                    let status = &r["status"];
                    let current = status["currentPrimary"].as_str().unwrap_or_default();
                    last = format!(
                        "phase {:?}, currentPrimary {current:?}",
                        status["phase"].as_str().unwrap_or_default()
                    );
                    if !current.is_empty()
                        && let Ok(p) = self.sql.wal_position().await
                        && !p.in_recovery
                    {
                        return Ok(());
                    }
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(self.error(format!(
            "not primary within {} s (last seen: {last})",
            deadline.as_secs()
        )))
    }

    /// Demotes this (primary) cluster to a replica cluster of `standby` and waits for the
    /// operator's `status.demotionToken`, which it returns; a cluster already demoted returns
    /// its token at once.
    async fn demote_toward(&self, standby: &str) -> Result<String, AdapterError> {
        let resource = self.resource().await?;
        if !self.demoted(&resource) {
            self.patch(&follow_patch(&resource["spec"], standby))
                .await?;
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            let r = self.resource().await?;
            if self.demoted(&r) {
                return Ok(r["status"]["demotionToken"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(self.error("no status.demotionToken within 60 s of the demotion"))
    }

    /// Whether the demoted server still replays the timeline its demotion token names (the
    /// standby it was demoted toward is not promoted yet).
    async fn still_on_token_timeline(&self, resource: &Value) -> bool {
        let Some(token) = resource["status"]["demotionToken"]
            .as_str()
            .and_then(|t| hapilot_core::cnpg::PromotionToken::decode(t).ok())
        else {
            return false;
        };
        let Ok(own) = self.standby_control().await else {
            return false;
        };
        token
            .latest_checkpoint_timeline_id
            .parse::<u32>()
            .is_ok_and(|tli| own.timeline <= tli)
    }

    /// Whether the resource says this cluster was demoted in a switchover: a replica cluster
    /// by its spec that published a demotion token.
    fn demoted(&self, resource: &Value) -> bool {
        matches!(
            desired_role(&self.cluster, &resource["spec"]),
            DesiredRole::Replica { .. }
        ) && resource["status"]["demotionToken"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    }
}

fn cluster_of(
    target: &DatabaseTarget,
    what: &str,
) -> Result<(KubernetesTarget, String), AdapterError> {
    match target {
        DatabaseTarget::Cloudnativepg {
            kubernetes,
            cluster,
            ..
        } => Ok((kubernetes.clone(), cluster.clone())),
        _ => Err(AdapterError::NotFound(format!(
            "{what} must use the cloudnativepg backend too: replica clusters follow clusters"
        ))),
    }
}

impl Database for CnpgCluster {
    async fn replication_status(&self) -> Result<ReplicationStatus, AdapterError> {
        // The designated primary of a replica cluster is a standby like any other:
        // pg_stat_wal_receiver and the replay position say how far behind it is.
        match self.sql.replication_status().await {
            Ok(status) => Ok(status),
            Err(e) => {
                // Which case it is matters to the one who reads the error: a former primary
                // waiting for its rebuild never catches up by itself.
                if let Ok(r) = self.resource().await
                    && let Some(reason) = r["status"]["phaseReason"].as_str()
                {
                    return Err(AdapterError::Database {
                        target: self.cluster.clone(),
                        detail: format!(
                            "{}: phase {:?}: {reason}. Run reprotect for its region: it asks for approval, then rebuilds it ({e})",
                            self.cluster,
                            r["status"]["phase"].as_str().unwrap_or_default()
                        ),
                    });
                }
                Err(e)
            }
        }
    }

    async fn promote(&self, deadline: Duration) -> Result<PromotionOutcome, AdapterError> {
        let resource = self.resource().await?;
        let spec = &resource["spec"];
        if desired_role(&self.cluster, spec) == DesiredRole::Primary {
            if let Ok(p) = self.sql.wal_position().await
                && !p.in_recovery
            {
                return Ok(PromotionOutcome::AlreadyPrimary);
            }
        } else {
            self.patch(&promote_patch(&self.cluster, spec, None))
                .await?;
        }
        self.wait_until_primary(deadline).await?;
        Ok(PromotionOutcome::Promoted)
    }

    async fn fence(&self, toward: Option<&DatabaseTarget>) -> FenceOutcome {
        let fenced = async {
            match toward {
                // A switchover: demote toward the standby and wait for the token, which the
                // operator publishes once PostgreSQL has shut down cleanly.
                Some(target) => {
                    let (_, standby) = cluster_of(target, "the switchover's standby")?;
                    self.demote_toward(&standby).await?;
                    Ok::<_, AdapterError>(format!(
                        "demoted to a replica cluster of {standby}; status.demotionToken published"
                    ))
                }
                None => {
                    let patch = json!({"metadata": {"annotations": {FENCED_INSTANCES: "[\"*\"]"}}});
                    self.patch(&patch).await?;
                    Ok(format!(
                        "all instances fenced ({FENCED_INSTANCES}: [\"*\"])"
                    ))
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(70), fenced).await {
            Ok(Ok(detail)) => FenceOutcome::Fenced(detail),
            Ok(Err(e)) => FenceOutcome::Unreachable(e.to_string()),
            Err(_) => FenceOutcome::Unreachable(format!(
                "Kubernetes at {}: no answer within 70 s",
                self.kubernetes.url
            )),
        }
    }

    async fn unfence(&self) -> Result<(), AdapterError> {
        let resource = self.resource().await?;
        if resource["metadata"]["annotations"][FENCED_INSTANCES].is_string() {
            self.patch(&json!({"metadata": {"annotations": {FENCED_INSTANCES: null}}}))
                .await?;
        }
        if self.demoted(&resource) {
            // The standby was never promoted: this cluster takes its role back, without a
            // token (nothing was written elsewhere).
            self.patch(&promote_patch(&self.cluster, &resource["spec"], None))
                .await?;
            self.wait_until_primary(Duration::from_secs(60)).await?;
        }
        Ok(())
    }

    async fn wal_position(&self) -> Result<WalPosition, AdapterError> {
        let position = self.sql.wal_position().await?;
        // A cluster demoted in a switchover is, until the standby is promoted, the fenced old
        // primary: it takes no writes and its WAL ended at the shutdown checkpoint it now
        // replays from. Once it follows the new primary's timeline it is a replica like any.
        if position.in_recovery
            && let Ok(r) = self.resource().await
            && self.demoted(&r)
            && self.still_on_token_timeline(&r).await
        {
            return Ok(WalPosition {
                in_recovery: false,
                read_only: true,
                lsn: position.lsn,
            });
        }
        Ok(position)
    }

    async fn switchover(
        &self,
        old_primary: Option<&DatabaseTarget>,
        deadline: Duration,
    ) -> Result<PromotionOutcome, AdapterError> {
        let resource = self.resource().await?;
        if desired_role(&self.cluster, &resource["spec"]) == DesiredRole::Primary
            && let Ok(p) = self.sql.wal_position().await
            && !p.in_recovery
        {
            return Ok(PromotionOutcome::AlreadyPrimary);
        }
        let Some(old) = old_primary else {
            return Err(AdapterError::NotFound(
                "a CloudNativePG switchover needs the old primary's cluster (its demotion token)"
                    .into(),
            ));
        };
        let (kubernetes, name) = cluster_of(old, "the old primary")?;
        let old_cluster = CnpgCluster::new(
            self.http.clone(),
            kubernetes,
            name.clone(),
            self.sql.clone(),
        );
        // In a failover's switchover the fence step demoted it already; a failback's switch
        // back starts here.
        let token = old_cluster.demote_toward(&self.cluster).await?;
        // A standby that has not followed the demoted primary's last timeline switch yet
        // (its WAL receiver reconnects after a demotion) gets until the deadline.
        let started = Instant::now();
        let checked = loop {
            let standby = self.standby_control().await?;
            match check_promotion_token(&token, &standby) {
                Err(TokenRefusal::Ahead { .. }) if started.elapsed() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => break other,
            }
        };
        if let Err(refusal) = checked {
            return Err(AdapterError::Refused {
                name: ErrorName::PromotionTokenRefused,
                detail: format!(
                    "{}: promotion token from {name} refused, nothing changed: {refusal}",
                    self.cluster
                ),
            });
        }
        self.patch(&promote_patch(
            &self.cluster,
            &resource["spec"],
            Some(&token),
        ))
        .await?;
        self.wait_until_primary(deadline).await?;
        Ok(PromotionOutcome::Promoted)
    }

    async fn rebuild_approval(
        &self,
        new_primary: &DatabaseTarget,
    ) -> Result<Option<Value>, AdapterError> {
        let (_, primary) = cluster_of(new_primary, "the new primary")?;
        let resource = self.resource().await?;
        if self.demoted(&resource) || is_rebuild_from(&resource, &primary) {
            return Ok(None);
        }
        let new_timeline = match new_primary {
            DatabaseTarget::Cloudnativepg { dsn, .. } => {
                PostgresDatabase::new(dsn).timeline().await.ok()
            }
            _ => None,
        };
        let spec = &resource["spec"];
        let status = &resource["status"];
        let size = spec["storage"]["size"].as_str().unwrap_or("unknown size");
        let instances = spec["instances"].as_i64().unwrap_or(1);
        Ok(Some(json!({
            "cluster": self.cluster,
            "rebuild_from": primary,
            "deletes": format!(
                "Cluster {} with its {instances} instance(s) and their PersistentVolumeClaims ({size} each): every write it took that {primary} does not have is lost",
                self.cluster
            ),
            "storage_size": size,
            "instances": instances,
            "timeline": status["timelineID"],
            "new_primary_timeline": new_timeline,
            "divergence": format!(
                "{} was last on timeline {}; {primary} was promoted without a promotion token and is on timeline {}",
                self.cluster,
                status["timelineID"].as_i64().map_or("unknown".to_string(), |t| t.to_string()),
                new_timeline.map_or("unknown".to_string(), |t| t.to_string()),
            ),
            "phase": status["phase"],
            "phase_reason": status["phaseReason"],
        })))
    }

    async fn follow(
        &self,
        new_primary: &DatabaseTarget,
        _deadline: Duration,
    ) -> Result<crate::database::FollowOutcome, AdapterError> {
        let (_, primary) = cluster_of(new_primary, "the new primary")?;
        // In the distributed topology every Cluster names the primary one in
        // `spec.replica.primary`; hapilot changes only the clusters it promotes or demotes.
        Ok(crate::database::FollowOutcome {
            state: hapilot_core::follow::FollowState::ByHand,
            detail: format!(
                "CloudNativePG: set spec.replica.primary of Cluster {} to {primary} (and its externalClusters' source)",
                self.cluster
            ),
        })
    }

    async fn rebuild_as_replica(
        &self,
        new_primary: &DatabaseTarget,
    ) -> Result<RebuildOutcome, AdapterError> {
        let (_, primary) = cluster_of(new_primary, "the new primary")?;
        let resource = self.resource().await?;
        if is_rebuild_from(&resource, &primary) {
            return Ok(RebuildOutcome {
                method: "cnpg_rebuild".into(),
                detail: format!(
                    "{}: already re-created as a replica cluster bootstrapped from {primary}",
                    self.cluster
                ),
            });
        }
        if self.demoted(&resource) {
            // Demoted with a token in a switchover: it follows by itself once the fence is off.
            let mut patch = follow_patch(&resource["spec"], &primary);
            if resource["metadata"]["annotations"][FENCED_INSTANCES].is_string() {
                patch["metadata"] = json!({"annotations": {FENCED_INSTANCES: null}});
            }
            self.patch(&patch).await?;
            return Ok(RebuildOutcome {
                method: "cnpg_replica_cluster".into(),
                detail: format!(
                    "{}: spec.replica.primary = {primary}; demoted with a token, it streams from {primary}",
                    self.cluster
                ),
            });
        }
        // A former primary that lost its role: CloudNativePG rebuilds it by re-creating it.
        let fresh = format!(
            "{}-{}",
            self.cluster,
            chrono::Utc::now().format("%Y%m%d%H%M%S")
        );
        let rebuilt =
            rebuild_resource(&resource, &primary, &fresh).map_err(|e| AdapterError::Refused {
                name: ErrorName::ReprotectFailed,
                detail: e.to_string(),
            })?;
        self.answer(self.http.delete(self.url())).await?;
        let started = Instant::now();
        loop {
            match self.resource().await {
                Err(AdapterError::Http { detail, .. }) if detail.starts_with("HTTP 404") => break,
                _ if started.elapsed() > Duration::from_secs(120) => {
                    return Err(self.error("still there 120 s after its deletion"));
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let collection = self.url().rsplit_once('/').map(|(c, _)| c.to_string());
        self.answer(
            self.http
                .post(collection.unwrap_or_default())
                .header("Content-Type", "application/json")
                .body(rebuilt.to_string()),
        )
        .await?;
        Ok(RebuildOutcome {
            method: "cnpg_rebuild".into(),
            detail: format!(
                "{}: deleted with its PVCs and created again as a replica cluster of {primary}, bootstrapped with pg_basebackup{}",
                self.cluster,
                if rebuilt["spec"]["backup"]["barmanObjectStore"].is_object() {
                    format!("; WAL archive serverName {fresh}")
                } else {
                    String::new()
                }
            ),
        })
    }
}
