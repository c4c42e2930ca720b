//! Task `audit-backup-policy`: one Map item of the backup audit. Lists the policy's backups in
//! the backup bucket (and the DR copy), reads their own metadata for their times (`backup.info`
//! end time, timestamped snapshot and RDB names), asks S3 for encryption and Object Lock, runs
//! the core's listing audit, then streams the chosen backups through the content verifiers.
//!
//! A bucket that cannot be read is a critical finding, not an error: the audit's report must
//! still be written. Only an unreadable input fails the task.

use std::collections::BTreeMap;

use hapilot_adapters::backups::BackupStore;
use hapilot_core::backup::audit::{
    PolicyAudit, PolicyAuditRequest, Verification, content_findings, integrity_finding,
    objects_to_head, rpo_finding, switches_without_history,
};
use hapilot_core::backup::catalog::{
    ChainContext, DataTypeStatus, Item, StoredObject, audit_catalog, classify, time_in_name,
};
use hapilot_core::backup::config::{
    DeployedConfig, NewestBundle, judge_configuration, verify_git_bundle, verify_secrets_metadata,
};
use hapilot_core::backup::info::BackupInfo;
use hapilot_core::backup::policy::{DataType, Finding};
use hapilot_core::backup::rdb::verify_rdb;
use hapilot_core::backup::vault::verify_vault_snapshot;
use hapilot_core::backup::verdicts::{
    InfoVerdict, access_denied, backup_infos_unreadable, base_backups_not_done,
    chosen_for_verification, judge_backup_info, listing_prefixes, postgres_server_name,
    times_from_last_modified, wal_position,
};
use hapilot_core::backup::wal::{self, TimelineSwitch, WalFile, WalSegment, verify_wal_segment};
use serde_json::Value;

use crate::FunctionError;
use crate::backup_catalog::{list_all, verify_base};
use crate::error::parse_input;

/// Audits one policy: `primary` reads the backup bucket, `dr` the DR copy's (in its region).
pub async fn audit_backup_policy<S: BackupStore>(
    primary: &S,
    dr: &S,
    input: Value,
) -> Result<Value, FunctionError> {
    let request: PolicyAuditRequest = parse_input(input)?;
    let targets = match servers(primary, &request).await {
        Ok(targets) => targets,
        Err(problem) => vec![(None, request.clone(), Some(problem))],
    };
    // Servers are independent: audited a few at once (each lists and reads concurrently too).
    let mut audits: Vec<Option<PolicyAudit>> = targets.iter().map(|_| None).collect();
    let mut queue = targets.into_iter().enumerate();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < SERVERS_AT_ONCE {
            let Some((i, (server, request, problem))) = queue.next() else {
                break;
            };
            let (primary, dr) = (primary.clone(), dr.clone());
            running.spawn(async move {
                let result = match problem {
                    Some(problem) => Err(problem),
                    None => audit_policy(&primary, &dr, &request).await,
                };
                let mut audit = result.unwrap_or_else(|problem| unreadable(&request, problem));
                let server = server.or_else(|| {
                    postgres_server_name(request.policy.data_type, data_prefix(&request))
                });
                for f in &mut audit.findings {
                    f.server = server.clone();
                }
                audit.server = server;
                (i, audit)
            });
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let (i, audit) =
            done.map_err(|e| FunctionError::Setup(format!("a server's audit failed: {e}")))?;
        audits[i] = Some(audit);
    }
    let audits: Vec<PolicyAudit> = audits.into_iter().flatten().collect();
    let out = match audits.len() {
        1 => serde_json::to_value(&audits[0]),
        _ => serde_json::to_value(&audits),
    };
    out.map_err(|e| FunctionError::Setup(e.to_string()))
}

/// How many servers of one policy are audited at once.
const SERVERS_AT_ONCE: usize = 4;

/// The prefix a policy's data type lives under.
fn data_prefix(request: &PolicyAuditRequest) -> &str {
    request.target.layout.prefix(request.policy.data_type)
}

