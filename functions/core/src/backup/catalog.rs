//! The audit over a bucket listing: which objects are which backups, and what the listing alone
//! can tell (freshness, retention, cross-region copies, encryption, object lock, the WAL chain
//! and the achievable RPO). Content verification of chosen objects is separate (the verifiers
//! beside this module); this is the part that must stay fast for a million objects.
//!
//! Layout (barman-cloud as CloudNativePG writes it, plus the HA document's Vault and Redis):
//! `<pg>/<server>/base/<backup_id>/...`, `<pg>/<server>/wals/<tli+log>/<segment>[.gz]`,
//! `vault/<YYYYMMDDTHHMMSSZ>.snap`, `redis/<YYYYMMDDTHHMMSSZ>.rdb`.

pub use crate::time::parse_compact_time;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::policy::{BackupPolicy, DataType, Finding, Severity, check_freshness, check_retention};
use super::wal::{TimelineSwitch, WalFile, WalSegment};

/// One object of a listing (what ListObjectsV2 + HeadObject/GetObjectAttributes tell).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    /// Object key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Time the backup was taken (from its name or metadata), else its LastModified; epoch s.
    pub time: i64,
    /// The S3 ETag: the MD5 of the bytes for a single-part upload; for a multipart upload
    /// (`<hash>-<parts>`) it depends on the part sizes, so equal bytes can differ.
    pub etag: Option<String>,
    /// The object's stored SHA-256 (`ChecksumSHA256`, from HeadObject), when asked for and
    /// present.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Server-side encryption present (SSE-S3 or SSE-KMS).
    pub encrypted: bool,
    /// Object Lock retention present.
    pub locked: bool,
}

/// Where each data type lives in the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// barman-cloud prefix including the server name, e.g. `postgres/gateway-db/`.
    pub postgres: String,
    /// Vault snapshots prefix.
    pub vault: String,
    /// Redis RDB prefix.
    pub redis: String,
    /// Configuration Git bundles (`*.bundle`) and the deployment's `deployed.json`.
    #[serde(default = "default_config_prefix")]
    pub config: String,
    /// Vault secret-metadata exports (`*.json`).
    #[serde(default = "default_secrets_metadata_prefix")]
    pub secrets_metadata: String,
}

fn default_config_prefix() -> String {
    "config/".into()
}

fn default_secrets_metadata_prefix() -> String {
    "vault-metadata/".into()
}

impl Layout {
    /// The prefix `data_type`'s backups live under (both PostgreSQL types share one).
    pub fn prefix(&self, data_type: DataType) -> &str {
        match data_type {
            DataType::PostgresFull | DataType::PostgresWal => &self.postgres,
            DataType::Vault => &self.vault,
            DataType::Redis => &self.redis,
            DataType::Configuration => &self.config,
            DataType::SecretsMetadata => &self.secrets_metadata,
        }
    }

    /// [`Layout::prefix`], to narrow it (to one server of a destination).
    pub fn prefix_mut(&mut self, data_type: DataType) -> &mut String {
        match data_type {
            DataType::PostgresFull | DataType::PostgresWal => &mut self.postgres,
            DataType::Vault => &mut self.vault,
            DataType::Redis => &mut self.redis,
            DataType::Configuration => &mut self.config,
            DataType::SecretsMetadata => &mut self.secrets_metadata,
        }
    }
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            postgres: "postgres/gateway-db/".into(),
            vault: "vault/".into(),
            redis: "redis/".into(),
            config: default_config_prefix(),
            secrets_metadata: default_secrets_metadata_prefix(),
        }
    }
}

/// The time a backup tool wrote into a file name, epoch seconds: the first timestamp found
/// anywhere in it - `YYYYMMDDTHHMMSS[Z]`, ISO 8601 with `-`/`:` separators
/// (`2026-11-30T22:00:00Z`, `2026-11-30T22-00-00`), 14 digits `YYYYMMDDHHMMSS` (with an optional
/// `-`/`_` between date and time), or epoch seconds (10 digits) or nanoseconds (19 digits).
/// `raft-snapshot-20261130T220000Z.snap`, `dump-1796076600.rdb`, `vault_2026-11-30T22:00:00Z.snap`
/// all work. `None` when the name holds none (the caller falls back to the object's metadata).
/// A backup's time from its user metadata (`x-amz-meta-<key>`): the first key naming a time
/// (`snapshot-time`, `backup_time`, `created-time`, ...) whose value holds one in any form
/// [`time_in_name`] reads.
pub fn time_in_metadata<'a>(metadata: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<i64> {
    let mut pairs: Vec<(&str, &str)> = metadata
        .into_iter()
        .filter(|(k, _)| k.to_ascii_lowercase().contains("time"))
        .collect();
    // Deterministic whatever the map's order.
    pairs.sort();
    pairs.into_iter().find_map(|(_, v)| time_in_name(v.trim()))
}

