//! Benchmark of the backup audit's hot paths; prints figures, asserts nothing.
//!
//! `cargo run --release -p hapilot-core --example bench_audit [objects] [sha_mib]`
//! - audit evaluation over a generated catalog (default 1,000,000 objects, mostly WAL);
//! - SHA-256 throughput of the verifiers' streaming path vs `sha256sum` on the same file.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Instant;

use hapilot_core::backup::catalog::{ChainContext, Layout, StoredObject, audit_catalog};
use hapilot_core::backup::policy::default_policies;
use hapilot_core::backup::wal::{DEFAULT_SEGMENT_SIZE, WalSegment};
use sha2::{Digest, Sha256};

fn main() {
    let mut args = std::env::args().skip(1);
    let objects: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let sha_mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(512);
    let now = 1_800_000_000i64;

    let mut catalog = Vec::with_capacity(objects);
    let mut seg = WalSegment::parse("000000010000000000000001").unwrap();
    let first = seg;
    for i in 0..objects {
        let age = ((objects - i) as i64) * 2;
        catalog.push(StoredObject {
            key: format!("postgres/gateway-db/wals/{}/{seg}.gz", seg.directory()),
            size: 4_000_000,
            time: now - age,
            etag: None,
            sha256: None,
            encrypted: true,
            locked: true,
        });
        seg = seg.next(DEFAULT_SEGMENT_SIZE);
    }
    catalog.push(StoredObject {
        key: "postgres/gateway-db/base/20270115T080000/backup.info".into(),
        size: 1_000,
        time: now - 3_600,
        etag: None,
        sha256: None,
        encrypted: true,
        locked: true,
    });
    let starts = BTreeMap::from([("20270115T080000".to_string(), first)]);
    let started = Instant::now();
    let audit = audit_catalog(
        &catalog,
        &catalog,
        &default_policies(),
        &Layout::default(),
        ChainContext {
            base_backup_starts: &starts,
            base_backup_ends: &starts,
            switches: &[],
            segment_size: DEFAULT_SEGMENT_SIZE,
        },
        now,
    );
    let secs = started.elapsed().as_secs_f64();
    println!(
        "audit evaluation: {} objects in {:.3} s ({:.0} objects/s), {} findings",
        catalog.len(),
        secs,
        catalog.len() as f64 / secs,
        audit.findings.len()
    );

    let path = std::env::temp_dir().join(format!("hapilot-sha-bench-{}", std::process::id()));
    let block: Vec<u8> = (0..1024 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    {
        let mut f = std::fs::File::create(&path).unwrap();
        for _ in 0..sha_mib {
            std::io::Write::write_all(&mut f, &block).unwrap();
        }
    }
    let started = Instant::now();
    let mut f = std::fs::File::open(&path).unwrap();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let ours = started.elapsed().as_secs_f64();
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let started = Instant::now();
    let out = std::process::Command::new("sha256sum").arg(&path).output();
    let theirs = started.elapsed().as_secs_f64();
    let agree = out
        .as_ref()
        .map(|o| String::from_utf8_lossy(&o.stdout).starts_with(&digest))
        .unwrap_or(false);
    println!(
        "sha-256 of {sha_mib} MiB: ours {:.0} MiB/s, sha256sum {:.0} MiB/s, ratio {:.0} % (digests agree: {agree})",
        sha_mib as f64 / ours,
        sha_mib as f64 / theirs,
        100.0 * theirs / ours
    );
    let _ = std::fs::remove_file(&path);
}