/// The servers or instances the policy's prefix holds (see
/// [`hapilot_core::backup::audit::servers_in`]), each with the request narrowed to it.
type Target = (Option<String>, PolicyAuditRequest, Option<String>);

async fn servers<S: BackupStore>(
    store: &S,
    request: &PolicyAuditRequest,
) -> Result<Vec<Target>, String> {
    let prefix = data_prefix(request).to_string();
    let bucket = &request.target.bucket;
    let (direct, folders) = store
        .folders(bucket, &prefix)
        .await
        .map_err(|e| format!("s3://{bucket}/{prefix}: {e}"))?;
    let level = hapilot_core::backup::audit::PrefixLevel {
        direct,
        folders: folders
            .iter()
            .filter_map(|f| f.strip_prefix(&prefix))
            .map(|f| f.trim_end_matches('/').to_string())
            .collect(),
    };
    Ok(
        hapilot_core::backup::audit::servers_in(request.policy.data_type, &level)
            .into_iter()
            .map(|server| {
                let mut narrowed = request.clone();
                if let Some(name) = &server {
                    *narrowed.target.layout.prefix_mut(request.policy.data_type) =
                        format!("{prefix}{name}/");
                }
                (server, narrowed, None)
            })
            .collect(),
    )
}

fn unreadable(request: &PolicyAuditRequest, problem: String) -> PolicyAudit {
    let data_type = request.policy.data_type;
    PolicyAudit {
        data_type,
        server: None,
        listed: 0,
        status: DataTypeStatus {
            data_type,
            backups: 0,
            newest_age_secs: None,
            achievable_rpo_secs: None,
            restore_windows: Vec::new(),
        },
        findings: vec![access_denied(data_type, &problem)],
        verified: vec![],
    }
}

/// A base backup's metadata, by id.
struct BaseBackups {
    infos: BTreeMap<String, BackupInfo>,
    findings: Vec<Finding>,
}

async fn read_base_backups<S: BackupStore>(
    store: &S,
    bucket: &str,
    objects: &[StoredObject],
    request: &PolicyAuditRequest,
) -> Result<BaseBackups, String> {
    let mut infos = BTreeMap::new();
    let mut not_done = Vec::new();
    let mut broken = Vec::new();
    for o in objects {
        let Some((_, Item::BaseBackup(id))) = classify(&o.key, &request.target.layout) else {
            continue;
        };
        let bytes = store
            .read_small(bucket, &o.key)
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        match judge_backup_info(&String::from_utf8_lossy(&bytes)) {
            InfoVerdict::Usable(info) => {
                infos.insert(id, *info);
            }
            InfoVerdict::NotDone(status) => not_done.push(format!("{id} ({status})")),
            InfoVerdict::Broken(why) => broken.push(format!("{id}: {why}")),
        }
    }
    // Reported once, by the base backups' own policy.
    let findings = if request.policy.data_type == DataType::PostgresFull {
        base_backups_not_done(&not_done)
            .into_iter()
            .chain(backup_infos_unreadable(&broken))
            .collect()
    } else {
        Vec::new()
    };
    Ok(BaseBackups { infos, findings })
}

