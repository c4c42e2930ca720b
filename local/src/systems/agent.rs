//! The hapilot host agent for the `postgres` database backend: what plain PostgreSQL cannot do
//! over SQL, as a tiny HTTP API next to the server. Patroni (`POST /reinitialize`) and
//! CloudNativePG do these themselves; locally this agent plays that part.
//!
//! - `POST /rebuild {"source_dsn"}` -> `{"method": "pg_rewind"|"pg_basebackup", "detail"}`:
//!   re-protection (stop, rewind or re-clone, restart as a replica of the source).
//! - `POST /restore {"base": {"name", "url"}, "wal": [{"name", "url"}], "target_time"?}` -> 202:
//!   a DR restore in the background (download the base backup and the WAL, lay down the data
//!   directory with `recovery.signal` and `restore_command`, start it);
//!   `GET /restore` -> `{"state": "idle"|"running"|"started"|"failed", "detail"}`;
//!   `DELETE /restore` -> 200 `{"state": "idle", "detail"}`: what a restore laid down (a
//!   restore test's scratch server) stopped and removed; 409 while a restore is running.
//! - `POST /restore/redis {"rdb": {"name", "url"}}` -> `{"keys", "detail"}`: a restore test's
//!   Redis check: the RDB loaded by a scratch redis-server of its own, `DBSIZE`, the server
//!   stopped and removed; 422 with what Redis said when it refuses the file.
//!
//! The bodies are the typed protocol of `hapilot_adapters::restore` (the client's own types):
//! [`RebuildRequest`], [`RestoreJob`], [`RestoreProgress`], [`AgentError`].

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hapilot_adapters::database::RebuildOutcome;
use hapilot_adapters::restore::{
    AgentError, FetchFile, RebuildRequest, RedisRestoreCheck, RedisRestoreJob, RestoreJob,
    RestoreProgress,
};
use hyper::{Method, StatusCode};

use crate::http::{Answer, answer, body_bytes, serve_state};
use crate::systems::postgres::PostgresNode;

struct Agent {
    /// One operation at a time: two would fight over the data directory.
    node: Arc<tokio::sync::Mutex<PostgresNode>>,
    progress: Mutex<(String, String)>,
    http: reqwest::Client,
}

