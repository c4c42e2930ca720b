//! Scaling a region's gateway deployments through the Kubernetes API's scale subresource.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::AdapterError;

/// How to reach one region's Kubernetes API, from configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesTarget {
    /// API server URL, e.g. `https://ABC.gr7.us-west-2.eks.amazonaws.com`.
    pub url: String,
    /// Bearer token (from a secret; never logged; may be left out when
    /// `HAPILOT_KUBERNETES_SECRET` gives it).
    #[serde(default)]
    pub token: crate::SecretText,
    /// Namespace of the gateway deployments (the HA document's `ai-gateway`).
    pub namespace: String,
    /// PEM file of the CA that signed the API server's certificate (EKS: the cluster CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// A deployment's replica count before and after a scale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleChange {
    /// Deployment name.
    pub deployment: String,
    /// Replicas before.
    pub before: i64,
    /// Replicas asked for.
    pub after: i64,
}

/// Sets replica counts.
pub trait Scaler: Send + Sync {
    /// Sets `deployment`'s replicas; returns what it was before. Setting the current count
    /// again is a no-op that still succeeds.
    fn scale(
        &self,
        deployment: &str,
        replicas: i64,
    ) -> impl Future<Output = Result<ScaleChange, AdapterError>> + Send;

    /// `deployment`'s ready replicas now (`status.readyReplicas`; none reported is 0): pods
    /// started by a scale-up count only once their readiness probe passes.
    fn ready_replicas(
        &self,
        deployment: &str,
    ) -> impl Future<Output = Result<i64, AdapterError>> + Send;
}

/// [`Scaler`] on the Kubernetes API (`PATCH .../deployments/{name}/scale`, merge patch).
#[derive(Debug, Clone)]
pub struct KubernetesScaler {
    http: reqwest::Client,
    target: KubernetesTarget,
}

impl KubernetesScaler {
    /// Uses `http` for `target`.
    pub fn new(http: reqwest::Client, target: KubernetesTarget) -> Self {
        Self { http, target }
    }

    fn url(&self, deployment: &str) -> String {
        format!(
            "{}/apis/apps/v1/namespaces/{}/deployments/{deployment}/scale",
            self.target.url.trim_end_matches('/'),
            self.target.namespace
        )
    }

    fn error(&self, deployment: &str, detail: impl Into<String>) -> AdapterError {
        AdapterError::Http {
            system: "Kubernetes",
            url: self.url(deployment),
            detail: detail.into(),
        }
    }

    /// Sends `request` and reads the JSON object it answers, each failure classified.
    async fn object(
        &self,
        request: reqwest::RequestBuilder,
        deployment: &str,
    ) -> Result<serde_json::Value, AdapterError> {
        let response = request
            .bearer_auth(self.target.token.expose())
            .send()
            .await
            .map_err(|e| {
                self.error(deployment, crate::error::error_chain(&e))
                    .transient_if(crate::error::send_failure_is_transient(&e))
            })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(self
                .error(deployment, format!("HTTP {status}: {}", body.trim()))
                .for_status(status.as_u16()));
        }
        response.json().await.map_err(|e| {
            self.error(deployment, crate::error::error_chain(&e))
                .transient_if(crate::error::send_failure_is_transient(&e))
        })
    }

    /// `spec.replicas` of a Scale object.
    fn replicas(&self, scale: &serde_json::Value, deployment: &str) -> Result<i64, AdapterError> {
        scale["spec"]["replicas"]
            .as_i64()
            .ok_or_else(|| self.error(deployment, "the Scale object has no spec.replicas"))
    }
}

impl Scaler for KubernetesScaler {
    async fn ready_replicas(&self, deployment: &str) -> Result<i64, AdapterError> {
        let url = format!(
            "{}/apis/apps/v1/namespaces/{}/deployments/{deployment}",
            self.target.url.trim_end_matches('/'),
            self.target.namespace
        );
        let object = self.object(self.http.get(url), deployment).await?;
        // The API server leaves readyReplicas out while it is 0.
        Ok(object["status"]["readyReplicas"].as_i64().unwrap_or(0))
    }

    async fn scale(&self, deployment: &str, replicas: i64) -> Result<ScaleChange, AdapterError> {
        let current = self
            .object(self.http.get(self.url(deployment)), deployment)
            .await?;
        let before = self.replicas(&current, deployment)?;
        let patched = self
            .object(
                self.http
                    .patch(self.url(deployment))
                    .header("content-type", "application/merge-patch+json")
                    .body(serde_json::json!({ "spec": { "replicas": replicas } }).to_string()),
                deployment,
            )
            .await?;
        let after = self.replicas(&patched, deployment)?;
        Ok(ScaleChange {
            deployment: deployment.to_string(),
            before,
            after,
        })
    }
}

/// In-memory [`Scaler`]: replica counts by deployment.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone, Default)]
pub struct MemoryScaler {
    replicas: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, i64>>>,
    /// At most this many ready replicas per deployment (none: all are ready).
    ready_cap: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, i64>>>,
}

#[cfg(any(test, feature = "fakes"))]
impl MemoryScaler {
    /// A cluster with these deployments.
    pub fn with(deployments: &[(&str, i64)]) -> Self {
        let scaler = Self::default();
        scaler
            .replicas
            .lock()
            .expect("replicas")
            .extend(deployments.iter().map(|(n, r)| (n.to_string(), *r)));
        scaler
    }

    /// Lets at most `ready` of `deployment`'s replicas be ready (pods still starting).
    pub fn cap_ready(&self, deployment: &str, ready: i64) {
        self.ready_cap
            .lock()
            .expect("ready cap")
            .insert(deployment.to_string(), ready);
    }

    /// The replicas of `deployment` now.
    pub fn replicas(&self, deployment: &str) -> Option<i64> {
        self.replicas
            .lock()
            .expect("replicas")
            .get(deployment)
            .copied()
    }
}

#[cfg(any(test, feature = "fakes"))]
impl Scaler for MemoryScaler {
    async fn ready_replicas(&self, deployment: &str) -> Result<i64, AdapterError> {
        let replicas = self.replicas(deployment).ok_or_else(|| {
            AdapterError::NotFound(format!("deployments.apps \"{deployment}\" not found"))
        })?;
        let cap = self
            .ready_cap
            .lock()
            .expect("ready cap")
            .get(deployment)
            .copied();
        Ok(cap.map_or(replicas, |c| c.min(replicas)))
    }

    async fn scale(&self, deployment: &str, replicas: i64) -> Result<ScaleChange, AdapterError> {
        let mut all = self.replicas.lock().expect("replicas");
        let before = *all.get(deployment).ok_or_else(|| {
            AdapterError::NotFound(format!("deployments.apps \"{deployment}\" not found"))
        })?;
        all.insert(deployment.to_string(), replicas);
        Ok(ScaleChange {
            deployment: deployment.to_string(),
            before,
            after: replicas,
        })
    }
}