async fn audit_policy<S: BackupStore>(
    primary: &S,
    dr: &S,
    request: &PolicyAuditRequest,
) -> Result<PolicyAudit, String> {
    let data_type = request.policy.data_type;
    let layout = &request.target.layout;
    let bucket = request.target.bucket.as_str();
    let prefixes = listing_prefixes(request.policy.data_type, &request.target.layout);
    let mut objects = list_all(primary, bucket, &prefixes).await?;
    let listed = objects
        .iter()
        .filter(|o| classify(&o.key, layout).is_some_and(|(t, _)| t == data_type))
        .count() as u64;

    let bases = read_base_backups(primary, bucket, &objects, request).await?;
    let mut findings = bases.findings;
    let mut undated = date_from_metadata(&mut objects, &bases.infos, request);
    // With 1 MiB segments a log id holds 0x1000 of them, not 0x100: the size comes from the
    // server's own backup.info unless the request overrides it.
    let segment_size = request.segment_size(bases.infos.values());
    let (starts, ends) = wal_bounds(&bases.infos);
    let switches = match data_type {
        DataType::PostgresWal => {
            timeline_switches(primary, request, &objects, segment_size, &mut findings).await?
        }
        _ => Vec::new(),
    };
    head_objects(primary, request, &mut objects, &mut undated).await?;
    findings.extend(times_from_last_modified(data_type, &undated));

    let dr_objects = match (&request.target.dr_bucket, request.policy.cross_region) {
        (Some(dr_bucket), true) => list_all(dr, dr_bucket, &prefixes).await?,
        _ => Vec::new(),
    };
    let catalog = audit_catalog(
        &objects,
        &dr_objects,
        std::slice::from_ref(&request.policy),
        layout,
        ChainContext {
            base_backup_starts: &starts,
            base_backup_ends: &ends,
            switches: &switches,
            segment_size,
        },
        request.now,
    );
    findings.extend(catalog.findings);
    if let Some(dr_bucket) = &request.target.dr_bucket {
        let copies = (primary, bucket);
        let unconfirmed = &catalog.unconfirmed_copies;
        findings.extend(
            compare_copies_by_content(copies, (dr, dr_bucket), unconfirmed, data_type).await,
        );
    }
    let status = catalog
        .status
        .into_iter()
        .next()
        .ok_or("the listing audit returned no status")?;

    let chain = (&switches[..], segment_size);
    let verified = verify_contents(primary, request, &objects, &bases.infos, chain).await;
    findings.extend(content_findings(data_type, &verified));
    findings.extend(rpo_finding(&status, request.rpo_target_secs));
    if data_type == DataType::Configuration {
        findings.extend(deployed_change(primary, request, &objects).await);
    }
    Ok(PolicyAudit {
        data_type,
        server: None,
        listed,
        status,
        findings,
        verified,
    })
}

/// A WAL segment per base backup id.
type WalBounds = BTreeMap<String, WalSegment>;

/// Each base backup's first and last WAL segment: where its chain starts and what a restore of
/// it needs at least.
fn wal_bounds(infos: &BTreeMap<String, BackupInfo>) -> (WalBounds, WalBounds) {
    let starts = infos
        .iter()
        .map(|(id, info)| (id.clone(), info.begin_wal))
        .collect();
    let ends = infos
        .iter()
        .map(|(id, info)| (id.clone(), info.end_wal))
        .collect();
    (starts, ends)
}

/// Times from the backups' own metadata: a base backup's `backup.info` end time (one that is not
/// DONE leaves the listing), a snapshot's or RDB's timestamped name. Returns the policy's
/// objects with neither, to be dated by their S3 metadata or, last, LastModified.
fn date_from_metadata(
    objects: &mut Vec<StoredObject>,
    infos: &BTreeMap<String, BackupInfo>,
    request: &PolicyAuditRequest,
) -> Vec<String> {
    let data_type = request.policy.data_type;
    let layout = &request.target.layout;
    let mut undated = Vec::new();
    objects.retain_mut(|o| match classify(&o.key, layout) {
        Some((_, Item::BaseBackup(id))) => match infos.get(&id) {
            Some(info) => {
                o.time = info.end_epoch().unwrap_or(o.time);
                true
            }
            None => false,
        },
        Some((
            t,
            Item::Snapshot | Item::Rdb | Item::ConfigBundle | Item::SecretsMetadataExport,
        )) => {
            match time_in_name(&o.key) {
                Some(at) => o.time = at,
                None if t == data_type => undated.push(o.key.clone()),
                None => {}
            }
            true
        }
        _ => true,
    });
    undated
}

