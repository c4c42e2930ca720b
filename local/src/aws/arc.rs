//! A loopback stand-in of a Route53 ARC cluster (`route53-recovery-cluster`), which moto does
//! not have: one endpoint per cluster region, all serving one shared state, as a real cluster's
//! five regional endpoints do. The API's rules are in [`crate::aws::arc_rules`]; this module serves
//! them over HTTP, refuses (503) every request to an endpoint whose region is dark, counts
//! calls per endpoint, and tells Route53's local data plane each control's state (a
//! `RECOVERY_CONTROL` health check is healthy while its control is `On`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper::StatusCode;

use crate::aws::arc_rules::{ClusterState, serve};
use crate::aws::stack::StackHandle;
use crate::http::{answer, body_bytes, serve_state};

/// Told every control's state (ARN -> `On`) after each accepted change.
pub type StateListener = Arc<dyn Fn(&BTreeMap<String, bool>) + Send + Sync>;

struct Shared {
    state: Mutex<ClusterState>,
    calls: Mutex<BTreeMap<(String, &'static str), u64>>,
    stack: StackHandle,
    listener: StateListener,
}

impl Shared {
    fn states(&self) -> BTreeMap<String, bool> {
        self.state
            .lock()
            .expect("cluster state")
            .controls
            .iter()
            .map(|(arn, c)| (arn.clone(), c.on))
            .collect()
    }
}

/// A running stand-in cluster; stops when dropped.
pub struct ArcCluster {
    endpoints: Vec<(String, SocketAddr)>,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ArcCluster {
    /// Starts one endpoint per region of `regions`, over `state`.
    pub async fn start(
        regions: &[&str],
        state: ClusterState,
        stack: StackHandle,
        listener: StateListener,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            calls: Mutex::default(),
            stack,
            listener,
        });
        (shared.listener)(&shared.states());
        let mut endpoints = Vec::new();
        let mut tasks = Vec::new();
        for region in regions {
            let region = region.to_string();
            let own = region.clone();
            let (addr, task) = serve_state(shared.clone(), move |shared, req| {
                let region = own.clone();
                async move {
                    if shared.stack.is_dark(&region) {
                        *shared
                            .calls
                            .lock()
                            .expect("calls")
                            .entry((region.clone(), "refused"))
                            .or_default() += 1;
                        return answer(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "text/plain",
                            format!("hapilot local stack: region {region} is blacked out\n"),
                        );
                    }
                    let target = req
                        .headers()
                        .get("x-amz-target")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let body = body_bytes(req).await;
                    let reply = {
                        let mut state = shared.state.lock().expect("cluster state");
                        serve(&mut state, &target, &body)
                    };
                    *shared
                        .calls
                        .lock()
                        .expect("calls")
                        .entry((region, "served"))
                        .or_default() += 1;
                    if reply.status == 200 && target.contains("Update") {
                        (shared.listener)(&shared.states());
                    }
                    answer(
                        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK),
                        "application/x-amz-json-1.0",
                        reply.body.to_string(),
                    )
                }
            })
            .await?;
            endpoints.push((region, addr));
            tasks.push(task);
        }
        Ok(Self {
            endpoints,
            shared,
            tasks,
        })
    }

    /// `(region, url)` of each endpoint, in the order given at start.
    pub fn endpoints(&self) -> Vec<(String, String)> {
        self.endpoints
            .iter()
            .map(|(region, addr)| (region.clone(), format!("http://{addr}")))
            .collect()
    }

    /// Every control's state now: ARN -> `On`.
    pub fn states(&self) -> BTreeMap<String, bool> {
        self.shared.states()
    }

    /// Calls per (endpoint region, `served` | `refused`).
    pub fn calls(&self) -> BTreeMap<(String, &'static str), u64> {
        self.shared.calls.lock().expect("calls").clone()
    }
}

impl Drop for ArcCluster {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
