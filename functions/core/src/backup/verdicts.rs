//! The backup audit's rules that sit between listing and verifying: what each policy lists,
//! which backups get their content verified (and in what order), how a `backup.info` is
//! judged, whether a base backup's `backup_label` agrees with it, and the findings (severity,
//! message, fix) the audit raises when a catalog cannot be read, backups failed, times had to
//! come from `LastModified`, or a file could not be verified.

use super::audit::{PolicyAuditRequest, VerifyScope};
use super::catalog::Layout;
use super::info::BackupInfo;
use super::policy::{DataType, Finding, Severity};
use super::wal::WalSegment;

/// A finding with no server or member (the audit sets those where it knows them).
pub(crate) fn finding(
    kind: &str,
    (severity, check): (Severity, &str),
    data_type: DataType,
    key: Option<String>,
    message: String,
    fix: &str,
) -> Finding {
    Finding {
        kind: kind.into(),
        key,
        severity,
        check: check.into(),
        data_type,
        message,
        fix: fix.into(),
        server: None,
        member: None,
    }
}

/// The prefixes a policy's audit lists: WAL needs the base backups too (the chain starts there).
pub fn listing_prefixes(data_type: DataType, layout: &Layout) -> Vec<String> {
    match data_type {
        DataType::PostgresFull => vec![format!("{}base/", layout.postgres)],
        DataType::PostgresWal => vec![
            format!("{}base/", layout.postgres),
            format!("{}wals/", layout.postgres),
        ],
        DataType::Vault => vec![layout.vault.clone()],
        DataType::Redis => vec![layout.redis.clone()],
        DataType::Configuration => vec![layout.config.clone()],
        DataType::SecretsMetadata => vec![layout.secrets_metadata.clone()],
    }
}

/// barman-cloud's server name: the last folder of a PostgreSQL prefix
/// (`postgres/gateway-db/` -> `gateway-db`); None for other data types.
pub fn postgres_server_name(data_type: DataType, prefix: &str) -> Option<String> {
    matches!(data_type, DataType::PostgresFull | DataType::PostgresWal)
        .then(|| prefix.trim_end_matches('/').rsplit('/').next())
        .flatten()
        .filter(|name| !name.is_empty())
        .map(str::to_string)
}

/// Where a WAL segment stands in the archive: timelines, then log, then segment. Segments are
/// archived in this order, so the newest is the highest key, whatever their upload times say.
pub fn wal_position(seg: &WalSegment) -> i64 {
    i64::from(seg.timeline) << 48 | i64::from(seg.log) << 16 | i64::from(seg.seg)
}

/// Which backups get their content verified: newest first (by `(time, key)`), then, with
/// scope `all`, the rest still inside the retention window.
pub fn chosen_for_verification<T>(
    request: &PolicyAuditRequest,
    candidates: Vec<(i64, String, T)>,
) -> Vec<T> {
    chosen(
        request.verify,
        (request.now, request.policy.retention_secs),
        candidates,
    )
}

fn chosen<T>(
    scope: VerifyScope,
    (now, retention_secs): (i64, i64),
    mut candidates: Vec<(i64, String, T)>,
) -> Vec<T> {
    candidates.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
    match scope {
        VerifyScope::None => Vec::new(),
        VerifyScope::Newest => candidates.into_iter().take(1).map(|(_, _, t)| t).collect(),
        VerifyScope::All => candidates
            .into_iter()
            // Unlimited retention (0): every backup is inside the window.
            .filter(|(t, _, _)| {
                retention_secs == super::policy::UNLIMITED || now - t <= retention_secs
            })
            .map(|(_, _, t)| t)
            .collect(),
    }
}

/// A `backup.info` as the audit judges it.
#[derive(Debug, Clone, PartialEq)]
pub enum InfoVerdict {
    /// DONE with a readable end time: a restore candidate.
    Usable(Box<BackupInfo>),
    /// Not DONE (its status): the run failed or is running.
    NotDone(String),
    /// Unreadable, or no readable end time: why.
    Broken(String),
}

