//! A simulated Kubernetes API server: the `apps/v1` deployment scale subresource hapilot uses
//! (`GET`/`PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale`); what readiness
//! reads: the Deployments themselves (pod templates as the HA document's sections 2.1 and 2.3
//! write them), their running pods (`GET /api/v1/namespaces/{ns}/pods?labelSelector=app=...`),
//! every namespace's pods (`GET /api/v1/pods`, with the containers' resource requests), the
//! nodes with their zones and allocatable (`GET /api/v1/nodes`) and the PodDisruptionBudgets (`GET
//! /apis/policy/v1/namespaces/{ns}/poddisruptionbudgets`), each changeable to inject a defect;
//! and CloudNativePG
//! `Cluster` resources (`POST .../clusters`, `GET .../clusters/{name}`; a new cluster turns
//! "Cluster in healthy state" shortly after, as the operator would report; `PATCH` with a JSON
//! merge patch, the promotion token checked for form as CloudNativePG's admission webhook
//! does), with bearer-token authentication, on loopback. The operator's reactions to spec
//! changes live in `local::systems::cnpg`, which reads and writes the resources through
//! [`CnpgResources`]. A region's API can be taken down ([`SimulatedKubernetes::set_down`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};

use crate::http::{Answer, answer, body_bytes, serve_state};

struct Cluster {
    /// Faults armed for this API server and the region it serves.
    faults: crate::aws::faults::Attached,
    token: String,
    namespace: String,
    deployments: BTreeMap<String, i64>,
    /// Each deployment's pod spec (`spec.template.spec`).
    templates: BTreeMap<String, Value>,
    /// Available replicas where fewer than `deployments` says (pods not ready).
    unavailable: BTreeMap<String, i64>,
    /// How long a pod a scale-up starts takes to become ready (its startup and readiness
    /// probes; the HA document's litellm allows 150 s).
    ready_delay: std::time::Duration,
    /// Deployments scaled up whose new pods are not ready yet: until when, and how many were
    /// ready before.
    starting: BTreeMap<String, (std::time::Instant, i64)>,
    /// Nodes and their zones, in the order pods are placed on them.
    nodes: Vec<(String, String)>,
    /// Every node's `status.allocatable` (cpu, memory quantities).
    allocatable: (String, String),
    /// PodDisruptionBudgets by name.
    budgets: BTreeMap<String, Value>,
    /// What the cluster started with (what [`SimulatedKubernetes::reset_workloads`] restores).
    initial: (Vec<(String, i64)>, String),
    clusters: BTreeMap<String, Value>,
    /// `Cluster` names an operator (the stand-in) reconciles: nothing else marks them ready.
    managed: std::collections::BTreeSet<String>,
    down: bool,
}

/// The zone label of nodes.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Each gateway container's requests.
pub const POD_CPU: &str = "500m";
/// See [`POD_CPU`].
pub const POD_MEMORY: &str = "1Gi";

/// A pod spec as the HA document writes it: anti-affinity and spread on the zone (2.1) and the
/// three probes with 2.3's timings.
pub fn document_pod_spec(app: &str) -> Value {
    let probe = |path: &str, delay: i64, period: i64, threshold: i64| {
        json!({"httpGet": {"path": path, "port": 4000}, "initialDelaySeconds": delay,
               "periodSeconds": period, "failureThreshold": threshold})
    };
    json!({
        "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": ZONE_LABEL}]}},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": ZONE_LABEL,
            "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": app}}}],
        "containers": [{
            "name": app,
            "image": format!("ghcr.io/example/{app}:1.0.0"),
            "livenessProbe": probe("/health/liveliness", 30, 10, 3),
            "readinessProbe": probe("/health/readiness", 10, 5, 2),
            "startupProbe": probe("/health", 10, 5, 30),
            "resources": {"requests": {"cpu": POD_CPU, "memory": POD_MEMORY}},
        }]
    })
}

