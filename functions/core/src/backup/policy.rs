//! Backup policies (the HA document's table, section 5.1) and the checks that need only
//! timestamps: freshness and retention coverage.

use serde::{Deserialize, Serialize};

/// What is backed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// PostgreSQL base backups.
    PostgresFull,
    /// PostgreSQL WAL archive.
    PostgresWal,
    /// Vault raft snapshots.
    Vault,
    /// Redis RDB files.
    Redis,
    /// The deployed configuration as Git bundles (templates, `hapilot.toml`, Kubernetes
    /// overlays): a bundle after every deployed change, kept forever.
    Configuration,
    /// Vault's secret metadata (paths and versions, never values), exported daily.
    SecretsMetadata,
}

impl DataType {
    /// Whether its policy is "on change" (a backup after every deployed change) rather than
    /// on a schedule: `frequency_secs` 0.
    pub fn backed_up_on_change(self) -> bool {
        self == DataType::Configuration
    }
}

/// One promise of the backup table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupPolicy {
    /// What.
    pub data_type: DataType,
    /// How often a new backup must appear, seconds (continuous WAL: how stale the newest segment may be).
    pub frequency_secs: i64,
    /// How long backups are kept, seconds.
    pub retention_secs: i64,
    /// Whether every backup must also be in the DR region's bucket.
    pub cross_region: bool,
    /// Slack on top of frequency and retention before a finding is raised, seconds.
    pub grace_secs: i64,
}

const HOUR: i64 = 3_600;
const DAY: i64 = 24 * HOUR;

/// Retention "unlimited" (the configuration's: Git keeps every commit).
pub const UNLIMITED: i64 = 0;

/// Frequency "on change" (the configuration's: a bundle after every deployed change).
pub const ON_CHANGE: i64 = 0;

/// The HA document's table: PostgreSQL full daily / 30 days / cross-region; WAL continuous /
/// 7 days / cross-region; Vault hourly / 7 days / cross-region; Redis hourly / 24 h / same
/// region; configuration on change / unlimited / Git (bundles in the backup bucket); secrets
/// metadata daily / 30 days / Vault backup.
pub fn default_policies() -> Vec<BackupPolicy> {
    vec![
        BackupPolicy {
            data_type: DataType::PostgresFull,
            frequency_secs: DAY,
            retention_secs: 30 * DAY,
            cross_region: true,
            grace_secs: 2 * HOUR,
        },
        BackupPolicy {
            data_type: DataType::PostgresWal,
            frequency_secs: 5 * 60,
            retention_secs: 7 * DAY,
            cross_region: true,
            grace_secs: 5 * 60,
        },
        BackupPolicy {
            data_type: DataType::Vault,
            frequency_secs: HOUR,
            retention_secs: 7 * DAY,
            cross_region: true,
            grace_secs: 15 * 60,
        },
        BackupPolicy {
            data_type: DataType::Redis,
            frequency_secs: HOUR,
            retention_secs: DAY,
            cross_region: false,
            grace_secs: 15 * 60,
        },
        BackupPolicy {
            data_type: DataType::Configuration,
            frequency_secs: ON_CHANGE,
            retention_secs: UNLIMITED,
            cross_region: false,
            // The bundle job runs after the deployment it backs up.
            grace_secs: HOUR,
        },
        BackupPolicy {
            data_type: DataType::SecretsMetadata,
            frequency_secs: DAY,
            retention_secs: 30 * DAY,
            cross_region: false,
            grace_secs: 2 * HOUR,
        },
    ]
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Warning,
    /// A restore may fail or lose more than promised.
    Critical,
}

/// One finding of the audit, with a fix in plain words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// A stable code automation can match on: `no_backup`, `stale_backup`, `retention_short`,
    /// `retention_exceeded`, `dr_copy_missing`, `unencrypted`, `not_immutable`, `wal_gap`,
    /// `backup_unrestorable`, `wal_segment_corrupt`, `vault_snapshot_corrupt`, `rdb_corrupt`,
    /// `backup_failed`, `timeline_history_missing`, `rpo_over_target`, `not_verified`,
    /// `time_from_last_modified`, `access_denied`.
    pub kind: String,
    /// The object it is about (a WAL gap: the first missing segment's canonical key
    /// `<prefix>wals/<TLI+LOGID>/<segment>`, without compression suffix), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Severity.
    pub severity: Severity,
    /// Which check (`freshness`, `retention`, ...).
    pub check: String,
    /// Which data type.
    pub data_type: DataType,
    /// What was seen.
    pub message: String,
    /// What to do.
    pub fix: String,
    /// The server (barman-cloud `serverName`) or instance folder it is about, when the
    /// catalog holds more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The file inside the object it is about (a base backup tar's member whose checksum does
    /// not match its manifest), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
}

