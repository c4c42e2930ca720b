//! PostgreSQL WAL segment names and the continuity of an archived WAL chain.
//!
//! A segment file is named by 24 hex digits: timeline (8), log (8), segment within the log (8).
//! With the default 16 MiB segments a log holds 256 segments (`0x00`-`0xFF`), so the segment
//! after `…000000FF` is the next log's `…00000000`. barman-cloud stores them under
//! `wals/<timeline+log>/<segment name>[.gz|.bz2|.xz|.snappy]`, plus `<timeline>.history` files
//! (and `.backup` label files and `.partial` segments, which are not part of the chain).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Default WAL segment size (PostgreSQL's `--wal-segsize` default).
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// One WAL segment, ordered by (timeline, position).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WalSegment {
    /// Timeline id.
    pub timeline: u32,
    /// High 32 bits of the position ("log").
    pub log: u32,
    /// Segment within the log.
    pub seg: u32,
}

impl WalSegment {
    /// Parses a 24-hex-digit segment name.
    pub fn parse(name: &str) -> Result<Self, CoreError> {
        let bad = || {
            CoreError::invalid(
                "wal",
                format!("{name:?} is not a WAL segment name (24 hex digits)"),
            )
        };
        if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let part = |i: usize| u32::from_str_radix(&name[i..i + 8], 16).map_err(|_| bad());
        Ok(Self {
            timeline: part(0)?,
            log: part(8)?,
            seg: part(16)?,
        })
    }

    /// The next segment on the same timeline.
    pub fn next(self, segment_size: u64) -> Self {
        let per_log = segments_per_log(segment_size);
        if self.seg + 1 >= per_log {
            Self {
                log: self.log + 1,
                seg: 0,
                ..self
            }
        } else {
            Self {
                seg: self.seg + 1,
                ..self
            }
        }
    }

    /// Position of the segment's first byte on its timeline.
    pub fn start_lsn(self, segment_size: u64) -> u64 {
        (u64::from(self.log) << 32) + u64::from(self.seg) * segment_size
    }

    /// The segment holding byte `lsn` on `timeline`.
    pub fn containing(timeline: u32, lsn: u64, segment_size: u64) -> Self {
        Self {
            timeline,
            log: (lsn >> 32) as u32,
            seg: ((lsn & 0xFFFF_FFFF) / segment_size) as u32,
        }
    }

    /// The same position on another timeline.
    pub fn on_timeline(self, timeline: u32) -> Self {
        Self { timeline, ..self }
    }

    /// barman-cloud's directory for it: timeline + log, 16 hex digits.
    pub fn directory(self) -> String {
        format!("{:08X}{:08X}", self.timeline, self.log)
    }
}

fn segments_per_log(segment_size: u64) -> u32 {
    (0x1_0000_0000u64 / segment_size.max(1)) as u32
}

impl fmt::Display for WalSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}{:08X}{:08X}", self.timeline, self.log, self.seg)
    }
}

/// What a file in a WAL archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalFile {
    /// A complete segment, with its compression suffix (`gz`, `bz2`, `xz`, `snappy`) if any.
    Segment(WalSegment, Option<String>),
    /// A timeline history file.
    History(u32),
    /// A backup label file (`<segment>.<offset>.backup`): not part of the chain.
    BackupLabel(WalSegment),
    /// An unfinished segment (`.partial`): not part of the chain.
    Partial(WalSegment),
}

/// Classifies an object key (or file name) of a WAL archive; `None` for anything else.
pub fn classify(key: &str) -> Option<WalFile> {
    let name = key.rsplit('/').next().unwrap_or(key);
    if let Some(tli) = name.strip_suffix(".history") {
        return (tli.len() == 8)
            .then(|| u32::from_str_radix(tli, 16).ok())
            .flatten()
            .map(WalFile::History);
    }
    let (base, rest) = name.split_at(name.len().min(24));
    let segment = WalSegment::parse(base).ok()?;
    match rest {
        "" => Some(WalFile::Segment(segment, None)),
        ".partial" => Some(WalFile::Partial(segment)),
        _ if rest.ends_with(".backup") => Some(WalFile::BackupLabel(segment)),
        _ => match rest.strip_prefix('.') {
            Some(c @ ("gz" | "bz2" | "xz" | "snappy" | "zst" | "lz4")) => {
                Some(WalFile::Segment(segment, Some(c.to_string())))
            }
            _ => None,
        },
    }
}

/// A timeline switch, from a `.history` file: `timeline` began at `switch_lsn` of its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineSwitch {
    /// The parent timeline.
    pub parent: u32,
    /// The new timeline.
    pub timeline: u32,
    /// Where the new timeline branched off.
    pub switch_lsn: u64,
}