impl Cluster {
    /// The workloads as started: the document's pod specs, every replica available, three
    /// nodes in three zones, a PodDisruptionBudget per deployment.
    fn reset_workloads(&mut self) {
        let (deployments, zone_prefix) = self.initial.clone();
        self.deployments = deployments.iter().cloned().collect();
        self.templates = deployments
            .iter()
            .map(|(n, _)| (n.clone(), document_pod_spec(n)))
            .collect();
        self.unavailable.clear();
        self.starting.clear();
        self.nodes = ["a", "b", "c"]
            .iter()
            .map(|z| (format!("node-{z}"), format!("{zone_prefix}{z}")))
            .collect();
        self.allocatable = ("4".into(), "16Gi".into());
        self.budgets = deployments
            .iter()
            .map(|(n, _)| {
                (
                    format!("{n}-pdb"),
                    json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                           "metadata": {"name": format!("{n}-pdb"), "namespace": self.namespace},
                           "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": n}}}}),
                )
            })
            .collect();
    }

    /// Ready replicas now: pods a scale-up started count only once `ready_delay` has passed
    /// (Kubernetes counts a pod in `readyReplicas` once its readiness probe passes), and never
    /// more than an injected cap.
    fn available(&self, name: &str) -> i64 {
        let replicas = self.deployments.get(name).copied().unwrap_or(0);
        let started = match self.starting.get(name) {
            Some((until, before)) if std::time::Instant::now() < *until => (*before).min(replicas),
            _ => replicas,
        };
        self.unavailable
            .get(name)
            .copied()
            .unwrap_or(started)
            .min(started)
    }

    fn deployment(&self, name: &str) -> Value {
        let replicas = self.deployments[name];
        let available = self.available(name);
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": self.namespace, "labels": {"app": name}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                             "spec": self.templates.get(name).cloned().unwrap_or_else(|| document_pod_spec(name))}
            },
            "status": {"replicas": replicas, "availableReplicas": available, "readyReplicas": available}
        })
    }

    /// The running pods of `app`, placed round-robin on the nodes.
    fn pods(&self, app: &str) -> Vec<Value> {
        let Some(replicas) = self.deployments.get(app) else {
            return Vec::new();
        };
        let available = self.available(app);
        (0..*replicas)
            .map(|i| {
                let node = &self.nodes[i as usize % self.nodes.len().max(1)].0;
                json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("{app}-{i}"), "namespace": self.namespace, "labels": {"app": app}},
                    "spec": {"nodeName": node, "containers": self.templates.get(app).map(|t| t["containers"].clone()).unwrap_or_default()},
                    "status": {"phase": if i < available { "Running" } else { "Pending" }}
                })
            })
            .collect()
    }
}

/// A running simulated API server; stops when dropped.
pub struct SimulatedKubernetes {
    addr: SocketAddr,
    state: Arc<Mutex<Cluster>>,
    task: tokio::task::JoinHandle<()>,
}

impl SimulatedKubernetes {
    /// Starts a cluster with `deployments` (name -> replicas) in `namespace`, accepting `token`:
    /// three nodes in the zones `<zone_prefix>a|b|c`, every deployment with the document's pod
    /// spec and a PodDisruptionBudget `<name>-pdb`.
    pub async fn start(
        token: &str,
        namespace: &str,
        deployments: &[(&str, i64)],
    ) -> std::io::Result<Self> {
        Self::start_in(token, namespace, deployments, "local-1").await
    }

