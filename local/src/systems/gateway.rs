//! Simulated regional gateways: an HTTP `/health` endpoint per region on loopback whose answer
//! can be switched, standing in for a region's NLB + LiteLLM/agent gateway.
//!
//! Modes cover what a prober meets in a real outage: a clean answer, a 503, an answer slower
//! than the probe timeout, and a connection that is accepted but never answered. The mode can be
//! switched in process ([`SimulatedGateway::set_mode`]) or over HTTP (`PUT /_sim/mode` with body
//! `healthy`, `failing`, `hanging` or `slow:<ms>`), so a drill in another process can break it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;

use crate::http::{Answer, answer, body_bytes, serve, serve_state};

/// How the gateway answers `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayMode {
    /// `200 {"status":"healthy"}` at once.
    Healthy,
    /// `503 {"status":"unhealthy"}` at once.
    Failing,
    /// A healthy answer after this delay.
    Slow(Duration),
    /// Accepts the request and never answers.
    Hanging,
}

impl std::str::FromStr for GatewayMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "healthy" => Ok(GatewayMode::Healthy),
            "failing" => Ok(GatewayMode::Failing),
            "hanging" => Ok(GatewayMode::Hanging),
            other => other
                .strip_prefix("slow:")
                .and_then(|ms| ms.parse().ok())
                .map(|ms| GatewayMode::Slow(Duration::from_millis(ms)))
                .ok_or_else(|| {
                    format!("unknown mode {other:?}: use healthy, failing, hanging or slow:<ms>")
                }),
        }
    }
}

struct State {
    region: String,
    traffic: Arc<crate::systems::user_traffic::TrafficModel>,
    mode: Mutex<GatewayMode>,
    health_requests: AtomicU64,
    failures_left: AtomicU64,
}

/// A running simulated gateway; stops when dropped.
pub struct SimulatedGateway {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl SimulatedGateway {
    /// Starts a healthy gateway for `region` on a free loopback port.
    pub async fn start(region: &str) -> std::io::Result<Self> {
        let state = Arc::new(State {
            region: region.to_string(),
            traffic: Arc::default(),
            mode: Mutex::new(GatewayMode::Healthy),
            health_requests: AtomicU64::new(0),
            failures_left: AtomicU64::new(0),
        });
        let (addr, task) = serve_state(state.clone(), |state, req| async move {
            respond(&state, req).await
        })
        .await?;
        Ok(Self { addr, state, task })
    }

    /// `http://127.0.0.1:<port>/health`.
    pub fn health_url(&self) -> String {
        format!("http://{}/health", self.addr)
    }

    /// `host:port` of its `/metrics` (a Prometheus scrape target).
    pub fn metrics_target(&self) -> String {
        self.addr.to_string()
    }

    /// The region this gateway plays.
    pub fn region(&self) -> &str {
        &self.state.region
    }

    /// Switches how `/health` answers from the next request on.
    pub fn set_mode(&self, mode: GatewayMode) {
        *self.state.mode.lock().expect("mode lock") = mode;
    }

    /// Answers the next `n` `/health` requests with 503 whatever the mode, then the mode again:
    /// a flap that is exact to the request, for tests that must not race the clock.
    pub fn fail_next(&self, n: u64) {
        self.state.failures_left.store(n, Ordering::Relaxed);
    }

    /// The user traffic this region serves (what its `/metrics` and load balancer report).
    pub fn traffic(&self) -> Arc<crate::systems::user_traffic::TrafficModel> {
        self.state.traffic.clone()
    }

