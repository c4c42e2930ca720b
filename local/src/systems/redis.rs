//! A real redis-server for the local world and the tests: an RDB file made by Redis itself, and
//! a master with a streaming replica (what readiness checks with `INFO replication`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::LocalError;

fn failed(what: impl Into<String>) -> LocalError {
    LocalError::Invalid(format!("redis-server: {}", what.into()))
}

/// One RESP command to a Redis server, answered with its first reply line (a bulk reply's
/// length line is followed by its text).
async fn command(stream: &mut tokio::net::TcpStream, args: &[&str]) -> Result<String, LocalError> {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(LocalError::io("writing to redis-server"))?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(LocalError::io("reading from redis-server"))?;
        if n == 0 {
            return Err(failed("closed the connection"));
        }
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply).to_string();
        let Some(end) = text.find("\r\n") else {
            continue;
        };
        if let Some(len) = text
            .strip_prefix('$')
            .and_then(|t| t[..end - 1].parse::<usize>().ok())
        {
            if reply.len() >= end + 2 + len {
                return Ok(String::from_utf8_lossy(&reply[end + 2..end + 2 + len]).into());
            }
            continue;
        }
        return Ok(text[..end].trim().to_string());
    }
}

/// A redis-server child on a free loopback port; killed (and its directory removed) on drop,
/// and by the kernel if hapilot dies.
pub struct RedisServer {
    child: tokio::process::Child,
    port: u16,
    dir: PathBuf,
    /// The TLS port, when it serves TLS too (`tls-port`, a certificate for `localhost`).
    tls_port: Option<u16>,
}

impl RedisServer {
    /// Starts one with `extra` arguments and waits until it answers PING. Needs `redis-server`
    /// on the PATH (`scripts/ensure-redis` installs it).
    pub async fn start(extra: &[&str]) -> Result<Self, LocalError> {
        Self::spawn(None, extra, None).await
    }