/// Judges one `backup.info`'s text.
pub fn judge_backup_info(text: &str) -> InfoVerdict {
    match BackupInfo::parse(text) {
        Ok(info) if info.is_done() && info.end_epoch().is_ok() => {
            InfoVerdict::Usable(Box::new(info))
        }
        Ok(info) if !info.is_done() => InfoVerdict::NotDone(info.status),
        Ok(_) => InfoVerdict::Broken("end_time unreadable".into()),
        Err(e) => InfoVerdict::Broken(e.to_string()),
    }
}

/// A base backup's `backup_label` (start WAL, timeline) against its `backup.info`: the error
/// says how they disagree.
pub fn label_matches_info(
    label_wal: Option<&str>,
    label_timeline: Option<u32>,
    info: &BackupInfo,
) -> Result<(), String> {
    let label_wal = label_wal.unwrap_or_default();
    if label_wal != info.begin_wal.to_string() || label_timeline != Some(info.timeline) {
        return Err(format!(
            "backup_label (start WAL {label_wal}, timeline {label_timeline:?}) disagrees with backup.info (begin_wal {}, timeline {})",
            info.begin_wal, info.timeline
        ));
    }
    Ok(())
}

/// The catalog could not be read at all: critical, the audit says nothing else.
pub fn access_denied(data_type: DataType, problem: &str) -> Finding {
    finding(
        "access_denied",
        (Severity::Critical, "access"),
        data_type,
        None,
        format!("the audit could not read the backups: {problem}"),
        "check that the bucket exists and the audit's role may list and read it (s3:ListBucket, s3:GetObject)",
    )
}

/// Base backups whose `backup.info` is not DONE (`id (status)` each): a warning, they are
/// simply not restore candidates.
pub fn base_backups_not_done(not_done: &[String]) -> Option<Finding> {
    (!not_done.is_empty()).then(|| {
        finding(
            "backup_failed",
            (Severity::Warning, "status"),
            DataType::PostgresFull,
            None,
            format!(
                "{} base backup(s) not DONE and not usable: {}",
                not_done.len(),
                not_done.join(", ")
            ),
            "look at the backup job's log for these runs; delete them once understood (barman-cloud-backup-delete)",
        )
    })
}

/// Base backups whose `backup.info` cannot be read (`id: why` each): critical, they cannot be
/// restored.
pub fn backup_infos_unreadable(broken: &[String]) -> Option<Finding> {
    (!broken.is_empty()).then(|| {
        finding(
            "backup_unrestorable",
            (Severity::Critical, "integrity"),
            DataType::PostgresFull,
            None,
            format!(
                "{} backup.info file(s) unreadable: {}",
                broken.len(),
                broken.join("; ")
            ),
            "these base backups cannot be used for a restore: take a new base backup",
        )
    })
}

/// Backups whose time came from `LastModified` (no time in their name or metadata).
pub fn times_from_last_modified(data_type: DataType, undated: &[String]) -> Option<Finding> {
    let example = undated.first()?;
    Some(finding(
        "time_from_last_modified",
        (Severity::Warning, "freshness"),
        data_type,
        Some(example.clone()),
        format!(
            "{} backup(s) carry no time in their name or metadata (e.g. {example}): their age comes from the object's LastModified, which a copy or re-upload changes",
            undated.len()
        ),
        "name backups with their time (YYYYMMDDTHHMMSSZ, ISO 8601 or epoch seconds), as Vault's and redis' own tools can, or upload them with x-amz-meta-backup-time",
    ))
}

