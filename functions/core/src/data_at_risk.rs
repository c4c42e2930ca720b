//! The data at risk in an ungraceful failover, bounded from what can be known with the primary
//! dark: the primary's last published WAL position (the lag publisher's), the end of the WAL
//! archive in the DR bucket, and the standby's own receive and replay positions.
//!
//! Two numbers, because neither alone is honest:
//! - **bytes**: WAL the primary had certainly written (at its last publication) that the
//!   standby does not hold: at least this much is lost. What it wrote after that publication
//!   is unknown to anyone but the dark primary.
//! - **seconds**: at most this many seconds of writes are lost. Every commit up to the
//!   standby's last replayed one is kept, and so is everything the primary had written at its
//!   last publication once the standby holds that position; writes after the newer of the two
//!   moments may be lost.
//!
//! When the archive reaches beyond what the standby received (streaming was cut before the
//! primary died), the standby can replay those segments through its `restore_command` before
//! it is promoted: [`DataAtRisk::replay_archive_to`] says how far, and the bound shrinks once
//! it has ([PostgreSQL: "Before failover, any WAL immediately available in the archive or in
//! pg_wal will be restored"](https://www.postgresql.org/docs/current/warm-standby.html)).

use serde::{Deserialize, Serialize};

use crate::failover::format_lsn;
use crate::time::epoch_text;

/// A WAL position and when it was seen there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalMark {
    /// The position (bytes since the start of WAL).
    pub lsn: u64,
    /// When (epoch seconds).
    pub at: i64,
}

/// Where the lag publisher keeps the primary's last position in the audit bucket (the
/// journal): one object per region, replaced every minute.
pub fn published_position_key(region: &str) -> String {
    format!("wal-positions/{region}.json")
}

/// The primary's write position as the lag publisher saw it (the journal object at
/// [`published_position_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPosition {
    /// The primary's region.
    pub region: String,
    /// `pg_current_wal_lsn()` in bytes.
    pub lsn: u64,
    /// The same as PostgreSQL writes it, for people.
    pub lsn_text: String,
    /// When it was read (epoch seconds).
    pub at: i64,
}

impl PublishedPosition {
    /// The position at `lsn`, read at `at`.
    pub fn new(region: &str, lsn: u64, at: i64) -> Self {
        Self {
            region: region.to_string(),
            lsn,
            lsn_text: format_lsn(lsn),
            at,
        }
    }

    /// As a mark for [`RiskInputs::primary`].
    pub fn mark(&self) -> WalMark {
        WalMark {
            lsn: self.lsn,
            at: self.at,
        }
    }
}

/// The end of the newest complete segment in an archive and when it was archived, with its
/// object key: how far a standby's `restore_command` can take it.
pub fn archive_end(
    wal: &[crate::restore::CatalogWal],
    segment_size: u64,
) -> Option<(WalMark, String)> {
    wal.iter()
        .max_by_key(|w| {
            (
                w.segment.start_lsn(segment_size),
                w.segment.timeline,
                w.archived,
            )
        })
        .map(|w| {
            (
                WalMark {
                    lsn: w.segment.start_lsn(segment_size) + segment_size,
                    at: w.archived,
                },
                w.key.clone(),
            )
        })
}

/// What the standby itself says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StandbyWal {
    /// Whether it is still a replica (a promoted one has nothing left to lose).
    pub in_recovery: bool,
    /// What streaming gave it (`pg_last_wal_receive_lsn()`).
    pub received: Option<u64>,
    /// What it replayed (`pg_last_wal_replay_lsn()`).
    pub replayed: Option<u64>,
    /// Seconds since its last replayed commit, at the time of reading.
    pub replay_age_secs: Option<f64>,
}

