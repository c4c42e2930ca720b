//! A region's Redis, for readiness: `INFO replication` over RESP (optionally after `AUTH`), as
//! `redis-cli info replication` shows it, and, where Sentinel watches it, each Sentinel's
//! `SENTINEL MASTER <name>`.
//!
//! `rediss://host:port` is Redis over TLS (ElastiCache in-transit encryption, `tls-port` of
//! redis-server): the certificate must chain to `ca_pem` (PEM text, for a deployed function
//! that has no file) or the system's roots, and name `host`; AUTH then travels encrypted.

use std::future::Future;
use std::time::Duration;

use hapilot_core::readiness::{RedisView, SentinelMaster, SentinelView};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::AdapterError;

/// Where one region's Redis answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTarget {
    /// `host:port` of the master (or the Sentinel-announced address); `rediss://host:port`
    /// for TLS.
    pub address: String,
    /// The CA that signed a TLS Redis' certificate, as PEM text (default: the system's roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// `requirepass` / ACL password, if any (never printed).
    #[serde(default)]
    pub password: crate::SecretText,
    /// The Sentinels that watch it, when Sentinel runs the failover of Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<SentinelTarget>,
}

/// The Sentinels of one Redis master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelTarget {
    /// `host:port` of each Sentinel (26379 by default).
    pub addresses: Vec<String>,
    /// The master's name in `sentinel monitor <name> ...`.
    pub master_name: String,
    /// The Sentinels' own `requirepass`, if any (never printed).
    #[serde(default)]
    pub password: crate::SecretText,
}

/// Reads Redis' replication state.
pub trait RedisReader: Send + Sync {
    /// `INFO replication`, parsed.
    fn replication(&self) -> impl Future<Output = Result<RedisView, AdapterError>> + Send;
    /// Each configured Sentinel's view of the master: (master name, views); None where no
    /// Sentinel is configured. A Sentinel that does not answer is a view with its error.
    fn sentinels(&self) -> impl Future<Output = Option<(String, Vec<SentinelView>)>> + Send;
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
        let url = if self.target.address.contains("://") {
            self.target.address.clone()
        } else {
            format!("redis://{}", self.target.address)
        };
        AdapterError::Http {
            system: "Redis",
            url,
            detail: detail.into(),
        }
    }
}

/// Where and how to reach one Redis: (`host:port`, TLS with these roots or plain).
fn endpoint(address: &str, ca_pem: Option<&str>) -> Result<(String, Option<Tls>), String> {
    if let Some(rest) = address.strip_prefix("rediss://") {
        let host_port = rest.trim_end_matches('/').to_string();
        let host = host_port
            .rsplit_once(':')
            .map_or(host_port.as_str(), |(h, _)| h)
            .trim_matches(['[', ']'])
            .to_string();
        let mut roots = rustls::RootCertStore::empty();
        match ca_pem {
            Some(pem) => {
                use rustls::pki_types::pem::PemObject;
                for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let cert = cert.map_err(|e| format!("ca_pem: {e}"))?;
                    roots.add(cert).map_err(|e| format!("ca_pem: {e}"))?;
                }
            }
            None => {
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            }
        }
        if roots.is_empty() {
            return Err("ca_pem holds no certificate".into());
        }
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("{host}: {e}"))?;
        return Ok((
            host_port,
            Some(Tls {
                connector: tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)),
                name,
            }),
        ));
    }
    let plain = address.strip_prefix("redis://").unwrap_or(address);
    Ok((plain.trim_end_matches('/').to_string(), None))
}

/// A TLS client for one server name.
struct Tls {
    connector: tokio_rustls::TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
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

/// A RESP reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`, a bulk string, or an integer as text.
    Text(String),
    /// `-ERR ...`.
    Error(String),
    /// `*N` of replies.
    Array(Vec<Reply>),
    /// `$-1` / `*-1`.
    Nil,
}

/// Parses one reply from the front of `buf`: the reply and the bytes it took, or None when
/// `buf` does not hold all of it yet.
pub fn parse_reply(buf: &[u8]) -> Option<(Reply, usize)> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let head = String::from_utf8_lossy(&buf[1..end]).to_string();
    let rest = end + 2;
    match buf.first()? {
        b'+' | b':' => Some((Reply::Text(head), rest)),
        b'-' => Some((Reply::Error(head), rest)),
        b'$' => {
            let len: i64 = head.parse().ok()?;
            if len < 0 {
                return Some((Reply::Nil, rest));
            }
            let len = len as usize;
            (buf.len() >= rest + len + 2).then(|| {
                (
                    Reply::Text(String::from_utf8_lossy(&buf[rest..rest + len]).into()),
                    rest + len + 2,
                )
            })
        }
        b'*' => {
            let count: i64 = head.parse().ok()?;
            if count < 0 {
                return Some((Reply::Nil, rest));
            }
            let mut items = Vec::new();
            let mut at = rest;
            for _ in 0..count {
                let (item, used) = parse_reply(&buf[at..])?;
                items.push(item);
                at += used;
            }
            Some((Reply::Array(items), at))
        }
        other => Some((
            Reply::Error(format!("unexpected reply type {:?}", *other as char)),
            buf.len(),
        )),
    }
}

