//! A real redis-server for the local world and the tests: an RDB file made by Redis itself.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::LocalError;

fn failed(what: impl Into<String>) -> LocalError {
    LocalError::Invalid(format!("redis-server: {}", what.into()))
}

/// One RESP command to a Redis server, answered with one reply line.
async fn command(stream: &mut tokio::net::TcpStream, args: &[&str]) -> Result<String, LocalError> {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(LocalError::io("writing to redis-server"))?;
    // A reply may arrive in pieces: read up to its end of line.
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    while !reply.ends_with(b"\r\n") {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(LocalError::io("reading from redis-server"))?;
        if n == 0 {
            return Err(failed("closed the connection"));
        }
        reply.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&reply).trim().to_string())
}

/// An RDB file written by a real redis-server (`SAVE`) holding `keys` gateway-like keys. Needs
/// `redis-server` on the PATH (`scripts/ensure-redis` installs it).
pub async fn redis_rdb(keys: usize) -> Result<Vec<u8>, LocalError> {
    let dir = std::env::temp_dir().join(format!("hapilot-redis-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(LocalError::io("creating Redis' directory"))?;
    let port = super::free_port()
        .map_err(LocalError::io("finding a port for redis-server"))?
        .to_string();
    let mut redis = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dbfilename",
            "dump.rdb",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("{e} (scripts/ensure-redis installs it)")))?;
    let mut stream = None;
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await {
            stream = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut stream = stream.ok_or_else(|| failed(format!("does not answer on {port}")))?;
    if command(&mut stream, &["PING"]).await? != "+PONG" {
        return Err(failed(format!(
            "the server on {port} is not our redis-server"
        )));
    }
    for i in 0..keys {
        let key = format!("litellm:key:{i}");
        let value = format!("{{\"spend\": {i}, \"team\": \"platform\"}}");
        if command(&mut stream, &["SET", &key, &value]).await? != "+OK" {
            return Err(failed("SET refused"));
        }
    }
    if command(&mut stream, &["SAVE"]).await? != "+OK" {
        return Err(failed("SAVE refused"));
    }
    let _ = redis.kill().await;
    let rdb = std::fs::read(dir.join("dump.rdb")).map_err(LocalError::io("reading dump.rdb"))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rdb)
}