/// A backup's time from a timestamp anywhere in its name (see the module docs for the forms).
pub fn time_in_name(name: &str) -> Option<i64> {
    let name = name.rsplit('/').next().unwrap_or(name);
    let chars: Vec<char> = name.chars().collect();
    for start in 0..chars.len() {
        if !chars[start].is_ascii_digit() || (start > 0 && chars[start - 1].is_ascii_digit()) {
            continue;
        }
        let run: String = chars[start..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        // Epoch seconds or nanoseconds: a run of exactly 10 or 19 digits, in 2000..2100.
        let epoch = match run.len() {
            10 => run.parse::<i64>().ok(),
            19 => run.parse::<i64>().ok().map(|n| n / 1_000_000_000),
            _ => None,
        };
        if let Some(t) = epoch.filter(|t| (946_684_800..4_102_444_800).contains(t)) {
            return Some(t);
        }
        // Date and time, separators dropped: YYYYMMDD, then T or a separator, then HHMMSS.
        let mut compact = String::new();
        for c in &chars[start..] {
            match c {
                '0'..='9' => compact.push(*c),
                'T' | 't' if compact.len() == 8 => compact.push('T'),
                '-' | ':' | '_' => {}
                _ => break,
            }
            if compact.len() == 15 || (compact.len() == 14 && !compact.contains('T')) {
                break;
            }
        }
        if compact.len() == 14 && !compact.contains('T') {
            compact.insert(8, 'T');
        }
        if let Some(t) = parse_compact_time(&compact) {
            return Some(t);
        }
    }
    None
}

/// A backup found in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A base backup, by its id (found by its `backup.info`).
    BaseBackup(String),
    /// An archived WAL segment.
    Wal(WalSegment),
    /// A Vault raft snapshot.
    Snapshot,
    /// A Redis RDB file.
    Rdb,
    /// A Git bundle of the deployed configuration.
    ConfigBundle,
    /// An export of Vault's secret metadata.
    SecretsMetadataExport,
}

/// Which backup an object key is, under `layout`; `None` for anything else (data tars,
/// manifests, history files: parts of a backup, not backups).
pub fn classify(key: &str, layout: &Layout) -> Option<(DataType, Item)> {
    if let Some(rest) = key.strip_prefix(&layout.postgres) {
        if let Some(base) = rest.strip_prefix("base/") {
            let id = base.split('/').next()?;
            return base
                .ends_with("/backup.info")
                .then(|| (DataType::PostgresFull, Item::BaseBackup(id.to_string())));
        }
        if rest.starts_with("wals/") {
            return match super::wal::classify(key)? {
                WalFile::Segment(s, _) => Some((DataType::PostgresWal, Item::Wal(s))),
                _ => None,
            };
        }
        return None;
    }
    // Any snapshot or RDB file is a backup, whatever the tool named it; its time comes from
    // the name when it holds one ([`time_in_name`]), else from the object.
    if let Some(name) = key.strip_prefix(&layout.vault) {
        return name
            .ends_with(".snap")
            .then_some((DataType::Vault, Item::Snapshot));
    }
    if let Some(name) = key.strip_prefix(&layout.redis) {
        return name
            .ends_with(".rdb")
            .then_some((DataType::Redis, Item::Rdb));
    }
    if let Some(name) = key.strip_prefix(&layout.config) {
        return name
            .ends_with(".bundle")
            .then_some((DataType::Configuration, Item::ConfigBundle));
    }
    if let Some(name) = key.strip_prefix(&layout.secrets_metadata) {
        return name
            .ends_with(".json")
            .then_some((DataType::SecretsMetadata, Item::SecretsMetadataExport));
    }
    None
}

/// Whether `key` is a base backup's main data tar: `data.tar[.gz]` / `data.tgz` as barman-cloud
/// writes it, `base.tar[.gz]` as `pg_basebackup -Ft` does (tablespace tars are not).
pub fn is_base_data_tar(key: &str) -> bool {
    matches!(
        key.rsplit('/').next().unwrap_or_default(),
        "data.tar" | "data.tar.gz" | "base.tar" | "base.tar.gz" | "data.tgz"
    )
}

