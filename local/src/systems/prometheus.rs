//! A real Prometheus for the local world and the tests (Debian's `prometheus`, installed by
//! `scripts/ensure-prometheus`): it scrapes the simulated gateways' `/metrics` on loopback, and
//! the canary gate queries it with the documented templates. In front of it, an authenticating
//! proxy (what a deployment puts before a Prometheus: bearer or basic auth) that forwards every
//! authorized request unchanged.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::StatusCode;

use crate::LocalError;
use crate::http::{Answer, answer, serve_state};

/// How often Prometheus scrapes the gateways: fine enough for a 2 s bake window.
pub const SCRAPE_INTERVAL: &str = "250ms";

fn failed(what: impl Into<String>) -> LocalError {
    LocalError::Invalid(format!("prometheus: {}", what.into()))
}

struct ProxyState {
    backend: String,
    authorization: Mutex<Option<String>>,
    client: reqwest::Client,
    /// Set once Prometheus has scraped every target twice: the first request through the
    /// proxy waits for it (most worlds never ask Prometheus anything, and the wait is seconds).
    scraped: tokio::sync::OnceCell<()>,
    /// Targets and directory for that wait.
    targets: usize,
    dir: PathBuf,
    /// A metrics outage stopped it: nothing to wait for.
    stopped: std::sync::atomic::AtomicBool,
}

/// A running Prometheus behind its authenticating proxy; both stop when dropped.
pub struct LocalPrometheus {
    child: Mutex<Option<tokio::process::Child>>,
    dir: PathBuf,
    proxy_addr: std::net::SocketAddr,
    proxy: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl LocalPrometheus {
    /// Starts Prometheus scraping `targets` (`host:port` of each gateway, whose `/metrics` carry
    /// the `region` label) and waits until it is ready and has scraped each target twice.
    pub async fn start(targets: &[String]) -> Result<Self, LocalError> {
        let dir = std::env::temp_dir().join(format!(
            "hapilot-prometheus-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).map_err(LocalError::io("creating Prometheus' directory"))?;
        let started = Self::start_in(dir.clone(), targets).await;
        if started.is_err() {
            // Once started, Drop removes it; a start that failed half-way must too.
            let _ = std::fs::remove_dir_all(&dir);
        }
        started
    }

    async fn start_in(dir: PathBuf, targets: &[String]) -> Result<Self, LocalError> {
        let quoted: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  scrape_timeout: {SCRAPE_INTERVAL}\n\
             scrape_configs:\n  - job_name: gateways\n    static_configs:\n      - targets: [{}]\n",
            quoted.join(", ")
        );
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).map_err(LocalError::io("writing prometheus.yml"))?;
        let port = crate::free_port().map_err(LocalError::io("finding a port for Prometheus"))?;
        let log = std::fs::File::create(dir.join("prometheus.log"))
            .map_err(LocalError::io("creating prometheus.log"))?;
        let mut command = tokio::process::Command::new("prometheus");
        command
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        crate::dies_with_parent(&mut command);
        let child = command
            .spawn()
            .map_err(|e| failed(format!("{e} (scripts/ensure-prometheus installs it)")))?;
        let backend = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| failed(format!("HTTP client: {e}")))?;
        let proxy = Arc::new(ProxyState {
            backend,
            authorization: Mutex::new(None),
            client,
            scraped: tokio::sync::OnceCell::new(),
            targets: targets.len(),
            dir: dir.clone(),
            stopped: std::sync::atomic::AtomicBool::new(false),
        });
        let (proxy_addr, task) = serve_state(proxy.clone(), |state, req| async move {
            forward(&state, req).await
        })
        .await
        .map_err(LocalError::io("starting Prometheus' proxy"))?;
        Ok(Self {
            child: Mutex::new(Some(child)),
            dir,
            proxy_addr,
            proxy,
            task,
        })
    }

    /// The URL the canary gate is given (the proxy's).
    pub fn url(&self) -> String {
        format!("http://{}", self.proxy_addr)
    }

    /// From now on, the proxy lets through only requests whose `Authorization` is exactly
    /// `authorization` (`Bearer <token>`, or [`crate::http::basic_authorization`]).
    pub fn require_authorization(&self, authorization: &str) {
        *self.proxy.authorization.lock().expect("auth lock") = Some(authorization.to_string());
    }

    /// A metrics outage: Prometheus itself is stopped (the proxy then answers 502, as a load
    /// balancer before a dead backend does).
    pub fn stop(&self) {
        self.proxy
            .stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(mut child) = self.child.lock().expect("child lock").take() {
            let _ = child.start_kill();
        }
    }
}

impl Drop for LocalPrometheus {
    fn drop(&mut self) {
        self.task.abort();
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until Prometheus is ready and has scraped every target twice (a minute at most).
async fn wait_scraped(
    client: &reqwest::Client,
    backend: &str,
    targets: usize,
    dir: &std::path::Path,
) -> Result<(), LocalError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Two scrapes of every target: a rate or increase() needs two samples in its window.
        let url = reqwest::Url::parse_with_params(
            &format!("{backend}/api/v1/query"),
            &[(
                "query",
                "count(count_over_time(up{job=\"gateways\"}[1m]) >= 2)",
            )],
        )
        .map_err(|e| failed(e.to_string()))?;
        let up = client.get(url).send().await;
        if let Ok(response) = up
            && let Ok(body) = response.json::<serde_json::Value>().await
            && let Some(value) = body["data"]["result"][0]["value"][1].as_str()
            && value.parse::<f64>().unwrap_or(0.0) >= targets as f64
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(failed(format!(
                "not ready with {targets} target(s) scraped within 60 s; last log lines: {}",
                tail.join(" | ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn forward(state: &ProxyState, req: hyper::Request<hyper::body::Incoming>) -> Answer {
    let required = state.authorization.lock().expect("auth lock").clone();
    if !crate::http::authorized(&req, required.as_deref()) {
        return crate::http::unauthorized("prometheus", "Unauthorized\n");
    }
    if !state.stopped.load(std::sync::atomic::Ordering::SeqCst)
        && let Err(e) = state
            .scraped
            .get_or_try_init(|| {
                wait_scraped(&state.client, &state.backend, state.targets, &state.dir)
            })
            .await
    {
        return crate::http::answer(
            hyper::StatusCode::BAD_GATEWAY,
            "text/plain",
            format!("{e}\n"),
        );
    }
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let method = req.method().clone();
    let body = crate::http::body_bytes(req).await;
    let url = format!("{}{path_and_query}", state.backend);
    let sent = state
        .client
        .request(method, url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body.to_vec())
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status =
                StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let bytes = response.bytes().await.unwrap_or_else(|_| Bytes::new());
            answer(status, "application/json", bytes)
        }
        Err(e) => answer(
            StatusCode::BAD_GATEWAY,
            "text/plain",
            format!("Bad Gateway: Prometheus does not answer: {e}\n"),
        ),
    }
}