    /// How many `/health` requests arrived so far.
    pub fn health_requests(&self) -> u64 {
        self.state.health_requests.load(Ordering::Relaxed)
    }
}

impl Drop for SimulatedGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn respond(state: &State, req: Request<Incoming>) -> Answer {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") => {
            state.health_requests.fetch_add(1, Ordering::Relaxed);
            let flapping = state
                .failures_left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok();
            let mode = if flapping {
                GatewayMode::Failing
            } else {
                *state.mode.lock().expect("mode lock")
            };
            let healthy = json!({ "status": "healthy", "region": state.region }).to_string();
            match mode {
                GatewayMode::Healthy => answer(StatusCode::OK, "application/json", healthy),
                GatewayMode::Failing => answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/json",
                    json!({ "status": "unhealthy", "region": state.region }).to_string(),
                ),
                GatewayMode::Slow(delay) => {
                    tokio::time::sleep(delay).await;
                    answer(StatusCode::OK, "application/json", healthy)
                }
                GatewayMode::Hanging => std::future::pending().await,
            }
        }
        (&Method::GET, "/metrics") => {
            let (requests, errors) = state.traffic.totals();
            let mut body = format!(
                "# HELP http_requests_total Requests served.\n# TYPE http_requests_total counter\n\
                 http_requests_total{{region=\"{r}\",status=\"200\"}} {ok}\n\
                 http_requests_total{{region=\"{r}\",status=\"503\"}} {errors}\n",
                r = state.region,
                ok = (requests - errors).floor(),
                errors = errors.floor()
            );
            // The request latency histogram, as an HTTP server's instrumentation exposes it.
            let (buckets, sum) = state.traffic.latency_histogram();
            body.push_str(
                "# HELP http_request_duration_seconds Request latency.\n# TYPE http_request_duration_seconds histogram\n",
            );
            for (le, count) in crate::systems::user_traffic::LATENCY_BUCKETS
                .iter()
                .zip(&buckets)
            {
                body.push_str(&format!(
                    "http_request_duration_seconds_bucket{{region=\"{r}\",le=\"{le}\"}} {count:.3}\n",
                    r = state.region
                ));
            }
            body.push_str(&format!(
                "http_request_duration_seconds_bucket{{region=\"{r}\",le=\"+Inf\"}} {requests:.3}\n\
                 http_request_duration_seconds_sum{{region=\"{r}\"}} {sum:.3}\n\
                 http_request_duration_seconds_count{{region=\"{r}\"}} {requests:.3}\n",
                r = state.region
            ));
            answer(StatusCode::OK, "text/plain; version=0.0.4", body)
        }
        (&Method::PUT, "/_sim/mode") => {
            let body = body_bytes(req).await;
            match String::from_utf8_lossy(&body).parse::<GatewayMode>() {
                Ok(mode) => {
                    *state.mode.lock().expect("mode lock") = mode;
                    answer(StatusCode::NO_CONTENT, "text/plain", "")
                }
                Err(e) => answer(StatusCode::BAD_REQUEST, "text/plain", e),
            }
        }
        _ => answer(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// The global name as users reach it, through the local Route53 data plane
/// ([`crate::aws::data_plane::answer`]): each `/health` request is resolved by the records' routing
/// and their health checks' status, then sent to the answering region's gateway, the way a
/// client resolving the name ends up at one region. `/health` is a client in us-east-1 (where
/// most users are); `/from/<region>/health` a client in `<region>`.
pub struct GlobalRouter {
    addr: SocketAddr,
    routes: Arc<Routes>,
    task: tokio::task::JoinHandle<()>,
}

struct Routes {
    stack: crate::aws::stack::StackHandle,
    checkers: Arc<crate::aws::data_plane::HealthCheckers>,
    zone_id: String,
    record_name: String,
    targets: std::sync::RwLock<std::collections::BTreeMap<String, String>>,
    http: reqwest::Client,
    /// How long a resolver keeps an answer (the records' TTL at the world's pace).
    ttl: Duration,
    /// Each client region's resolver: the answer it holds and until when.
    resolvers:
        std::sync::Mutex<std::collections::BTreeMap<String, (Option<String>, std::time::Instant)>>,
}

/// The region of a client that asks `/health` without saying where it is.
pub const DEFAULT_CLIENT_REGION: &str = "us-east-1";

impl GlobalRouter {
    /// Routes `record_name` in `zone_id`; `targets` maps each SetIdentifier to its region's
    /// health URL. Each client region's resolver keeps an answer for `ttl` (the records' TTL
    /// at the world's pace; zero asks Route53 every time), as resolvers do.
    pub async fn start(
        stack: crate::aws::stack::StackHandle,
        checkers: Arc<crate::aws::data_plane::HealthCheckers>,
        zone_id: &str,
        record_name: &str,
        targets: std::collections::BTreeMap<String, String>,
        ttl: Duration,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let routes = Arc::new(Routes {
            stack,
            checkers,
            zone_id: zone_id.to_string(),
            record_name: record_name.trim_end_matches('.').to_string(),
            targets: std::sync::RwLock::new(targets),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(std::io::Error::other)?,
            ttl,
            resolvers: Default::default(),
        });
        let serving = routes.clone();
        let task = serve(listener, move |req| {
            let routes = serving.clone();
            async move { route(&routes, req).await }
        });
        Ok(Self { addr, routes, task })
    }

    /// Sends what the record `set` answers to `health_url` (a region added to the world).
    pub fn add_target(&self, set: &str, health_url: &str) {
        self.routes
            .targets
            .write()
            .expect("targets")
            .insert(set.to_string(), health_url.to_string());
    }

    /// `http://127.0.0.1:<port>/health`: the global health URL.
    pub fn health_url(&self) -> String {
        format!("http://{}/health", self.addr)
    }

    /// The global health URL as a client in `region` reaches it.
    pub fn health_url_from(&self, region: &str) -> String {
        format!("http://{}/from/{region}/health", self.addr)
    }

    /// `http://127.0.0.1:<port>/answer`: which SetIdentifier the name answers now (JSON).
    pub fn answer_url(&self, region: &str) -> String {
        format!("http://{}/from/{region}/answer", self.addr)
    }
}

impl Drop for GlobalRouter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn route(routes: &Routes, req: Request<Incoming>) -> Answer {
    let path = req.uri().path().to_string();
    let (client, what) = match path.strip_prefix("/from/") {
        Some(rest) => match rest.split_once('/') {
            Some((region, what)) => (region.to_string(), what.to_string()),
            None => return answer(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        },
        None => (
            DEFAULT_CLIENT_REGION.to_string(),
            path.trim_start_matches('/').to_string(),
        ),
    };
    if what != "health" && what != "answer" {
        return answer(StatusCode::NOT_FOUND, "text/plain", "not found\n");
    }
    let cached = routes
        .resolvers
        .lock()
        .expect("resolvers")
        .get(&client)
        .filter(|(_, until)| std::time::Instant::now() < *until)
        .map(|(set, _)| set.clone());
    let set = match cached {
        Some(set) => set,
        None => {
            let stack = routes.stack.clone();
            let observer = move |region: &str| stack.observer_config(region);
            match crate::aws::data_plane::answer(
                &observer,
                &routes.checkers,
                &routes.zone_id,
                &routes.record_name,
                &client,
            )
            .await
            {
                Ok(set) => {
                    if !routes.ttl.is_zero() {
                        routes.resolvers.lock().expect("resolvers").insert(
                            client.clone(),
                            (set.clone(), std::time::Instant::now() + routes.ttl),
                        );
                    }
                    set
                }
                Err(e) => {
                    return answer(
                        StatusCode::BAD_GATEWAY,
                        "text/plain",
                        format!("route53 data plane: {e}\n"),
                    );
                }
            }
        }
    };
    if what == "answer" {
        return answer(
            StatusCode::OK,
            "application/json",
            json!({ "client_region": client, "set_identifier": set }).to_string(),
        );
    }
    let url = set
        .as_deref()
        .and_then(|s| routes.targets.read().expect("targets").get(s).cloned());
    let Some(url) = url else {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "the global name has no record to answer with\n",
        );
    };
    match routes.http.get(&url).send().await {
        Ok(r) => {
            let code = StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = r.bytes().await.unwrap_or_default();
            answer(code, "application/json", body)
        }
        Err(e) => answer(
            StatusCode::BAD_GATEWAY,
            "text/plain",
            format!("upstream {url}: {e}\n"),
        ),
    }
}