/// Per data type: what the listing says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataTypeStatus {
    /// The data type.
    pub data_type: DataType,
    /// Backups (base backups, segments, snapshots, RDB files) in the primary bucket.
    pub backups: u64,
    /// Age of the newest, seconds.
    pub newest_age_secs: Option<i64>,
    /// What a restore could reach now, as seconds of loss: for PostgreSQL the newest WAL
    /// segment continuous with the newest base backup, for the others the newest backup.
    pub achievable_rpo_secs: Option<i64>,
    /// PostgreSQL WAL: the spans a point-in-time restore can reach any moment of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restore_windows: Vec<super::windows::RestoreWindow>,
}

/// The audit of one listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogAudit {
    /// Every finding.
    pub findings: Vec<Finding>,
    /// Status per data type.
    pub status: Vec<DataTypeStatus>,
    /// Keys in the window whose DR copy has the same size but nothing comparable in the
    /// listings (multipart ETags), newest first: the handler compares their bytes.
    pub unconfirmed_copies: Vec<String>,
}

/// The finding for DR copies whose bytes differ from the primary's (`count` of them,
/// `key` the first, `why` what differs).
pub fn copy_mismatch(data_type: DataType, key: &str, why: &str, count: usize) -> Finding {
    Finding {
        kind: "dr_copy_checksum_mismatch".into(),
        key: Some(key.to_string()),
        severity: Severity::Critical,
        check: "cross_region".into(),
        data_type,
        message: format!(
            "{count} DR copy(ies) hold other bytes than the backup, e.g. {key}: {why}; a restore in the DR region would read those"
        ),
        fix: "re-copy these objects from the primary bucket and find what wrote to the DR bucket (replication runs one way; nothing else should)".into(),
server: None,
member: None,
}
}

/// What the WAL chain is followed with.
#[derive(Debug, Clone, Copy)]
pub struct ChainContext<'a> {
    /// Each base backup id's first needed WAL segment (its `backup.info` `begin_wal`).
    pub base_backup_starts: &'a BTreeMap<String, WalSegment>,
    /// Each base backup id's last needed segment (`end_wal`): a backup missing anything from
    /// begin to end cannot be restored at all.
    pub base_backup_ends: &'a BTreeMap<String, WalSegment>,
    /// Timeline switches from the archive's `.history` files.
    pub switches: &'a [TimelineSwitch],
    /// WAL segment size.
    pub segment_size: u64,
}

/// Whether a DR copy holds the primary object's bytes, by what the listings tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyMatch {
    /// Same size and the same SHA-256 or single-part ETag.
    Same,
    /// Other bytes: what differs.
    Differs(String),
    /// Same size, nothing comparable (multipart ETags, no stored SHA-256): hash the bytes.
    Unknown,
}

/// Compares a primary object with its DR copy: the stored SHA-256s when both have one, else
/// the ETags when both are single-part uploads (the MD5 of the bytes), else unknown.
pub fn compare_copy(primary: &StoredObject, copy: &StoredObject) -> CopyMatch {
    if primary.size != copy.size {
        return CopyMatch::Differs(format!("{} bytes, the copy {}", primary.size, copy.size));
    }
    if let (Some(a), Some(b)) = (&primary.sha256, &copy.sha256) {
        return if a == b {
            CopyMatch::Same
        } else {
            CopyMatch::Differs(format!("SHA-256 {a}, the copy {b}"))
        };
    }
    fn single(etag: &Option<String>) -> Option<&str> {
        etag.as_deref().filter(|e| !e.contains('-'))
    }
    match (single(&primary.etag), single(&copy.etag)) {
        (Some(a), Some(b)) if a == b => CopyMatch::Same,
        (Some(a), Some(b)) => CopyMatch::Differs(format!("MD5 (ETag) {a}, the copy {b}")),
        _ => CopyMatch::Unknown,
    }
}