/// Freshness: the newest backup must be younger than frequency + grace. `backups` are the
/// backups' own times (epoch seconds, from their metadata), `now` the audit's clock.
pub fn check_freshness(policy: &BackupPolicy, backups: &[i64], now: i64) -> Option<Finding> {
    let limit = policy.frequency_secs + policy.grace_secs;
    match backups.iter().max() {
        // "On change": its age says nothing; the deployed change it must be newer than does
        // ([`super::config::judge_configuration`]).
        Some(_) if policy.frequency_secs == ON_CHANGE => None,
        None => Some(Finding {
            kind: "no_backup".into(),
            key: None,
            severity: Severity::Critical,
            check: "freshness".into(),
            data_type: policy.data_type,
            message: "no backup at all".into(),
            fix: "check that the backup job runs and writes to this bucket and prefix".into(),
            server: None,
            member: None,
        }),
        Some(newest) if now - newest > limit => Some(Finding {
            kind: "stale_backup".into(),
            key: None,
            severity: Severity::Critical,
            check: "freshness".into(),
            data_type: policy.data_type,
            message: format!(
                "newest backup is {} s old, over the {limit} s allowed",
                now - newest
            ),
            fix:
                "the backup schedule has stopped or is failing: check the job's last runs and logs"
                    .into(),
            server: None,
            member: None,
        }),
        Some(_) => None,
    }
}

/// Retention: backups must reach back the whole window (within one frequency + grace of its
/// start), and nothing may be older than retention + grace (a lifecycle rule that does not work).
pub fn check_retention(policy: &BackupPolicy, backups: &[i64], now: i64) -> Vec<Finding> {
    let mut findings = Vec::new();
    let Some(oldest) = backups.iter().min() else {
        return findings;
    };
    if policy.retention_secs == UNLIMITED {
        return findings;
    }
    let window_start = now - policy.retention_secs;
    if *oldest > window_start + policy.frequency_secs + policy.grace_secs {
        findings.push(Finding {
            kind: "retention_short".into(),
            key: None,
            severity: Severity::Warning,
            check: "retention".into(),
            data_type: policy.data_type,
            message: format!(
                "oldest backup is {} s old; the {} s retention window is not covered",
                now - oldest,
                policy.retention_secs
            ),
            fix: "backups are being deleted early, or the schedule started recently: check lifecycle rules".into(),
server: None,
member: None,
});
    }
    let expired = backups
        .iter()
        .filter(|t| now - **t > policy.retention_secs + policy.grace_secs)
        .count();
    if expired > 0 {
        findings.push(Finding {
            kind: "retention_exceeded".into(),
            key: None,
            severity: Severity::Warning,
            check: "retention".into(),
            data_type: policy.data_type,
            message: format!("{expired} backup(s) older than retention + grace are still stored"),
            fix: "the bucket's lifecycle rule is missing or not matching this prefix".into(),
            server: None,
            member: None,
        });
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn defaults_are_the_ha_document_table() {
        let p = default_policies();
        let full = &p[0];
        assert_eq!(
            (full.frequency_secs, full.retention_secs, full.cross_region),
            (DAY, 30 * DAY, true)
        );
        assert!(!p[3].cross_region && p[3].retention_secs == DAY);
        assert_eq!(
            (p[4].data_type, p[4].frequency_secs, p[4].retention_secs),
            (DataType::Configuration, ON_CHANGE, UNLIMITED)
        );
        assert_eq!(
            (p[5].data_type, p[5].frequency_secs, p[5].retention_secs),
            (DataType::SecretsMetadata, DAY, 30 * DAY)
        );
    }

    #[test]
    fn on_change_and_unlimited_are_judged_by_presence_only() {
        let config = &default_policies()[4];
        let now = 1_000 * DAY;
        assert!(check_freshness(config, &[now - 400 * DAY], now).is_none());
        assert_eq!(check_freshness(config, &[], now).unwrap().kind, "no_backup");
        assert!(check_retention(config, &[now - 4_000 * DAY, now], now).is_empty());
    }

    #[test]
    fn stale_missing_and_expired_backups_are_found() {
        let vault = &default_policies()[2];
        let now = 100 * DAY;
        assert!(check_freshness(vault, &[now - 30 * 60], now).is_none());
        let stale = check_freshness(vault, &[now - 2 * HOUR], now).unwrap();
        assert_eq!(stale.severity, Severity::Critical);
        assert!(
            check_freshness(vault, &[], now)
                .unwrap()
                .message
                .contains("no backup")
        );
        let hourly: Vec<i64> = (0..7 * 24).map(|h| now - h * HOUR).collect();
        assert!(check_retention(vault, &hourly, now).is_empty());
        let mut with_old = hourly.clone();
        with_old.push(now - 9 * DAY);
        assert!(
            check_retention(vault, &with_old, now)
                .iter()
                .any(|f| f.message.contains("older than retention"))
        );
        assert!(
            check_retention(vault, &hourly[..24], now)
                .iter()
                .any(|f| f.message.contains("not covered"))
        );
    }

    proptest! {
        #[test]
        fn freshness_is_exactly_the_limit(age in 0i64..10_000, freq in 1i64..5_000, grace in 0i64..1_000) {
            let p = BackupPolicy { data_type: DataType::Redis, frequency_secs: freq, retention_secs: DAY, cross_region: false, grace_secs: grace };
            let now = 1_000_000;
            prop_assert_eq!(check_freshness(&p, &[now - age], now).is_some(), age > freq + grace);
        }
    }
}
