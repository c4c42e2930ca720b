//! What a region's Kubernetes API says about the gateway workloads, for readiness: the
//! Deployment (`apps/v1`), its running pods and their nodes' zones (`v1`), and the
//! PodDisruptionBudgets (`policy/v1`) that select them. Read-only; the same bearer token and CA
//! as the scale step.

use std::collections::BTreeMap;
use std::future::Future;

use hapilot_core::readiness::capacity::{cpu_millis, memory_bytes};
use hapilot_core::readiness::{NodeCapacity, Probe, Resources, WorkloadView};
use serde_json::Value;

use crate::AdapterError;
use crate::scaler::KubernetesTarget;

/// The label Kubernetes puts on nodes with their zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Reads workloads.
pub trait ClusterReader: Send + Sync {
    /// What the API says about the Deployment `name`.
    fn workload(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<WorkloadView, AdapterError>> + Send;

    /// Every schedulable node's allocatable and what the pods bound to it request.
    fn capacity(&self) -> impl Future<Output = Result<Vec<NodeCapacity>, AdapterError>> + Send;
}

/// [`ClusterReader`] on the Kubernetes API.
#[derive(Debug, Clone)]
pub struct KubernetesCluster {
    http: reqwest::Client,
    target: KubernetesTarget,
}

impl KubernetesCluster {
    /// Uses `http` for `target`.
    pub fn new(http: reqwest::Client, target: KubernetesTarget) -> Self {
        Self { http, target }
    }

    async fn get(&self, path: &str) -> Result<Value, AdapterError> {
        let url = format!("{}{path}", self.target.url.trim_end_matches('/'));
        let error = |detail: String| AdapterError::Http {
            system: "Kubernetes",
            url: url.clone(),
            detail,
        };
        let response = self
            .http
            .get(&url)
            .bearer_auth(self.target.token.expose())
            .send()
            .await
            .map_err(|e| {
                error(crate::error::error_chain(&e))
                    .transient_if(crate::error::send_failure_is_transient(&e))
            })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(
                error(format!("HTTP {status}: {}", body.trim())).for_status(status.as_u16())
            );
        }
        response.json().await.map_err(|e| {
            error(crate::error::error_chain(&e))
                .transient_if(crate::error::send_failure_is_transient(&e))
        })
    }
}

/// `matchLabels` as a label selector query (`k=v,k2=v2`), percent-encoded.
fn selector_query(labels: &BTreeMap<String, String>) -> String {
    let text: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    percent_encoding::utf8_percent_encode(&text.join(","), percent_encoding::NON_ALPHANUMERIC)
        .to_string()
}

