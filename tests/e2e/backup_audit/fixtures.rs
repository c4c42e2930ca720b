//! The backup audit's fixtures: catalogs built from real tools (a real PostgreSQL's base backup
//! and WAL, real RDB files, Vault snapshots), the ways to break them, the policies, the stack
//! the audit runs on, and readers of its report.

use aws_sdk_s3::primitives::ByteStream;
use hapilot::local::systems::barman::{
    BackupObject as Object, compact_time as compact, psql, switch_and_archive, take_base_backup,
    wal_objects,
};
use hapilot::local::systems::postgres::PostgresPair;
use hapilot_core::backup::vault::build_vault_snapshot;
use serde_json::{Value, json};

use crate::support::TestStack;
use crate::support::backups::put_all;

/// Builds the clean catalog from real tools. Blocking.
pub(super) fn build_catalog(rdb: Vec<u8>, now: i64) -> Vec<Object> {
    let pair = PostgresPair::start().expect("PostgreSQL (scripts/ensure-postgres installs it)");
    psql(
        &pair,
        "CREATE TABLE spend (id bigserial primary key, team text, usd numeric, created_at timestamptz default now())",
    )
    .unwrap();
    psql(
        &pair,
        "INSERT INTO spend (team, usd) SELECT 'team-' || (g % 7), g FROM generate_series(1, 2000) g",
    )
    .unwrap();
    let mut objects = take_base_backup(&pair).unwrap();
    // More WAL after the backup: the chain must reach past it.
    for i in 0..4 {
        psql(
            &pair,
            &format!(
                "INSERT INTO spend (team, usd) SELECT 'later-{i}', g FROM generate_series(1, 500) g"
            ),
        )
        .unwrap();
        psql(&pair, "SELECT pg_switch_wal()").unwrap();
    }
    let names = switch_and_archive(&pair).unwrap();
    objects.extend(wal_objects(&pair, &names).unwrap());
    // Hourly Vault snapshots and Redis RDB files, the newest 10 minutes old.
    for k in 0..4 {
        let at = now - 600 - k * 3_600;
        let meta = json!({"ID": format!("2-{}-{at}", 100 + k), "Index": 1000 - k, "Term": 2, "Version": 1});
        let state = format!("raft state of the gateway's secrets at {at}").repeat(50);
        objects.push(Object {
            key: format!("vault/{}.snap", compact(at)),
            bytes: build_vault_snapshot(&meta, state.as_bytes()).unwrap(),
        });
        objects.push(Object {
            key: format!("redis/{}.rdb", compact(at)),
            bytes: rdb.clone(),
        });
    }
    objects
}

/// The test's policies: the HA document's shapes with windows that fit a test's catalog.
pub(super) fn policies() -> Value {
    json!([
        {"data_type": "postgres_full", "frequency_secs": 86400, "retention_secs": 86400, "cross_region": true, "grace_secs": 3600},
        {"data_type": "postgres_wal", "frequency_secs": 300, "retention_secs": 600, "cross_region": true, "grace_secs": 300},
        {"data_type": "vault", "frequency_secs": 3600, "retention_secs": 14400, "cross_region": true, "grace_secs": 900},
        {"data_type": "redis", "frequency_secs": 3600, "retention_secs": 14400, "cross_region": false, "grace_secs": 900}
    ])
}

/// Creates a bucket with Object Lock and uploads `objects` encrypted and locked, except the
/// keys in `plain` (uploaded with neither).
pub(crate) async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    objects: &[Object],
    plain: &[String],
) {
    s3.create_bucket()
        .bucket(bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    put_all(s3, bucket, objects, plain).await;
}

/// A local stack set up for audits: the audit bucket, the topic, the functions configured.
pub(super) async fn audit_stack() -> TestStack {
    let stack = TestStack::start().await;
    stack
        .s3()
        .create_bucket()
        .bucket("hapilot-audit")
        .send()
        .await
        .unwrap();
    let topic = aws_sdk_sns::Client::new(stack.stack().sdk_config())
        .create_topic()
        .name("hapilot")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();
    let mut settings = hapilot_functions::config::Settings::with_defaults();
    settings.audit_bucket = Some("hapilot-audit".into());
    settings.topic_arn = Some(topic);
    stack.stack().configure(settings).unwrap();
    stack
}

/// `statemachines/schemas/backup-audit.report.json`.
pub(super) fn report_schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/statemachines/schemas/backup-audit.report.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Whether `value` conforms to `schema`, checked by the CLI's schema checker (`$ref` to
/// `#/$defs` included); the error names each path.
pub(super) fn conforms(value: &Value, schema: &Value, path: &str) -> Result<(), String> {
    let problems = hapilot::schema::problems(schema, value);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{path}: {}", problems.join("; ")))
    }
}