impl StandbyWal {
    /// The newest position it holds, received or replayed.
    pub fn holds(&self) -> Option<u64> {
        match (self.received, self.replayed) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Everything the bound is computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskInputs {
    /// When the standby was read (epoch seconds).
    pub now: i64,
    /// The primary's write position as the lag publisher last saw it.
    pub primary: Option<WalMark>,
    /// Where the primary's last position came from (journal key, publisher).
    pub primary_from: String,
    /// The end of the newest complete segment in the WAL archive, and when it was archived.
    pub archive: Option<WalMark>,
    /// Where the archive's end came from (bucket and object), or why it is unknown.
    pub archive_from: String,
    /// The standby.
    pub standby: StandbyWal,
    /// Which standby (its region), for the sources.
    pub standby_from: String,
}

/// One number the bound used and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskSource {
    /// What it is (`primary_published`, `archive_end`, `standby_received`, ...).
    pub name: String,
    /// Its value as an operator reads it (an LSN with its time, seconds).
    pub value: String,
    /// Where it came from.
    pub from: String,
}

/// The bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataAtRisk {
    /// At least this many bytes of WAL the primary wrote are on nothing the promotion keeps
    /// (unknown without a published primary position or the standby's positions).
    pub bytes: Option<u64>,
    /// The bytes streaming alone would have lost (what the standby did not receive), beside
    /// `bytes` when the archive gave it more.
    pub bytes_streamed_only: Option<u64>,
    /// At most this many seconds of writes are lost (unknown when neither a replayed commit
    /// nor a published position the standby holds says up to when it is complete).
    pub secs: Option<f64>,
    /// Writes up to this moment (epoch seconds) are kept; later ones may be lost.
    pub complete_to: Option<i64>,
    /// The archive holds WAL beyond what the standby holds: replay it up to here before the
    /// promotion.
    pub replay_archive_to: Option<u64>,
    /// The bytes at risk once the standby has replayed the archive (set with
    /// `replay_archive_to`).
    pub bytes_after_archive: Option<u64>,
    /// Every number used, with its source.
    pub sources: Vec<RiskSource>,
    /// In words, for the approval request and the report.
    pub summary: String,
}

impl DataAtRisk {
    /// Whether the bound is within `rpo_secs` (an unknown bound never is).
    pub fn within(&self, rpo_secs: u64) -> bool {
        self.secs.is_some_and(|s| s <= rpo_secs as f64)
    }
}

fn mark_text(m: WalMark) -> String {
    format!("{} at {}", format_lsn(m.lsn), epoch_text(m.at))
}

/// Bytes in words: `12.3 MiB (12897484 bytes)`.
pub fn bytes_text(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    match bytes {
        0 => "0 bytes".to_string(),
        b if b < 1024 * 1024 => format!("{b} bytes"),
        b => format!("{mib:.1} MiB ({b} bytes)"),
    }
}

/// Bounds the data at risk from `inputs`.
pub fn bound_data_at_risk(inputs: &RiskInputs) -> DataAtRisk {
    let standby = inputs.standby;
    let mut sources = source_list(inputs);
    if !standby.in_recovery {
        return DataAtRisk {
            bytes: Some(0),
            bytes_streamed_only: None,
            secs: Some(0.0),
            complete_to: Some(inputs.now),
            replay_archive_to: None,
            bytes_after_archive: None,
            sources,
            summary: "the standby is already a primary: nothing left to replay".into(),
        };
    }
    let holds = standby.holds();
    let replay_archive_to = match (inputs.archive, holds) {
        (Some(a), Some(h)) if a.lsn > h => Some(a.lsn),
        _ => None,
    };
    let bytes = match (inputs.primary, holds) {
        (Some(p), Some(h)) => Some(p.lsn.saturating_sub(h)),
        _ => None,
    };
    let bytes_streamed_only = match (inputs.primary, standby.received) {
        (Some(p), Some(r)) => Some(p.lsn.saturating_sub(r)),
        _ => None,
    };
    let bytes_after_archive = replay_archive_to.and_then(|a| {
        inputs
            .primary
            .map(|p| p.lsn.saturating_sub(a.max(holds.unwrap_or(0))))
    });
    // Every commit up to the last replayed one is kept; so is everything the primary had
    // written when it published a position the standby holds.
    let last_commit = standby
        .replay_age_secs
        .map(|age| inputs.now - age.max(0.0).ceil() as i64);
    let published_held = match (inputs.primary, holds) {
        (Some(p), Some(h)) if h >= p.lsn => Some(p.at),
        _ => None,
    };
    let complete_to = match (last_commit, published_held) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let secs = complete_to.map(|c| (inputs.now - c).max(0) as f64);
    if let Some(c) = complete_to {
        sources.push(RiskSource {
            name: "complete_to".into(),
            value: epoch_text(c),
            from: match published_held == complete_to {
                true => "the primary's last published position, which the standby holds".into(),
                false => "the standby's last replayed commit".into(),
            },
        });
    }
    let summary = summarize(inputs, bytes, secs, replay_archive_to, bytes_after_archive);
    DataAtRisk {
        bytes,
        bytes_streamed_only,
        secs,
        complete_to,
        replay_archive_to,
        bytes_after_archive,
        sources,
        summary,
    }
}