    /// Starts one that also serves TLS on a second port (`tls-port`, as ElastiCache with
    /// in-transit encryption), with a certificate for `localhost` signed by its own CA
    /// ([`RedisServer::ca_pem`]); replicas and Sentinels keep the plain port.
    pub async fn start_with_tls() -> Result<Self, LocalError> {
        let tls_dir = std::env::temp_dir().join(format!(
            "hapilot-redis-tls-{}",
            uuid::Uuid::new_v4().simple()
        ));
        crate::systems::postgres::make_tls_files(&tls_dir)?;
        let tls_port =
            crate::free_port().map_err(LocalError::io("finding a TLS port for redis-server"))?;
        let file = |name: &str| tls_dir.join("tls").join(name).display().to_string();
        let args = [
            "--tls-port".to_string(),
            tls_port.to_string(),
            "--tls-cert-file".to_string(),
            file("server.pem"),
            "--tls-key-file".to_string(),
            file("server.key"),
            "--tls-ca-cert-file".to_string(),
            file("ca.pem"),
            "--tls-auth-clients".to_string(),
            "no".to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Self::spawn(None, &args, None).await;
        let mut server = match started {
            Ok(server) => server,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tls_dir);
                return Err(e);
            }
        };
        // The server read its files at start; its own directory holds the CA from now on.
        let ca = std::fs::read(tls_dir.join("tls").join("ca.pem"))
            .map_err(LocalError::io("reading Redis' CA"))?;
        std::fs::write(server.dir.join("ca.pem"), ca)
            .map_err(LocalError::io("keeping Redis' CA"))?;
        let _ = std::fs::remove_dir_all(&tls_dir);
        server.tls_port = Some(tls_port);
        Ok(server)
    }

    /// `rediss://localhost:<tls port>`, when it serves TLS.
    pub fn tls_url(&self) -> Option<String> {
        self.tls_port.map(|p| format!("rediss://localhost:{p}"))
    }

    /// The PEM text of the CA that signed its TLS certificate, when it serves TLS.
    pub fn ca_pem(&self) -> Option<String> {
        self.tls_port
            .and_then(|_| std::fs::read_to_string(self.dir.join("ca.pem")).ok())
    }

    /// Starts a Sentinel watching the master at `master` as `name` (quorum 2): a
    /// `redis-server <config> --sentinel` with its own writable config file, as Sentinel needs.
    pub async fn start_sentinel(
        name: &str,
        master: &str,
        port: Option<u16>,
    ) -> Result<Self, LocalError> {
        let (host, master_port) = master.rsplit_once(':').unwrap_or((master, "6379"));
        Self::spawn(
            Some(format!(
                "sentinel monitor {name} {host} {master_port} 2\nsentinel down-after-milliseconds {name} 5000\n"
            )),
            &["--sentinel"],
            port,
        )
        .await
    }

    /// A scratch server that loads `rdb` at start (a restore test's): it answers once the
    /// dataset is loaded; a file Redis refuses is an error with what Redis logged.
    pub async fn load(rdb: &[u8]) -> Result<Self, LocalError> {
        Self::spawn_with(None, &[], None, Some(rdb)).await
    }

    async fn spawn(
        config: Option<String>,
        extra: &[&str],
        port: Option<u16>,
    ) -> Result<Self, LocalError> {
        Self::spawn_with(config, extra, port, None).await
    }

    async fn spawn_with(
        config: Option<String>,
        extra: &[&str],
        port: Option<u16>,
        rdb: Option<&[u8]>,
    ) -> Result<Self, LocalError> {
        let dir =
            std::env::temp_dir().join(format!("hapilot-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).map_err(LocalError::io("creating Redis' directory"))?;
        if let Some(rdb) = rdb
            && let Err(e) = std::fs::write(dir.join("dump.rdb"), rdb)
        {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(LocalError::io("writing dump.rdb")(e));
        }
        let port = match port {
            Some(p) => p,
            None => {
                crate::free_port().map_err(LocalError::io("finding a port for redis-server"))?
            }
        };
        let mut command_line = tokio::process::Command::new("redis-server");
        if let Some(config) = config {
            let file = dir.join("sentinel.conf");
            std::fs::write(&file, config).map_err(LocalError::io("writing sentinel.conf"))?;
            command_line.arg(file);
        }
        command_line
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--dbfilename",
                "dump.rdb",
            ])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .args(extra)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        crate::dies_with_parent(&mut command_line);
        let child = match command_line.spawn() {
            Ok(child) => child,
            Err(e) => {
                // Once started, Drop removes the directory; a spawn that failed must too.
                let _ = std::fs::remove_dir_all(&dir);
                return Err(failed(format!("{e} (scripts/ensure-redis installs it)")));
            }
        };
        let mut server = Self {
            child,
            port,
            dir,
            tls_port: None,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(answer) = server.command(&["PING"]).await
                && answer == "+PONG"
            {
                return Ok(server);
            }
            // It exited (a file it refused to load) or is out of time: say what it logged.
            let exited = matches!(server.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                let log = std::fs::read_to_string(server.dir.join("redis.log")).unwrap_or_default();
                let last: Vec<&str> = log.lines().rev().take(3).collect();
                let last: Vec<&str> = last.into_iter().rev().map(str::trim).collect();
                return Err(failed(format!(
                    "does not answer PING on {port}; redis.log: {}",
                    last.join(" | ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `DBSIZE`: keys in database 0.
    pub async fn keys(&self) -> Result<u64, LocalError> {
        let answer = self.command(&["DBSIZE"]).await?;
        answer
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| failed(format!("DBSIZE answered {answer}")))
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// One command on a fresh connection; its reply (a bulk reply's text).
    pub async fn command(&self, args: &[&str]) -> Result<String, LocalError> {
        let mut stream = tokio::net::TcpStream::connect(self.address())
            .await
            .map_err(LocalError::io("connecting to redis-server"))?;
        command(&mut stream, args).await
    }

    /// Its `dump.rdb` after `SAVE`.
    pub async fn save(&self) -> Result<Vec<u8>, LocalError> {
        if self.command(&["SAVE"]).await? != "+OK" {
            return Err(failed("SAVE refused"));
        }
        std::fs::read(self.dir.join("dump.rdb")).map_err(LocalError::io("reading dump.rdb"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An RDB file written by a real redis-server (`SAVE`) holding `keys` gateway-like keys.
pub async fn redis_rdb(keys: usize) -> Result<Vec<u8>, LocalError> {
    let redis = RedisServer::start(&[]).await?;
    for i in 0..keys {
        let key = format!("litellm:key:{i}");
        let value = format!("{{\"spend\": {i}, \"team\": \"platform\"}}");
        if redis.command(&["SET", &key, &value]).await? != "+OK" {
            return Err(failed("SET refused"));
        }
    }
    redis.save().await
}

/// The master's name the local Sentinels monitor.
pub const SENTINEL_MASTER: &str = "gateway";

/// A Redis master with a replica streaming from it, watched by three Sentinels (the
/// checklist's "Redis HA").
pub struct RedisPair {
    /// The master.
    pub master: RedisServer,
    /// The replica, until [`RedisPair::stop_replica`].
    pub replica: Option<RedisServer>,
    /// Three Sentinels (quorum 2) monitoring the master as [`SENTINEL_MASTER`]; a stopped one
    /// is None.
    pub sentinels: Vec<Option<RedisServer>>,
    sentinel_addresses: Vec<String>,
}

impl RedisPair {
    /// Starts the master, its replica and three Sentinels; waits until the master counts its
    /// replica as connected.
    pub async fn start() -> Result<Self, LocalError> {
        let master = RedisServer::start_with_tls().await?;
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(Some(
                RedisServer::start_sentinel(SENTINEL_MASTER, &master.address(), None).await?,
            ));
        }
        let sentinel_addresses = sentinels
            .iter()
            .flatten()
            .map(RedisServer::address)
            .collect();
        let mut pair = Self {
            master,
            replica: None,
            sentinels,
            sentinel_addresses,
        };
        pair.restart_replica().await?;
        Ok(pair)
    }

    /// `host:port` of the three Sentinels (stopped ones included: a Sentinel that went away
    /// is still configured).
    pub fn sentinel_addresses(&self) -> Vec<String> {
        self.sentinel_addresses.clone()
    }

    /// Stops the first `n` Sentinels (below the quorum of 2 when `n` >= 2).
    pub fn stop_sentinels(&mut self, n: usize) {
        for s in self.sentinels.iter_mut().take(n) {
            drop(s.take());
        }
    }

    /// Starts the stopped Sentinels again, each on its old port.
    pub async fn restart_sentinels(&mut self) -> Result<(), LocalError> {
        let master = self.master.address();
        for (slot, address) in self.sentinels.iter_mut().zip(&self.sentinel_addresses) {
            if slot.is_none() {
                let port = address.rsplit_once(':').and_then(|(_, p)| p.parse().ok());
                *slot = Some(RedisServer::start_sentinel(SENTINEL_MASTER, &master, port).await?);
            }
        }
        Ok(())
    }

    /// Stops the replica (Redis without HA); returns once the master no longer counts it.
    pub async fn stop_replica(&mut self) -> Result<(), LocalError> {
        drop(self.replica.take());
        self.wait_connected_replicas(0).await
    }

    /// Starts a replica (again, after [`RedisPair::stop_replica`]) and waits until it is
    /// connected.
    pub async fn restart_replica(&mut self) -> Result<(), LocalError> {
        let port = self.master.port.to_string();
        self.replica = Some(RedisServer::start(&["--replicaof", "127.0.0.1", &port]).await?);
        self.wait_connected_replicas(1).await
    }

    /// Waits (20 s at most) until the master's `INFO replication` counts `n` replicas.
    async fn wait_connected_replicas(&self, n: usize) -> Result<(), LocalError> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let wanted = format!("connected_slaves:{n}");
        loop {
            let info = self.master.command(&["INFO", "replication"]).await?;
            if info.contains(&wanted) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(failed(format!(
                    "the master never counted {n} replica(s): {info}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
