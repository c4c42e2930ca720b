//! Point-in-time restore windows over a WAL archive, as WAL-G's `wal-verify` and pgBackRest's
//! `verify` compute them: which base backups can be restored at all (every segment from
//! `begin_wal` to `end_wal` present), and to which moments the archive can replay from them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::wal::{TimelineSwitch, WalSegment, chain_path, follow_chain};

/// A base backup as the windows need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseBackupSpan {
    /// Its id.
    pub id: String,
    /// When it ended (epoch seconds): the earliest moment it can restore to.
    pub end_time: i64,
    /// First WAL segment it needs.
    pub begin_wal: WalSegment,
    /// Last WAL segment it needs to be consistent.
    pub end_wal: WalSegment,
}

/// A span of time a restore can reach any moment of (epoch seconds, inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreWindow {
    /// From (the base backup's end).
    pub from: i64,
    /// To (the archive time of the last segment the chain reaches).
    pub to: i64,
}

/// What the archive allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreCoverage {
    /// The windows, merged where they overlap, oldest first.
    pub windows: Vec<RestoreWindow>,
    /// Base backups missing a segment of their own begin..end range, with the first missing.
    pub unrestorable: Vec<(String, WalSegment)>,
    /// Gaps that strand later WAL: the first missing segment of each, oldest first.
    pub gaps: Vec<WalSegment>,
}

/// Computes the coverage of `bases` over `wal` (segment -> archive time).
pub fn restore_coverage(
    bases: &[BaseBackupSpan],
    wal: &BTreeMap<WalSegment, i64>,
    switches: &[TimelineSwitch],
    segment_size: u64,
) -> RestoreCoverage {
    let archived: BTreeSet<WalSegment> = wal.keys().copied().collect();
    let mut bases: Vec<&BaseBackupSpan> = bases.iter().collect();
    bases.sort_by_key(|b| (b.end_time, b.id.clone()));
    let mut coverage = RestoreCoverage::default();
    let mut gaps = BTreeSet::new();
    let mut windows: Vec<RestoreWindow> = Vec::new();
    for base in bases {
        let path = chain_path(base.begin_wal, &archived, switches, segment_size);
        let chain = follow_chain(base.begin_wal, &archived, switches, segment_size);
        if !path.contains(&base.end_wal) {
            let missing = chain.first_missing.unwrap_or_else(|| match chain.reached {
                Some(r) => r.next(segment_size),
                None => base.begin_wal,
            });
            coverage.unrestorable.push((base.id.clone(), missing));
            continue;
        }
        if let Some(missing) = chain.first_missing {
            gaps.insert(missing);
        }
        if let Some(to) = chain.reached.and_then(|r| wal.get(&r)).copied() {
            windows.push(RestoreWindow {
                from: base.end_time,
                to: to.max(base.end_time),
            });
        }
    }
    windows.sort_by_key(|w| (w.from, w.to));
    for w in windows {
        match coverage.windows.last_mut() {
            Some(last) if w.from <= last.to => last.to = last.to.max(w.to),
            _ => coverage.windows.push(w),
        }
    }
    coverage.gaps = gaps.into_iter().collect();
    coverage
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::wal::DEFAULT_SEGMENT_SIZE;

    fn seg(t: u32, s: u32) -> WalSegment {
        WalSegment {
            timeline: t,
            log: 0,
            seg: s,
        }
    }

    fn base(id: &str, end_time: i64, begin: u32, end: u32) -> BaseBackupSpan {
        BaseBackupSpan {
            id: id.into(),
            end_time,
            begin_wal: seg(1, begin),
            end_wal: seg(1, end),
        }
    }

    /// Segments `range` on timeline 1, archived 60 s apart from `t0`.
    fn archive(range: std::ops::RangeInclusive<u32>, skip: &[u32]) -> BTreeMap<WalSegment, i64> {
        range
            .filter(|s| !skip.contains(s))
            .map(|s| (seg(1, s), 1_000 + i64::from(s) * 60))
            .collect()
    }

    #[test]
    fn a_whole_archive_is_one_window_from_the_oldest_backup_to_the_newest_segment() {
        let bases = [base("a", 1_100, 1, 2), base("b", 1_400, 6, 7)];
        let c = restore_coverage(&bases, &archive(1..=10, &[]), &[], DEFAULT_SEGMENT_SIZE);
        assert_eq!(
            c.windows,
            [RestoreWindow {
                from: 1_100,
                to: 1_600
            }]
        );
        assert!(c.gaps.is_empty() && c.unrestorable.is_empty());
    }

    #[test]
    fn a_gap_between_two_base_backups_splits_the_window_and_is_named() {
        let bases = [base("a", 1_100, 1, 2), base("b", 1_500, 8, 9)];
        let c = restore_coverage(&bases, &archive(1..=10, &[5]), &[], DEFAULT_SEGMENT_SIZE);
        assert_eq!(c.gaps, [seg(1, 5)]);
        assert_eq!(
            c.windows,
            [
                RestoreWindow {
                    from: 1_100,
                    to: 1_240
                },
                RestoreWindow {
                    from: 1_500,
                    to: 1_600
                }
            ]
        );
    }

    #[test]
    fn a_hole_inside_a_backups_own_range_makes_it_unrestorable() {
        let bases = [base("a", 1_100, 1, 4), base("b", 1_500, 8, 9)];
        let c = restore_coverage(&bases, &archive(1..=10, &[3]), &[], DEFAULT_SEGMENT_SIZE);
        assert_eq!(c.unrestorable, [("a".to_string(), seg(1, 3))]);
        assert_eq!(
            c.windows,
            [RestoreWindow {
                from: 1_500,
                to: 1_600
            }]
        );
    }
}