/// The timeline switches the WAL chain follows across a promotion: from the `.history` files
/// (one that does not parse is an integrity finding), and inferred from the segments where a
/// timeline has none (with the finding core gives for the missing history).
async fn timeline_switches<S: BackupStore>(
    store: &S,
    request: &PolicyAuditRequest,
    objects: &[StoredObject],
    segment_size: u64,
    findings: &mut Vec<Finding>,
) -> Result<Vec<TimelineSwitch>, String> {
    let data_type = request.policy.data_type;
    let layout = &request.target.layout;
    let mut switches: Vec<TimelineSwitch> = Vec::new();
    for o in objects {
        if let Some(WalFile::History(tli)) = wal::classify(&o.key) {
            let body = store
                .read_small(&request.target.bucket, &o.key)
                .await
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            match wal::parse_history(tli, &String::from_utf8_lossy(&body)) {
                Ok(s) => switches.extend(s),
                Err(e) => findings.push(integrity_finding(data_type, &o.key, &e.to_string())),
            }
        }
    }
    switches.sort_by_key(|s| (s.timeline, s.switch_lsn));
    switches.dedup();
    let histories: std::collections::BTreeSet<u32> = objects
        .iter()
        .filter_map(|o| match wal::classify(&o.key) {
            Some(WalFile::History(t)) => Some(t),
            _ => None,
        })
        .collect();
    let segments: Vec<WalSegment> = objects
        .iter()
        .filter_map(|o| match classify(&o.key, layout) {
            Some((_, Item::Wal(seg))) => Some(seg),
            _ => None,
        })
        .collect();
    let timelines: std::collections::BTreeSet<u32> =
        segments.iter().map(|seg| seg.timeline).collect();
    findings.extend(hapilot_core::backup::audit::timeline_history_findings(
        &format!("{}wals/", layout.postgres),
        &timelines,
        &histories,
    ));
    switches.extend(switches_without_history(
        &segments,
        &histories,
        segment_size,
    ));
    switches.sort_by_key(|s| (s.timeline, s.switch_lsn));
    Ok(switches)
}

/// Encryption and Object Lock from the objects core chose to HEAD (a WAL directory's newest
/// segment stands for the directory); an undated object takes the time in its own S3 metadata.
async fn head_objects<S: BackupStore>(
    store: &S,
    request: &PolicyAuditRequest,
    objects: &mut [StoredObject],
    undated: &mut Vec<String>,
) -> Result<(), String> {
    let layout = &request.target.layout;
    let to_head = objects_to_head(objects, layout, request.policy.data_type);
    let keys: Vec<String> = to_head.iter().map(|i| objects[*i].key.clone()).collect();
    let facts = store
        .facts(&request.target.bucket, keys)
        .await
        .map_err(|e| e.to_string())?;
    let mut dir_facts = BTreeMap::new();
    for (i, f) in to_head.iter().zip(facts) {
        objects[*i].encrypted = f.encrypted;
        objects[*i].locked = f.locked;
        // No time in the name: the object's own metadata, before LastModified.
        if let Some(at) = f.metadata_time
            && let Some(at_pos) = undated.iter().position(|k| *k == objects[*i].key)
        {
            objects[*i].time = at;
            undated.swap_remove(at_pos);
        }
        if let Some((_, Item::Wal(seg))) = classify(&objects[*i].key, layout) {
            dir_facts.insert(seg.directory(), f);
        }
    }
    for o in objects.iter_mut() {
        if let Some((_, Item::Wal(seg))) = classify(&o.key, layout)
            && let Some(f) = dir_facts.get(&seg.directory())
        {
            o.encrypted = f.encrypted;
            o.locked = f.locked;
        }
    }
    Ok(())
}

/// The configuration's "on change" promise: the deployment's `deployed.json` against the
/// newest bundle (its time and the refs it carries).
async fn deployed_change<S: BackupStore>(
    store: &S,
    request: &PolicyAuditRequest,
    objects: &[StoredObject],
) -> Vec<Finding> {
    let layout = &request.target.layout;
    let bucket = &request.target.bucket;
    let marker = format!("{}deployed.json", layout.config);
    let deployed = match store.read_small(bucket, &marker).await {
        Ok(Some(bytes)) => serde_json::from_slice::<DeployedConfig>(&bytes)
            .map(Some)
            .map_err(|e| e.to_string()),
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    };
    let newest = objects
        .iter()
        .filter(|o| matches!(classify(&o.key, layout), Some((_, Item::ConfigBundle))))
        .max_by_key(|o| o.time);
    let newest = match newest {
        Some(o) => Some(NewestBundle {
            key: o.key.clone(),
            time: o.time,
            bundle: match store.verify(bucket, &o.key, verify_git_bundle).await {
                Ok(Ok(b)) => Ok(b),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            },
        }),
        None => None,
    };
    judge_configuration(
        newest.as_ref(),
        deployed,
        &marker,
        request.policy.grace_secs,
    )
}

