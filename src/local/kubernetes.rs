//! A simulated Kubernetes API server: the `apps/v1` deployment scale subresource hapilot uses
//! (`GET`/`PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale`) and CloudNativePG
//! `Cluster` resources (`POST .../clusters`, `GET .../clusters/{name}`; a new cluster turns
//! "Cluster in healthy state" shortly after, as the operator would report), with bearer-token
//! authentication, on loopback.

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