/// The SHA-256 (hex) of everything `reader` yields: how two copies are compared when their
/// listings cannot tell.
pub fn sha256_of(mut reader: impl std::io::Read) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Audits the primary bucket's listing (and the DR bucket's, for copies) against `policies`;
/// the WAL chain is followed from the newest base backup as `chain` says.
pub fn audit_catalog(
    primary: &[StoredObject],
    dr: &[StoredObject],
    policies: &[BackupPolicy],
    layout: &Layout,
    chain: ChainContext<'_>,
    now: i64,
) -> CatalogAudit {
    let ChainContext {
        base_backup_starts,
        base_backup_ends,
        switches,
        segment_size,
    } = chain;
    let dr_index: HashMap<&str, &StoredObject> = dr.iter().map(|o| (o.key.as_str(), o)).collect();
    let mut times: BTreeMap<DataType, Vec<i64>> = BTreeMap::new();
    let mut wal: BTreeMap<WalSegment, i64> = BTreeMap::new();
    let mut base_times: BTreeMap<String, i64> = BTreeMap::new();
    let mut findings = Vec::new();
    let mut missing_copies: BTreeMap<DataType, Vec<&str>> = BTreeMap::new();
    let mut differing_copies: BTreeMap<DataType, Vec<(&str, String)>> = BTreeMap::new();
    let mut unconfirmed_copies: Vec<(i64, String)> = Vec::new();
    let mut unencrypted: BTreeMap<DataType, u64> = BTreeMap::new();
    let mut unlocked: BTreeMap<DataType, u64> = BTreeMap::new();
    for object in primary {
        let Some((data_type, item)) = classify(&object.key, layout) else {
            continue;
        };
        let policy = policies.iter().find(|p| p.data_type == data_type);
        // Base backups anchor the WAL chain even when only the WAL policy is audited; the
        // per-object checks belong to the policy of the object's own type.
        if let Item::BaseBackup(id) = &item {
            base_times.insert(id.clone(), object.time);
        }
        if policy.is_none() {
            continue;
        }
        times.entry(data_type).or_default().push(object.time);
        match item {
            Item::Wal(s) => {
                wal.insert(s, object.time);
            }
            Item::BaseBackup(_)
            | Item::Snapshot
            | Item::Rdb
            | Item::ConfigBundle
            | Item::SecretsMetadataExport => {}
        }
        if !object.encrypted {
            *unencrypted.entry(data_type).or_default() += 1;
        }
        if !object.locked {
            *unlocked.entry(data_type).or_default() += 1;
        }
        if let Some(p) = policy
            && p.cross_region
            && now - object.time <= p.retention_secs
        {
            match dr_index
                .get(object.key.as_str())
                .map(|c| compare_copy(object, c))
            {
                None => missing_copies
                    .entry(data_type)
                    .or_default()
                    .push(&object.key),
                Some(CopyMatch::Differs(why)) => differing_copies
                    .entry(data_type)
                    .or_default()
                    .push((&object.key, why)),
                Some(CopyMatch::Unknown) => {
                    unconfirmed_copies.push((object.time, object.key.clone()))
                }
                Some(CopyMatch::Same) => {}
            }
        }
    }
    for (data_type, keys) in &missing_copies {
        findings.push(Finding {
            kind: "dr_copy_missing".into(),
            key: Some(keys[0].to_string()),
            severity: Severity::Critical,
            check: "cross_region".into(),
            data_type: *data_type,
            message: format!(
                "{} backup object(s) in the window have no copy in the DR bucket, e.g. {}",
                keys.len(),
                keys[0]
            ),
            fix: "check the bucket's replication rule (status, IAM role, destination) and re-copy what is missing".into(),
server: None,
member: None,
});
    }
    for (data_type, copies) in &differing_copies {
        findings.push(copy_mismatch(
            *data_type,
            copies[0].0,
            &copies[0].1,
            copies.len(),
        ));
    }
    for (data_type, n) in &unencrypted {
        findings.push(Finding {
            kind: "unencrypted".into(),
            key: None,
            severity: Severity::Critical,
            check: "encryption".into(),
            data_type: *data_type,
            message: format!("{n} backup object(s) are not encrypted at rest"),
            fix: "turn on default bucket encryption (SSE-S3 or SSE-KMS) and re-write these objects"
                .into(),
            server: None,
            member: None,
        });
    }
    let mut status = Vec::new();
    for policy in policies {
        let list = times
            .get(&policy.data_type)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        findings.extend(check_freshness(policy, list, now));
        findings.extend(check_retention(policy, list, now));
        if let Some(n) = unlocked.get(&policy.data_type)
            && *n == list.len() as u64
            && *n > 0
        {
            findings.push(Finding {
                kind: "not_immutable".into(),
                key: None,
                severity: Severity::Warning,
                check: "immutability".into(),
                data_type: policy.data_type,
                message: format!("none of the {n} backup object(s) has an Object Lock retention"),
                fix: "enable S3 Object Lock (governance or compliance) on the backup bucket so backups cannot be deleted early".into(),
server: None,
member: None,
});
        }
        let newest = list.iter().max().copied();
        let achievable = match policy.data_type {
            DataType::PostgresFull | DataType::PostgresWal => postgres_achievable(
                &base_times,
                base_backup_starts,
                &wal,
                switches,
                segment_size,
            )
            .map(|t| now - t),
            _ => newest.map(|t| now - t),
        };
        let mut restore_windows = Vec::new();
        if policy.data_type == DataType::PostgresWal {
            let canonical =
                |s: WalSegment| format!("{}wals/{}/{s}", layout.postgres, s.directory());
            // The newest base backup's chain: what a restore to "now" replays.
            let mut newest_gap = None;
            if let Some((newest_base, start)) = newest_base(&base_times, base_backup_starts) {
                let archived: BTreeSet<WalSegment> = wal.keys().copied().collect();
                let chain = super::wal::follow_chain(start, &archived, switches, segment_size);
                if let Some(missing) = chain.first_missing {
                    newest_gap = Some(missing);
                    findings.push(Finding {
                        kind: "wal_gap".into(),
                        key: Some(canonical(missing)),
                        severity: Severity::Critical,
                        check: "wal_chain".into(),
                        data_type: DataType::PostgresWal,
                        message: format!(
                            "WAL chain from base backup {newest_base} breaks at {missing}: {} later segment(s) cannot be replayed",
                            chain.stranded
                        ),
                        fix: "check archive_command / barman-cloud-wal-archive errors; take a new base backup to start a clean chain".into(),
server: None,
member: None,
});
                }
            }
            let spans: Vec<super::windows::BaseBackupSpan> = base_times
                .iter()
                .filter_map(|(id, t)| {
                    Some(super::windows::BaseBackupSpan {
                        id: id.clone(),
                        end_time: *t,
                        begin_wal: *base_backup_starts.get(id)?,
                        end_wal: *base_backup_ends.get(id)?,
                    })
                })
                .collect();
            let coverage = super::windows::restore_coverage(&spans, &wal, switches, segment_size);
            for (id, missing) in &coverage.unrestorable {
                findings.push(Finding {
                    kind: "backup_unrestorable".into(),
                    key: Some(canonical(*missing)),
                    severity: Severity::Critical,
                    check: "wal_chain".into(),
                    data_type: DataType::PostgresWal,
                    message: format!(
                        "base backup {id} cannot be restored: {missing}, inside its own begin..end WAL range, is missing"
                    ),
                    fix: "take a new base backup; find why the archive lost that segment".into(),
server: None,
member: None,
});
            }
            // Gaps after older base backups (the newest one's is reported above): the
            // retention window promises point-in-time recovery across them.
            for missing in coverage.gaps.iter().filter(|m| Some(**m) != newest_gap) {
                findings.push(Finding {
                    kind: "wal_gap".into(),
                    key: Some(canonical(*missing)),
                    severity: Severity::Critical,
                    check: "wal_chain".into(),
                    data_type: DataType::PostgresWal,
                    message: format!(
                        "WAL gap at {missing}: no point-in-time restore between it and the next base backup"
                    ),
                    fix: "check archive_command / barman-cloud-wal-archive errors for that time; the retention window's promise is broken until newer base backups age it out".into(),
server: None,
member: None,
});
            }
            restore_windows = coverage.windows;
        }
        status.push(DataTypeStatus {
            data_type: policy.data_type,
            backups: list.len() as u64,
            newest_age_secs: newest.map(|t| now - t),
            achievable_rpo_secs: achievable,
            restore_windows,
        });
    }
    unconfirmed_copies.sort_by(|a, b| b.cmp(a));
    CatalogAudit {
        findings,
        status,
        unconfirmed_copies: unconfirmed_copies.into_iter().map(|(_, k)| k).collect(),
    }
}

