//! The hapilot host agent for the `postgres` database backend: the one thing plain PostgreSQL
//! cannot do over SQL - re-protection (stop, `pg_rewind` or `pg_basebackup`, restart as a
//! replica) - as a tiny HTTP API next to the server. Patroni (`POST /reinitialize`) and
//! CloudNativePG do this themselves; locally this agent plays that part.
//!
//! `POST /rebuild {"source_dsn": "..."}` -> `{"method": "pg_rewind"|"pg_basebackup", "detail"}`.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::http::{answer, serve_state};
use super::postgres::PostgresNode;

/// A running agent; stops when dropped.
pub struct PostgresAgent {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl PostgresAgent {
    /// Starts the agent of `node` on a free loopback port.
    pub async fn start(node: PostgresNode) -> std::io::Result<Self> {
        // One rebuild at a time: two would fight over the data directory.
        let state = Arc::new(tokio::sync::Mutex::new(node));
        let (addr, task) = serve_state(state, |node, req| async move {
            if (req.method(), req.uri().path()) != (&Method::POST, "/rebuild") {
                return answer(
                    StatusCode::NOT_FOUND,
                    "application/json",
                    json!({"error": "not found"}).to_string(),
                );
            }
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let Some(source) = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["source_dsn"].as_str().map(str::to_string))
            else {
                return answer(
                    StatusCode::BAD_REQUEST,
                    "application/json",
                    json!({"error": "body must be {\"source_dsn\": \"...\"}"}).to_string(),
                );
            };
            let node = node.lock_owned().await;
            match tokio::task::spawn_blocking(move || node.rebuild_from(&source)).await {
                Ok(Ok(r)) => answer(
                    StatusCode::OK,
                    "application/json",
                    json!({"method": r.method, "detail": r.detail}).to_string(),
                ),
                Ok(Err(e)) => answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "application/json",
                    json!({"error": e.to_string()}).to_string(),
                ),
                Err(e) => answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "application/json",
                    json!({"error": e.to_string()}).to_string(),
                ),
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

impl Drop for PostgresAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}
