//! Benchmark: the backup audit over many barman-cloud servers in one destination, against the
//! floor measured in the same run. Uploads N servers (`postgres/<server>/`, a `backup.info`
//! and S WAL segments each) to a backup bucket and its DR copy on a local stack (moto), then
//! times (1) the floor: listing both buckets under `postgres/` and downloading every
//! `backup.info` - what any audit must read - and (2) `hapilot audit`'s listing audit of the
//! same destination (discovery, per-server listing, HEADs, backup.info reads, DR comparison,
//! chain evaluation; content verification off). Prints both and their ratio; asserts nothing.
//!
//! `cargo run --release --example bench_audit_servers [servers] [segments]` (default 10 x 300).

use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use hapilot::local::{LocalStack, StackOptions};
use hapilot_core::backup::wal::{DEFAULT_SEGMENT_SIZE, WalSegment};
use serde_json::json;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let arg = |n: usize, default: usize| -> anyhow::Result<usize> {
        Ok(std::env::args()
            .nth(n)
            .map(|a| a.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let (servers, segments) = (arg(1, 10)?, arg(2, 300)?);
    let stack = LocalStack::start(StackOptions::default(), |l| eprintln!("{l}")).await?;
    let s3 = hapilot_adapters::sdk::s3(stack.sdk_config());
    let (bucket, dr) = ("bench-many", "bench-many-dr");
    for b in [bucket, dr] {
        s3.create_bucket().bucket(b).send().await?;
    }
    let now = chrono::Utc::now();
    let first = WalSegment::parse("000000010000000000000001")?;
    let mut objects: Vec<(String, Vec<u8>)> = Vec::new();
    for n in 0..servers {
        let prefix = format!("postgres/server-{n:02}/");
        let end = (now - chrono::Duration::seconds(60)).format("%Y-%m-%d %H:%M:%S+00:00");
        objects.push((
            format!("{prefix}base/20261201T000000/backup.info"),
            format!(
                "backup_id=20261201T000000\nbegin_time={end}\nbegin_wal={first}\nend_time={end}\n\
                 end_wal={first}\nstatus=DONE\ntimeline=1\n"
            )
            .into_bytes(),
        ));
        let mut seg = first;
        for _ in 0..segments {
            objects.push((
                format!("{prefix}wals/{}/{seg}.gz", seg.directory()),
                b"wal".to_vec(),
            ));
            seg = seg.next(DEFAULT_SEGMENT_SIZE);
        }
    }
    let upload_started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for chunk in objects.chunks(objects.len().div_ceil(32)) {
        let (s3, chunk) = (s3.clone(), chunk.to_vec());
        running.spawn(async move {
            for (key, body) in chunk {
                for b in [bucket, dr] {
                    s3.put_object()
                        .bucket(b)
                        .key(&key)
                        .server_side_encryption(ServerSideEncryption::Aes256)
                        .body(ByteStream::from(body.clone()))
                        .send()
                        .await
                        .expect("upload");
                }
            }
        });
    }
    while let Some(r) = running.join_next().await {
        r?;
    }
    eprintln!(
        "uploaded {} objects x 2 buckets in {:.1} s",
        objects.len(),
        upload_started.elapsed().as_secs_f64()
    );

    // The floor: list both buckets, download every backup.info.
    let floor_started = Instant::now();
    let mut listed = 0usize;
    let mut infos = Vec::new();
    for b in [bucket, dr] {
        let mut pages = s3
            .list_objects_v2()
            .bucket(b)
            .prefix("postgres/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for o in page?.contents() {
                listed += 1;
                if b == bucket && o.key().is_some_and(|k| k.ends_with("backup.info")) {
                    infos.push(o.key().unwrap_or_default().to_string());
                }
            }
        }
    }
    for key in &infos {
        s3.get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await?
            .body
            .collect()
            .await?;
    }
    let floor = floor_started.elapsed().as_secs_f64();

    let request = json!({
        "bucket": bucket, "dr_bucket": dr, "verify": "none",
        "layout": {"postgres": "postgres/", "vault": "vault/", "redis": "redis/"},
        "policies": [{"data_type": "postgres_wal", "frequency_secs": 86400, "retention_secs": 86400,
                      "cross_region": true, "grace_secs": 86400}]
    });
    let started = Instant::now();
    let run = hapilot::audit::run_audit(
        stack.sdk_config(),
        hapilot_functions::config::Settings::with_defaults(),
        request,
        false,
        |_| {},
    )
    .await?;
    let audit = started.elapsed().as_secs_f64();
    let audited = run.report.policies.len();
    let findings: usize = run.report.policies.iter().map(|p| p.findings.len()).sum();
    println!(
        "{servers} servers x {segments} segments ({} objects per bucket)\n\
         floor (list both buckets, GET {} backup.info): {floor:.2} s ({listed} objects listed)\n\
         audit ({audited} server audits, {findings} finding(s)):          {audit:.2} s\n\
         ratio audit / floor: {:.2} (target <= 1.5)",
        objects.len(),
        infos.len(),
        audit / floor
    );
    stack.shutdown().await;
    Ok(())
}