/// One way to break the catalog.
pub(super) struct Case {
    pub name: &'static str,
    pub primary: Vec<Object>,
    pub dr: Vec<Object>,
    pub plain: Vec<String>,
    /// Exactly the findings expected, as (check, data type), sorted.
    pub expect: Vec<(&'static str, &'static str)>,
}

pub(super) fn newest_key<'a>(objects: &'a [Object], prefix: &str) -> &'a str {
    objects
        .iter()
        .filter(|o| o.key.starts_with(prefix))
        .map(|o| o.key.as_str())
        .max()
        .unwrap()
}

pub(super) fn cases(clean: &[Object], now: i64) -> Vec<Case> {
    let same = |name, primary: Vec<Object>, expect| Case {
        name,
        dr: primary.clone(),
        primary,
        plain: vec![],
        expect,
    };
    let mut out = vec![same("clean", clean.to_vec(), vec![])];

    let stale: Vec<Object> = clean
        .iter()
        .filter(|o| {
            !(o.key.starts_with("redis/")
                && (o.key.contains(&compact(now - 600)) || o.key.contains(&compact(now - 4_200))))
        })
        .cloned()
        .collect();
    out.push(same("stale redis", stale, vec![("freshness", "redis")]));

    let newest_snap = newest_key(clean, "vault/").to_string();
    out.push(Case {
        name: "missing cross-region copy",
        primary: clean.to_vec(),
        dr: clean
            .iter()
            .filter(|o| o.key != newest_snap)
            .cloned()
            .collect(),
        plain: vec![],
        expect: vec![("cross_region", "vault")],
    });

    // Same size, other bytes: only the content (the single-part ETag, an MD5) can tell.
    let mut altered_copy = clean.to_vec();
    let snap = altered_copy
        .iter_mut()
        .find(|o| o.key == newest_snap)
        .unwrap();
    let at = snap.bytes.len() / 3;
    snap.bytes[at] ^= 0x01;
    out.push(Case {
        name: "DR copy with the same size and other bytes",
        primary: clean.to_vec(),
        dr: altered_copy,
        plain: vec![],
        expect: vec![("cross_region", "vault")],
    });

    let mut flipped = clean.to_vec();
    let tar = flipped
        .iter_mut()
        .find(|o| o.key.ends_with("base.tar.gz"))
        .unwrap();
    let at = tar.bytes.len() / 2;
    tar.bytes[at] ^= 0x40;
    out.push(same(
        "flipped byte in the base backup",
        flipped,
        vec![("integrity", "postgres_full"), ("rpo", "postgres_wal")],
    ));

    // The segment after the base backup's first one.
    let info = &clean
        .iter()
        .find(|o| o.key.ends_with("backup.info"))
        .unwrap();
    let begin = String::from_utf8_lossy(&info.bytes)
        .lines()
        .find_map(|l| l.strip_prefix("begin_wal=").map(str::to_string))
        .unwrap();
    let begin = hapilot_core::backup::wal::WalSegment::parse(&begin).unwrap();
    let hole = begin
        .next(hapilot_core::backup::wal::DEFAULT_SEGMENT_SIZE)
        .to_string();
    let gap: Vec<Object> = clean
        .iter()
        .filter(|o| !o.key.ends_with(&format!("{hole}.gz")))
        .cloned()
        .collect();
    assert!(gap.len() < clean.len(), "segment {hole} is in the archive");
    out.push(same(
        "missing WAL segment",
        gap,
        vec![("wal_chain", "postgres_wal")],
    ));

    let mut truncated = clean.to_vec();
    let newest_rdb = newest_key(clean, "redis/").to_string();
    let rdb = truncated.iter_mut().find(|o| o.key == newest_rdb).unwrap();
    rdb.bytes.truncate(rdb.bytes.len() - 100);
    out.push(same(
        "truncated RDB",
        truncated,
        vec![("integrity", "redis")],
    ));

    let mut expired = clean.to_vec();
    let old = expired
        .iter()
        .find(|o| o.key.starts_with("vault/"))
        .unwrap()
        .clone();
    expired.push(Object {
        key: format!("vault/{}.snap", compact(now - 10 * 86_400)),
        ..old
    });
    out.push(same(
        "expired snapshot kept",
        expired,
        vec![("retention", "vault")],
    ));

    out.push(Case {
        name: "unencrypted snapshot",
        primary: clean.to_vec(),
        dr: clean.to_vec(),
        plain: vec![newest_snap],
        expect: vec![("encryption", "vault")],
    });
    out
}