    /// [`SimulatedKubernetes::start`] with the nodes' zones named after `zone_prefix`
    /// (`us-west-2` gives `us-west-2a`, `us-west-2b`, `us-west-2c`).
    pub async fn start_in(
        token: &str,
        namespace: &str,
        deployments: &[(&str, i64)],
        zone_prefix: &str,
    ) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(Cluster {
            faults: None,
            token: token.to_string(),
            namespace: namespace.to_string(),
            deployments: deployments
                .iter()
                .map(|(n, r)| (n.to_string(), *r))
                .collect(),
            templates: BTreeMap::new(),
            unavailable: BTreeMap::new(),
            ready_delay: std::time::Duration::ZERO,
            starting: BTreeMap::new(),
            nodes: Vec::new(),
            allocatable: Default::default(),
            budgets: BTreeMap::new(),
            initial: (
                deployments
                    .iter()
                    .map(|(n, r)| (n.to_string(), *r))
                    .collect(),
                zone_prefix.to_string(),
            ),
            clusters: BTreeMap::new(),
            managed: Default::default(),
            down: false,
        }));
        state.lock().expect("cluster lock").reset_workloads();
        let (addr, task) = serve_state(state.clone(), |state, req| async move {
            respond(state, req).await
        })
        .await?;
        Ok(Self { addr, state, task })
    }

    /// Lets `faults` armed for `region`'s `kubernetes` service hit this API server (its
    /// CloudNativePG resources too).
    pub fn attach_faults(&self, faults: crate::aws::faults::Faults, region: &str) {
        self.state.lock().expect("cluster lock").faults = Some((faults, region.to_string()));
    }

    /// The API server URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A deployment's replicas now.
    pub fn replicas(&self, deployment: &str) -> Option<i64> {
        self.state
            .lock()
            .expect("cluster lock")
            .deployments
            .get(deployment)
            .copied()
    }

    /// A CloudNativePG `Cluster` resource as created, if any.
    pub fn cnpg_cluster(&self, name: &str) -> Option<Value> {
        self.state
            .lock()
            .expect("cluster lock")
            .clusters
            .get(name)
            .cloned()
    }

    /// Creates a CloudNativePG `Cluster` resource as it stands (a seeded world).
    pub fn put_cnpg_cluster(&self, mut resource: Value) {
        if resource["metadata"]["uid"].is_null() {
            resource["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
        }
        let name = resource["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.state
            .lock()
            .expect("cluster lock")
            .clusters
            .insert(name, resource);
    }

    /// The handle the operator stand-in reads and writes the `Cluster` resources through.
    pub fn cnpg_resources(&self) -> CnpgResources {
        CnpgResources(self.state.clone())
    }

    /// Takes the API server down (`true`: every request answers 503, as an API server whose
    /// region is dark would not answer at all) or back up.
    pub fn set_down(&self, down: bool) {
        self.state.lock().expect("cluster lock").down = down;
    }

    /// Puts the workloads back as they started (undoes every injected defect and scale).
    pub fn reset_workloads(&self) {
        self.state.lock().expect("cluster lock").reset_workloads();
    }

    /// Sets a deployment's `spec.replicas` (as a scale would).
    pub fn set_replicas(&self, deployment: &str, replicas: i64) {
        self.state
            .lock()
            .expect("cluster lock")
            .deployments
            .insert(deployment.to_string(), replicas);
    }

    /// Changes a deployment's pod spec in place (a missing probe, no anti-affinity).
    pub fn edit_pod_spec(&self, deployment: &str, change: impl FnOnce(&mut Value)) {
        if let Some(spec) = self
            .state
            .lock()
            .expect("cluster lock")
            .templates
            .get_mut(deployment)
        {
            change(spec);
        }
    }

    /// How long the pods a scale-up starts take to become ready from now on (default: at once).
    pub fn set_ready_delay(&self, delay: std::time::Duration) {
        self.state.lock().expect("cluster lock").ready_delay = delay;
    }

    /// Makes only `available` of a deployment's replicas available (the rest stay Pending).
    pub fn set_available(&self, deployment: &str, available: i64) {
        self.state
            .lock()
            .expect("cluster lock")
            .unavailable
            .insert(deployment.to_string(), available);
    }

    /// Moves every node into `zone` (all pods in one zone).
    pub fn put_all_nodes_in(&self, zone: &str) {
        for node in self.state.lock().expect("cluster lock").nodes.iter_mut() {
            node.1 = zone.to_string();
        }
    }

    /// Sets every node's allocatable (`4` CPU and `16Gi` as started).
    pub fn set_node_allocatable(&self, cpu: &str, memory: &str) {
        self.state.lock().expect("cluster lock").allocatable = (cpu.into(), memory.into());
    }

    /// Deletes a PodDisruptionBudget.
    pub fn delete_disruption_budget(&self, name: &str) {
        self.state
            .lock()
            .expect("cluster lock")
            .budgets
            .remove(name);
    }

    /// Removes a deployment (to make a scale fail).
    pub fn delete(&self, deployment: &str) {
        self.state
            .lock()
            .expect("cluster lock")
            .deployments
            .remove(deployment);
    }
}

impl Drop for SimulatedKubernetes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The CloudNativePG `Cluster` resources of one simulated API server, for the operator.
#[derive(Clone)]
pub struct CnpgResources(Arc<Mutex<Cluster>>);

impl CnpgResources {
    /// A resource now.
    pub fn get(&self, name: &str) -> Option<Value> {
        self.0
            .lock()
            .expect("cluster lock")
            .clusters
            .get(name)
            .cloned()
    }

    /// Marks `name` as reconciled by an operator: a `Cluster` created under that name is ready
    /// when the operator says so, not by itself.
    pub fn manage(&self, name: &str) {
        self.0
            .lock()
            .expect("cluster lock")
            .managed
            .insert(name.to_string());
    }

    /// Changes a resource's `status` in place (the operator's writes).
    pub fn update_status(&self, name: &str, change: impl FnOnce(&mut Value)) {
        if let Some(c) = self.0.lock().expect("cluster lock").clusters.get_mut(name) {
            if !c["status"].is_object() {
                c["status"] = json!({});
            }
            change(&mut c["status"]);
        }
    }
}

/// Applies an RFC 7386 JSON merge patch: objects merge, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let object = target.as_object_mut().expect("made an object above");
    for (key, value) in fields {
        if value.is_null() {
            object.remove(key);
        } else {
            merge_patch(object.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

fn status(code: StatusCode, reason: &str, message: String) -> Answer {
    let body = json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                       "reason": reason, "code": code.as_u16() });
    answer(code, "application/json", body.to_string())
}

fn scale(namespace: &str, name: &str, replicas: i64) -> Answer {
    let body = json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": { "name": name, "namespace": namespace },
        "spec": { "replicas": replicas }, "status": { "replicas": replicas }
    });
    answer(StatusCode::OK, "application/json", body.to_string())
}

