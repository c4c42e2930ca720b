//! barman's `backup.info`: the metadata barman-cloud writes next to each base backup
//! (`<prefix>/<server>/base/<backup_id>/backup.info`), one `key=value` per line.

pub use crate::time::parse_pg_time;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::wal::WalSegment;
use crate::CoreError;

/// What the audit needs of a `backup.info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInfo {
    /// barman's backup id (the directory name, e.g. `20261125T090000`).
    pub backup_id: Option<String>,
    /// `DONE` for a usable backup (`FAILED`, `STARTED`, ... are not).
    pub status: String,
    /// `begin_time`, as written (`YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM`).
    pub begin_time: String,
    /// `end_time`, as written.
    pub end_time: String,
    /// First WAL segment the backup needs.
    pub begin_wal: WalSegment,
    /// Last WAL segment the backup needs to be consistent.
    pub end_wal: WalSegment,
    /// Timeline the backup was taken on.
    pub timeline: u32,
    /// The server's WAL segment size (`xlog_segment_size`), when recorded.
    #[serde(default)]
    pub xlog_segment_size: Option<u64>,
}

impl BackupInfo {
    /// Parses the file; a missing or malformed required key is an error naming it.
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        let fields: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let get = |k: &str| {
            fields
                .get(k)
                .copied()
                .filter(|v| !v.is_empty() && *v != "None")
                .ok_or_else(|| CoreError::invalid(format!("backup.info {k}"), "is missing"))
        };
        let wal = |k: &str| {
            WalSegment::parse(get(k)?).map_err(|_| {
                CoreError::invalid(format!("backup.info {k}"), "is not a WAL segment name")
            })
        };
        let timeline: u32 = get("timeline")?
            .parse()
            .map_err(|_| CoreError::invalid("backup.info timeline", "is not a number"))?;
        let info = Self {
            backup_id: fields.get("backup_id").map(|v| v.to_string()),
            status: get("status")?.to_string(),
            begin_time: get("begin_time")?.to_string(),
            end_time: get("end_time")?.to_string(),
            begin_wal: wal("begin_wal")?,
            end_wal: wal("end_wal")?,
            timeline,
            xlog_segment_size: fields
                .get("xlog_segment_size")
                .and_then(|v| v.parse().ok())
                .filter(|s: &u64| s.is_power_of_two() && (1 << 20..=1 << 30).contains(s)),
        };
        if info.begin_wal.timeline != timeline || info.end_wal < info.begin_wal {
            return Err(CoreError::invalid(
                "backup.info",
                format!(
                    "is inconsistent: timeline {timeline}, begin_wal {}, end_wal {}",
                    info.begin_wal, info.end_wal
                ),
            ));
        }
        Ok(info)
    }

    /// Whether barman considers the backup complete.
    pub fn is_done(&self) -> bool {
        self.status == "DONE"
    }

    /// `end_time` as epoch seconds: the backup's own notion of when it was taken (the audit
    /// never trusts an object's LastModified for this; copies and re-uploads change it).
    pub fn end_epoch(&self) -> Result<i64, CoreError> {
        parse_pg_time(&self.end_time)
            .ok_or_else(|| CoreError::invalid("backup.info end_time", "is not a timestamp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DONE: &str = "backup_label=None\nbackup_id=20261125T090000\nbegin_time=2026-11-25 09:00:00.123456+00:00\n\
        begin_wal=000000010000000000000002\nbegin_xlog=0/2000028\nend_time=2026-11-25 09:00:04.5+00:00\n\
        end_wal=000000010000000000000003\nend_xlog=0/3000100\nstatus=DONE\ntimeline=1\nversion=150010\n";

    #[test]
    fn parses_what_barman_writes() {
        let info = BackupInfo::parse(DONE).unwrap();
        assert!(info.is_done());
        assert_eq!(info.begin_wal.to_string(), "000000010000000000000002");
        assert_eq!(info.end_wal.seg, 3);
        assert_eq!(info.backup_id.as_deref(), Some("20261125T090000"));
    }

    #[test]
    fn times_are_read_with_their_offset() {
        let info = BackupInfo::parse(DONE).unwrap();
        assert_eq!(info.end_epoch().unwrap(), 1_795_597_204);
        assert_eq!(parse_pg_time("2026-11-25 10:00:04+01"), Some(1_795_597_204));
        assert_eq!(parse_pg_time("2026-11-25T09:00:04Z"), Some(1_795_597_204));
        assert_eq!(parse_pg_time("yesterday"), None);
    }

    #[test]
    fn missing_or_inconsistent_fields_are_named() {
        let e =
            BackupInfo::parse(&DONE.replace("end_wal=000000010000000000000003\n", "")).unwrap_err();
        assert!(e.to_string().contains("end_wal"), "{e}");
        let e = BackupInfo::parse(&DONE.replace("timeline=1", "timeline=2")).unwrap_err();
        assert!(e.to_string().contains("inconsistent"), "{e}");
        let failed = BackupInfo::parse(&DONE.replace("status=DONE", "status=FAILED")).unwrap();
        assert!(!failed.is_done());
    }

    #[test]
    fn the_segment_size_comes_from_the_server_and_an_override_beats_it() {
        assert_eq!(BackupInfo::parse(DONE).unwrap().xlog_segment_size, None);
        let small = BackupInfo::parse(&format!("{DONE}\nxlog_segment_size=1048576\n")).unwrap();
        assert_eq!(small.xlog_segment_size, Some(1 << 20));
        let odd = BackupInfo::parse(&format!("{DONE}\nxlog_segment_size=1000\n")).unwrap();
        assert_eq!(
            odd.xlog_segment_size, None,
            "not a size PostgreSQL can have"
        );
        let request = |size: Option<u64>| crate::backup::audit::PolicyAuditRequest {
            policy: crate::backup::policy::default_policies().remove(0),
            target: crate::backup::audit::BackupTarget {
                bucket: "b".into(),
                dr_bucket: None,
                dr_region: None,
                layout: Default::default(),
            },
            verify: Default::default(),
            now: 0,
            rpo_target_secs: 300,
            wal_segment_size: size,
        };
        assert_eq!(request(None).segment_size([&small]), 1 << 20);
        assert_eq!(request(Some(1 << 24)).segment_size([&small]), 1 << 24);
        assert_eq!(request(None).segment_size([]), 16 << 20);
    }
}