fn newest_base(
    base_times: &BTreeMap<String, i64>,
    starts: &BTreeMap<String, WalSegment>,
) -> Option<(String, WalSegment)> {
    base_times
        .iter()
        .filter_map(|(id, t)| starts.get(id).map(|s| (*t, id.clone(), *s)))
        .max()
        .map(|(_, id, s)| (id, s))
}

/// Time of the newest WAL segment reachable without a gap from the newest base backup.
fn postgres_achievable(
    base_times: &BTreeMap<String, i64>,
    starts: &BTreeMap<String, WalSegment>,
    wal: &BTreeMap<WalSegment, i64>,
    switches: &[TimelineSwitch],
    segment_size: u64,
) -> Option<i64> {
    let (_, start) = newest_base(base_times, starts)?;
    let archived: BTreeSet<WalSegment> = wal.keys().copied().collect();
    let reached = super::wal::follow_chain(start, &archived, switches, segment_size).reached?;
    wal.get(&reached).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::policy::default_policies;
    use crate::backup::wal::DEFAULT_SEGMENT_SIZE;

    const NOW: i64 = 1_795_600_000;

    fn object(key: &str, age: i64) -> StoredObject {
        StoredObject {
            key: key.into(),
            size: 100,
            time: NOW - age,
            etag: Some("ab".into()),
            sha256: None,
            encrypted: true,
            locked: true,
        }
    }

    #[test]
    fn a_time_is_read_from_metadata_keys_naming_one() {
        let at = time_in_metadata([("backup-time", "2026-12-01T01:00:00Z"), ("owner", "ops")]);
        assert_eq!(at, time_in_name("2026-12-01T01:00:00Z"));
        assert!(at.is_some());
        assert_eq!(
            time_in_metadata([("SnapshotTime", "1796090000")]),
            Some(1_796_090_000)
        );
        assert_eq!(time_in_metadata([("owner", "2026-12-01T01:00:00Z")]), None);
        assert_eq!(time_in_metadata([("backup-time", "soon")]), None);
    }

    #[test]
    fn copies_are_compared_by_sha256_then_single_part_etags_else_unknown() {
        let a = object("vault/20261201T000000Z.snap", 60);
        let mut b = a.clone();
        assert_eq!(compare_copy(&a, &b), CopyMatch::Same);
        b.etag = Some("cd".into());
        assert!(matches!(compare_copy(&a, &b), CopyMatch::Differs(_)));
        // Multipart ETags say nothing about the bytes.
        b.etag = Some("ef-2".into());
        assert_eq!(compare_copy(&a, &b), CopyMatch::Unknown);
        let (mut a2, mut b2) = (a.clone(), b.clone());
        a2.sha256 = Some("s1".into());
        b2.sha256 = Some("s1".into());
        assert_eq!(compare_copy(&a2, &b2), CopyMatch::Same);
        b2.sha256 = Some("s2".into());
        assert!(matches!(compare_copy(&a2, &b2), CopyMatch::Differs(_)));
        b.size = 99;
        assert!(matches!(compare_copy(&a, &b), CopyMatch::Differs(_)));
        assert_eq!(
            sha256_of(&b"abc"[..]).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn healthy_catalog() -> (Vec<StoredObject>, BTreeMap<String, WalSegment>) {
        let mut objects = vec![object(
            "postgres/gateway-db/base/20261124T000000/backup.info",
            3 * 3600,
        )];
        for i in 0..30 {
            objects.push(object(
                &format!("postgres/gateway-db/base/2026{i:02}/backup.info"),
                i * 86_400 + 3 * 3600,
            ));
        }
        let mut seg = WalSegment::parse("000000010000000000000010").unwrap();
        // A week of WAL, one segment a minute (the WAL policy keeps 7 days).
        let minutes = 7 * 24 * 60;
        for i in 0..minutes {
            objects.push(object(
                &format!("postgres/gateway-db/wals/{}/{seg}.gz", seg.directory()),
                (minutes - i) * 60,
            ));
            seg = seg.next(DEFAULT_SEGMENT_SIZE);
        }
        for h in 0..(7 * 24) {
            objects.push(object(
                &format!(
                    "vault/202611{:02}T{:02}0000Z.snap",
                    25 - h / 24,
                    23 - h % 24
                ),
                h * 3600 + 600,
            ));
        }
        for h in 0..24 {
            objects.push(object(
                &format!("redis/20261125T{:02}0000Z.rdb", 23 - h),
                h * 3600 + 600,
            ));
        }
        // The newest base backup needs WAL from a segment written 3 hours ago.
        let mut start = WalSegment::parse("000000010000000000000010").unwrap();
        for _ in 0..(minutes - 180) {
            start = start.next(DEFAULT_SEGMENT_SIZE);
        }
        let starts = BTreeMap::from([("20261124T000000".to_string(), start)]);
        (objects, starts)
    }

    #[test]
    fn compact_times_parse() {
        assert_eq!(parse_compact_time("19700101T000000Z"), Some(0));
        assert_eq!(parse_compact_time("20261125T093000"), Some(1_795_599_000));
        assert_eq!(parse_compact_time("20261325T093000"), None);
    }

    #[test]
    fn a_clean_catalog_has_no_findings() {
        let (objects, starts) = healthy_catalog();
        let audit = audit_catalog(
            &objects,
            &objects,
            &default_policies()[..4],
            &Layout::default(),
            ChainContext {
                base_backup_starts: &starts,
                base_backup_ends: &starts,
                switches: &[],
                segment_size: DEFAULT_SEGMENT_SIZE,
            },
            NOW,
        );
        assert_eq!(audit.findings, vec![], "{:#?}", audit.findings);
        let wal = audit
            .status
            .iter()
            .find(|s| s.data_type == DataType::PostgresWal)
            .unwrap();
        assert_eq!(wal.achievable_rpo_secs, Some(60));
    }

    #[test]
    fn each_breakage_gives_its_finding() {
        let (objects, starts) = healthy_catalog();
        let run = |primary: &[StoredObject], dr: &[StoredObject]| {
            audit_catalog(
                primary,
                dr,
                &default_policies()[..4],
                &Layout::default(),
                ChainContext {
                    base_backup_starts: &starts,
                    base_backup_ends: &starts,
                    switches: &[],
                    segment_size: DEFAULT_SEGMENT_SIZE,
                },
                NOW,
            )
            .findings
            .into_iter()
            .map(|f| (f.check, f.data_type))
            .collect::<Vec<_>>()
        };
        // A missing WAL segment.
        let hole = starts["20261124T000000"]
            .next(DEFAULT_SEGMENT_SIZE)
            .next(DEFAULT_SEGMENT_SIZE)
            .to_string();
        let gap: Vec<_> = objects
            .iter()
            .filter(|o| !o.key.contains(&hole))
            .cloned()
            .collect();
        assert_eq!(
            run(&gap, &gap),
            vec![("wal_chain".to_string(), DataType::PostgresWal)]
        );
        // A missing DR copy.
        let dr: Vec<_> = objects
            .iter()
            .filter(|o| !o.key.starts_with("vault/20261125T23"))
            .cloned()
            .collect();
        assert_eq!(
            run(&objects, &dr),
            vec![("cross_region".to_string(), DataType::Vault)]
        );
        // Stale Redis (nothing in the last 2 hours).
        let stale: Vec<_> = objects
            .iter()
            .filter(|o| !(o.key.starts_with("redis/") && NOW - o.time < 7200))
            .cloned()
            .collect();
        assert!(run(&stale, &stale).contains(&("freshness".to_string(), DataType::Redis)));
        // Unencrypted objects.
        let mut plain = objects.clone();
        plain[0].encrypted = false;
        assert!(run(&plain, &plain).contains(&("encryption".to_string(), DataType::PostgresFull)));
    }

    #[test]
    fn backup_times_come_from_the_names_the_tools_write() {
        let at = parse_compact_time("20261130T220000Z").unwrap();
        for name in [
            "vault/20261130T220000Z.snap",
            "vault/raft-snapshot-20261130T220000Z.snap",
            "vault/vault_2026-11-30T22:00:00Z.snap",
            "vault/snap-2026-11-30T22-00-00.snap",
            "redis/dump-20261130-220000.rdb",
            "redis/dump_20261130220000.rdb",
            "redis/dump-1796076000.rdb",
            "redis/dump-1796076000000000000.rdb",
        ] {
            assert_eq!(time_in_name(name), Some(at), "{name}");
        }
        for name in [
            "redis/dump.rdb",
            "vault/snapshot-7.snap",
            "redis/dump-20261130.rdb",
        ] {
            assert_eq!(time_in_name(name), None, "{name}");
        }
        let layout = Layout::default();
        assert_eq!(
            classify("redis/dump.rdb", &layout),
            Some((DataType::Redis, Item::Rdb))
        );
        assert_eq!(
            classify("vault/raft-snapshot-x.snap", &layout),
            Some((DataType::Vault, Item::Snapshot))
        );
        assert_eq!(classify("vault/notes.txt", &layout), None);
    }
}
