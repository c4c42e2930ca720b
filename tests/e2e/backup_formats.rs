//! Backup formats verified against files made by the real tools.

use std::time::Duration;

use hapilot_core::backup::rdb::{RdbProblem, verify_rdb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One RESP command to a Redis server, answered with one reply line.
async fn command(stream: &mut tokio::net::TcpStream, args: &[&str]) -> String {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 256];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdb_files_written_by_a_real_redis_verify_and_corruption_is_caught() {
    let dir = std::env::temp_dir().join(format!("hapilot-redis-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = hapilot::local::free_port().unwrap().to_string();
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
        .expect("redis-server (scripts/ensure-redis installs it)");
    let mut stream = None;
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await {
            stream = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut stream = stream.expect("redis-server answers");
    for i in 0..500 {
        let key = format!("litellm:key:{i}");
        let value = format!("{{\"spend\": {i}, \"team\": \"platform\"}}");
        assert_eq!(command(&mut stream, &["SET", &key, &value]).await, "+OK");
    }
    assert_eq!(command(&mut stream, &["SAVE"]).await, "+OK");
    let _ = redis.kill().await;

    let rdb = std::fs::read(dir.join("dump.rdb")).unwrap();
    let summary = verify_rdb(&rdb[..]).unwrap_or_else(|e| panic!("a fresh RDB must verify: {e}"));
    assert!(summary.checksummed && summary.version >= 9, "{summary:?}");

    let mut flipped = rdb.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x20;
    assert!(matches!(
        verify_rdb(&flipped[..]),
        Err(RdbProblem::Checksum { .. })
    ));
    let truncated = &rdb[..rdb.len() - 100];
    assert!(matches!(
        verify_rdb(truncated),
        Err(RdbProblem::NoEndMarker | RdbProblem::Checksum { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