/// A running agent; stops when dropped.
pub struct PostgresAgent {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

fn json_answer(code: StatusCode, body: impl serde::Serialize) -> Answer {
    answer(
        code,
        "application/json",
        serde_json::to_string(&body).unwrap_or_default(),
    )
}

fn refused(code: StatusCode, error: impl Into<String>) -> Answer {
    json_answer(
        code,
        AgentError {
            error: error.into(),
        },
    )
}

impl PostgresAgent {
    /// Starts the agent of `node` on a free loopback port.
    pub async fn start(node: PostgresNode) -> std::io::Result<Self> {
        let agent = Arc::new(Agent {
            node: Arc::new(tokio::sync::Mutex::new(node)),
            progress: Mutex::new(("idle".into(), "no restore asked".into())),
            http: reqwest::Client::new(),
        });
        let (addr, task) = serve_state(agent, |agent, req| async move {
            let route = (req.method().clone(), req.uri().path().to_string());
            let body = body_bytes(req).await;
            match (route.0, route.1.as_str()) {
                (Method::POST, "/rebuild") => match serde_json::from_slice(&body) {
                    Ok(request) => rebuild(&agent, request).await,
                    Err(e) => refused(
                        StatusCode::BAD_REQUEST,
                        format!("body must be {{\"source_dsn\": \"...\"}}: {e}"),
                    ),
                },
                (Method::POST, "/restore") => match serde_json::from_slice(&body) {
                    Ok(job) => restore(agent, job),
                    Err(e) => refused(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "body must be {{\"base\": {{\"name\", \"url\"}}, \"wal\": [...], \"target_time\"?}}: {e}"
                        ),
                    ),
                },
                (Method::DELETE, "/restore") => tear_down(&agent).await,
                (Method::POST, "/restore/redis") => match serde_json::from_slice(&body) {
                    Ok(job) => load_rdb(&agent, job).await,
                    Err(e) => refused(
                        StatusCode::BAD_REQUEST,
                        format!("body must be {{\"rdb\": {{\"name\", \"url\"}}}}: {e}"),
                    ),
                },
                (Method::GET, "/restore") => {
                    let (state, detail) = agent.progress.lock().expect("progress").clone();
                    json_answer(StatusCode::OK, RestoreProgress { state, detail })
                }
                _ => refused(StatusCode::NOT_FOUND, "not found"),
            }
        })
        .await?;
        Ok(Self { addr, task })
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn rebuild(agent: &Agent, request: RebuildRequest) -> Answer {
    let source = request.source_dsn.expose().to_string();
    let node = agent.node.clone().lock_owned().await;
    match tokio::task::spawn_blocking(move || node.rebuild_from(&source)).await {
        Ok(Ok(r)) => json_answer(
            StatusCode::OK,
            RebuildOutcome {
                method: r.method.to_string(),
                detail: r.detail,
            },
        ),
        Ok(Err(e)) => refused(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => refused(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Stops the restored server and removes its data directory and downloads.
async fn tear_down(agent: &Agent) -> Answer {
    if agent.progress.lock().expect("progress").0 == "running" {
        return refused(
            StatusCode::CONFLICT,
            "a restore is running: tear down after it ends",
        );
    }
    let node = agent.node.clone().lock_owned().await;
    let wiped = tokio::task::spawn_blocking(move || {
        node.wipe()?;
        for dir in ["dr-download", "dr-wal"] {
            node.work_dir(dir)?;
        }
        Ok::<_, crate::LocalError>(())
    })
    .await;
    match wiped {
        Ok(Ok(())) => {
            let detail = "torn down: the server stopped, its data directory removed".to_string();
            *agent.progress.lock().expect("progress") = ("idle".into(), detail.clone());
            json_answer(
                StatusCode::OK,
                RestoreProgress {
                    state: "idle".into(),
                    detail,
                },
            )
        }
        Ok(Err(e)) => refused(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => refused(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn restore(agent: Arc<Agent>, job: RestoreJob) -> Answer {
    let RestoreJob {
        base,
        wal,
        target_time,
        ..
    } = job;
    // Names become paths: only plain file names.
    if std::iter::once(&base.name)
        .chain(wal.iter().map(|w| &w.name))
        .any(|n| n.is_empty() || n.contains('/') || n.starts_with('.'))
    {
        return refused(StatusCode::BAD_REQUEST, "file names must be plain names");
    }
    {
        let mut p = agent.progress.lock().expect("progress");
        if p.0 == "running" {
            return refused(StatusCode::CONFLICT, "a restore is already running");
        }
        *p = (
            "running".into(),
            format!("fetching {} and {} WAL file(s)", base.name, wal.len()),
        );
    }
    tokio::spawn(async move {
        let result = run_restore(&agent, base, wal, target_time).await;
        *agent.progress.lock().expect("progress") = match result {
            Ok(detail) => ("started".into(), detail),
            Err(e) => ("failed".into(), e),
        };
    });
    json_answer(
        StatusCode::ACCEPTED,
        RestoreProgress {
            state: "running".into(),
            detail: "fetching".into(),
        },
    )
}

/// Loads the RDB into a scratch redis-server, counts, and removes it (dropped at the end).
async fn load_rdb(agent: &Agent, job: RedisRestoreJob) -> Answer {
    let bytes = match download(&agent.http, &job.rdb.url, &job.rdb.name).await {
        Ok(bytes) => bytes,
        Err(e) => return refused(StatusCode::BAD_GATEWAY, e),
    };
    let started = std::time::Instant::now();
    let server = match crate::systems::redis::RedisServer::load(&bytes).await {
        Ok(server) => server,
        Err(e) => return refused(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    };
    match server.keys().await {
        Ok(keys) => json_answer(
            StatusCode::OK,
            RedisRestoreCheck {
                keys,
                detail: format!(
                    "{} ({} bytes) loaded by a scratch redis-server in {:.1} s, {keys} key(s); the server is stopped and removed",
                    job.rdb.name,
                    bytes.len(),
                    started.elapsed().as_secs_f64()
                ),
            },
        ),
        Err(e) => refused(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

async fn run_restore(
    agent: &Agent,
    base: FetchFile,
    wal: Vec<FetchFile>,
    target_time: Option<String>,
) -> Result<String, String> {
    let node = agent.node.clone().lock_owned().await;
    let downloads = node.work_dir("dr-download").map_err(|e| e.to_string())?;
    let wal_dir = node.work_dir("dr-wal").map_err(|e| e.to_string())?;
    let base_path = downloads.join(&base.name);
    fetch(&agent.http, &base.url, &base_path, false).await?;
    for FetchFile { name, url } in &wal {
        // Segments are stored compressed; restore_command copies them as PostgreSQL wants them.
        let (plain, gz) = match name.strip_suffix(".gz") {
            Some(stem) => (stem.to_string(), true),
            None => (name.clone(), false),
        };
        fetch(&agent.http, url, &wal_dir.join(plain), gz).await?;
    }
    let started = std::time::Instant::now();
    let wal_count = wal.len();
    tokio::task::spawn_blocking(move || {
        node.restore(&base_path, &wal_dir, target_time.as_deref())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())??;
    Ok(format!(
        "data directory laid down from {} + {wal_count} WAL file(s); server started in {:.1} s",
        base.name,
        started.elapsed().as_secs_f64()
    ))
}

/// GETs a presigned URL (never printed: it carries a signature); `what` names it in errors.
async fn download(http: &reqwest::Client, url: &str, what: &str) -> Result<bytes::Bytes, String> {
    let r = http
        .get(url)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if !r.status().is_success() {
        return Err(format!("GET {what} -> HTTP {}", r.status()));
    }
    r.bytes().await.map_err(|e| e.without_url().to_string())
}

async fn fetch(
    http: &reqwest::Client,
    url: &str,
    to: &std::path::Path,
    gunzip: bool,
) -> Result<(), String> {
    let bytes = download(http, url, &to.display().to_string()).await?;
    let mut file = std::fs::File::create(to).map_err(|e| format!("{}: {e}", to.display()))?;
    if gunzip {
        std::io::copy(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut file)
            .map_err(|e| format!("{}: {e}", to.display()))?;
    } else {
        file.write_all(&bytes)
            .map_err(|e| format!("{}: {e}", to.display()))?;
    }
    // Readable by the server's user (restore_command runs as it).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| format!("{}: {e}", to.display()))
}

impl Drop for PostgresAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}