/// A file the audit could not verify (a compression it cannot read): a warning, not a
/// corruption.
pub fn not_verified(data_type: DataType, key: &str, detail: &str) -> Finding {
    finding(
        "not_verified",
        (Severity::Warning, "integrity"),
        data_type,
        Some(key.to_string()),
        format!("{key}: {detail}"),
        "store WAL gzip-compressed or uncompressed so the audit can read it",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_server_names_follow_the_layout() {
        let layout = Layout::default();
        assert_eq!(listing_prefixes(DataType::PostgresWal, &layout).len(), 2);
        assert_eq!(
            postgres_server_name(DataType::PostgresFull, "postgres/gateway-db/"),
            Some("gateway-db".into())
        );
        assert_eq!(postgres_server_name(DataType::Vault, "vault/"), None);
        assert_eq!(postgres_server_name(DataType::PostgresWal, "/"), None);
    }

    #[test]
    fn wal_positions_order_by_timeline_then_log_then_segment() {
        let seg = |timeline, log, seg| WalSegment { timeline, log, seg };
        assert!(wal_position(&seg(2, 0, 1)) > wal_position(&seg(1, 0xFFFF, 0xFF)));
        assert!(wal_position(&seg(1, 2, 0)) > wal_position(&seg(1, 1, 0xFF)));
        assert!(wal_position(&seg(1, 1, 3)) > wal_position(&seg(1, 1, 2)));
    }

    #[test]
    fn the_newest_is_verified_first_and_all_means_inside_the_window() {
        let candidates = || {
            vec![
                (100, "b".to_string(), "old"),
                (300, "a".to_string(), "newest"),
                (300, "0".to_string(), "tie, smaller key"),
                (10, "z".to_string(), "outside"),
            ]
        };
        assert_eq!(
            chosen(VerifyScope::Newest, (400, 350), candidates()),
            vec!["newest"]
        );
        assert_eq!(
            chosen(VerifyScope::All, (400, 350), candidates()),
            vec!["newest", "tie, smaller key", "old"]
        );
        assert!(chosen(VerifyScope::None, (400, 350), candidates()).is_empty());
    }

    #[test]
    fn backup_infos_are_judged_and_labels_compared() {
        let done = "backup_label=None\nbegin_time=2026-11-25 09:00:00+00:00\nbegin_wal=000000010000000000000002\nend_time=2026-11-25 09:00:04+00:00\nend_wal=000000010000000000000003\nstatus=DONE\ntimeline=1\n";
        let InfoVerdict::Usable(info) = judge_backup_info(done) else {
            panic!("DONE is usable");
        };
        assert_eq!(
            judge_backup_info(&done.replace("status=DONE", "status=FAILED")),
            InfoVerdict::NotDone("FAILED".into())
        );
        assert!(matches!(judge_backup_info("junk"), InfoVerdict::Broken(_)));
        assert!(label_matches_info(Some("000000010000000000000002"), Some(1), &info).is_ok());
        let e = label_matches_info(Some("000000010000000000000009"), Some(1), &info).unwrap_err();
        assert!(e.contains("disagrees with backup.info"), "{e}");
        assert!(label_matches_info(Some("000000010000000000000002"), Some(2), &info).is_err());
    }

    #[test]
    fn findings_carry_their_severity_and_fix() {
        assert_eq!(
            access_denied(DataType::Vault, "403").severity,
            Severity::Critical
        );
        assert!(base_backups_not_done(&[]).is_none());
        let failed = base_backups_not_done(&["b1 (FAILED)".into()]).unwrap();
        assert_eq!(
            (failed.severity, failed.kind.as_str()),
            (Severity::Warning, "backup_failed")
        );
        let broken = backup_infos_unreadable(&["b2: junk".into()]).unwrap();
        assert_eq!(broken.severity, Severity::Critical);
        let undated = times_from_last_modified(DataType::Redis, &["dump.rdb".into()]).unwrap();
        assert_eq!(undated.key.as_deref(), Some("dump.rdb"));
        assert!(times_from_last_modified(DataType::Redis, &[]).is_none());
        assert_eq!(
            not_verified(DataType::PostgresWal, "k", "lz4").kind,
            "not_verified"
        );
    }
}