/// Parses the body of `<timeline>.history`: lines `parentTLI<TAB>switchpoint<TAB>reason`.
pub fn parse_history(timeline: u32, body: &str) -> Result<Vec<TimelineSwitch>, CoreError> {
    let mut parents: Vec<(u32, u64)> = Vec::new();
    for line in body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let mut fields = line.split_whitespace();
        let bad = || {
            CoreError::invalid(
                "history",
                format!("line {line:?} of {timeline:08X}.history is not `tli lsn reason`"),
            )
        };
        let tli: u32 = fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad)?;
        let lsn = fields.next().and_then(parse_lsn).ok_or_else(bad)?;
        parents.push((tli, lsn));
    }
    // Each line says: timeline `tli` ended at `lsn`; the next line's (or this file's) timeline follows.
    let children: Vec<u32> = parents
        .iter()
        .skip(1)
        .map(|p| p.0)
        .chain(std::iter::once(timeline))
        .collect();
    Ok(parents
        .iter()
        .zip(children)
        .map(|(&(parent, switch_lsn), timeline)| TimelineSwitch {
            parent,
            timeline,
            switch_lsn,
        })
        .collect())
}

/// Parses an LSN written `X/Y` (hex).
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) + u64::from_str_radix(lo, 16).ok()?)
}

/// How far an archive's chain reaches from a start segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    /// The newest segment reachable without a gap (`None`: not even the start is there).
    pub reached: Option<WalSegment>,
    /// The first missing segment, when the chain stops before the newest archived segment.
    pub first_missing: Option<WalSegment>,
    /// Archived segments beyond the gap (unusable for recovery past it).
    pub stranded: usize,
}

/// Follows the chain from `start` through `archived`, switching timelines where `switches`
/// say, and reports how far it reaches (what `barman check-backup` / `wal-g wal-verify` check).
pub fn follow_chain(
    start: WalSegment,
    archived: &BTreeSet<WalSegment>,
    switches: &[TimelineSwitch],
    segment_size: u64,
) -> ChainReport {
    let path = chain_path(start, archived, switches, segment_size);
    let reached = path.last().copied();
    let after = match reached {
        Some(r) => next_on_chain(r, archived, switches, segment_size),
        None => start,
    };
    let newest = archived.iter().filter(|s| Some(**s) > reached).count();
    ChainReport {
        reached,
        first_missing: if reached.is_none() {
            Some(start)
        } else {
            (newest > 0).then_some(after)
        },
        stranded: newest,
    }
}

/// The segments a recovery from `start` replays, in order, up to the first one missing.
pub fn chain_path(
    start: WalSegment,
    archived: &BTreeSet<WalSegment>,
    switches: &[TimelineSwitch],
    segment_size: u64,
) -> Vec<WalSegment> {
    let mut path = Vec::new();
    let mut current = start;
    while archived.contains(&current) {
        path.push(current);
        current = next_on_chain(current, archived, switches, segment_size);
    }
    path
}

/// The segment after `current` on the chain: the next one on the same timeline, or - where a
/// child timeline branched inside `current` or inside the next segment - its continuation on
/// the child.
///
/// At promotion PostgreSQL copies the parent's WAL up to the switch point into the child's
/// first segment (the switch segment), and archives the parent's own copy of that segment only
/// as `.partial`. So a chain that starts on the parent (a base backup taken before the
/// failover) continues, at the switch segment, on the child.
fn next_on_chain(
    current: WalSegment,
    archived: &BTreeSet<WalSegment>,
    switches: &[TimelineSwitch],
    segment_size: u64,
) -> WalSegment {
    let next = current.next(segment_size);
    let branch_in = |segment: WalSegment| {
        switches.iter().find(|s| {
            s.parent == current.timeline
                && WalSegment::containing(current.timeline, s.switch_lsn, segment_size) == segment
        })
    };
    if let Some(s) = branch_in(current) {
        return if archived.contains(&current.on_timeline(s.timeline)) {
            current.on_timeline(s.timeline)
        } else {
            next.on_timeline(s.timeline)
        };
    }
    match branch_in(next) {
        Some(s) if archived.contains(&next.on_timeline(s.timeline)) => next.on_timeline(s.timeline),
        _ => next,
    }
}

/// The timeline `segment`'s first page may carry besides its own: the parent's, when
/// `segment` is its timeline's switch segment (PostgreSQL copied the parent's pages into it).
pub fn parent_in_switch_segment(
    segment: WalSegment,
    switches: &[TimelineSwitch],
    segment_size: u64,
) -> Option<u32> {
    switches
        .iter()
        .find(|s| {
            s.timeline == segment.timeline
                && WalSegment::containing(s.timeline, s.switch_lsn, segment_size) == segment
        })
        .map(|s| s.parent)
}

