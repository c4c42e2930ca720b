//! DR restore: which backups a restore to a point in time needs (the restore point), decided
//! from the backup catalog before anything is touched, and a plain "no" with the closest
//! reachable point when the target cannot be reached.

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::backup::catalog::Layout;
use crate::backup::info::parse_pg_time;
use crate::backup::wal::{TimelineSwitch, WalSegment, chain_path, follow_chain};

/// What the dr-restore state machine is asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// `"latest"` (default) or an RFC 3339 timestamp to recover to (PITR).
    #[serde(default = "latest")]
    pub target: String,
    /// The region restored into (its `restore` and `vault` targets in `HAPILOT_REGIONS`).
    pub region: String,
    /// Bucket to restore from (default: `HAPILOT_DR_BACKUP_BUCKET`, the DR region's copy).
    #[serde(default)]
    pub bucket: Option<String>,
    /// Bucket layout.
    #[serde(default)]
    pub layout: Option<Layout>,
    /// Restore PostgreSQL (default true).
    #[serde(default = "yes")]
    pub postgres: bool,
    /// Restore Vault (default true).
    #[serde(default = "yes")]
    pub vault: bool,
    /// The data check: the newest row time of this table and column, e.g.
    /// `{"table": "spend_logs", "column": "created_at"}` (the HA document's `max(created_at)`).
    #[serde(default)]
    pub data_check: Option<DataCheck>,
    /// How long PostgreSQL may take to finish recovery, seconds (default 900: the Critical RTO).
    #[serde(default)]
    pub readiness_timeout_seconds: Option<u64>,
    /// Offer the DNS switch to the restored region through an approval (default false).
    #[serde(default)]
    pub offer_dns_switch: bool,
    /// WAL segment size (default 16 MiB).
    #[serde(default)]
    pub wal_segment_size: Option<u64>,
    /// A restore test's `"random"` target: the seed of the moment drawn (default: from the
    /// execution's name), so a test can be repeated exactly.
    #[serde(default)]
    pub seed: Option<u64>,
    /// A restore test also loads the newest Redis RDB at or before the moment into a scratch
    /// redis-server on its scratch host (default: yes for a test). A DR restore never restores
    /// Redis (the gateway's cache and counters rebuild themselves).
    #[serde(default)]
    pub redis: Option<bool>,
}

fn latest() -> String {
    "latest".into()
}

fn yes() -> bool {
    true
}

/// The data check of a restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataCheck {
    /// Table (optionally schema-qualified).
    pub table: String,
    /// Timestamp column.
    pub column: String,
}

impl DataCheck {
    /// Validates the identifiers: they end up in SQL, so only plain names are accepted.
    pub fn validate(&self) -> Result<(), CoreError> {
        let plain = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|p| {
                    !p.is_empty()
                        && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !p.starts_with(|c: char| c.is_ascii_digit())
                })
        };
        if !plain(&self.table) {
            return Err(CoreError::invalid(
                "data_check.table",
                "must be a plain (schema.)table name",
            ));
        }
        if !plain(&self.column) || self.column.contains('.') {
            return Err(CoreError::invalid(
                "data_check.column",
                "must be a plain column name",
            ));
        }
        Ok(())
    }

    /// The SQL that reads the newest row time and the row count: `$1` (float8 epoch seconds,
    /// or NULL for every row) bounds the rows counted when `bounded`. The identifiers are
    /// validated first, then quoted, so mixed-case names (LiteLLM's `"LiteLLM_SpendLogs"` and
    /// `"startTime"`) mean exactly what they say: unquoted, PostgreSQL would fold them to lower
    /// case and find no such relation.
    pub fn newest_row_sql(&self, bounded: bool) -> Result<String, CoreError> {
        self.validate()?;
        let table = quoted_name(&self.table);
        let column = quoted_name(&self.column);
        let filter = if bounded {
            format!(" WHERE $1::float8 IS NULL OR {column} <= to_timestamp($1::float8 + 0.000001)")
        } else {
            String::new()
        };
        Ok(format!(
            "SELECT extract(epoch FROM max({column}))::float8, count(*) FROM {table}{filter}"
        ))
    }
}