/// Sends `args` and reads the whole reply.
async fn call<S>(stream: &mut S, args: &[&str]) -> std::io::Result<Reply>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(&command(args)).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((reply, _)) = parse_reply(&buf) {
            return Ok(reply);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Reply::Error("connection closed".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `SENTINEL MASTER`'s flat field/value array, parsed.
pub fn parse_sentinel_master(reply: &Reply) -> Option<SentinelMaster> {
    let Reply::Array(items) = reply else {
        return None;
    };
    let fields: Vec<&str> = items
        .iter()
        .map(|i| match i {
            Reply::Text(t) => t.as_str(),
            _ => "",
        })
        .collect();
    let field = |key: &str| {
        fields
            .chunks(2)
            .find(|kv| kv[0] == key)
            .and_then(|kv| kv.get(1).copied())
    };
    let number = |key: &str| field(key).and_then(|v| v.parse().ok()).unwrap_or(0);
    Some(SentinelMaster {
        address: format!("{}:{}", field("ip")?, field("port")?),
        flags: field("flags")?.to_string(),
        replicas: number("num-slaves"),
        other_sentinels: number("num-other-sentinels"),
        quorum: number("quorum"),
    })
}

/// Connects to `address` (TLS for `rediss://`), authenticates when `password` is set, and runs
/// `args`.
async fn ask(
    address: &str,
    ca_pem: Option<&str>,
    password: &str,
    args: &[&str],
) -> Result<Reply, String> {
    let (host_port, tls) = endpoint(address, ca_pem)?;
    let work = async {
        let stream = tokio::net::TcpStream::connect(&host_port)
            .await
            .map_err(|e| e.to_string())?;
        match tls {
            Some(Tls { connector, name }) => {
                let mut stream = connector
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                authenticated_call(&mut stream, password, args).await
            }
            None => {
                let mut stream = stream;
                authenticated_call(&mut stream, password, args).await
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .map_err(|_| "no answer within 5 s".to_string())?
}

async fn authenticated_call<S>(
    stream: &mut S,
    password: &str,
    args: &[&str],
) -> Result<Reply, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if !password.is_empty()
        && let Reply::Error(e) = call(stream, &["AUTH", password])
            .await
            .map_err(|e| e.to_string())?
    {
        return Err(format!("AUTH refused: {e}"));
    }
    match call(stream, args).await.map_err(|e| e.to_string())? {
        Reply::Error(e) => Err(format!("{} refused: {e}", args[0])),
        reply => Ok(reply),
    }
}

impl RedisReader for TcpRedis {
    async fn replication(&self) -> Result<RedisView, AdapterError> {
        let reply = ask(
            &self.target.address,
            self.target.ca_pem.as_deref(),
            self.target.password.expose(),
            &["INFO", "replication"],
        )
        .await
        .map_err(|e| self.error(e))?;
        match reply {
            Reply::Text(info) => {
                parse_replication(&info).ok_or_else(|| self.error("INFO replication has no role"))
            }
            other => Err(self.error(format!("INFO answered {other:?}"))),
        }
    }

    async fn sentinels(&self) -> Option<(String, Vec<SentinelView>)> {
        let sentinel = self.target.sentinel.as_ref()?;
        let mut views = Vec::new();
        for address in &sentinel.addresses {
            let answer = ask(
                address,
                None,
                sentinel.password.expose(),
                &["SENTINEL", "MASTER", &sentinel.master_name],
            )
            .await
            .and_then(|reply| {
                parse_sentinel_master(&reply)
                    .ok_or_else(|| format!("SENTINEL MASTER answered {reply:?}"))
            });
            views.push(SentinelView {
                sentinel: address.clone(),
                answer,
            });
        }
        Some((sentinel.master_name.clone(), views))
    }
}

/// In-memory [`RedisReader`]: a fixed `INFO replication` and Sentinel views.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone)]
pub struct MemoryRedis {
    /// `INFO replication`.
    pub replication: RedisView,
    /// The Sentinels' views, when Sentinel is configured.
    pub sentinels: Option<(String, Vec<SentinelView>)>,
}

#[cfg(any(test, feature = "fakes"))]
impl RedisReader for MemoryRedis {
    async fn replication(&self) -> Result<RedisView, AdapterError> {
        Ok(self.replication.clone())
    }

    async fn sentinels(&self) -> Option<(String, Vec<SentinelView>)> {
        self.sentinels.clone()
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

    #[test]
    fn sentinel_master_is_parsed_from_its_flat_array() {
        let mut wire = String::from("*8\r\n");
        for t in [
            "name",
            "gateway",
            "ip",
            "127.0.0.1",
            "port",
            "6379",
            "flags",
            "master",
        ] {
            wire.push_str(&format!("${}\r\n{t}\r\n", t.len()));
        }
        let (reply, used) = parse_reply(wire.as_bytes()).unwrap();
        assert_eq!(used, wire.len());
        let master = parse_sentinel_master(&reply).unwrap();
        assert_eq!(master.address, "127.0.0.1:6379");
        assert_eq!(master.flags, "master");
        assert_eq!(master.replicas, 0);
        assert_eq!(
            parse_reply(&wire.as_bytes()[..wire.len() - 3]),
            None,
            "incomplete"
        );
        assert_eq!(
            parse_reply(b"-NOGOODLEADER\r\n").unwrap().0,
            Reply::Error("NOGOODLEADER".into())
        );
        assert_eq!(parse_reply(b"$-1\r\n").unwrap().0, Reply::Nil);
    }
}