fn labels(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a pod template spreads its pods by zone (section 2.1: anti-affinity or topology
/// spread constraints on the zone key).
pub fn spreads_by_zone(pod_spec: &Value) -> bool {
    let anti = &pod_spec["affinity"]["podAntiAffinity"];
    let required = anti["requiredDuringSchedulingIgnoredDuringExecution"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| t["topologyKey"] == ZONE_LABEL);
    let preferred = anti["preferredDuringSchedulingIgnoredDuringExecution"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| t["podAffinityTerm"]["topologyKey"] == ZONE_LABEL);
    let spread = pod_spec["topologySpreadConstraints"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["topologyKey"] == ZONE_LABEL);
    required || preferred || spread
}

/// Every container's probes, Kubernetes' defaults filled in (period 10 s, threshold 3).
pub fn probes(pod_spec: &Value) -> Vec<(String, Option<Probe>)> {
    let mut out = Vec::new();
    for container in pod_spec["containers"].as_array().into_iter().flatten() {
        for kind in ["liveness", "readiness", "startup"] {
            let probe = &container[format!("{kind}Probe")];
            out.push((
                kind.to_string(),
                probe.is_object().then(|| Probe {
                    initial_delay_secs: probe["initialDelaySeconds"].as_i64().unwrap_or(0),
                    period_secs: probe["periodSeconds"].as_i64().unwrap_or(10),
                    failure_threshold: probe["failureThreshold"].as_i64().unwrap_or(3),
                }),
            ));
        }
    }
    out
}

/// One pod spec's requests: the sum over its containers (a missing request counts as 0, as
/// the scheduler counts it). An unparseable quantity is an error naming it.
pub fn pod_requests(pod_spec: &Value) -> Result<Resources, String> {
    let mut sum = Resources::default();
    for c in pod_spec["containers"].as_array().into_iter().flatten() {
        let requests = &c["resources"]["requests"];
        if let Some(cpu) = requests["cpu"].as_str() {
            sum.cpu_millis += cpu_millis(cpu).ok_or_else(|| format!("cpu request {cpu:?}"))?;
        }
        if let Some(memory) = requests["memory"].as_str() {
            sum.memory_bytes +=
                memory_bytes(memory).ok_or_else(|| format!("memory request {memory:?}"))?;
        }
    }
    Ok(sum)
}

/// A node's `status.allocatable`.
fn allocatable(node: &Value) -> Result<Resources, String> {
    let field = |key: &str| node["status"]["allocatable"][key].as_str().unwrap_or("0");
    Ok(Resources {
        cpu_millis: cpu_millis(field("cpu"))
            .ok_or_else(|| format!("allocatable cpu {:?}", field("cpu")))?,
        memory_bytes: memory_bytes(field("memory"))
            .ok_or_else(|| format!("allocatable memory {:?}", field("memory")))?,
    })
}

impl ClusterReader for KubernetesCluster {
    async fn capacity(&self) -> Result<Vec<NodeCapacity>, AdapterError> {
        let invalid = |path: &str, detail: String| AdapterError::Http {
            system: "Kubernetes",
            url: format!("{}{path}", self.target.url.trim_end_matches('/')),
            detail: format!("unparseable {detail}"),
        };
        let nodes = self.get("/api/v1/nodes").await?;
        let mut out: Vec<NodeCapacity> = Vec::new();
        for n in nodes["items"].as_array().into_iter().flatten() {
            if n["spec"]["unschedulable"].as_bool() == Some(true) {
                continue;
            }
            out.push(NodeCapacity {
                name: n["metadata"]["name"].as_str().unwrap_or("?").to_string(),
                allocatable: allocatable(n).map_err(|e| invalid("/api/v1/nodes", e))?,
                requested: Resources::default(),
            });
        }
        // Every namespace's pods: other teams' pods take the same nodes.
        let pods = self.get("/api/v1/pods").await?;
        for p in pods["items"].as_array().into_iter().flatten() {
            if matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")) {
                continue;
            }
            let Some(node) = out
                .iter_mut()
                .find(|n| Some(n.name.as_str()) == p["spec"]["nodeName"].as_str())
            else {
                continue;
            };
            let requests = pod_requests(&p["spec"]).map_err(|e| invalid("/api/v1/pods", e))?;
            node.requested.cpu_millis += requests.cpu_millis;
            node.requested.memory_bytes += requests.memory_bytes;
        }
        Ok(out)
    }

    async fn workload(&self, name: &str) -> Result<WorkloadView, AdapterError> {
        let ns = &self.target.namespace;
        let deployment = self
            .get(&format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}"))
            .await?;
        let selector = labels(&deployment["spec"]["selector"]["matchLabels"]);
        let pod_labels = labels(&deployment["spec"]["template"]["metadata"]["labels"]);
        let pod_spec = &deployment["spec"]["template"]["spec"];
        let pods = self
            .get(&format!(
                "/api/v1/namespaces/{ns}/pods?labelSelector={}",
                selector_query(&selector)
            ))
            .await?;
        let nodes = self.get("/api/v1/nodes").await?;
        let zones: BTreeMap<String, Option<String>> = nodes["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                (
                    n["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    n["metadata"]["labels"][ZONE_LABEL]
                        .as_str()
                        .map(str::to_string),
                )
            })
            .collect();
        let pod_zones = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["status"]["phase"] == "Running")
            .map(|p| {
                p["spec"]["nodeName"]
                    .as_str()
                    .and_then(|node| zones.get(node).cloned().flatten())
            })
            .collect();
        let budgets = self
            .get(&format!(
                "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"
            ))
            .await?;
        let disruption_budgets = budgets["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| {
                let wants = labels(&b["spec"]["selector"]["matchLabels"]);
                !wants.is_empty() && wants.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
            })
            .map(|b| b["metadata"]["name"].as_str().unwrap_or("?").to_string())
            .collect();
        Ok(WorkloadView {
            name: name.to_string(),
            spec_replicas: deployment["spec"]["replicas"].as_i64().unwrap_or(1),
            available_replicas: deployment["status"]["availableReplicas"]
                .as_i64()
                .unwrap_or(0),
            pod_zones,
            spread_by_zone: spreads_by_zone(pod_spec),
            disruption_budgets,
            probes: probes(pod_spec),
            images: pod_spec["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["image"].as_str().map(str::to_string))
                .collect(),
            pod_requests: pod_requests(pod_spec).map_err(|e| AdapterError::Http {
                system: "Kubernetes",
                url: format!(
                    "{}/apis/apps/v1/namespaces/{ns}/deployments/{name}",
                    self.target.url
                ),
                detail: format!("unparseable {e}"),
            })?,
        })
    }
}