/// What a sound archived WAL segment says about itself (its first page's long header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalSegmentSummary {
    /// `xlp_magic`: the WAL format version of the server that wrote it.
    pub magic: u16,
    /// Database system identifier: every segment of one cluster carries the same.
    pub system_id: u64,
    /// Uncompressed size.
    pub bytes: u64,
}

/// Why an archived WAL segment would not replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum WalSegmentProblem {
    /// The compression stream is damaged (e.g. a gzip CRC error) or the read failed.
    #[error("unreadable: {0}")]
    Unreadable(String),
    /// A compression the audit cannot read; the segment is not verified (not proven bad).
    #[error("compression {0:?} is not verified by this audit")]
    UnsupportedCompression(String),
    /// Not the full segment size: truncated, or written by a server with another segment size.
    #[error("{bytes} bytes, expected {expected}")]
    Size {
        /// Bytes read.
        bytes: u64,
        /// The segment size.
        expected: u64,
    },
    /// The first page's header does not belong to this segment name.
    #[error("first page header: {0}")]
    Header(String),
}

/// `XLP_LONG_HEADER`: the first page of every segment has the long header.
const XLP_LONG_HEADER: u16 = 0x0002;

/// Verifies an archived segment's content in one streaming pass: decompression (gzip's CRC),
/// the full size, and the first page's long header against the file's name (timeline, page
/// address, segment size) - a renamed, truncated or foreign segment fails.
///
/// `parent` is the timeline the first page may carry instead of the name's: the parent's, on a
/// switch segment (see [`parent_in_switch_segment`]).
pub fn verify_wal_segment(
    reader: impl std::io::Read,
    expected: WalSegment,
    compression: Option<&str>,
    segment_size: u64,
    parent: Option<u32>,
) -> Result<WalSegmentSummary, WalSegmentProblem> {
    let mut stream: Box<dyn std::io::Read> = match compression {
        None => Box::new(reader),
        Some("gz") => Box::new(flate2::read::GzDecoder::new(reader)),
        Some(other) => return Err(WalSegmentProblem::UnsupportedCompression(other.into())),
    };
    let mut header = [0u8; 40];
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = stream
            .read(&mut buf)
            .map_err(|e| WalSegmentProblem::Unreadable(e.to_string()))?;
        if n == 0 {
            break;
        }
        if total < 40 {
            let at = total as usize;
            let take = (40 - at).min(n);
            header[at..at + take].copy_from_slice(&buf[..take]);
        }
        total += n as u64;
    }
    if total != segment_size {
        return Err(WalSegmentProblem::Size {
            bytes: total,
            expected: segment_size,
        });
    }
    let u16_at = |i: usize| u16::from_le_bytes([header[i], header[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().unwrap_or_default());
    let u64_at = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().unwrap_or_default());
    let (magic, info, tli, pageaddr) = (u16_at(0), u16_at(2), u32_at(4), u64_at(8));
    if info & XLP_LONG_HEADER == 0 {
        return Err(WalSegmentProblem::Header(
            "no long header on the first page: not the start of a segment".into(),
        ));
    }
    if tli != expected.timeline && Some(tli) != parent {
        return Err(WalSegmentProblem::Header(match parent {
            Some(p) => format!(
                "timeline {tli}, the name says {} (and its parent is {p})",
                expected.timeline
            ),
            None => format!("timeline {tli}, the name says {}", expected.timeline),
        }));
    }
    let start = expected.start_lsn(segment_size);
    if pageaddr != start {
        return Err(WalSegmentProblem::Header(format!(
            "page address {:X}/{:X}, the name says {:X}/{:X}",
            pageaddr >> 32,
            pageaddr & 0xFFFF_FFFF,
            start >> 32,
            start & 0xFFFF_FFFF
        )));
    }
    if u64::from(u32_at(32)) != segment_size {
        return Err(WalSegmentProblem::Header(format!(
            "segment size {} in the header, expected {segment_size}",
            u32_at(32)
        )));
    }
    Ok(WalSegmentSummary {
        magic,
        system_id: u64_at(24),
        bytes: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seg(t: u32, l: u32, s: u32) -> WalSegment {
        WalSegment {
            timeline: t,
            log: l,
            seg: s,
        }
    }

    #[test]
    fn names_round_trip_and_wrap() {
        let s = WalSegment::parse("0000000100000000000000FF").unwrap();
        assert_eq!(s, seg(1, 0, 0xFF));
        assert_eq!(
            s.next(DEFAULT_SEGMENT_SIZE).to_string(),
            "000000010000000100000000"
        );
        assert_eq!(s.directory(), "0000000100000000");
        assert!(WalSegment::parse("00000001000000000000FF").is_err());
        assert!(WalSegment::parse("0000000100000000000000FG").is_err());
        assert_eq!(parse_lsn("0/2000028"), Some(0x2000028));
        assert_eq!(
            WalSegment::containing(1, 0x2000028, DEFAULT_SEGMENT_SIZE),
            seg(1, 0, 2)
        );
    }

    #[test]
    fn archive_files_are_told_apart() {
        let s = seg(1, 0, 3);
        assert_eq!(
            classify("pg/wals/0000000100000000/000000010000000000000003.gz"),
            Some(WalFile::Segment(s, Some("gz".into())))
        );
        assert_eq!(
            classify("000000010000000000000003"),
            Some(WalFile::Segment(s, None))
        );
        assert_eq!(
            classify("000000010000000000000003.partial"),
            Some(WalFile::Partial(s))
        );
        assert_eq!(
            classify("000000010000000000000003.00000028.backup"),
            Some(WalFile::BackupLabel(s))
        );
        assert_eq!(classify("00000002.history"), Some(WalFile::History(2)));
        assert_eq!(classify("README"), None);
        assert_eq!(classify("000000010000000000000003.rar"), None);
    }

    #[test]
    fn a_gap_stops_the_chain_and_strands_what_follows() {
        let archived: BTreeSet<_> = [seg(1, 0, 1), seg(1, 0, 2), seg(1, 0, 4), seg(1, 0, 5)].into();
        let r = follow_chain(seg(1, 0, 1), &archived, &[], DEFAULT_SEGMENT_SIZE);
        assert_eq!(r.reached, Some(seg(1, 0, 2)));
        assert_eq!(r.first_missing, Some(seg(1, 0, 3)));
        assert_eq!(r.stranded, 2);
        let missing_start = follow_chain(seg(1, 0, 0), &archived, &[], DEFAULT_SEGMENT_SIZE);
        assert_eq!(
            (missing_start.reached, missing_start.first_missing),
            (None, Some(seg(1, 0, 0)))
        );
    }

    #[test]
    fn timeline_switches_are_followed() {
        // Timeline 2 branched off timeline 1 inside segment 3 (after a promotion).
        let history = parse_history(2, "1\t0/3000100\tno recovery target specified\n").unwrap();
        assert_eq!(
            history,
            vec![TimelineSwitch {
                parent: 1,
                timeline: 2,
                switch_lsn: 0x3000100
            }]
        );
        let archived: BTreeSet<_> = [seg(1, 0, 2), seg(1, 0, 3), seg(2, 0, 3), seg(2, 0, 4)].into();
        let r = follow_chain(seg(1, 0, 2), &archived, &history, DEFAULT_SEGMENT_SIZE);
        assert_eq!(
            (r.reached, r.first_missing, r.stranded),
            (Some(seg(2, 0, 4)), None, 0)
        );
    }

    proptest! {
        #[test]
        fn display_parses_back(t in 1u32..100, l in 0u32..1000, s in 0u32..256) {
            let w = seg(t, l, s);
            prop_assert_eq!(WalSegment::parse(&w.to_string()).unwrap(), w);
            prop_assert!(w.next(DEFAULT_SEGMENT_SIZE) > w);
            prop_assert_eq!(w.next(DEFAULT_SEGMENT_SIZE).start_lsn(DEFAULT_SEGMENT_SIZE), w.start_lsn(DEFAULT_SEGMENT_SIZE) + DEFAULT_SEGMENT_SIZE);
        }

        #[test]
        fn a_complete_chain_reaches_its_end(n in 1u32..600, hole in proptest::option::of(1u32..600)) {
            let mut archived = BTreeSet::new();
            let mut s = seg(1, 0, 0);
            let mut all = Vec::new();
            for _ in 0..n { all.push(s); s = s.next(DEFAULT_SEGMENT_SIZE); }
            for (i, w) in all.iter().enumerate() {
                if hole != Some(i as u32) { archived.insert(*w); }
            }
            let r = follow_chain(all[0], &archived, &[], DEFAULT_SEGMENT_SIZE);
            match hole {
                Some(h) if h < n && h > 0 => {
                    prop_assert_eq!(r.reached, Some(all[h as usize - 1]));
                    let expected = if h + 1 < n { Some(all[h as usize]) } else { None };
                    prop_assert_eq!(r.first_missing, expected);
                }
                _ => prop_assert_eq!((r.reached, r.first_missing), (Some(*all.last().unwrap()), None)),
            }
        }
    }

    /// A segment-shaped buffer with a first-page long header, as PostgreSQL writes it.
    fn segment_bytes(seg: WalSegment, size: u64) -> Vec<u8> {
        let mut b = vec![0u8; size as usize];
        b[0..2].copy_from_slice(&0xD116u16.to_le_bytes());
        b[2..4].copy_from_slice(&XLP_LONG_HEADER.to_le_bytes());
        b[4..8].copy_from_slice(&seg.timeline.to_le_bytes());
        b[8..16].copy_from_slice(&seg.start_lsn(size).to_le_bytes());
        b[24..32].copy_from_slice(&7_300_000_000_000_000_000u64.to_le_bytes());
        b[32..36].copy_from_slice(&(size as u32).to_le_bytes());
        b
    }

    #[test]
    fn segment_content_must_match_its_name() {
        let size = 1024 * 1024;
        let seg = WalSegment::parse("000000020000000100000003").unwrap();
        let bytes = segment_bytes(seg, size);
        let ok = verify_wal_segment(&bytes[..], seg, None, size, None).unwrap();
        assert_eq!(ok.system_id, 7_300_000_000_000_000_000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &bytes).unwrap();
        let gz = gz.finish().unwrap();
        assert!(verify_wal_segment(&gz[..], seg, Some("gz"), size, None).is_ok());
        let renamed = seg.next(size);
        assert!(matches!(
            verify_wal_segment(&bytes[..], renamed, None, size, None),
            Err(WalSegmentProblem::Header(_))
        ));
        assert!(matches!(
            verify_wal_segment(&bytes[..1000], seg, None, size, None),
            Err(WalSegmentProblem::Size { bytes: 1000, .. })
        ));
        let mut flipped = gz.clone();
        let at = flipped.len() - 6;
        flipped[at] ^= 1;
        assert!(matches!(
            verify_wal_segment(&flipped[..], seg, Some("gz"), size, None),
            Err(WalSegmentProblem::Unreadable(_))
        ));
        assert!(matches!(
            verify_wal_segment(&bytes[..], seg, Some("xz"), size, None),
            Err(WalSegmentProblem::UnsupportedCompression(_))
        ));
    }

    #[test]
    fn a_switch_segment_may_carry_its_parents_timeline_and_nothing_else() {
        let size = 1024 * 1024;
        // PostgreSQL copied timeline 1's pages into timeline 2's first segment at promotion.
        let copied = segment_bytes(seg(1, 1, 3), size);
        let switch = seg(2, 1, 3);
        let switches = [TimelineSwitch {
            parent: 1,
            timeline: 2,
            switch_lsn: switch.start_lsn(size) + 0x1234,
        }];
        let parent = parent_in_switch_segment(switch, &switches, size);
        assert_eq!(parent, Some(1));
        assert!(verify_wal_segment(&copied[..], switch, None, size, parent).is_ok());
        assert!(verify_wal_segment(&copied[..], switch, None, size, None).is_err());
        // Any later segment of timeline 2 must carry timeline 2.
        let later = seg(2, 1, 4);
        assert_eq!(parent_in_switch_segment(later, &switches, size), None);
        let foreign = segment_bytes(seg(3, 1, 3), size);
        assert!(verify_wal_segment(&foreign[..], switch, None, size, parent).is_err());
    }

    #[test]
    fn a_chain_from_before_a_failover_continues_on_the_new_timeline_at_the_switch_segment() {
        let size = DEFAULT_SEGMENT_SIZE;
        // Timeline 1 archived 1..7; its segment 8 only as .partial (not in the set); timeline 2
        // branched inside segment 8 and goes on to 10.
        let mut archived: BTreeSet<WalSegment> = (1..=7).map(|s| seg(1, 0, s)).collect();
        archived.extend((8..=10).map(|s| seg(2, 0, s)));
        let switches = [TimelineSwitch {
            parent: 1,
            timeline: 2,
            switch_lsn: seg(1, 0, 8).start_lsn(size) + 0x28,
        }];
        let chain = follow_chain(seg(1, 0, 2), &archived, &switches, size);
        assert_eq!(chain.reached, Some(seg(2, 0, 10)));
        assert_eq!(chain.first_missing, None);
        // Without the history file, the same catalog breaks at timeline 1's segment 8.
        let chain = follow_chain(seg(1, 0, 2), &archived, &[], size);
        assert_eq!(chain.first_missing, Some(seg(1, 0, 8)));
    }
}