/// How many same-size DR copies without comparable checksums are compared byte for byte
/// (newest first): the newest are what a DR restore reads.
const COPIES_HASHED: usize = 3;

/// Compares the newest `unconfirmed` copies by content: their stored SHA-256s when both
/// sides have one (HeadObject), else the SHA-256 of their bytes, streamed.
async fn compare_copies_by_content<S: BackupStore>(
    (primary, bucket): (&S, &str),
    (dr, dr_bucket): (&S, &str),
    unconfirmed: &[String],
    data_type: DataType,
) -> Vec<Finding> {
    let mut differing: Vec<(String, String)> = Vec::new();
    for key in unconfirmed.iter().take(COPIES_HASHED) {
        let stored = |store: &S, bucket: &str| {
            let (store, bucket, key) = (store.clone(), bucket.to_string(), key.clone());
            async move {
                store
                    .facts(&bucket, vec![key])
                    .await
                    .ok()
                    .and_then(|f| f.into_iter().next())
                    .and_then(|f| f.sha256)
            }
        };
        let why = match (stored(primary, bucket).await, stored(dr, dr_bucket).await) {
            (Some(a), Some(b)) => (a != b).then(|| format!("SHA-256 {a}, the copy {b}")),
            _ => {
                let hash = |store: &S, bucket: &str| {
                    let (store, bucket, key) = (store.clone(), bucket.to_string(), key.clone());
                    async move {
                        store
                            .verify(&bucket, &key, hapilot_core::backup::catalog::sha256_of)
                            .await
                            .map_err(|e| e.to_string())
                            .and_then(|r| r.map_err(|e| e.to_string()))
                    }
                };
                match (hash(primary, bucket).await, hash(dr, dr_bucket).await) {
                    (Ok(a), Ok(b)) => {
                        (a != b).then(|| format!("bytes hash to SHA-256 {a}, the copy's to {b}"))
                    }
                    (Err(e), _) | (_, Err(e)) => Some(format!("could not be compared: {e}")),
                }
            }
        };
        if let Some(why) = why {
            differing.push((key.clone(), why));
        }
    }
    differing
        .first()
        .map(|(key, why)| {
            hapilot_core::backup::catalog::copy_mismatch(data_type, key, why, differing.len())
        })
        .into_iter()
        .collect()
}

/// Streams the backups chosen for verification (the newest first) through their format's
/// verifier.
async fn verify_contents<S: BackupStore>(
    store: &S,
    request: &PolicyAuditRequest,
    objects: &[StoredObject],
    infos: &BTreeMap<String, BackupInfo>,
    (switches, segment_size): (&[TimelineSwitch], u64),
) -> Vec<Verification> {
    let data_type = request.policy.data_type;
    let layout = &request.target.layout;
    let candidates: Vec<(i64, String, &StoredObject)> = objects
        .iter()
        .filter_map(|o| match classify(&o.key, layout)? {
            (t, Item::Wal(seg)) if t == data_type => Some((wal_position(&seg), o.key.clone(), o)),
            (t, _) if t == data_type => Some((o.time, o.key.clone(), o)),
            _ => None,
        })
        .collect();
    let mut results = Vec::new();
    for (n, object) in chosen_for_verification(request, candidates)
        .into_iter()
        .enumerate()
    {
        let Some((_, item)) = classify(&object.key, layout) else {
            continue;
        };
        let bucket = &request.target.bucket;
        let mut v = match item {
            Item::BaseBackup(id) => {
                verify_base(store, bucket, &object.key, &id, infos.get(&id)).await
            }
            Item::Wal(seg) => {
                verify_wal(store, (bucket, &object.key), seg, (switches, segment_size)).await
            }
            other => verify_file(store, bucket, &object.key, other).await,
        };
        // The first chosen is the newest: the one a restore would start from.
        v.newest = n == 0;
        results.push(v);
    }
    results
}