async fn respond(state: Arc<Mutex<Cluster>>, req: Request<Incoming>) -> Answer {
    let faults = state.lock().expect("cluster lock").faults.clone();
    if let Some(refused) = crate::aws::faults::apply_attached(
        faults,
        "kubernetes",
        &req,
        crate::aws::faults::Protocol::Kubernetes,
    )
    .await
    {
        return refused;
    }
    if state.lock().expect("cluster lock").down {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "the API server is unreachable",
        );
    }
    let authorized = {
        let c = state.lock().expect("cluster lock");
        req.headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {}", c.token))
    };
    if !authorized {
        return status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized".into(),
        );
    }
    let path: Vec<String> = req.uri().path().split('/').map(str::to_string).collect();
    if path.get(2).map(String::as_str) == Some("postgresql.cnpg.io") {
        return cnpg(state, req, &path).await;
    }
    if req.method() == Method::GET
        && let Some(found) = read_only(&state.lock().expect("cluster lock"), &req, &path)
    {
        return found;
    }
    // ["", "apis", "apps", "v1", "namespaces", ns, "deployments", name, "scale"]
    let (ns, name) = match path.as_slice() {
        [_, a, b, c, d, ns, e, name, f]
            if a == "apis"
                && b == "apps"
                && c == "v1"
                && d == "namespaces"
                && e == "deployments"
                && f == "scale" =>
        {
            (ns.clone(), name.clone())
        }
        _ => {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource".into(),
            );
        }
    };
    let method = req.method().clone();
    let body = body_bytes(req).await;
    let mut c = state.lock().expect("cluster lock");
    if ns != c.namespace || !c.deployments.contains_key(&name) {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("deployments.apps \"{name}\" not found"),
        );
    }
    match method {
        Method::GET => scale(&ns, &name, c.deployments[&name]),
        Method::PATCH => match serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["spec"]["replicas"].as_i64())
        {
            Some(r) if r >= 0 => {
                let before = c.deployments.get(&name).copied().unwrap_or(0);
                if r > before && !c.ready_delay.is_zero() {
                    let ready = c.available(&name);
                    let until = std::time::Instant::now() + c.ready_delay;
                    c.starting.insert(name.clone(), (until, ready));
                }
                c.deployments.insert(name.clone(), r);
                scale(&ns, &name, r)
            }
            _ => status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "spec.replicas must be a non-negative integer".into(),
            ),
        },
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "method not allowed".into(),
        ),
    }
}