/// Every finding of a report as (check, data type), sorted.
pub(super) fn found_in(report: &Value) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = report["policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["findings"].as_array().unwrap().clone())
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_string(),
                f["data_type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    found.sort();
    found
}

/// The JSON report a backup-audit run wrote, and its `<time>` stamp.
pub(super) async fn audit_report(
    stack: &TestStack,
    outcome: &hapilot::runs::RunOutcome,
) -> (Value, String) {
    let stamp = report_stamp(stack, outcome).await;
    let body = stack
        .s3()
        .get_object()
        .bucket("hapilot-audit")
        .key(format!("reports/backup-audit/{stamp}.json"))
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    (serde_json::from_slice(&body).unwrap(), stamp)
}

/// The `<time>` of `reports/backup-audit/<time>.json` written by the run (from the report
/// task's result in the execution history).
pub(super) async fn report_stamp(stack: &TestStack, outcome: &hapilot::runs::RunOutcome) -> String {
    let history = stack
        .sfn()
        .get_execution_history()
        .execution_arn(&outcome.execution_arn)
        .max_results(1000)
        .send()
        .await
        .unwrap();
    history
        .events()
        .iter()
        .filter_map(|e| e.lambda_function_succeeded_event_details())
        .filter_map(|d| d.output())
        .filter_map(|o| serde_json::from_str::<Value>(o).ok())
        .find_map(|v| v["report_key"].as_str().map(str::to_string))
        .and_then(|k| {
            k.strip_prefix("reports/backup-audit/")?
                .strip_suffix(".json")
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no report key in\n{}", outcome.history_text()))
}

/// Waits until the promoted replica has archived `00000002.history`, timeline 1's `.partial`
/// and at least `segments` completed timeline-2 segments; the archive's names then.
pub(super) fn timeline_2_archived(pair: &PostgresPair, segments: usize) -> Vec<String> {
    let mut names = Vec::new();
    for _ in 0..400 {
        names = hapilot::local::systems::barman::archive_names(&pair.archive_dir()).unwrap();
        let tli2 = names
            .iter()
            .filter(|n| n.len() == 24 && n.starts_with("00000002"))
            .count();
        if names.iter().any(|n| n == "00000002.history")
            && names.iter().any(|n| n.ends_with(".partial"))
            && tli2 >= segments
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    names
}

/// A real catalog with a failover in its history: a base backup on timeline 1, the replica
/// promoted, WAL going on on timeline 2. Timeline 1's last segment is archived only as
/// `.partial`; timeline 2's first segment starts with timeline 1's pages. Blocking.
pub(super) fn build_failover_catalog() -> Vec<Object> {
    use hapilot::local::systems::barman::psql_on;
    let pair = PostgresPair::start().expect("PostgreSQL (scripts/ensure-postgres installs it)");
    psql(
        &pair,
        "CREATE TABLE spend AS SELECT g AS id, 'team-' || (g % 7) AS team FROM generate_series(1, 2000) g",
    )
    .unwrap();
    let mut objects = take_base_backup(&pair).unwrap();
    psql(
        &pair,
        "INSERT INTO spend SELECT g, 'before' FROM generate_series(1, 500) g",
    )
    .unwrap();
    switch_and_archive(&pair).unwrap();
    // More writes that stay in the current segment (no switch), so the promotion happens in
    // the middle of a segment, as a failover does: the switch segment then starts with
    // timeline 1's pages.
    psql(
        &pair,
        "INSERT INTO spend SELECT g, 'mid-segment' FROM generate_series(1, 500) g",
    )
    .unwrap();
    let replica = pair.replica.port();
    let mut caught_up = String::new();
    for _ in 0..200 {
        caught_up = psql_on(&pair, replica, "SELECT count(*) FROM spend").unwrap();
        if caught_up == "3000" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        caught_up, "3000",
        "the replica replayed every write before the failover"
    );
    psql_on(&pair, replica, "SELECT pg_promote(true, 60)").unwrap();
    for i in 0..3 {
        psql_on(
            &pair,
            replica,
            &format!("INSERT INTO spend SELECT g, 'after-{i}' FROM generate_series(1, 500) g"),
        )
        .unwrap();
        psql_on(&pair, replica, "SELECT pg_switch_wal()").unwrap();
    }
    // Wait for the new primary to archive the history file, the .partial and timeline 2's
    // completed segments.
    let names = timeline_2_archived(&pair, 3);
    assert!(
        names.iter().any(|n| n == "00000002.history"),
        "the promoted replica archived its history: {names:?}"
    );
    objects.extend(wal_objects(&pair, &names).unwrap());
    objects
}

/// Uploads `bytes` to `bucket/key` as a two-part multipart upload (its ETag is then
/// `<md5 of the part md5s>-2`, unlike a single PUT's of the same bytes).
pub(super) async fn put_in_two_parts(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    bytes: &[u8],
) {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let upload = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let split = 5 * 1024 * 1024;
    let mut parts = Vec::new();
    for (n, chunk) in [&bytes[..split], &bytes[split..]].into_iter().enumerate() {
        let part = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .part_number(n as i32 + 1)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(n as i32 + 1)
                .e_tag(part.e_tag().unwrap())
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// The catalog the issue asks for, from real tools: PostgreSQL with 1 MiB segments whose WAL
/// starts just before a log-id boundary and crosses it, a base backup on timeline 1, the
/// replica promoted (timeline 2, its `.history`, timeline 1's `.partial`), a base backup on
/// timeline 2; Vault snapshots and Redis RDB files under the tools' own names; the PostgreSQL
/// server copied as a second server. Blocking.
pub(super) fn build_real_catalog(rdb: Vec<u8>, now: i64) -> Vec<Object> {
    use hapilot::local::systems::barman::{psql_on, take_base_backup_from};
    use hapilot::local::systems::postgres::PairOptions;
    let pair = PostgresPair::start_with(PairOptions {
        wal_segment_mib: Some(1),
        first_wal_file: Some("000000010000000000000FFA".into()),
    })
    .expect("PostgreSQL");
    psql(
        &pair,
        "CREATE TABLE spend AS SELECT g AS id, 'team-' || (g % 7) AS team FROM generate_series(1, 2000) g",
    )
    .unwrap();
    let mut objects = take_base_backup(&pair).unwrap();
    // Past the log-id boundary: 0FFA .. 0FFF, then 000000010000000100000000.
    for i in 0..8 {
        psql(
            &pair,
            &format!("INSERT INTO spend SELECT g, 'wave-{i}' FROM generate_series(1, 300) g"),
        )
        .unwrap();
        psql(&pair, "SELECT pg_switch_wal()").unwrap();
    }
    switch_and_archive(&pair).unwrap();
    psql(
        &pair,
        "INSERT INTO spend SELECT g, 'mid-segment' FROM generate_series(1, 300) g",
    )
    .unwrap();
    let replica = pair.replica.port();
    let want = psql(&pair, "SELECT count(*) FROM spend").unwrap();
    let mut seen = String::new();
    for _ in 0..200 {
        seen = psql_on(&pair, replica, "SELECT count(*) FROM spend").unwrap();
        if seen == want {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        seen, want,
        "the replica replayed everything before the failover"
    );
    pair.primary.kill().unwrap();
    psql_on(&pair, replica, "SELECT pg_promote(true, 60)").unwrap();
    for i in 0..3 {
        psql_on(
            &pair,
            replica,
            &format!("INSERT INTO spend SELECT g, 'after-{i}' FROM generate_series(1, 300) g"),
        )
        .unwrap();
        psql_on(&pair, replica, "SELECT pg_switch_wal()").unwrap();
    }
    objects.extend(take_base_backup_from(&pair, replica).unwrap());
    psql_on(&pair, replica, "SELECT pg_switch_wal()").unwrap();
    let names = timeline_2_archived(&pair, 4);
    assert!(
        names.iter().any(|n| n == "000000010000000100000000"),
        "the WAL crossed the log-id boundary: {names:?}"
    );
    objects.extend(wal_objects(&pair, &names).unwrap());
    let second: Vec<Object> = objects
        .iter()
        .map(|o| Object {
            key: o
                .key
                .replace("postgres/gateway-db/", "postgres/billing-db/"),
            bytes: o.bytes.clone(),
        })
        .collect();
    objects.extend(second);
    for k in 0..4 {
        let at = now - 600 - k * 3_600;
        let meta = json!({"ID": format!("2-{}-{at}", 100 + k), "Index": 1000 - k, "Term": 2, "Version": 1});
        let state = format!("raft state at {at}").repeat(50);
        objects.push(Object {
            key: format!("vault/raft-snapshot-{}.snap", compact(at)),
            bytes: build_vault_snapshot(&meta, state.as_bytes()).unwrap(),
        });
        objects.push(Object {
            key: format!("redis/dump-{at}.rdb"),
            bytes: rdb.clone(),
        });
    }
    objects
}

/// A Vault snapshot with one byte of `state.bin` changed: its `SHA256SUMS` no longer match
/// (the tar headers and the gzip stream stay valid).
pub(super) fn with_state_byte_flipped(snapshot: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(snapshot)
        .read_to_end(&mut tar)
        .unwrap();
    let at = tar
        .windows(b"raft state at".len())
        .position(|w| w == b"raft state at")
        .expect("state.bin's content");
    tar[at] ^= 0x01;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}
