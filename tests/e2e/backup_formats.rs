//! Backup formats verified against files made by the real tools.

use hapilot_core::backup::rdb::{RdbProblem, verify_rdb};

use crate::support::backups::redis_rdb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdb_files_written_by_a_real_redis_verify_and_corruption_is_caught() {
    let rdb = redis_rdb(500).await;
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
}

fn tar_of(dir: &std::path::Path, skip_manifest: bool) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in walk(dir) {
        let rel = entry.strip_prefix(dir).unwrap();
        if skip_manifest && rel == std::path::Path::new("backup_manifest") {
            continue;
        }
        builder.append_path_with_name(&entry, rel).unwrap();
    }
    builder.into_inner().unwrap()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_backups_agree_with_pg_verifybackup_good_and_corrupted() {
    use hapilot_core::backup::basebackup::{BaseBackupProblem, verify_base_backup};
    let pair = tokio::task::spawn_blocking(hapilot::local::systems::postgres::PostgresPair::start)
        .await
        .unwrap()
        .expect("PostgreSQL (scripts/ensure-postgres installs it)");
    let db = hapilot_adapters::database::PostgresDatabase::new(pair.primary.dsn())
        .connect()
        .await
        .unwrap();
    db.batch_execute("CREATE TABLE spend (id bigserial primary key, team text, usd numeric); INSERT INTO spend (team, usd) SELECT 'team-' || (g % 17), g * 0.01 FROM generate_series(1, 20000) g;")
        .await
        .unwrap();
    let plain = pair.scratch_dir("plain").unwrap();
    let port = pair.primary.port().to_string();
    let out = pair
        .tool("pg_basebackup")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-Fp",
            "-X",
            "fetch",
            "-c",
            "fast",
            "--manifest-checksums=SHA256",
            "-D",
        ])
        .arg(&plain)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let oracle = |dir: &std::path::Path| {
        pair.tool("pg_verifybackup")
            .arg("--no-parse-wal")
            .arg(dir)
            .output()
            .unwrap()
            .status
            .success()
    };

    // Good: both agree, and the label matches what backup.info would say.
    assert!(oracle(&plain));
    let summary = verify_base_backup(&tar_of(&plain, false)[..], None).unwrap();
    assert!(
        summary.manifest_verified && summary.files > 100,
        "{summary:?}"
    );
    assert_eq!(summary.start_timeline, Some(1));
    assert!(
        summary
            .start_wal
            .as_deref()
            .is_some_and(|w| w.starts_with("00000001")),
        "{summary:?}"
    );
    // The manifest given separately works the same.
    let manifest = std::fs::read_to_string(plain.join("backup_manifest")).unwrap();
    assert!(
        verify_base_backup(&tar_of(&plain, true)[..], Some(&manifest))
            .unwrap()
            .manifest_verified
    );

    // A barman-style tar.gz without a manifest: sound, and a flipped byte in it is caught.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar_of(&plain, true)).unwrap();
    let gz = gz.finish().unwrap();
    let barman = verify_base_backup(&gz[..], None).unwrap();
    assert!(!barman.manifest_verified);
    let mut broken = gz.clone();
    let at = broken.len() / 2;
    broken[at] ^= 0x10;
    assert!(
        verify_base_backup(&broken[..], None).is_err(),
        "a flipped byte in the .tar.gz"
    );

    // Corrupted: one byte of the biggest relation file; both must say no.
    let victim = walk(&plain.join("base"))
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[4096] ^= 0xFF;
    std::fs::write(&victim, &bytes).unwrap();
    assert!(
        !oracle(&plain),
        "pg_verifybackup must reject the corrupted copy"
    );
    match verify_base_backup(&tar_of(&plain, false)[..], None) {
        Err(BaseBackupProblem::File { path, detail }) => {
            assert!(
                victim.ends_with(&path) && detail.contains("SHA-256"),
                "{path}: {detail}"
            );
        }
        other => panic!("our verifier must reject it too: {other:?}"),
    }
    // A corrupted manifest is caught by its own checksum.
    let bad_manifest = manifest.replacen("\"Size\": ", "\"Size\":  ", 1);
    assert!(matches!(
        verify_base_backup(&tar_of(&plain, true)[..], Some(&bad_manifest)),
        Err(BaseBackupProblem::Manifest(_))
    ));
}