/// What the backup job counted: rows of a table whose time column is at or before `at`
/// (counted once `at` was past), recorded as `<postgres prefix>manifests/<time>.json`:
/// `{"at": <epoch s>, "tables": {"<table>": {"column": "<column>", "rows": N}}}`. A restore to
/// any moment after `at` must hold exactly those rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowManifest {
    /// Its object key.
    pub key: String,
    /// The moment counted up to (epoch seconds).
    pub at: i64,
    /// The table.
    pub table: String,
    /// Its time column.
    pub column: String,
    /// Rows with `column <= at`.
    pub rows: i64,
}

impl RowManifest {
    /// The entry for `check`'s table in a manifest `body` stored at `key`, when it names that
    /// table with the same column; an error when the body is not a manifest.
    pub fn for_check(key: &str, body: &[u8], check: &DataCheck) -> Result<Option<Self>, String> {
        let doc: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| format!("{key}: {e}"))?;
        let at = doc["at"]
            .as_i64()
            .ok_or_else(|| format!("{key}: no \"at\" (epoch seconds)"))?;
        let entry = &doc["tables"][&check.table];
        match (entry["column"].as_str(), entry["rows"].as_i64()) {
            (Some(column), Some(rows)) if column == check.column => Ok(Some(RowManifest {
                key: key.to_string(),
                at,
                table: check.table.clone(),
                column: column.to_string(),
                rows,
            })),
            _ => Ok(None),
        }
    }

    /// The restored copy's count to compare: rows of the table with the column at or before
    /// `at` (`$1`, epoch seconds).
    pub fn count_sql(&self) -> Result<String, CoreError> {
        let check = DataCheck {
            table: self.table.clone(),
            column: self.column.clone(),
        };
        check.validate()?;
        Ok(format!(
            "SELECT count(*) FROM {} WHERE {} <= to_timestamp($1::float8 + 0.000001)",
            quoted_name(&check.table),
            quoted_name(&check.column)
        ))
    }
}

/// A restore's real RPO: how far before the target time (epoch seconds) the newest restored row
/// is; never negative (a row stamped after the target, by a skewed clock, loses nothing). `None`
/// when either is unknown (an empty table, a restore to `latest`).
pub fn restored_rpo_secs(newest_row_epoch: Option<f64>, target_epoch: Option<i64>) -> Option<f64> {
    match (newest_row_epoch, target_epoch) {
        (Some(newest), Some(target)) => Some((target as f64 - newest).max(0.0)),
        _ => None,
    }
}

/// The newest manifest at or before `target` among `(key, at)` (the time in its name).
pub fn manifest_for(manifests: &[(String, i64)], target: i64) -> Option<&(String, i64)> {
    manifests
        .iter()
        .filter(|(_, at)| *at <= target)
        .max_by_key(|(_, at)| *at)
}

/// A PostgreSQL name quoted part by part (`schema.table` -> `"schema"."table"`), so mixed case
/// means what it says. A quote inside a part is doubled, as PostgreSQL requires.
pub fn quoted_name(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// Where to recover to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "epoch")]
pub enum RestoreTarget {
    /// As far as the archive reaches.
    Latest,
    /// This moment (epoch seconds).
    Time(i64),
}

impl RestoreTarget {
    /// Parses `"latest"` or an RFC 3339 / PostgreSQL timestamp.
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        if text.trim().eq_ignore_ascii_case("latest") {
            return Ok(RestoreTarget::Latest);
        }
        parse_pg_time(text).map(RestoreTarget::Time).ok_or_else(|| {
            CoreError::invalid(
                "target",
                format!("{text:?} is neither \"latest\" nor a timestamp like 2026-11-25T09:30:00Z"),
            )
        })
    }
}

