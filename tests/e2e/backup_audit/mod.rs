//! The backup audit end to end: real backups (a base backup and archived WAL from a real
//! PostgreSQL, RDB files from a real redis-server, Vault snapshots in the documented format)
//! laid out as barman-cloud / the HA document store them in moto S3, audited by the real
//! backup-audit state machine. Each breakage is applied alone and must produce exactly its
//! finding; the clean catalog must produce none.
//!
//! The fixtures (catalogs, breakages, policies, report readers) are in [`fixtures`]; this file
//! holds the cases.

mod fixtures;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use hapilot::local::systems::barman::{BackupObject as Object, compact_time as compact};
use hapilot_core::backup::vault::build_vault_snapshot;
use serde_json::{Value, json};

use crate::support::assert_failed;

use fixtures::*;

#[test]
fn the_report_schema_check_catches_drift() {
    let schema = report_schema();
    let good = json!({"now": 1, "tier": "Critical", "rpo_target_secs": 300, "critical": 1,
        "warnings": 0, "verdict": "FAILED", "summary": "s",
        "policies": [{"data_type": "redis", "server": "cache-b", "listed": 1,
            "status": {"data_type": "redis", "backups": 1, "newest_age_secs": 5, "achievable_rpo_secs": null},
            "findings": [{"kind": "rdb_corrupt", "key": "redis/cache-b/x.rdb", "server": "cache-b",
                "severity": "critical", "check": "integrity", "data_type": "redis", "message": "m", "fix": "f"}],
            "verified": []}]});
    conforms(&good, &schema, "report").unwrap();
    let mut renamed = good.clone();
    renamed["policies"][0]["findings"][0]["code"] = json!("x");
    assert!(
        conforms(&renamed, &schema, "report")
            .unwrap_err()
            .contains("`code`")
    );
    let mut unknown_kind = good.clone();
    unknown_kind["policies"][0]["findings"][0]["kind"] = json!("something_new");
    assert!(conforms(&unknown_kind, &schema, "report").is_err());
    let mut missing = good;
    missing["policies"][0]["findings"][0]
        .as_object_mut()
        .unwrap()
        .remove("fix");
    assert!(
        conforms(&missing, &schema, "report")
            .unwrap_err()
            .contains("`fix`")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_audit_finds_each_breakage_and_nothing_on_a_clean_catalog() {
    let rdb = crate::support::backups::redis_rdb(300).await;
    let now = chrono::Utc::now().timestamp();
    let clean = tokio::task::spawn_blocking(move || build_catalog(rdb, now))
        .await
        .unwrap();

    let stack = audit_stack().await;
    let s3 = stack.s3();

    let mut failures = Vec::new();
    for (n, case) in cases(&clean, now).into_iter().enumerate() {
        let (bucket, dr) = (format!("backups-{n}"), format!("backups-{n}-dr"));
        upload(&s3, &bucket, &case.primary, &case.plain).await;
        upload(&s3, &dr, &case.dr, &[]).await;
        let started = std::time::Instant::now();
        let outcome = stack
            .run(
                "backup-audit",
                json!({"bucket": bucket, "dr_bucket": dr, "dr_region": "us-west-2", "policies": policies()}),
            )
            .await;
        let wall = started.elapsed();
        // The report is in S3 whatever the verdict; the run's last task says where.
        let (report, stamp) = audit_report(&stack, &outcome).await;
        if let Err(e) = conforms(&report, &report_schema(), "report") {
            failures.push(format!("{}: the report breaks its schema: {e}", case.name));
        }
        let found = found_in(&report);
        let mut expect: Vec<(String, String)> = case
            .expect
            .iter()
            .map(|(c, d)| (c.to_string(), d.to_string()))
            .collect();
        expect.sort();
        eprintln!(
            "case {:?}: {:.2} s, findings {found:?}",
            case.name,
            wall.as_secs_f64()
        );
        if found != expect {
            failures.push(format!(
                "{}: expected {expect:?}, found {found:?}\n{}",
                case.name,
                serde_json::to_string_pretty(&report).unwrap()
            ));
            continue;
        }
        let critical = report["critical"].as_u64().unwrap();
        if critical > 0 {
            assert_failed(&outcome, "hapilot.CriticalBackupFindings");
        } else {
            assert!(
                outcome.succeeded(),
                "{}: {}",
                case.name,
                outcome.history_text()
            );
        }
        if case.name == "clean" {
            // Every data type's newest backup was verified by content.
            let verified: Vec<&Value> = report["policies"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|p| p["verified"].as_array().unwrap())
                .collect();
            assert_eq!(verified.len(), 4, "{verified:?}");
            assert!(verified.iter().all(|v| v["ok"] == true), "{verified:?}");
            let markdown = stack
                .text("hapilot-audit", &format!("reports/backup-audit/{stamp}.md"))
                .await;
            assert!(markdown.starts_with("# Backup audit: PASSED"), "{markdown}");
            let wal = report["policies"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["data_type"] == "postgres_wal")
                .unwrap();
            assert!(
                wal["status"]["achievable_rpo_secs"].as_i64().unwrap() < 300,
                "{wal}"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // `hapilot audit` runs the same audit from the CLI: a clean catalog passes (exit 0), the
    // truncated RDB fails it (exit 2) with the finding in the printed report.
    for (bucket, code, verdict) in [
        ("backups-0", 0, "# Backup audit: PASSED"),
        // The truncated RDB's case (its index in `cases`).
        ("backups-6", 2, "# Backup audit: FAILED"),
    ] {
        let mut cli = stack.cli();
        cli.args(["audit", "--input", "-", "--bucket", bucket])
            .args([
                "--dr-bucket",
                &format!("{bucket}-dr"),
                "--dr-region",
                "us-west-2",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cli.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        tokio::io::AsyncWriteExt::write_all(
            &mut stdin,
            json!({"policies": policies()}).to_string().as_bytes(),
        )
        .await
        .unwrap();
        drop(stdin);
        let out = child.wait_with_output().await.unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(code), "{stdout}\n{stderr}");
        assert!(stdout.starts_with(verdict), "{stdout}");
        assert!(stderr.contains("objects"), "progress per policy: {stderr}");
        if code == 2 {
            assert!(
                stdout.contains("**CRITICAL** Redis RDB / integrity"),
                "{stdout}"
            );
        }
    }

    // `--json` is the interface for automation: the schema's shape, the finding by kind and key.
    let newest_rdb = newest_key(&clean, "redis/").to_string();
    let out = stack
        .cli()
        .args(["audit", "--json", "--input", "-", "--bucket", "backups-6"])
        .args(["--dr-bucket", "backups-6-dr", "--dr-region", "us-west-2"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = out;
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut stdin,
        json!({"policies": policies()}).to_string().as_bytes(),
    )
    .await
    .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "--json prints JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    conforms(&report, &report_schema(), "report").unwrap();
    let findings: Vec<&Value> = report["policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["findings"].as_array().unwrap())
        .collect();
    assert_eq!(findings.len(), 1, "{report:#}");
    assert_eq!(findings[0]["kind"], "rdb_corrupt");
    assert_eq!(findings[0]["key"], newest_rdb.as_str());
    assert_eq!(findings[0]["severity"], "critical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_catalog_with_a_failover_in_its_history_raises_no_false_alarm() {
    let objects = tokio::task::spawn_blocking(build_failover_catalog)
        .await
        .unwrap();
    let stack = audit_stack().await;
    let s3 = stack.s3();
    upload(&s3, "failed-over", &objects, &[]).await;
    upload(&s3, "failed-over-dr", &objects, &[]).await;
    let postgres_only: Vec<Value> = policies()
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["data_type"].as_str().unwrap().starts_with("postgres"))
        .cloned()
        .collect();
    let outcome = stack
        .run(
            "backup-audit",
            json!({"bucket": "failed-over", "dr_bucket": "failed-over-dr", "dr_region": "us-west-2",
                   "policies": postgres_only, "verify": "all"}),
        )
        .await;
    let stamp = report_stamp(&stack, &outcome).await;
    let report: Value = serde_json::from_str(
        &stack
            .text(
                "hapilot-audit",
                &format!("reports/backup-audit/{stamp}.json"),
            )
            .await,
    )
    .unwrap();
    let findings: Vec<&Value> = report["policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["findings"].as_array().unwrap())
        .collect();
    assert!(findings.is_empty(), "false alarms: {findings:#?}");
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    // One restore window, from the base backup on timeline 1 across the failover.
    let wal = report["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["data_type"] == "postgres_wal")
        .unwrap();
    let windows = wal["status"]["restore_windows"].as_array().unwrap();
    assert_eq!(windows.len(), 1, "{wal:#}");
    let markdown = stack
        .text("hapilot-audit", &format!("reports/backup-audit/{stamp}.md"))
        .await;
    assert!(
        markdown.contains("You can restore PostgreSQL to any moment in:"),
        "{markdown}"
    );
    // Every segment was verified by content, the switch segment (timeline 2's first, with
    // timeline 1's pages) among them.
    let verified: Vec<&Value> = report["policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["verified"].as_array().unwrap())
        .collect();
    assert!(verified.iter().all(|v| v["ok"] == true), "{verified:#?}");
    let history = objects
        .iter()
        .find(|o| o.key.ends_with("00000002.history"))
        .unwrap();
    let switch =
        hapilot_core::backup::wal::parse_history(2, &String::from_utf8_lossy(&history.bytes))
            .unwrap()
            .into_iter()
            .find(|s| s.timeline == 2)
            .unwrap();
    let switch_segment = hapilot_core::backup::wal::WalSegment::containing(
        2,
        switch.switch_lsn,
        hapilot_core::backup::wal::DEFAULT_SEGMENT_SIZE,
    )
    .to_string();
    assert!(
        verified
            .iter()
            .any(|v| v["key"].as_str().unwrap().contains(&switch_segment)),
        "the switch segment {switch_segment} was verified: {verified:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dr_copy_uploaded_in_parts_is_compared_by_its_bytes() {
    let stack = audit_stack().await;
    let s3 = stack.s3();
    let now = chrono::Utc::now().timestamp();
    let meta = json!({"ID": "2-100-1", "Index": 1000, "Term": 2, "Version": 1});
    // Over 5 MiB after gzip (so incompressible), so the copy can be uploaded in two parts.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let state: Vec<u8> = (0..6 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let snapshot = Object {
        key: format!("vault/raft-snapshot-{}.snap", compact(now - 600)),
        bytes: build_vault_snapshot(&meta, &state).unwrap(),
    };
    let policy = json!([{"data_type": "vault", "frequency_secs": 3600, "retention_secs": 14400,
                         "cross_region": true, "grace_secs": 900}]);
    let mut kinds_by_case = Vec::new();
    for (name, flip) in [("parts-same", false), ("parts-other", true)] {
        let (bucket, dr) = (name.to_string(), format!("{name}-dr"));
        upload(&s3, &bucket, std::slice::from_ref(&snapshot), &[]).await;
        s3.create_bucket().bucket(&dr).send().await.unwrap();
        let mut copy = snapshot.bytes.clone();
        if flip {
            let at = copy.len() - 1000;
            copy[at] ^= 0x01;
        }
        put_in_two_parts(&s3, &dr, &snapshot.key, &copy).await;
        let outcome = stack
            .run(
                "backup-audit",
                json!({"bucket": bucket, "dr_bucket": dr, "dr_region": "us-west-2", "policies": policy}),
            )
            .await;
        let (report, _) = audit_report(&stack, &outcome).await;
        // One snapshot cannot cover the retention window: only the copy checks matter here.
        let findings: Vec<Value> = report["policies"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["check"] == "cross_region")
            .cloned()
            .collect();
        kinds_by_case.push((name, findings));
    }
    let (_, same) = &kinds_by_case[0];
    assert!(
        same.is_empty(),
        "identical bytes, other ETag shape: {same:?}"
    );
    let (_, other) = &kinds_by_case[1];
    assert_eq!(other.len(), 1, "{other:?}");
    assert_eq!(other[0]["kind"], "dr_copy_checksum_mismatch", "{other:?}");
    assert_eq!(other[0]["key"], snapshot.key.as_str());
    assert!(
        other[0]["message"].as_str().unwrap().contains("SHA-256"),
        "{other:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_server_and_instance_under_a_prefix_is_audited_on_its_own() {
    let rdb = crate::support::backups::redis_rdb(300).await;
    let now = chrono::Utc::now().timestamp();
    let clean = tokio::task::spawn_blocking(move || build_catalog(rdb, now))
        .await
        .unwrap();
    // Two barman-cloud servers under postgres/, two Redis instances under redis/: the second
    // server misses a WAL segment, the second instance's newest RDB is truncated.
    let info = clean
        .iter()
        .find(|o| o.key.ends_with("backup.info"))
        .unwrap();
    let begin = String::from_utf8_lossy(&info.bytes)
        .lines()
        .find_map(|l| l.strip_prefix("begin_wal=").map(str::to_string))
        .unwrap();
    let hole = hapilot_core::backup::wal::WalSegment::parse(&begin)
        .unwrap()
        .next(hapilot_core::backup::wal::DEFAULT_SEGMENT_SIZE)
        .to_string();
    let newest_rdb = newest_key(&clean, "redis/").to_string();
    let mut objects = Vec::new();
    for o in &clean {
        if o.key.starts_with("postgres/gateway-db/") {
            objects.push(o.clone());
            if !o.key.ends_with(&format!("{hole}.gz")) {
                objects.push(Object {
                    key: o
                        .key
                        .replace("postgres/gateway-db/", "postgres/billing-db/"),
                    bytes: o.bytes.clone(),
                });
            }
        } else if let Some(name) = o.key.strip_prefix("redis/") {
            objects.push(Object {
                key: format!("redis/cache-a/dump-{name}"),
                bytes: o.bytes.clone(),
            });
            let mut bytes = o.bytes.clone();
            if o.key == newest_rdb {
                bytes.truncate(bytes.len() - 100);
            }
            objects.push(Object {
                key: format!("redis/cache-b/dump-{name}"),
                bytes,
            });
        } else {
            objects.push(o.clone());
        }
    }
    let stack = audit_stack().await;
    let s3 = stack.s3();
    upload(&s3, "many", &objects, &[]).await;
    upload(&s3, "many-dr", &objects, &[]).await;
    let outcome = stack
        .run(
            "backup-audit",
            json!({"bucket": "many", "dr_bucket": "many-dr", "dr_region": "us-west-2",
                   "policies": policies(),
                   "layout": {"postgres": "postgres/", "vault": "vault/", "redis": "redis/"}}),
        )
        .await;
    let (report, _) = audit_report(&stack, &outcome).await;
    let audited: Vec<(String, String, usize)> = report["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["data_type"].as_str().unwrap().to_string(),
                p["server"].as_str().unwrap_or("-").to_string(),
                p["findings"].as_array().unwrap().len(),
            )
        })
        .collect();
    let expect: Vec<(String, String, usize)> = [
        ("postgres_full", "billing-db", 0),
        ("postgres_full", "gateway-db", 0),
        ("postgres_wal", "billing-db", 1),
        ("postgres_wal", "gateway-db", 0),
        ("vault", "-", 0),
        ("redis", "cache-a", 0),
        ("redis", "cache-b", 1),
    ]
    .iter()
    .map(|(t, s, n)| (t.to_string(), s.to_string(), *n))
    .collect();
    assert_eq!(audited, expect, "{report:#}");
    let findings: Vec<&Value> = report["policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["findings"].as_array().unwrap())
        .collect();
    let gap = findings.iter().find(|f| f["kind"] == "wal_gap").unwrap();
    assert_eq!(gap["server"], "billing-db", "{gap}");
    assert!(
        gap["key"]
            .as_str()
            .unwrap()
            .starts_with("postgres/billing-db/wals/"),
        "{gap}"
    );
    let rdb = findings
        .iter()
        .find(|f| f["kind"] == "rdb_corrupt")
        .unwrap();
    assert_eq!(rdb["server"], "cache-b", "{rdb}");
    assert_failed(&outcome, "hapilot.CriticalBackupFindings");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_without_a_time_in_its_name_is_dated_by_its_metadata() {
    let rdb = crate::support::backups::redis_rdb(100).await;
    let stack = audit_stack().await;
    let s3 = stack.s3();
    s3.create_bucket().bucket("undated").send().await.unwrap();
    let now = chrono::Utc::now();
    let with_meta = (now - chrono::Duration::seconds(600)).to_rfc3339();
    s3.put_object()
        .bucket("undated")
        .key("redis/cache.rdb")
        .metadata("backup-time", &with_meta)
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from(rdb.clone()))
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket("undated")
        .key("redis/nameless.rdb")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from(rdb))
        .send()
        .await
        .unwrap();
    let policy = json!([{"data_type": "redis", "frequency_secs": 60, "retention_secs": 3600,
                         "cross_region": false, "grace_secs": 0}]);
    let outcome = stack
        .run(
            "backup-audit",
            json!({"bucket": "undated", "policies": policy}),
        )
        .await;
    let (report, _) = audit_report(&stack, &outcome).await;
    let undated: Vec<&Value> = report["policies"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "time_from_last_modified")
        .collect();
    assert_eq!(undated.len(), 1, "{report:#}");
    assert_eq!(undated[0]["key"], "redis/nameless.rdb", "{report:#}");
    assert!(
        undated[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("1 backup(s)"),
        "only the one without metadata: {report:#}"
    );
    // The metadata's time is the one used: the oldest backup is 600 s old, not seconds (its
    // LastModified), as the retention check (3600 s window) reports.
    let retention = report["policies"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "retention_short")
        .unwrap_or_else(|| panic!("{report:#}"));
    let oldest: i64 = retention["message"]
        .as_str()
        .unwrap()
        .strip_prefix("oldest backup is ")
        .and_then(|m| m.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((600..700).contains(&oldest), "{retention}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_catalog_with_1_mib_segments_a_log_id_boundary_and_a_failover() {
    let rdb = crate::support::backups::redis_rdb(300).await;
    let now = chrono::Utc::now().timestamp();
    let clean = tokio::task::spawn_blocking(move || build_real_catalog(rdb, now))
        .await
        .unwrap();
    let gw = |suffix: &str| format!("postgres/gateway-db/{suffix}");
    let without = |pred: &dyn Fn(&str) -> bool| -> Vec<Object> {
        clean.iter().filter(|o| !pred(&o.key)).cloned().collect()
    };
    let infos: Vec<&Object> = clean
        .iter()
        .filter(|o| o.key.starts_with(&gw("base/")) && o.key.ends_with("backup.info"))
        .collect();
    assert_eq!(infos.len(), 2, "a base backup on each timeline");
    let newest_info = infos.iter().map(|o| o.key.clone()).max().unwrap();
    // Two segments after the timeline-1 base backup's end: inside no backup's own range.
    let oldest_info = infos.iter().min_by_key(|o| o.key.clone()).unwrap();
    let end = String::from_utf8_lossy(&oldest_info.bytes)
        .lines()
        .find_map(|l| l.strip_prefix("end_wal=").map(str::to_string))
        .unwrap();
    let mib = 1024 * 1024;
    let old_gap = hapilot_core::backup::wal::WalSegment::parse(&end)
        .unwrap()
        .next(mib)
        .next(mib)
        .to_string();
    assert!(old_gap.starts_with("00000001"), "{old_gap}");
    let mut failed_info = clean.clone();
    let info = failed_info
        .iter_mut()
        .find(|o| o.key == newest_info)
        .unwrap();
    info.bytes = String::from_utf8_lossy(&info.bytes)
        .replace("status=DONE", "status=FAILED")
        .into_bytes();
    let older_tar = infos
        .iter()
        .map(|o| o.key.replace("backup.info", "base.tar.gz"))
        .min()
        .unwrap();
    let mut flipped = clean.clone();
    let tar = flipped.iter_mut().find(|o| o.key == older_tar).unwrap();
    let at = tar.bytes.len() / 2;
    tar.bytes[at] ^= 0x40;
    let newest_rdb = newest_key(&clean, "redis/").to_string();
    let mut truncated = clean.clone();
    let rdb = truncated.iter_mut().find(|o| o.key == newest_rdb).unwrap();
    rdb.bytes.truncate(rdb.bytes.len() - 100);
    let newest_snap = newest_key(&clean, "vault/").to_string();
    let mut bad_sums = clean.clone();
    let snap = bad_sums.iter_mut().find(|o| o.key == newest_snap).unwrap();
    snap.bytes = with_state_byte_flipped(&snap.bytes);
    let mut other_bytes = clean.clone();
    let copy = other_bytes
        .iter_mut()
        .find(|o| o.key == newest_snap)
        .unwrap();
    let at = copy.bytes.len() / 3;
    copy.bytes[at] ^= 0x01;
    let no_copy: Vec<Object> = clean
        .iter()
        .filter(|o| o.key != newest_snap)
        .cloned()
        .collect();
    // (name, primary, DR copy when it differs, the kinds expected on gateway-db or no server)
    type Case<'a> = (&'a str, Vec<Object>, Option<Vec<Object>>, Vec<&'a str>);
    let plain = |name, primary, expect| (name, primary, None, expect);
    let cases: Vec<Case> = vec![
        plain("clean", clean.clone(), vec![]),
        plain(
            "a flipped byte in the older base backup",
            flipped,
            vec!["backup_unrestorable"],
        ),
        plain("a truncated RDB", truncated, vec!["rdb_corrupt"]),
        plain(
            "a snapshot whose SHA256SUMS do not match",
            bad_sums,
            vec!["vault_snapshot_corrupt"],
        ),
        (
            "a missing DR copy",
            clean.clone(),
            Some(no_copy),
            vec!["dr_copy_missing"],
        ),
        (
            "a DR copy with the same size and other bytes",
            clean.clone(),
            Some(other_bytes),
            vec!["dr_copy_checksum_mismatch"],
        ),
        plain(
            "a gap right after the log-id boundary",
            without(&|k| k == gw("wals/0000000100000001/000000010000000100000000.gz")),
            vec!["wal_gap"],
        ),
        plain(
            "a gap on the old timeline",
            without(&|k| k == gw(&format!("wals/{}/{old_gap}.gz", &old_gap[..16]))),
            vec!["wal_gap"],
        ),
        plain(
            "a missing .history",
            without(&|k| k == gw("wals/00000002.history")),
            vec!["timeline_history_missing"],
        ),
        plain("a FAILED backup.info", failed_info, vec!["backup_failed"]),
    ];
    let stack = audit_stack().await;
    let s3 = stack.s3();
    let mut failures = Vec::new();
    let mut windows = String::new();
    for (n, (name, objects, copy, expect)) in cases.into_iter().enumerate() {
        let (bucket, dr) = (format!("real-{n}"), format!("real-{n}-dr"));
        upload(&s3, &bucket, &objects, &[]).await;
        upload(&s3, &dr, copy.as_ref().unwrap_or(&objects), &[]).await;
        let outcome = stack
            .run(
                "backup-audit",
                json!({"bucket": bucket, "dr_bucket": dr, "dr_region": "us-west-2",
                       "policies": policies(), "verify": "all",
                       "layout": {"postgres": "postgres/", "vault": "vault/", "redis": "redis/"}}),
            )
            .await;
        let (report, stamp) = audit_report(&stack, &outcome).await;
        conforms(&report, &report_schema(), "report").unwrap();
        let mut found: Vec<String> = report["policies"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["findings"].as_array().unwrap())
            .filter(|f| f["server"] == "gateway-db" || f["server"].is_null())
            .map(|f| f["kind"].as_str().unwrap().to_string())
            .collect();
        found.sort();
        found.dedup();
        let billing: Vec<&Value> = report["policies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["server"] == "billing-db")
            .flat_map(|p| p["findings"].as_array().unwrap())
            .collect();
        eprintln!("real catalog, {name}: {found:?}");
        if found != expect || !billing.is_empty() {
            failures.push(format!(
                "{name}: expected {expect:?} on gateway-db and nothing on billing-db, found {found:?} and {billing:?}"
            ));
        }
        if name == "clean" {
            windows = stack
                .text("hapilot-audit", &format!("reports/backup-audit/{stamp}.md"))
                .await;
        }
    }
    eprintln!("{windows}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        windows.contains("You can restore PostgreSQL to any moment in"),
        "{windows}"
    );
}

/// Exactly the findings a case must give, as (check, data type).
type Expected = Vec<(&'static str, &'static str)>;

/// The backup table's last two rows: the configuration (Git bundles beside the deployment's
/// `deployed.json`, on change) and the daily secrets-metadata export. A real bundle made by
/// `git`; each breakage alone gives exactly its finding, and the clean catalog none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_and_secrets_metadata_rows_are_audited() {
    use hapilot::local::systems::config_backup::{
        bundle_configuration, configuration_objects, secrets_metadata_export,
    };
    let now = chrono::Utc::now().timestamp();
    let sources: [(&str, &[u8]); 2] = [
        ("infra/template.yaml", b"Resources: {}\n"),
        ("hapilot.toml", b"[settings]\ntier = \"Critical\"\n"),
    ];
    let (commit, bundle) = tokio::task::spawn_blocking(move || bundle_configuration(&sources))
        .await
        .unwrap()
        .unwrap();
    let names = ["infra/template.yaml", "hapilot.toml"];
    let config = |deployed_commit: &str, deployed_at: i64| {
        configuration_objects(
            (deployed_commit, bundle.clone()),
            now - 600,
            deployed_at,
            &names,
        )
    };
    let secrets = [
        ("secret/data/gateway/litellm", 3),
        ("secret/data/gateway/openai", 1),
    ];
    let hourly_exports = |from: i64| -> Vec<Object> {
        (0..4)
            .map(|h| secrets_metadata_export(&secrets, from - h * 3_600))
            .collect()
    };
    let clean: Vec<Object> = config(&commit, now - 900)
        .into_iter()
        .chain(hourly_exports(now - 300))
        .collect();
    let without = |prefix: &str, objects: Vec<Object>| -> Vec<Object> {
        objects
            .into_iter()
            .filter(|o| !o.key.starts_with(prefix))
            .collect()
    };
    let mut leaking = clean.clone();
    let newest_export = newest_key(&clean, "vault-metadata/").to_string();
    for o in leaking.iter_mut().filter(|o| o.key == newest_export) {
        o.bytes = json!({"secrets": [{"path": "secret/data/gateway/openai", "current_version": 1,
            "data": {"api_key": "sk-live"}}]})
        .to_string()
        .into_bytes();
    }
    let cases: Vec<(&str, Vec<Object>, Expected)> = vec![
        ("clean", clean.clone(), vec![]),
        (
            "a deploy after the newest bundle",
            without("config/", clean.clone())
                .into_iter()
                .chain(config(&commit, now - 60))
                .collect(),
            vec![("deployed_change", "configuration")],
        ),
        (
            "a deployed commit the bundle does not carry",
            without("config/", clean.clone())
                .into_iter()
                .chain(config(
                    "0123456789abcdef0123456789abcdef01234567",
                    now - 900,
                ))
                .collect(),
            vec![("deployed_change", "configuration")],
        ),
        (
            "no configuration bundle",
            clean
                .iter()
                .filter(|o| !o.key.ends_with(".bundle"))
                .cloned()
                .collect(),
            vec![("freshness", "configuration")],
        ),
        (
            "no secrets-metadata export",
            without("vault-metadata/", clean.clone()),
            vec![("freshness", "secrets_metadata")],
        ),
        (
            "a stale secrets-metadata export",
            without("vault-metadata/", clean.clone())
                .into_iter()
                .chain([secrets_metadata_export(&secrets, now - 3 * 3_600)])
                .collect(),
            vec![("freshness", "secrets_metadata")],
        ),
        (
            "an export holding a value",
            leaking,
            vec![("integrity", "secrets_metadata")],
        ),
    ];
    let policies = json!([
        {"data_type": "configuration", "frequency_secs": 0, "retention_secs": 0, "cross_region": false, "grace_secs": 60},
        {"data_type": "secrets_metadata", "frequency_secs": 3600, "retention_secs": 14400, "cross_region": false, "grace_secs": 900}
    ]);
    let stack = audit_stack().await;
    let s3 = stack.s3();
    let mut failures = Vec::new();
    for (n, (name, objects, expect)) in cases.into_iter().enumerate() {
        let bucket = format!("config-backups-{n}");
        upload(&s3, &bucket, &objects, &[]).await;
        let outcome = stack
            .run(
                "backup-audit",
                json!({"bucket": bucket, "dr_bucket": bucket, "policies": policies}),
            )
            .await;
        let (report, _) = audit_report(&stack, &outcome).await;
        if let Err(e) = conforms(&report, &report_schema(), "report") {
            failures.push(format!("{name}: the report breaks its schema: {e}"));
        }
        let found = found_in(&report);
        let mut expect: Vec<(String, String)> = expect
            .iter()
            .map(|(c, d)| (c.to_string(), d.to_string()))
            .collect();
        expect.sort();
        if found != expect {
            failures.push(format!(
                "{name}: expected {expect:?}, found {found:?}\n{}",
                serde_json::to_string_pretty(&report["policies"]).unwrap()
            ));
        }
        if name == "clean" {
            let verified = report["policies"].to_string();
            assert!(verified.contains("SHA-1 trailer matches"), "{verified}");
            assert!(
                verified.contains("2 secret(s) described, no value in it"),
                "{verified}"
            );
        }
        if name == "an export holding a value" {
            assert!(
                report.to_string().contains("holds secret values"),
                "{report:#}"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