/// One archived WAL segment: complete, its header naming it (the switch segment of a child
/// timeline may carry its parent's).
async fn verify_wal<S: BackupStore>(
    store: &S,
    (bucket, key): (&str, &str),
    seg: WalSegment,
    (switches, size): (&[TimelineSwitch], u64),
) -> Verification {
    let compression = match wal::classify(key) {
        Some(WalFile::Segment(_, c)) => c,
        _ => None,
    };
    let parent = wal::parent_in_switch_segment(seg, switches, size);
    let read = store
        .verify(bucket, key, move |r| {
            verify_wal_segment(r, seg, compression.as_deref(), size, parent)
        })
        .await;
    match read {
        Ok(Err(e @ wal::WalSegmentProblem::UnsupportedCompression(_))) => {
            Verification::not_verified(key, e.to_string())
        }
        other => verdict(key, other, |s| {
            format!(
                "complete segment, header matches its name (system {})",
                s.system_id
            )
        }),
    }
}

/// A snapshot, an RDB, a configuration bundle or a secrets-metadata export, by its own
/// format's checks.
async fn verify_file<S: BackupStore>(
    store: &S,
    bucket: &str,
    key: &str,
    item: Item,
) -> Verification {
    match item {
        Item::Snapshot => verdict(
            key,
            store.verify(bucket, key, verify_vault_snapshot).await,
            |s| {
                format!(
                    "gzip CRC, tar headers and SHA256SUMS match (raft index {})",
                    s.index.map_or("-".into(), |i| i.to_string())
                )
            },
        ),
        Item::Rdb => verdict(key, store.verify(bucket, key, verify_rdb).await, |s| {
            format!(
                "RDB version {}, CRC-64 matches ({} bytes)",
                s.version, s.bytes
            )
        }),
        Item::ConfigBundle => verdict(
            key,
            store.verify(bucket, key, verify_git_bundle).await,
            |b| {
                format!(
                    "Git bundle v{}, {} ref(s), pack of {} object(s), SHA-1 trailer matches",
                    b.version,
                    b.refs.len(),
                    b.objects
                )
            },
        ),
        Item::SecretsMetadataExport => verdict(
            key,
            store.verify(bucket, key, verify_secrets_metadata).await,
            |m| format!("{} secret(s) described, no value in it", m.secrets),
        ),
        Item::BaseBackup(_) | Item::Wal(_) => {
            Verification::failed(key, "not a file verified on its own".into())
        }
    }
}