/// A base backup of the catalog, from its `backup.info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogBaseBackup {
    /// barman backup id.
    pub id: String,
    /// Its directory (`<prefix>/base/<id>/`).
    pub prefix: String,
    /// First WAL segment it needs.
    pub begin_wal: WalSegment,
    /// Last WAL segment it needs to be consistent.
    pub end_wal: WalSegment,
    /// When it ended (epoch seconds).
    pub end_time: i64,
}

/// An archived WAL segment of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogWal {
    /// The segment.
    pub segment: WalSegment,
    /// Its object key.
    pub key: String,
    /// When it was archived (epoch seconds): every record in it was written before.
    pub archived: i64,
}

/// What the restore point is chosen from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreCatalog {
    /// DONE base backups.
    pub base_backups: Vec<CatalogBaseBackup>,
    /// Archived segments.
    pub wal: Vec<CatalogWal>,
    /// Timeline switches (from `.history` files).
    pub switches: Vec<TimelineSwitch>,
    /// Vault snapshots: key and time.
    pub snapshots: Vec<(String, i64)>,
    /// Redis RDB files: key and time.
    pub rdbs: Vec<(String, i64)>,
    /// The backup job's row-count manifests: key and the moment they count up to.
    pub manifests: Vec<(String, i64)>,
}

/// The chosen backups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePoint {
    /// The target.
    pub target: RestoreTarget,
    /// The base backup restored.
    pub base_backup: CatalogBaseBackup,
    /// Every WAL segment replayed, in order.
    pub wal: Vec<CatalogWal>,
    /// Recovery can reach at least this moment (the newest replayed segment's archive time
    /// bounds it from above; for `latest`, it is what the restore will contain at most).
    pub reachable_until: i64,
    /// The Vault snapshot restored, when there is one at or before the target.
    pub vault_snapshot: Option<(String, i64)>,
    /// The Redis RDB a restore test loads, when there is one at or before the target.
    #[serde(default)]
    pub redis_rdb: Option<(String, i64)>,
}

/// Why a target cannot be reached, with the closest point that can.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{reason}")]
pub struct Unreachable {
    /// What is missing, in plain words.
    pub reason: String,
    /// The closest reachable point (epoch seconds), if any.
    pub closest: Option<i64>,
}

/// Chooses the newest base backup that ended before the target and the WAL that reaches it.
pub fn resolve_restore_point(
    catalog: &RestoreCatalog,
    target: RestoreTarget,
    segment_size: u64,
) -> Result<RestorePoint, Unreachable> {
    let at = match target {
        RestoreTarget::Latest => i64::MAX,
        RestoreTarget::Time(t) => t,
    };
    let earliest = catalog.base_backups.iter().map(|b| b.end_time).min();
    let Some(base) = catalog
        .base_backups
        .iter()
        .filter(|b| b.end_time <= at)
        .max_by_key(|b| b.end_time)
    else {
        return Err(Unreachable {
            reason: match earliest {
                Some(_) => "the target is older than every base backup (too old)".into(),
                None => "there is no usable (DONE) base backup".into(),
            },
            closest: earliest,
        });
    };
    let archived: std::collections::BTreeSet<WalSegment> =
        catalog.wal.iter().map(|w| w.segment).collect();
    let chain = follow_chain(base.begin_wal, &archived, &catalog.switches, segment_size);
    let Some(reached) = chain.reached.filter(|r| *r >= base.end_wal) else {
        return Err(Unreachable {
            reason: format!(
                "base backup {} cannot be made consistent: WAL segment {} is missing",
                base.id,
                chain.first_missing.unwrap_or(base.begin_wal)
            ),
            closest: None,
        });
    };
    // The segments of the chain, in replay order (the path ends at `reached`).
    let by_segment: std::collections::BTreeMap<WalSegment, &CatalogWal> =
        catalog.wal.iter().map(|w| (w.segment, w)).collect();
    let wal: Vec<CatalogWal> =
        chain_path(base.begin_wal, &archived, &catalog.switches, segment_size)
            .into_iter()
            .filter_map(|s| by_segment.get(&s).map(|w| (*w).clone()))
            .collect();
    let reachable_until = wal
        .iter()
        .find(|w| w.segment == reached)
        .map_or(base.end_time, |w| w.archived)
        .max(base.end_time);
    if let RestoreTarget::Time(t) = target
        && reachable_until < t
    {
        return Err(Unreachable {
            reason: match chain.first_missing {
                Some(missing) if chain.stranded > 0 => format!(
                    "the WAL archive has a gap at {missing}: recovery cannot pass it (target in a WAL gap)"
                ),
                _ => "the target is newer than the newest archived WAL (too new)".into(),
            },
            closest: Some(reachable_until),
        });
    }
    let newest_by = |files: &[(String, i64)]| {
        files
            .iter()
            .filter(|(_, time)| *time <= at)
            .max_by_key(|(_, time)| *time)
            .cloned()
    };
    Ok(RestorePoint {
        target,
        base_backup: base.clone(),
        wal,
        reachable_until,
        vault_snapshot: newest_by(&catalog.snapshots),
        redis_rdb: newest_by(&catalog.rdbs),
    })
}

