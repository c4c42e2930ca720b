//! A simulated Kubernetes API server: the `apps/v1` deployment scale subresource hapilot uses
//! (`GET`/`PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale`) and CloudNativePG
//! `Cluster` resources (`POST .../clusters`, `GET .../clusters/{name}`; a new cluster turns
//! "Cluster in healthy state" shortly after, as the operator would report; `PATCH` with a JSON
//! merge patch, the promotion token checked for form as CloudNativePG's admission webhook
//! does), with bearer-token authentication, on loopback. The operator's reactions to spec
//! changes live in `local::cnpg`, which reads and writes the resources through
//! [`CnpgResources`]. A region's API can be taken down ([`SimulatedKubernetes::set_down`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};

use super::http::{Answer, answer, body_bytes, serve_state};

struct Cluster {
    token: String,
    namespace: String,
    deployments: BTreeMap<String, i64>,
    clusters: BTreeMap<String, Value>,
    down: bool,
}

/// A running simulated API server; stops when dropped.
pub struct SimulatedKubernetes {
    addr: SocketAddr,
    state: Arc<Mutex<Cluster>>,
    task: tokio::task::JoinHandle<()>,
}

impl SimulatedKubernetes {
    /// Starts a cluster with `deployments` (name -> replicas) in `namespace`, accepting `token`.
    pub async fn start(
        token: &str,
        namespace: &str,
        deployments: &[(&str, i64)],
    ) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(Cluster {
            token: token.to_string(),
            namespace: namespace.to_string(),
            deployments: deployments
                .iter()
                .map(|(n, r)| (n.to_string(), *r))
                .collect(),
            clusters: BTreeMap::new(),
            down: false,
        }));
        let (addr, task) = serve_state(state.clone(), |state, req| async move {
            respond(state, req).await
        })
        .await?;
        Ok(Self { addr, state, task })
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
    pub fn put_cnpg_cluster(&self, resource: Value) {
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
                c.clusters.insert(name.clone(), resource.clone());
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
