//! The local backup job: what barman-cloud does for CloudNativePG, for the local PostgreSQL
//! pair - a base backup (`pg_basebackup -Ft -z -X none`, with `backup_manifest`) and the
//! archived WAL, laid out as barman-cloud stores them in S3 (`<prefix>/base/<id>/backup.info`,
//! `<prefix>/wals/<tli+log>/<segment>.gz`). The drill and the tests use it to fill the backup
//! buckets with real backups.

use std::collections::BTreeSet;
use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;

use crate::LocalError;
use crate::systems::postgres::PostgresPair;

/// Where barman-cloud puts the local cluster (`<prefix>/<server>/`).
pub const PREFIX: &str = "postgres/gateway-db/";

/// One object of the backup bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupObject {
    /// Key.
    pub key: String,
    /// Content.
    pub bytes: Vec<u8>,
}

fn failed(what: &str, out: &std::process::Output) -> LocalError {
    LocalError::Io {
        context: format!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim()),
        source: std::io::Error::other("command failed"),
    }
}

/// Runs one SQL statement on the primary with psql; returns its output. Blocking.
pub fn psql(pair: &PostgresPair, sql: &str) -> Result<String, LocalError> {
    psql_on(pair, pair.primary.port(), sql)
}

/// Runs one SQL statement with psql on the pair's server listening on `port`. Blocking.
pub fn psql_on(pair: &PostgresPair, port: u16, sql: &str) -> Result<String, LocalError> {
    let out = pair
        .tool("psql")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "postgres", "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
        .output()
        .map_err(LocalError::io("running psql"))?;
    if !out.status.success() {
        return Err(failed(sql, &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `YYYYMMDDTHHMMSSZ` of `epoch` (barman backup ids, snapshot names).
pub fn compact_time(epoch: i64) -> String {
    hapilot_core::backup::audit::epoch_text(epoch).replace(['-', ':'], "")
}

/// Takes a base backup of the primary and returns it in the barman-cloud layout:
/// `backup.info` (written from the `.backup` history file PostgreSQL archived),
/// `base.tar.gz`, `backup_manifest`. Blocking.
pub fn take_base_backup(pair: &PostgresPair) -> Result<Vec<BackupObject>, LocalError> {
    take_base_backup_from(pair, pair.primary.port())
}

/// [`take_base_backup`] from the server on `port` (the replica, once it is promoted).
pub fn take_base_backup_from(
    pair: &PostgresPair,
    port: u16,
) -> Result<Vec<BackupObject>, LocalError> {
    let dir = pair.scratch_dir(&format!("basebackup-{}", uuid::Uuid::new_v4().simple()))?;
    let out = pair
        .tool("pg_basebackup")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "postgres", "-Ft", "-z", "-X", "none", "-c", "fast"])
        .arg("--manifest-checksums=SHA256")
        .arg("-D")
        .arg(&dir)
        .output()
        .map_err(LocalError::io("running pg_basebackup"))?;
    if !out.status.success() {
        return Err(failed("pg_basebackup", &out));
    }
    let names = archive_names(&pair.archive_dir())?;
    // The newest one: the replica's own pg_basebackup left an older one.
    let history_name = names
        .iter()
        .rfind(|n| n.ends_with(".backup"))
        .ok_or_else(|| {
            LocalError::io("finding the .backup history file")(std::io::Error::other(
                "not archived",
            ))
        })?;
    let history = std::fs::read_to_string(pair.archive_dir().join(history_name))
        .map_err(LocalError::io("reading the .backup history file"))?;
    let field = |label: &str| {
        history
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .map(|v| v.trim().to_string())
            .ok_or_else(|| {
                LocalError::io(format!("{label} in {history_name}"))(std::io::Error::other(
                    "missing",
                ))
            })
    };
    let file_of = |line: String| {
        line.split("(file ")
            .nth(1)
            .map(|f| f.trim_end_matches(')').to_string())
            .unwrap_or_default()
    };
    let begin_wal = file_of(field("START WAL LOCATION:")?);
    let end_wal = file_of(field("STOP WAL LOCATION:")?);
    let stop_time = field("STOP TIME:")?.replace(" UTC", "+00:00");
    let start_time = field("START TIME:")?.replace(" UTC", "+00:00");
    let timeline = field("START TIMELINE:")?;
    let stop = hapilot_core::backup::info::parse_pg_time(&stop_time).ok_or_else(|| {
        LocalError::io("reading STOP TIME")(std::io::Error::other(stop_time.clone()))
    })?;
    let id = compact_time(stop);
    let info = format!(
        "backup_id={id}\nbackup_name=None\nbegin_time={start_time}\nbegin_wal={begin_wal}\nend_time={stop_time}\n\
         end_wal={end_wal}\nstatus=DONE\ntimeline={timeline}\nversion=170000\nmode=concurrent\n\
         xlog_segment_size={}\n",
        pair.segment_size()
    );
    let base = format!("{PREFIX}base/{id}/");
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(LocalError::io(format!("reading {name}")))
    };
    Ok(vec![
        BackupObject {
            key: format!("{base}backup.info"),
            bytes: info.into_bytes(),
        },
        BackupObject {
            key: format!("{base}base.tar.gz"),
            bytes: read("base.tar.gz")?,
        },
        BackupObject {
            key: format!("{base}backup_manifest"),
            bytes: read("backup_manifest")?,
        },
    ])
}

/// The archive's file names, sorted, without copies in progress.
pub fn archive_names(archive: &Path) -> Result<Vec<String>, LocalError> {
    let mut names: Vec<String> = std::fs::read_dir(archive)
        .map_err(LocalError::io(format!("listing {}", archive.display())))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        // A copy in progress is not archived yet.
        .filter(|n| !n.ends_with(".tmp"))
        .collect();
    names.sort();
    Ok(names)
}

/// Switches to a new WAL segment and waits until every completed one is archived; returns the
/// archive's file names, sorted. Blocking.
pub fn switch_and_archive(pair: &PostgresPair) -> Result<Vec<String>, LocalError> {
    switch_and_archive_on(pair, pair.primary.port())
}

/// [`switch_and_archive`] on the pair's server listening on `port` (the replica once it is
/// promoted: its segments are on the new timeline). Blocking.
pub fn switch_and_archive_on(pair: &PostgresPair, port: u16) -> Result<Vec<String>, LocalError> {
    use hapilot_core::backup::wal::WalSegment;
    // pg_switch_wal returns the end of the segment it completed; pg_walfile_name of an end
    // position names that segment (a position at a boundary belongs to the previous one).
    let completed = psql_on(pair, port, "SELECT pg_walfile_name(pg_switch_wal())")?;
    let last = WalSegment::parse(&completed).map_err(|e| {
        LocalError::io("reading pg_switch_wal's answer")(std::io::Error::other(e.to_string()))
    })?;
    for _ in 0..600 {
        let names = archive_names(&pair.archive_dir())?;
        let segments: BTreeSet<WalSegment> = names
            .iter()
            .filter(|n| n.len() == 24)
            .filter_map(|n| WalSegment::parse(n).ok())
            .collect();
        // From the first segment on the completed one's timeline (after a promotion the old
        // timeline ends in a .partial).
        let on_timeline = segments.iter().find(|s| s.timeline == last.timeline);
        let complete = on_timeline.is_some_and(|first| {
            let mut s = *first;
            while s <= last {
                if !segments.contains(&s) {
                    return false;
                }
                s = s.next(pair.segment_size());
            }
            true
        });
        if complete {
            return Ok(names);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Err(LocalError::io(format!(
        "waiting for {completed} to be archived"
    ))(std::io::Error::from(std::io::ErrorKind::TimedOut)))
}

/// Archived files as barman-cloud stores them: segments gzip'd under `wals/<tli+log>/`,
/// history and backup label files as they are.
pub fn wal_objects(pair: &PostgresPair, names: &[String]) -> Result<Vec<BackupObject>, LocalError> {
    let mut objects = Vec::new();
    for name in names.iter().filter(|n| !n.ends_with(".tmp")) {
        let bytes = std::fs::read(pair.archive_dir().join(name))
            .map_err(LocalError::io(format!("reading archived {name}")))?;
        let directory = &name[..16.min(name.len())];
        if name.ends_with(".history") {
            // barman keeps history files at the top of wals/ (no hash directory).
            objects.push(BackupObject {
                key: format!("{PREFIX}wals/{name}"),
                bytes,
            });
        } else if name.len() == 24 {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &bytes)
                .map_err(LocalError::io("compressing a segment"))?;
            objects.push(BackupObject {
                key: format!("{PREFIX}wals/{directory}/{name}.gz"),
                bytes: gz
                    .finish()
                    .map_err(LocalError::io("compressing a segment"))?,
            });
        } else {
            objects.push(BackupObject {
                key: format!("{PREFIX}wals/{directory}/{name}"),
                bytes,
            });
        }
    }
    Ok(objects)
}

/// The backup job's row-count manifest: the rows of `table` whose `column` is at or before
/// `at` (a moment already past), stored as `<prefix>manifests/<at>.json`; a restore test to
/// any later moment must hold exactly that many. Blocking.
pub fn row_manifest(
    pair: &PostgresPair,
    (table, column): (&str, &str),
    at: i64,
) -> Result<BackupObject, LocalError> {
    use hapilot_core::restore::quoted_name;
    let rows = psql(
        pair,
        &format!(
            "SELECT count(*) FROM {} WHERE {} <= to_timestamp({at}::float8 + 0.000001)",
            quoted_name(table),
            quoted_name(column)
        ),
    )?;
    let rows: i64 = rows
        .parse()
        .map_err(|_| LocalError::Invalid(format!("counting {table}: {rows:?}")))?;
    Ok(BackupObject {
        key: format!("{PREFIX}manifests/{}.json", compact_time(at)),
        bytes: serde_json::json!({"at": at, "tables": {table: {"column": column, "rows": rows}}})
            .to_string()
            .into_bytes(),
    })
}

/// Uploads `objects` (SSE-S3 encrypted, as barman-cloud with `--encryption AES256`).
pub async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    objects: &[BackupObject],
) -> Result<(), LocalError> {
    for o in objects {
        s3.put_object()
            .bucket(bucket)
            .key(&o.key)
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
            .body(ByteStream::from(o.bytes.clone()))
            .send()
            .await
            .map_err(LocalError::aws("PutObject"))?;
    }
    Ok(())
}

/// What one run of the backup job uploaded.
#[derive(Debug, Clone)]
pub struct BackupRun {
    /// The Vault snapshot's key.
    pub vault_snapshot: String,
    /// How many WAL files were archived after the base backup.
    pub wal_files: usize,
}

/// One run of the backup job (what barman-cloud does for CloudNativePG, plus Vault's snapshot
/// agent): the data table's row-count manifest (when one is named), a base backup, a Vault
/// raft snapshot, then, after `settle`, the WAL written since, each uploaded to every one of
/// `buckets` (the primary's and its DR copy).
pub async fn back_up_once(
    s3: &aws_sdk_s3::Client,
    pair: &PostgresPair,
    (buckets, data_table): (&[&str], Option<(&str, &str)>),
    settle: std::time::Duration,
) -> Result<BackupRun, LocalError> {
    // The row-count manifest of the data table, up to a moment two seconds past: the
    // application's short transactions that wrote until then have committed.
    let mut base = Vec::new();
    if let Some(table) = data_table {
        let at = chrono::Utc::now().timestamp() - 2;
        base.push(tokio::task::block_in_place(|| {
            row_manifest(pair, table, at)
        })?);
    }
    base.extend(tokio::task::block_in_place(|| take_base_backup(pair))?);
    let snapshot = crate::systems::vault::local_snapshot()?;
    let vault_snapshot = format!(
        "vault/{}.snap",
        compact_time(chrono::Utc::now().timestamp())
    );
    let snapshot = [BackupObject {
        key: vault_snapshot.clone(),
        bytes: snapshot,
    }];
    for bucket in buckets {
        upload(s3, bucket, &base).await?;
        upload(s3, bucket, &snapshot).await?;
    }
    tokio::time::sleep(settle).await;
    let archived = tokio::task::block_in_place(|| switch_and_archive(pair))?;
    let wal = wal_objects(pair, &archived)?;
    for bucket in buckets {
        upload(s3, bucket, &wal).await?;
    }
    Ok(BackupRun {
        vault_snapshot,
        wal_files: wal.len(),
    })
}
