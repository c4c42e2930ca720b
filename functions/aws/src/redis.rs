//! A region's Redis, for readiness: `INFO replication` over RESP (optionally after `AUTH`), as
//! `redis-cli info replication` shows it.

use std::future::Future;
use std::time::Duration;

use hapilot_core::readiness::RedisView;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::AdapterError;

/// Where one region's Redis answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTarget {
    /// `host:port` of the master (or the Sentinel-announced address).
    pub address: String,
    /// `requirepass` / ACL password, if any (never printed).
    #[serde(default)]
    pub password: crate::SecretText,
}

/// Reads Redis' replication state.
pub trait RedisReader: Send + Sync {
    /// `INFO replication`, parsed.
    fn replication(&self) -> impl Future<Output = Result<RedisView, AdapterError>> + Send;
}

/// [`RedisReader`] over TCP.
#[derive(Debug, Clone)]
pub struct TcpRedis {
    target: RedisTarget,
}

impl TcpRedis {
    /// The Redis at `target`.
    pub fn new(target: RedisTarget) -> Self {
        Self { target }
    }

    fn error(&self, detail: impl Into<String>) -> AdapterError {
        AdapterError::Http {
            system: "Redis",
            url: format!("redis://{}", self.target.address),
            detail: detail.into(),
        }
    }
}

fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    out.into_bytes()
}

/// Parses `INFO replication`'s `key:value` lines.
pub fn parse_replication(info: &str) -> Option<RedisView> {
    let field = |key: &str| {
        info.lines().find_map(|l| {
            l.trim()
                .strip_prefix(&format!("{key}:"))
                .map(str::to_string)
        })
    };
    Some(RedisView {
        role: field("role")?,
        connected_replicas: field("connected_slaves")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        master_link_up: field("master_link_status").map(|v| v == "up"),
    })
}

/// Reads one RESP reply (simple string, error or bulk string) from `stream`.
async fn reply(stream: &mut tokio::net::TcpStream) -> std::io::Result<Result<String, String>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Err("connection closed".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        let Some(end) = text.find("\r\n") else {
            continue;
        };
        let head = &text[..end];
        match head.as_bytes().first() {
            Some(b'+') => return Ok(Ok(head[1..].to_string())),
            Some(b'-') => return Ok(Err(head[1..].to_string())),
            Some(b'$') => {
                let len: usize = head[1..].parse().unwrap_or(0);
                if buf.len() >= end + 2 + len {
                    return Ok(Ok(
                        String::from_utf8_lossy(&buf[end + 2..end + 2 + len]).into()
                    ));
                }
            }
            _ => return Ok(Err(format!("unexpected reply {head:?}"))),
        }
    }
}

impl RedisReader for TcpRedis {
    async fn replication(&self) -> Result<RedisView, AdapterError> {
        let work = async {
            let mut stream = tokio::net::TcpStream::connect(&self.target.address)
                .await
                .map_err(|e| self.error(e.to_string()))?;
            if !self.target.password.expose().is_empty() {
                stream
                    .write_all(&command(&["AUTH", self.target.password.expose()]))
                    .await
                    .map_err(|e| self.error(e.to_string()))?;
                reply(&mut stream)
                    .await
                    .map_err(|e| self.error(e.to_string()))?
                    .map_err(|e| self.error(format!("AUTH refused: {e}")))?;
            }
            stream
                .write_all(&command(&["INFO", "replication"]))
                .await
                .map_err(|e| self.error(e.to_string()))?;
            let info = reply(&mut stream)
                .await
                .map_err(|e| self.error(e.to_string()))?
                .map_err(|e| self.error(format!("INFO refused: {e}")))?;
            parse_replication(&info).ok_or_else(|| self.error("INFO replication has no role"))
        };
        tokio::time::timeout(Duration::from_secs(5), work)
            .await
            .map_err(|_| self.error("no answer within 5 s"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_replication_is_parsed_as_redis_writes_it() {
        let master = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=127.0.0.1,port=6380,state=online,offset=42,lag=0\r\nmaster_replid:abc\r\n";
        assert_eq!(
            parse_replication(master),
            Some(RedisView {
                role: "master".into(),
                connected_replicas: 1,
                master_link_up: None
            })
        );
        let replica =
            "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_link_status:down\r\n";
        assert_eq!(
            parse_replication(replica).unwrap().master_link_up,
            Some(false)
        );
        assert_eq!(parse_replication("nothing"), None);
    }
}