/// What readiness reads: a Deployment, pods by `app=` selector, nodes, PodDisruptionBudgets.
/// `None` for any other path.
fn read_only(c: &Cluster, req: &Request<Incoming>, path: &[String]) -> Option<Answer> {
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    let list = |kind: &str, items: Vec<Value>| {
        answer(
            StatusCode::OK,
            "application/json",
            json!({"apiVersion": "v1", "kind": kind, "items": items}).to_string(),
        )
    };
    let not_found = |what: String| status(StatusCode::NOT_FOUND, "NotFound", what);
    match segments.as_slice() {
        [
            "",
            "apis",
            "apps",
            "v1",
            "namespaces",
            ns,
            "deployments",
            name,
        ] => Some(if *ns == c.namespace && c.deployments.contains_key(*name) {
            answer(
                StatusCode::OK,
                "application/json",
                c.deployment(name).to_string(),
            )
        } else {
            not_found(format!("deployments.apps \"{name}\" not found"))
        }),
        ["", "api", "v1", "namespaces", ns, "pods"] => {
            let selector = req
                .uri()
                .query()
                .and_then(|q| {
                    q.split('&')
                        .find_map(|kv| kv.strip_prefix("labelSelector="))
                })
                .map(|v| {
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned()
                })
                .unwrap_or_default();
            let app = selector.strip_prefix("app=").unwrap_or("");
            Some(list(
                "PodList",
                if *ns == c.namespace {
                    c.pods(app)
                } else {
                    Vec::new()
                },
            ))
        }
        ["", "api", "v1", "pods"] => Some(list(
            "PodList",
            c.deployments.keys().flat_map(|app| c.pods(app)).collect(),
        )),
        ["", "api", "v1", "nodes"] => Some(list(
            "NodeList",
            c.nodes
                .iter()
                .map(|(name, zone)| {
                    json!({"apiVersion": "v1", "kind": "Node",
                           "metadata": {"name": name, "labels": {ZONE_LABEL: zone}},
                           "status": {"allocatable": {"cpu": c.allocatable.0, "memory": c.allocatable.1, "pods": "110"}}})
                })
                .collect(),
        )),
        [
            "",
            "apis",
            "policy",
            "v1",
            "namespaces",
            ns,
            "poddisruptionbudgets",
        ] => Some(list(
            "PodDisruptionBudgetList",
            if *ns == c.namespace {
                c.budgets.values().cloned().collect()
            } else {
                Vec::new()
            },
        )),
        _ => None,
    }
}