/// A verifier's answer as a verification: what it found, what is wrong, or that the object
/// could not be read.
fn verdict<T, E: std::fmt::Display>(
    key: &str,
    read: Result<Result<T, E>, hapilot_adapters::AdapterError>,
    found: impl FnOnce(T) -> String,
) -> Verification {
    match read {
        Ok(Ok(t)) => Verification::verified(key, found(t)),
        Ok(Err(e)) => Verification::failed(key, e.to_string()),
        Err(e) => Verification::failed(key, format!("could not read it: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::backups::MemoryBackupStore;
    use hapilot_core::backup::audit::Outcome;
    use hapilot_core::backup::vault::build_vault_snapshot;
    use serde_json::json;

    /// 2026-12-06T12:00:00Z.
    const NOW: i64 = 1_796_558_400;

    fn snapshot(index: u64) -> Vec<u8> {
        build_vault_snapshot(&json!({"Index": index, "Term": 3}), b"raft state").unwrap()
    }

    /// Hourly Vault snapshots for the last six hours, copied to the DR bucket.
    fn stores() -> (MemoryBackupStore, MemoryBackupStore) {
        let (primary, dr) = (MemoryBackupStore::default(), MemoryBackupStore::default());
        for hours_ago in 0..6 {
            let at = NOW - 600 - hours_ago * 3_600;
            let key = format!("vault/raft-{}.snap", epoch_compact(at));
            let bytes = snapshot(100 - hours_ago as u64);
            primary.insert_at("backups", &key, bytes.clone(), at);
            dr.insert_at("backups-dr", &key, bytes, at + 60);
        }
        (primary, dr)
    }

    fn epoch_compact(at: i64) -> String {
        chrono::DateTime::from_timestamp(at, 0)
            .unwrap()
            .format("%Y%m%dT%H%M%SZ")
            .to_string()
    }

    fn input() -> Value {
        json!({
            "policy": {"data_type": "vault", "frequency_secs": 3600, "retention_secs": 604800,
                       "cross_region": true, "grace_secs": 900},
            "target": {"bucket": "backups", "dr_bucket": "backups-dr", "dr_region": "us-west-2",
                       "layout": {"postgres": "postgres/gateway-db/", "vault": "vault/", "redis": "redis/"}},
            "verify": "newest", "now": NOW, "rpo_target_secs": 300,
        })
    }

    #[tokio::test]
    async fn a_sound_newest_snapshot_is_verified_by_content() {
        let (primary, dr) = stores();
        let out = audit_backup_policy(&primary, &dr, input()).await.unwrap();
        eprintln!("{out:#}");
        assert_eq!(out["listed"], 6, "{out:#}");
        let verified = out["verified"].as_array().unwrap();
        assert!(
            verified
                .iter()
                .any(|v| v["newest"] == true && v["ok"] == true),
            "{out:#}"
        );
    }

    fn stored(key: &str, time: i64) -> StoredObject {
        StoredObject {
            key: key.into(),
            size: 1,
            time,
            etag: None,
            sha256: None,
            encrypted: false,
            locked: false,
        }
    }

    #[test]
    fn a_time_in_the_name_dates_a_snapshot_and_one_without_is_left_to_its_metadata() {
        let request: PolicyAuditRequest = serde_json::from_value(input()).unwrap();
        let named = format!("vault/raft-{}.snap", epoch_compact(NOW - 600));
        let mut objects = vec![stored(&named, NOW), stored("vault/raft-latest.snap", NOW)];
        let undated = date_from_metadata(&mut objects, &BTreeMap::new(), &request);
        assert_eq!(
            objects[0].time,
            NOW - 600,
            "the name's time, not LastModified"
        );
        assert_eq!(undated, vec!["vault/raft-latest.snap".to_string()]);
    }

    #[tokio::test]
    async fn a_segment_the_audit_cannot_decompress_is_not_verified_rather_than_failed() {
        let store = MemoryBackupStore::default();
        let key = "postgres/gateway-db/wals/0000000100000000/000000010000000000000003.bz2";
        store.insert_at("backups", key, b"BZh91AY&SY".to_vec(), NOW);
        let seg = WalSegment::parse("000000010000000000000003").unwrap();
        let size = wal::DEFAULT_SEGMENT_SIZE;
        let v = verify_wal(&store, ("backups", key), seg, (&[], size)).await;
        assert_eq!(v.outcome, Outcome::NotVerified, "{v:?}");
        assert!(v.detail.contains("bz2"), "{v:?}");
        let found = content_findings(DataType::PostgresWal, &[v]);
        assert_eq!(found[0].kind, "not_verified", "{found:#?}");
    }

    #[tokio::test]
    async fn a_cut_newest_snapshot_is_a_finding_that_names_it() {
        let (primary, dr) = stores();
        let newest = format!("vault/raft-{}.snap", epoch_compact(NOW - 600));
        let whole = primary
            .read_small("backups", &newest)
            .await
            .unwrap()
            .unwrap();
        primary.insert_at(
            "backups",
            &newest,
            whole[..whole.len() / 2].to_vec(),
            NOW - 600,
        );
        let out = audit_backup_policy(&primary, &dr, input()).await.unwrap();
        eprintln!("{out:#}");
        let findings = out["findings"].as_array().unwrap();
        assert!(
            findings.iter().any(
                |f| f["detail"].as_str().unwrap_or_default().contains(&newest)
                    || f["key"].as_str().unwrap_or_default().contains(&newest)
            ),
            "{out:#}"
        );
    }
}