/// How a restore test's target was drawn: uniformly inside the restore window, from a seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RandomTarget {
    /// The seed (repeat the test exactly with it).
    pub seed: u64,
    /// The window's start: the oldest base backup's end (epoch seconds).
    pub earliest: i64,
    /// The window's end: as far as the archive reaches (epoch seconds).
    pub latest: i64,
    /// The moment drawn.
    pub chosen: i64,
}

/// Draws a restore test's target inside the catalog's restore window: from the oldest DONE
/// base backup's end to as far as the WAL archive reaches from the newest one. The draw is a
/// pure function of `seed` (splitmix64), so the journal's seed repeats the test exactly.
pub fn random_target(
    catalog: &RestoreCatalog,
    seed: u64,
    segment_size: u64,
) -> Result<RandomTarget, Unreachable> {
    let latest =
        resolve_restore_point(catalog, RestoreTarget::Latest, segment_size)?.reachable_until;
    let earliest = catalog
        .base_backups
        .iter()
        .map(|b| b.end_time)
        .min()
        .unwrap_or(latest)
        .min(latest);
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let span = (latest - earliest) as u64 + 1;
    Ok(RandomTarget {
        seed,
        earliest,
        latest,
        chosen: earliest + (z % span) as i64,
    })
}

/// A seed from a text (the execution's name): FNV-1a.
pub fn seed_of(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// How often a restore polls PostgreSQL for the end of recovery, seconds.
pub const READINESS_POLL_SECS: u64 = 2;

/// The recovery wait of a request: (poll seconds, polls), from `readiness_timeout_seconds`
/// (default 900 s, the Critical RTO; 10 s to a day).
pub fn readiness_polls(timeout_secs: Option<u64>) -> Result<(u64, u64), CoreError> {
    let timeout = timeout_secs.unwrap_or(900);
    if !(10..=86_400).contains(&timeout) {
        return Err(CoreError::invalid(
            "readiness_timeout_seconds",
            "must be 10 to 86400",
        ));
    }
    Ok((READINESS_POLL_SECS, timeout.div_ceil(READINESS_POLL_SECS)))
}

/// A base backup's `backup.info` as a restore candidate, and the WAL segment size it records;
/// None when it is unusable (unreadable, not DONE, no end time): such a backup is never
/// restored.
pub fn base_backup_candidate(
    id: &str,
    info_key: &str,
    info_text: &str,
) -> Option<(CatalogBaseBackup, Option<u64>)> {
    let info = crate::backup::info::BackupInfo::parse(info_text).ok()?;
    if !info.is_done() {
        return None;
    }
    let end_time = info.end_epoch().ok()?;
    Some((
        CatalogBaseBackup {
            id: id.to_string(),
            prefix: info_key.trim_end_matches("backup.info").to_string(),
            begin_wal: info.begin_wal,
            end_wal: info.end_wal,
            end_time,
        },
        info.xlog_segment_size,
    ))
}

/// The WAL segment size to restore with: the request's, else what the newest usable
/// `backup.info` records, else PostgreSQL's default 16 MiB.
pub fn segment_size(requested: Option<u64>, recorded: &[(i64, u64)]) -> u64 {
    requested
        .or_else(|| recorded.iter().max_by_key(|(t, _)| *t).map(|(_, s)| *s))
        .unwrap_or(crate::backup::wal::DEFAULT_SEGMENT_SIZE)
}

/// The dr-restore run's plan: everything the later steps need, decided before anything is
/// touched (what `plan-restore` answers and journals).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePlan {
    /// The region restored into.
    pub region: String,
    /// Its SetIdentifier (for the offered DNS switch).
    pub set_identifier: String,
    /// A restore test: laid down on the region's scratch target (`restore_test`) and torn
    /// down after, never offered traffic.
    #[serde(default)]
    pub scratch: bool,
    /// A restore test's random target: how it was drawn.
    #[serde(default)]
    pub random: Option<RandomTarget>,
    /// The bucket restored from.
    pub bucket: String,
    /// The target as asked.
    pub target: String,
    /// The target moment, None for `latest`.
    pub target_epoch: Option<i64>,
    /// What the data check's RPO is measured against: the target, or now for `latest`.
    pub rpo_reference_epoch: i64,
    /// PostgreSQL's `recovery_target_time`, in UTC (None for `latest`).
    pub recovery_target_time: Option<String>,
    /// The chosen backups.
    pub restore_point: RestorePoint,
    /// The base backup's data tar.
    pub base_data_key: String,
    /// Its `backup.info`.
    pub base_info_key: String,
    /// Every `.history` file of the catalog.
    pub history_keys: Vec<String>,
    /// Restore PostgreSQL.
    pub postgres: bool,
    /// Restore Vault (asked, and a snapshot exists at or before the target).
    pub vault: bool,
    /// The Vault snapshot's key.
    pub vault_snapshot: Option<String>,
    /// Load Redis' RDB on the scratch host (a restore test that asked, with an RDB at or
    /// before the target).
    #[serde(default)]
    pub redis: bool,
    /// The RDB's key.
    #[serde(default)]
    pub redis_rdb: Option<String>,
    /// The data check.
    pub data_check: Option<DataCheck>,
    /// The backup job's row count for the data table up to a moment at or before the target,
    /// when it recorded one: the restored copy must hold exactly those rows.
    #[serde(default)]
    pub row_manifest: Option<RowManifest>,
    /// Offer the DNS switch.
    pub offer_dns_switch: bool,
    /// WAL segment size.
    pub wal_segment_size: u64,
    /// The recovery wait.
    pub readiness: ReadinessPolls,
    /// One line for people.
    pub summary: String,
}