/// CloudNativePG clusters: `["", "apis", "postgresql.cnpg.io", "v1", "namespaces", ns,
/// "clusters"(, name)]`.
async fn cnpg(state: Arc<Mutex<Cluster>>, req: Request<Incoming>, path: &[String]) -> Answer {
    let (ns, name) = match path {
        [_, _, _, v, n, ns, c] if v == "v1" && n == "namespaces" && c == "clusters" => {
            (ns.clone(), None)
        }
        [_, _, _, v, n, ns, c, name] if v == "v1" && n == "namespaces" && c == "clusters" => {
            (ns.clone(), Some(name.clone()))
        }
        _ => return status(StatusCode::NOT_FOUND, "NotFound", "no such resource".into()),
    };
    let method = req.method().clone();
    let body = body_bytes(req).await;
    match (method, name) {
        (Method::POST, None) => {
            let Ok(mut resource) = serde_json::from_slice::<Value>(&body) else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "not JSON".into());
            };
            let Some(name) = resource["metadata"]["name"].as_str().map(str::to_string) else {
                return status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "metadata.name is required".into(),
                );
            };
            {
                let mut c = state.lock().expect("cluster lock");
                if ns != c.namespace {
                    return status(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("namespaces \"{ns}\" not found"),
                    );
                }
                if c.clusters.contains_key(&name) {
                    return status(
                        StatusCode::CONFLICT,
                        "AlreadyExists",
                        format!("clusters.postgresql.cnpg.io \"{name}\" already exists"),
                    );
                }
                resource["status"] = json!({"phase": "Setting up primary", "readyInstances": 0});
                // Every object the API server creates gets a fresh uid: a re-created Cluster
                // is a new object, whatever its name.
                resource["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
                c.clusters.insert(name.clone(), resource.clone());
                if c.managed.contains(&name) {
                    return answer(
                        StatusCode::CREATED,
                        "application/json",
                        resource.to_string(),
                    );
                }
            }
            let later = state.clone();
            let ready = name.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                if let Some(c) = later.lock().expect("cluster lock").clusters.get_mut(&ready) {
                    c["status"] = json!({"phase": "Cluster in healthy state", "readyInstances": 1});
                }
            });
            answer(
                StatusCode::CREATED,
                "application/json",
                resource.to_string(),
            )
        }
        (Method::PATCH, Some(name)) => {
            let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "not JSON".into());
            };
            // CloudNativePG's admission webhook refuses a token it cannot decode.
            if let Some(token) = patch["spec"]["replica"]["promotionToken"].as_str()
                && let Err(e) = hapilot_core::cnpg::PromotionToken::decode(token)
            {
                return status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!(
                        "Cluster.postgresql.cnpg.io \"{name}\" is invalid: spec.replica.promotionToken: Invalid value: {e}"
                    ),
                );
            }
            let mut c = state.lock().expect("cluster lock");
            match c.clusters.get_mut(&name) {
                Some(resource) => {
                    // Only metadata and spec are the client's: status is the operator's.
                    let mut patch = patch;
                    if let Some(p) = patch.as_object_mut() {
                        p.remove("status");
                    }
                    merge_patch(resource, &patch);
                    answer(StatusCode::OK, "application/json", resource.to_string())
                }
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("clusters.postgresql.cnpg.io \"{name}\" not found"),
                ),
            }
        }
        (Method::DELETE, Some(name)) => {
            // Its instances and PVCs go with it (they are owned by the Cluster): the operator
            // stand-in sees the object gone.
            match state.lock().expect("cluster lock").clusters.remove(&name) {
                Some(_) => answer(
                    StatusCode::OK,
                    "application/json",
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success",
                           "details": {"name": name, "group": "postgresql.cnpg.io", "kind": "clusters"}})
                    .to_string(),
                ),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("clusters.postgresql.cnpg.io \"{name}\" not found"),
                ),
            }
        }
        (Method::GET, Some(name)) => {
            match state.lock().expect("cluster lock").clusters.get(&name) {
                Some(c) => answer(StatusCode::OK, "application/json", c.to_string()),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("clusters.postgresql.cnpg.io \"{name}\" not found"),
                ),
            }
        }
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "not supported here".into(),
        ),
    }
}