/// In-memory [`ClusterReader`]: workloads by name and the nodes.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone, Default)]
pub struct MemoryCluster {
    /// Deployment name -> what the API says.
    pub workloads: BTreeMap<String, WorkloadView>,
    /// The nodes.
    pub nodes: Vec<NodeCapacity>,
}

#[cfg(any(test, feature = "fakes"))]
impl ClusterReader for MemoryCluster {
    async fn workload(&self, name: &str) -> Result<WorkloadView, AdapterError> {
        self.workloads
            .get(name)
            .cloned()
            .ok_or_else(|| AdapterError::NotFound(format!("deployments.apps \"{name}\" not found")))
    }

    async fn capacity(&self) -> Result<Vec<NodeCapacity>, AdapterError> {
        Ok(self.nodes.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_documents_pod_template_spreads_by_zone_and_has_its_probes() {
        let spec = json!({
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "litellm"}}, "topologyKey": ZONE_LABEL}]}},
            "containers": [{"name": "litellm",
                "livenessProbe": {"initialDelaySeconds": 30, "periodSeconds": 10, "failureThreshold": 3},
                "readinessProbe": {"periodSeconds": 5, "failureThreshold": 2}}]
        });
        assert!(spreads_by_zone(&spec));
        assert!(!spreads_by_zone(&json!({"containers": []})));
        let found = probes(&spec);
        assert_eq!(found.len(), 3);
        assert_eq!(found[1].1.unwrap().detection_secs(), 10);
        assert_eq!(found[2], ("startup".to_string(), None));
        let spread =
            json!({"topologySpreadConstraints": [{"topologyKey": ZONE_LABEL, "maxSkew": 1}]});
        assert!(spreads_by_zone(&spread));
    }

    #[test]
    fn requests_and_allocatable_in_kubernetes_quantities() {
        let spec = json!({"containers": [
            {"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
            {"resources": {"requests": {"cpu": "0.25"}}},
            {"name": "no-requests"}]});
        assert_eq!(
            pod_requests(&spec).unwrap(),
            Resources {
                cpu_millis: 750,
                memory_bytes: 1 << 30
            }
        );
        let bad = json!({"containers": [{"resources": {"requests": {"cpu": "lots"}}}]});
        assert!(pod_requests(&bad).unwrap_err().contains("lots"));
        let node = json!({"status": {"allocatable": {"cpu": "3920m", "memory": "15720140Ki"}}});
        assert_eq!(
            allocatable(&node).unwrap(),
            Resources {
                cpu_millis: 3920,
                memory_bytes: 15_720_140 * 1024
            }
        );
    }

    #[test]
    fn selectors_are_encoded() {
        let l = BTreeMap::from([("app".to_string(), "litellm".to_string())]);
        assert_eq!(selector_query(&l), "app%3Dlitellm");
    }
}