fn source_list(inputs: &RiskInputs) -> Vec<RiskSource> {
    let unknown = || "unknown".to_string();
    let standby = inputs.standby;
    vec![
        RiskSource {
            name: "primary_published".into(),
            value: inputs.primary.map_or_else(unknown, mark_text),
            from: inputs.primary_from.clone(),
        },
        RiskSource {
            name: "archive_end".into(),
            value: inputs.archive.map_or_else(unknown, mark_text),
            from: inputs.archive_from.clone(),
        },
        RiskSource {
            name: "standby_received".into(),
            value: standby.received.map_or_else(unknown, format_lsn),
            from: format!("{} (pg_last_wal_receive_lsn)", inputs.standby_from),
        },
        RiskSource {
            name: "standby_replayed".into(),
            value: standby.replayed.map_or_else(unknown, format_lsn),
            from: format!("{} (pg_last_wal_replay_lsn)", inputs.standby_from),
        },
        RiskSource {
            name: "standby_last_commit_age".into(),
            value: standby
                .replay_age_secs
                .map_or_else(unknown, |s| format!("{s:.1} s")),
            from: format!("{} (pg_last_xact_replay_timestamp)", inputs.standby_from),
        },
    ]
}

fn summarize(
    inputs: &RiskInputs,
    bytes: Option<u64>,
    secs: Option<f64>,
    replay_archive_to: Option<u64>,
    bytes_after_archive: Option<u64>,
) -> String {
    let mut parts = Vec::new();
    parts.push(match secs {
        Some(s) => format!("at most {s:.0} s of writes lost"),
        None => "seconds of writes at risk unknown (no replayed commit, no published position the standby holds)".into(),
    });
    parts.push(match (bytes, inputs.primary) {
        (Some(b), Some(p)) => format!(
            "at least {} of WAL the primary had written by {} is not on the standby, plus whatever it wrote after",
            bytes_text(b),
            epoch_text(p.at)
        ),
        _ => "bytes at risk unknown (no published primary position or no standby position)".into(),
    });
    if let Some(to) = replay_archive_to {
        parts.push(format!(
            "the WAL archive reaches {} beyond the standby's {}: replaying it first{}",
            format_lsn(to),
            inputs.standby.holds().map_or("unknown".into(), format_lsn),
            bytes_after_archive.map_or(String::new(), |b| format!(
                " leaves {} at risk",
                bytes_text(b)
            )),
        ));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_800_000_000;

    fn inputs(
        primary: Option<(u64, i64)>,
        archive: Option<u64>,
        standby: StandbyWal,
    ) -> RiskInputs {
        RiskInputs {
            now: NOW,
            primary: primary.map(|(lsn, at)| WalMark { lsn, at }),
            primary_from: "wal-positions/us-east-1.json".into(),
            archive: archive.map(|lsn| WalMark { lsn, at: NOW - 30 }),
            archive_from: "s3://dr/postgres/gateway-db/wals/".into(),
            standby,
            standby_from: "us-west-2".into(),
        }
    }

    fn standby(received: u64, replayed: u64, age: Option<f64>) -> StandbyWal {
        StandbyWal {
            in_recovery: true,
            received: Some(received),
            replayed: Some(replayed),
            replay_age_secs: age,
        }
    }

    #[test]
    fn a_standby_holding_the_published_position_is_complete_to_the_publication() {
        // Idle primary: its last commit is an hour old, but the standby holds everything it had
        // written 40 s ago.
        let risk = bound_data_at_risk(&inputs(
            Some((1000, NOW - 40)),
            None,
            standby(1000, 1000, Some(3600.0)),
        ));
        assert_eq!(risk.bytes, Some(0));
        assert_eq!(risk.secs, Some(40.0));
        assert_eq!(risk.complete_to, Some(NOW - 40));
        assert!(risk.within(300));
        assert_eq!(risk.replay_archive_to, None);
    }

    #[test]
    fn a_lagging_standby_risks_the_bytes_it_lacks_and_the_time_since_its_last_commit() {
        let risk = bound_data_at_risk(&inputs(
            Some((5 << 20, NOW - 10)),
            None,
            standby(2 << 20, 2 << 20, Some(600.0)),
        ));
        assert_eq!(risk.bytes, Some(3 << 20));
        assert_eq!(risk.secs, Some(600.0));
        assert!(!risk.within(300));
        assert!(risk.summary.contains("3.0 MiB"), "{}", risk.summary);
        assert!(risk.summary.contains("at most 600 s"), "{}", risk.summary);
        let names: Vec<_> = risk.sources.iter().map(|s| s.name.as_str()).collect();
        for name in [
            "primary_published",
            "archive_end",
            "standby_received",
            "standby_replayed",
            "standby_last_commit_age",
            "complete_to",
        ] {
            assert!(names.contains(&name), "{names:?}");
        }
    }

    #[test]
    fn an_archive_beyond_the_standby_is_replayed_first_and_shrinks_the_bytes() {
        let risk = bound_data_at_risk(&inputs(
            Some((5 << 20, NOW - 10)),
            Some(4 << 20),
            standby(2 << 20, 2 << 20, Some(100.0)),
        ));
        assert_eq!(risk.replay_archive_to, Some(4 << 20));
        assert_eq!(
            risk.bytes,
            Some(3 << 20),
            "until replayed, the standby lacks it"
        );
        assert_eq!(risk.bytes_after_archive, Some(1 << 20));
        assert!(risk.summary.contains("replaying it first leaves 1.0 MiB"));
        // Once replayed, the standby holds it.
        let after = bound_data_at_risk(&inputs(
            Some((5 << 20, NOW - 10)),
            Some(4 << 20),
            standby(2 << 20, 4 << 20, Some(20.0)),
        ));
        assert_eq!(after.replay_archive_to, None);
        assert_eq!(after.bytes, Some(1 << 20));
        assert_eq!(after.bytes_streamed_only, Some(3 << 20));
        assert_eq!(after.secs, Some(20.0));
    }

    #[test]
    fn an_archive_behind_the_standby_asks_nothing() {
        let risk = bound_data_at_risk(&inputs(
            None,
            Some(1 << 20),
            standby(2 << 20, 2 << 20, Some(5.0)),
        ));
        assert_eq!(risk.replay_archive_to, None);
        assert_eq!(risk.bytes, None, "no published position: bytes unknown");
        assert_eq!(risk.secs, Some(5.0));
    }

    #[test]
    fn nothing_known_is_never_within_the_rpo() {
        let risk = bound_data_at_risk(&inputs(
            None,
            None,
            StandbyWal {
                in_recovery: true,
                ..StandbyWal::default()
            },
        ));
        assert_eq!((risk.bytes, risk.secs), (None, None));
        assert!(!risk.within(u64::MAX));
        assert!(risk.summary.contains("unknown"));
    }

    #[test]
    fn the_archive_ends_where_its_newest_segment_ends() {
        use crate::backup::wal::WalSegment;
        use crate::restore::CatalogWal;
        let wal = |name: &str, archived: i64| CatalogWal {
            segment: WalSegment::parse(name).unwrap(),
            key: format!("wals/{name}.gz"),
            archived,
        };
        let size = 16 << 20;
        let (end, key) = archive_end(
            &[
                wal("000000010000000000000003", 10),
                wal("000000020000000000000005", 30),
                wal("000000020000000000000004", 20),
            ],
            size,
        )
        .unwrap();
        assert_eq!(
            end,
            WalMark {
                lsn: 6 * size,
                at: 30
            }
        );
        assert_eq!(key, "wals/000000020000000000000005.gz");
        assert_eq!(archive_end(&[], size), None);
    }

    #[test]
    fn a_promoted_standby_loses_nothing_more() {
        let risk = bound_data_at_risk(&inputs(Some((9, NOW)), None, StandbyWal::default()));
        assert_eq!((risk.bytes, risk.secs), (Some(0), Some(0.0)));
    }

    proptest! {
        /// Writes happen at one row per second, each commit advancing WAL; the primary
        /// published at some moment, the standby replayed up to some row, the archive ends at
        /// some row: every row the standby lacks was written after `complete_to`, and the bytes
        /// the bound names are lacking for sure.
        #[test]
        fn every_lost_write_is_after_complete_to(
            written in 1u64..500,
            replayed in 0u64..500,
            published in 0u64..500,
            dark_for in 0i64..300,
        ) {
            let replayed = replayed.min(written);
            let published = published.min(written);
            // Row i commits at second `start + i`, ending WAL position 100 * (i + 1).
            let start = NOW - dark_for - written as i64;
            let lsn_after = |rows: u64| 100 * rows;
            let standby = StandbyWal {
                in_recovery: true,
                received: Some(lsn_after(replayed)),
                replayed: Some(lsn_after(replayed)),
                replay_age_secs: (replayed > 0).then(|| (NOW - (start + replayed as i64 - 1)) as f64),
            };
            let primary = (published > 0).then(|| (lsn_after(published), start + published as i64 - 1));
            let risk = bound_data_at_risk(&inputs(primary, None, standby));
            if let Some(complete_to) = risk.complete_to {
                // The first lost row (index `replayed`) commits at `start + replayed`.
                if replayed < written {
                    prop_assert!(start + replayed as i64 >= complete_to);
                }
                prop_assert!(risk.secs.unwrap() >= 0.0);
            }
            if let (Some(bytes), Some(_)) = (risk.bytes, primary) {
                prop_assert!(bytes <= lsn_after(written) - lsn_after(replayed));
            }
        }
    }
}