/// How the restore waits for recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessPolls {
    /// Seconds between polls.
    pub poll_seconds: u64,
    /// Polls at most.
    pub max_polls: u64,
}

/// Where the chosen backups are, as the store lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInputs {
    /// The region's SetIdentifier.
    pub set_identifier: String,
    /// The bucket.
    pub bucket: String,
    /// The base backup's data tar.
    pub base_data_key: String,
    /// Every `.history` file.
    pub history_keys: Vec<String>,
    /// WAL segment size.
    pub wal_segment_size: u64,
    /// (poll seconds, polls).
    pub polls: (u64, u64),
    /// Now (epoch seconds): the RPO reference of `latest`.
    pub now: i64,
}

impl RestorePlan {
    /// The plan of `request` with the chosen `point`.
    pub fn new(request: &RestoreRequest, point: RestorePoint, inputs: PlanInputs) -> Self {
        use crate::time::{epoch_text, pg_utc_timestamp};
        let target_epoch = match point.target {
            RestoreTarget::Time(t) => Some(t),
            RestoreTarget::Latest => None,
        };
        let summary = format!(
            "base backup {} (ended {}) + {} WAL segment(s) reaching {}{}",
            point.base_backup.id,
            epoch_text(point.base_backup.end_time),
            point.wal.len(),
            epoch_text(point.reachable_until),
            point
                .vault_snapshot
                .as_ref()
                .map(|(k, _)| format!("; Vault snapshot {k}"))
                .unwrap_or_default()
        );
        RestorePlan {
            region: request.region.clone(),
            set_identifier: inputs.set_identifier,
            scratch: false,
            random: None,
            bucket: inputs.bucket,
            target: request.target.clone(),
            target_epoch,
            rpo_reference_epoch: target_epoch.unwrap_or(inputs.now),
            recovery_target_time: target_epoch.map(pg_utc_timestamp),
            base_data_key: inputs.base_data_key,
            base_info_key: format!("{}backup.info", point.base_backup.prefix),
            history_keys: inputs.history_keys,
            postgres: request.postgres,
            vault: request.vault && point.vault_snapshot.is_some(),
            vault_snapshot: point.vault_snapshot.as_ref().map(|(k, _)| k.clone()),
            redis: request.redis == Some(true) && point.redis_rdb.is_some(),
            redis_rdb: point.redis_rdb.as_ref().map(|(k, _)| k.clone()),
            data_check: request.data_check.clone(),
            row_manifest: None,
            offer_dns_switch: request.offer_dns_switch,
            wal_segment_size: inputs.wal_segment_size,
            readiness: ReadinessPolls {
                poll_seconds: inputs.polls.0,
                max_polls: inputs.polls.1,
            },
            summary,
            restore_point: point,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restored_rpo_is_the_gap_before_the_target_and_unknown_without_both() {
        assert_eq!(restored_rpo_secs(Some(1_000.5), Some(1_060)), Some(59.5));
        assert_eq!(restored_rpo_secs(Some(1_070.0), Some(1_060)), Some(0.0));
        assert_eq!(restored_rpo_secs(None, Some(1_060)), None);
        assert_eq!(restored_rpo_secs(Some(1_000.0), None), None);
    }

    #[test]
    fn the_row_manifest_names_its_table_and_the_newest_before_the_target_is_chosen() {
        let check = DataCheck {
            table: "spend".into(),
            column: "created_at".into(),
        };
        let body = br#"{"at": 1000, "tables": {"spend": {"column": "created_at", "rows": 150}, "other": {"column": "t", "rows": 1}}}"#;
        let m = RowManifest::for_check("postgres/gateway-db/manifests/x.json", body, &check)
            .unwrap()
            .unwrap();
        assert_eq!((m.at, m.rows), (1000, 150));
        assert!(
            m.count_sql()
                .unwrap()
                .contains(r#"FROM "spend" WHERE "created_at" <= "#)
        );
        let other_column =
            br#"{"at": 1000, "tables": {"spend": {"column": "updated_at", "rows": 1}}}"#;
        assert_eq!(RowManifest::for_check("k", other_column, &check), Ok(None));
        assert!(RowManifest::for_check("k", b"{}", &check).is_err());
        let manifests = vec![
            ("a".to_string(), 100),
            ("b".to_string(), 300),
            ("c".to_string(), 200),
        ];
        assert_eq!(manifest_for(&manifests, 250).unwrap().0, "c");
        assert_eq!(manifest_for(&manifests, 99), None);
    }
    use crate::backup::wal::DEFAULT_SEGMENT_SIZE;

    fn seg(n: u32) -> WalSegment {
        WalSegment {
            timeline: 1,
            log: 0,
            seg: n,
        }
    }

    fn catalog(segments: &[u32]) -> RestoreCatalog {
        RestoreCatalog {
            base_backups: vec![
                CatalogBaseBackup {
                    id: "old".into(),
                    prefix: "pg/base/old/".into(),
                    begin_wal: seg(2),
                    end_wal: seg(2),
                    end_time: 1_000,
                },
                CatalogBaseBackup {
                    id: "new".into(),
                    prefix: "pg/base/new/".into(),
                    begin_wal: seg(5),
                    end_wal: seg(5),
                    end_time: 5_000,
                },
            ],
            wal: segments
                .iter()
                .map(|n| CatalogWal {
                    segment: seg(*n),
                    key: format!("pg/wals/{}", seg(*n)),
                    archived: i64::from(*n) * 1_000,
                })
                .collect(),
            switches: vec![],
            snapshots: vec![("vault/a.snap".into(), 900), ("vault/b.snap".into(), 6_500)],
            rdbs: vec![("redis/a.rdb".into(), 950), ("redis/b.rdb".into(), 6_600)],
            manifests: vec![],
        }
    }

    proptest::proptest! {
        /// Whatever the seed, the drawn moment is inside the window and reachable; the same
        /// seed draws the same moment.
        #[test]
        fn a_random_target_is_inside_the_window_and_repeatable(seed in proptest::prelude::any::<u64>()) {
            let c = catalog(&[2, 3, 4, 5, 6, 7]);
            let drawn = random_target(&c, seed, DEFAULT_SEGMENT_SIZE).unwrap();
            proptest::prop_assert_eq!((drawn.earliest, drawn.latest), (1_000, 7_000));
            proptest::prop_assert!((1_000..=7_000).contains(&drawn.chosen));
            proptest::prop_assert_eq!(drawn, random_target(&c, seed, DEFAULT_SEGMENT_SIZE).unwrap());
            let point = resolve_restore_point(&c, RestoreTarget::Time(drawn.chosen), DEFAULT_SEGMENT_SIZE);
            proptest::prop_assert!(point.is_ok(), "{:?}", point);
        }
    }

    #[test]
    fn random_targets_spread_over_the_window_and_need_a_catalog() {
        let c = catalog(&[2, 3, 4, 5, 6, 7]);
        let drawn: Vec<i64> = (0..200)
            .map(|i| {
                random_target(&c, seed_of(&format!("test-{i}")), DEFAULT_SEGMENT_SIZE)
                    .unwrap()
                    .chosen
            })
            .collect();
        assert!(drawn.iter().any(|t| *t < 2_500) && drawn.iter().any(|t| *t > 5_500));
        assert!(random_target(&RestoreCatalog::default(), 1, DEFAULT_SEGMENT_SIZE).is_err());
    }

    #[test]
    fn latest_uses_the_newest_base_backup_and_the_whole_chain() {
        let c = catalog(&[2, 3, 4, 5, 6, 7]);
        let p = resolve_restore_point(&c, RestoreTarget::Latest, DEFAULT_SEGMENT_SIZE).unwrap();
        assert_eq!(p.base_backup.id, "new");
        assert_eq!(
            p.wal.iter().map(|w| w.segment.seg).collect::<Vec<_>>(),
            [5, 6, 7]
        );
        assert_eq!(p.reachable_until, 7_000);
        assert_eq!(p.vault_snapshot.unwrap().0, "vault/b.snap");
        assert_eq!(p.redis_rdb.unwrap().0, "redis/b.rdb");
    }

    #[test]
    fn a_time_picks_the_base_backup_before_it() {
        let c = catalog(&[2, 3, 4, 5, 6, 7]);
        let p =
            resolve_restore_point(&c, RestoreTarget::Time(3_500), DEFAULT_SEGMENT_SIZE).unwrap();
        assert_eq!(p.base_backup.id, "old");
        assert_eq!(p.vault_snapshot.unwrap().0, "vault/a.snap");
    }

    #[test]
    fn unreachable_targets_say_why_and_what_is_closest() {
        let c = catalog(&[2, 3, 4, 5, 6, 7]);
        let old =
            resolve_restore_point(&c, RestoreTarget::Time(500), DEFAULT_SEGMENT_SIZE).unwrap_err();
        assert!(old.reason.contains("too old"), "{old}");
        assert_eq!(old.closest, Some(1_000));
        let new = resolve_restore_point(&c, RestoreTarget::Time(9_000), DEFAULT_SEGMENT_SIZE)
            .unwrap_err();
        assert!(new.reason.contains("too new"), "{new}");
        assert_eq!(new.closest, Some(7_000));
        let gap = catalog(&[2, 3, 4, 5, 7, 8]);
        let e = resolve_restore_point(&gap, RestoreTarget::Time(7_500), DEFAULT_SEGMENT_SIZE)
            .unwrap_err();
        assert!(e.reason.contains("gap at 000000010000000000000006"), "{e}");
        assert_eq!(e.closest, Some(5_000));
        let none = RestoreCatalog::default();
        assert!(resolve_restore_point(&none, RestoreTarget::Latest, DEFAULT_SEGMENT_SIZE).is_err());
    }

    #[test]
    fn targets_and_data_checks_are_validated() {
        assert_eq!(
            RestoreTarget::parse("latest").unwrap(),
            RestoreTarget::Latest
        );
        assert_eq!(
            RestoreTarget::parse("2026-11-25T09:00:04Z").unwrap(),
            RestoreTarget::Time(1_795_597_204)
        );
        assert!(RestoreTarget::parse("yesterday").is_err());
        let bad = DataCheck {
            table: "t; DROP TABLE x".into(),
            column: "created_at".into(),
        };
        assert!(bad.validate().is_err());
        let ok = DataCheck {
            table: "public.spend_logs".into(),
            column: "created_at".into(),
        };
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn the_newest_row_query_quotes_mixed_case_identifiers() {
        let litellm = DataCheck {
            table: "LiteLLM_SpendLogs".into(),
            column: "startTime".into(),
        };
        assert_eq!(
            litellm.newest_row_sql(false).unwrap(),
            r#"SELECT extract(epoch FROM max("startTime"))::float8, count(*) FROM "LiteLLM_SpendLogs""#
        );
        let qualified = DataCheck {
            table: "public.spend_logs".into(),
            column: "created_at".into(),
        };
        assert_eq!(
            qualified.newest_row_sql(true).unwrap(),
            r#"SELECT extract(epoch FROM max("created_at"))::float8, count(*) FROM "public"."spend_logs" WHERE $1::float8 IS NULL OR "created_at" <= to_timestamp($1::float8 + 0.000001)"#
        );
        let injected = DataCheck {
            table: "x\" ; DROP TABLE y; --".into(),
            column: "c".into(),
        };
        assert!(
            injected.newest_row_sql(false).is_err(),
            "refused before any SQL is built"
        );
    }

    #[test]
    fn the_recovery_wait_is_bounded_and_rounded_up() {
        assert_eq!(readiness_polls(None).unwrap(), (2, 450));
        assert_eq!(readiness_polls(Some(11)).unwrap(), (2, 6));
        assert!(readiness_polls(Some(9)).is_err());
        assert!(readiness_polls(Some(86_401)).is_err());
    }

    #[test]
    fn only_done_base_backups_are_candidates_and_the_newest_records_the_segment_size() {
        let info = |status: &str| {
            format!(
                "backup_label=None\nbegin_time=2026-11-30 10:00:00.000000+00:00\nbegin_wal=000000010000000000000002\nend_time=2026-11-30 10:05:00.000000+00:00\nend_wal=000000010000000000000003\nstatus={status}\ntimeline=1\nxlog_segment_size=67108864\n"
            )
        };
        let (base, size) =
            base_backup_candidate("b1", "gateway-db/base/b1/backup.info", &info("DONE")).unwrap();
        assert_eq!(base.prefix, "gateway-db/base/b1/");
        assert_eq!(size, Some(64 << 20));
        assert!(base_backup_candidate("b2", "x/backup.info", &info("FAILED")).is_none());
        assert!(base_backup_candidate("b3", "x/backup.info", "not an info file").is_none());
        assert_eq!(segment_size(None, &[(1, 1 << 24), (2, 1 << 26)]), 1 << 26);
        assert_eq!(segment_size(Some(1 << 20), &[(2, 1 << 26)]), 1 << 20);
        assert_eq!(segment_size(None, &[]), 16 << 20);
    }
}
