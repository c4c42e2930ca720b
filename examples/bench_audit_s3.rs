//! Benchmark: the backup audit's S3 side on a local stack (moto). Uploads a WAL archive of N
//! segments spread over barman-cloud's per-log directories plus one base backup's
//! `backup.info`, then times `hapilot audit`'s listing audit (concurrent listing of the WAL
//! directories, HEADs, chain evaluation) with content verification off. Prints figures; asserts
//! nothing.
//!
//! `cargo run --release --example bench_audit_s3 [segments]` (default 20000).

use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use hapilot::local::{LocalStack, StackOptions};
use hapilot_core::backup::wal::{DEFAULT_SEGMENT_SIZE, WalSegment};
use serde_json::json;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let segments: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let stack = LocalStack::start(StackOptions::default(), |l| eprintln!("{l}")).await?;
    let s3 = hapilot_adapters::sdk::s3(stack.sdk_config());
    for bucket in ["bench-backups", "bench-backups-dr"] {
        s3.create_bucket().bucket(bucket).send().await?;
    }
    let first = WalSegment::parse("000000010000000000000001")?;
    let mut keys = Vec::with_capacity(segments + 1);
    let mut seg = first;
    for _ in 0..segments {
        keys.push(format!(
            "postgres/gateway-db/wals/{}/{seg}.gz",
            seg.directory()
        ));
        seg = seg.next(DEFAULT_SEGMENT_SIZE);
    }
    let info = format!(
        "backup_id=20261125T000000\nbegin_time=2026-11-25 00:00:00+00:00\nbegin_wal={first}\n\
         end_time=2026-11-25 00:00:05+00:00\nend_wal={first}\nstatus=DONE\ntimeline=1\n"
    );
    let upload_started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    let all: Vec<(String, Vec<u8>)> = std::iter::once((
        "postgres/gateway-db/base/20261125T000000/backup.info".to_string(),
        info.into_bytes(),
    ))
    .chain(keys.into_iter().map(|k| (k, b"wal".to_vec())))
    .collect();
    for chunk in all.chunks(all.len().div_ceil(32)) {
        let (s3, chunk) = (s3.clone(), chunk.to_vec());
        running.spawn(async move {
            for (key, body) in chunk {
                for bucket in ["bench-backups", "bench-backups-dr"] {
                    s3.put_object()
                        .bucket(bucket)
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
        all.len(),
        upload_started.elapsed().as_secs_f64()
    );
    let request = json!({
        "bucket": "bench-backups", "dr_bucket": "bench-backups-dr", "verify": "none",
        "policies": [{"data_type": "postgres_wal", "frequency_secs": 3600, "retention_secs": 3600, "cross_region": true, "grace_secs": 3600}]
    });
    let started = Instant::now();
    let run = hapilot::audit::run_audit(
        stack.sdk_config(),
        hapilot_functions::config::Settings::with_defaults(),
        request,
        false,
        |l| eprintln!("{l}"),
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    let wal = &run.report.policies[0];
    println!(
        "audit of {} WAL objects (+ DR listing) over the local stack: {secs:.2} s ({:.0} objects/s), {} finding(s), achievable RPO {:?} s",
        wal.listed,
        wal.listed as f64 / secs,
        wal.findings.len(),
        wal.status.achievable_rpo_secs
    );
    stack.shutdown().await;
    Ok(())
}
