//! Redis RDB files: `REDIS` + 4-digit version, the dataset, the `0xFF` end opcode, and an
//! 8-byte little-endian CRC-64 (Jones polynomial, reflected) of everything before it. A zero
//! checksum means the server ran with `rdbchecksum no`.
//!
//! Verification streams: it never holds more than the last 8 bytes.

use std::io::Read;

use serde::{Deserialize, Serialize};

const CRC64_JONES_REFLECTED: u64 = 0x95AC_9329_AC4B_C9B5;

const fn crc64_table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ CRC64_JONES_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static TABLE: [u64; 256] = crc64_table();

/// Redis's CRC-64 over `bytes`, continuing from `crc`.
pub fn crc64(mut crc: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        crc = TABLE[((crc ^ u64::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

/// What a sound RDB file says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RdbSummary {
    /// The RDB format version (e.g. 10 for Redis 7.0).
    pub version: u32,
    /// Whether the file carried a checksum (0 = `rdbchecksum no`).
    pub checksummed: bool,
    /// File size in bytes.
    pub bytes: u64,
    /// The first database's size as the file announces it (`RESIZEDB`, written since RDB 7),
    /// when it is readable from the file's head: what a restore must load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<RdbKeys>,
}

/// A database's `RESIZEDB` hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RdbKeys {
    /// Which database (`SELECTDB`; 0 on a gateway's Redis).
    pub db: u64,
    /// Keys in it.
    pub keys: u64,
    /// Of which with an expiry (a restore drops those already expired).
    pub expires: u64,
}

impl RdbKeys {
    /// Whether `loaded` keys are what a restore of this database should hold: all of them, less
    /// at most those with an expiry (already expired ones are not loaded).
    pub fn accounts_for(&self, loaded: u64) -> bool {
        loaded <= self.keys && loaded + self.expires >= self.keys
    }
}

/// The head of the file that is read for the `RESIZEDB` hint (auxiliary fields come first and
/// are small).
const HEAD_BYTES: usize = 64 * 1024;

/// Reads the first database's `RESIZEDB` from the file's head, after the auxiliary fields
/// (opcodes of the RDB format: 0xFA AUX, 0xFE SELECTDB, 0xFB RESIZEDB, 0xFF EOF). An empty
/// dataset (EOF before any database) is 0 keys; anything else (a module's or a function's
/// opcode first, a file without the hint) says nothing.
fn first_database(head: &[u8]) -> Option<RdbKeys> {
    let mut at = 9;
    loop {
        match *head.get(at)? {
            0xFA => {
                at += 1;
                at = skip_string(head, at)?;
                at = skip_string(head, at)?;
            }
            0xFE => {
                let (db, next) = length(head, at + 1)?;
                if *head.get(next)? != 0xFB {
                    return None;
                }
                let (keys, next) = length(head, next + 1)?;
                let (expires, _) = length(head, next)?;
                return Some(RdbKeys { db, keys, expires });
            }
            0xFF => {
                return Some(RdbKeys {
                    db: 0,
                    keys: 0,
                    expires: 0,
                });
            }
            _ => return None,
        }
    }
}

/// An RDB length at `at`: the value and where the next field starts. Special (string)
/// encodings are not lengths.
fn length(head: &[u8], at: usize) -> Option<(u64, usize)> {
    let first = *head.get(at)?;
    match first >> 6 {
        0 => Some((u64::from(first & 0x3F), at + 1)),
        1 => Some((
            (u64::from(first & 0x3F) << 8) | u64::from(*head.get(at + 1)?),
            at + 2,
        )),
        2 if first == 0x80 => Some((
            u64::from(u32::from_be_bytes(
                head.get(at + 1..at + 5)?.try_into().ok()?,
            )),
            at + 5,
        )),
        2 if first == 0x81 => Some((
            u64::from_be_bytes(head.get(at + 1..at + 9)?.try_into().ok()?),
            at + 9,
        )),
        _ => None,
    }
}

/// Skips an RDB string at `at` (plain, integer-encoded or LZF-compressed).
fn skip_string(head: &[u8], at: usize) -> Option<usize> {
    let first = *head.get(at)?;
    if first >> 6 == 3 {
        return match first & 0x3F {
            0 => Some(at + 2),
            1 => Some(at + 3),
            2 => Some(at + 5),
            3 => {
                let (compressed, next) = length(head, at + 1)?;
                let (_, next) = length(head, next)?;
                Some(next + usize::try_from(compressed).ok()?)
            }
            _ => None,
        };
    }
    let (len, next) = length(head, at)?;
    Some(next + usize::try_from(len).ok()?)
}

/// Why an RDB file would not load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RdbProblem {
    /// It does not start with `REDIS` and a version.
    #[error("not an RDB file: the header is not REDIS + 4-digit version")]
    BadMagic,
    /// It ends before its end marker and checksum.
    #[error("truncated: {0} bytes, too short for the end marker and checksum")]
    Truncated(u64),
    /// The byte before the checksum is not the end opcode.
    #[error(
        "no end-of-file marker (0xFF) before the checksum: truncated or not written completely"
    )]
    NoEndMarker,
    /// The stored checksum does not match the contents.
    #[error(
        "checksum mismatch: stored {stored:016x}, computed {computed:016x} (the file is corrupt)"
    )]
    Checksum {
        /// The trailer's value.
        stored: u64,
        /// What the contents hash to.
        computed: u64,
    },
    /// The reader failed.
    #[error("could not read the file: {0}")]
    Read(String),
}

/// Verifies an RDB stream: magic, version, end marker, CRC-64.
pub fn verify_rdb(mut reader: impl Read) -> Result<RdbSummary, RdbProblem> {
    let mut buf = vec![0u8; 64 * 1024];
    // The last 8 bytes seen are held back: they may be the checksum.
    let mut tail: Vec<u8> = Vec::with_capacity(8 + buf.len());
    let mut crc = 0u64;
    let mut total = 0u64;
    let mut header = Vec::with_capacity(HEAD_BYTES);
    let mut last_hashed: Option<u8> = None;
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| RdbProblem::Read(e.to_string()))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if header.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - header.len()).min(n);
            header.extend_from_slice(&buf[..take]);
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 8 {
            let hash_len = tail.len() - 8;
            crc = crc64(crc, &tail[..hash_len]);
            last_hashed = Some(tail[hash_len - 1]);
            tail.drain(..hash_len);
        }
    }
    if header.len() < 9 || &header[..5] != b"REDIS" || !header[5..9].iter().all(u8::is_ascii_digit)
    {
        return Err(RdbProblem::BadMagic);
    }
    let version: u32 = std::str::from_utf8(&header[5..9])
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or(RdbProblem::BadMagic)?;
    if total < 9 + 1 + 8 {
        return Err(RdbProblem::Truncated(total));
    }
    if last_hashed != Some(0xFF) {
        return Err(RdbProblem::NoEndMarker);
    }
    let stored = u64::from_le_bytes(tail[..8].try_into().expect("8 bytes held back"));
    if stored != 0 && stored != crc {
        return Err(RdbProblem::Checksum {
            stored,
            computed: crc,
        });
    }
    Ok(RdbSummary {
        version,
        checksummed: stored != 0,
        bytes: total,
        keys: first_database(&header),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid RDB: header, the end opcode, the checksum of both.
    fn tiny(version: &str) -> Vec<u8> {
        let mut f = format!("REDIS{version}").into_bytes();
        f.push(0xFF);
        let crc = crc64(0, &f);
        f.extend_from_slice(&crc.to_le_bytes());
        f
    }

    #[test]
    fn crc64_matches_the_reference_check_value() {
        // Redis's crc64.c: crc64(0, "123456789") == 0xe9c6d914c4b8d9ca.
        assert_eq!(crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn sound_and_broken_files() {
        let good = tiny("0010");
        assert_eq!(
            verify_rdb(&good[..]).unwrap(),
            RdbSummary {
                version: 10,
                checksummed: true,
                bytes: 18,
                keys: Some(RdbKeys {
                    db: 0,
                    keys: 0,
                    expires: 0
                }),
            }
        );
        let mut flipped = good.clone();
        flipped[7] ^= 0x01;
        assert!(matches!(
            verify_rdb(&flipped[..]),
            Err(RdbProblem::Checksum { .. })
        ));
        assert_eq!(
            verify_rdb(&good[..good.len() - 3]),
            Err(RdbProblem::Truncated(15))
        );
        assert_eq!(
            verify_rdb(&b"RDB?0010\xff\0\0\0\0\0\0\0\0"[..]),
            Err(RdbProblem::BadMagic)
        );
        let mut unchecked = good[..10].to_vec();
        unchecked.extend_from_slice(&[0; 8]);
        assert!(!verify_rdb(&unchecked[..]).unwrap().checksummed);
    }

    /// Header, `redis-ver` as AUX, an integer-encoded AUX, SELECTDB 0, RESIZEDB, one key.
    fn with_keys(keys: u8, expires: u8) -> Vec<u8> {
        let mut f = b"REDIS0011".to_vec();
        f.extend_from_slice(&[0xFA, 9]);
        f.extend_from_slice(b"redis-ver");
        f.extend_from_slice(&[5]);
        f.extend_from_slice(b"7.2.4");
        f.extend_from_slice(&[0xFA, 10]);
        f.extend_from_slice(b"redis-bits");
        f.extend_from_slice(&[0xC0, 64]);
        f.extend_from_slice(&[0xFE, 0, 0xFB, keys, expires]);
        f.extend_from_slice(&[0, 1, b'k', 1, b'v']);
        f.push(0xFF);
        let crc = crc64(0, &f);
        f.extend_from_slice(&crc.to_le_bytes());
        f
    }

    #[test]
    fn the_first_databases_size_is_read_from_its_head() {
        let keys = verify_rdb(&with_keys(1, 0)[..]).unwrap().keys.unwrap();
        assert_eq!((keys.db, keys.keys, keys.expires), (0, 1, 0));
        assert!(keys.accounts_for(1) && !keys.accounts_for(0) && !keys.accounts_for(2));
        let with_ttl = verify_rdb(&with_keys(5, 2)[..]).unwrap().keys.unwrap();
        assert!(with_ttl.accounts_for(3) && with_ttl.accounts_for(5) && !with_ttl.accounts_for(2));
        // A module's auxiliary data first: no claim rather than a wrong one.
        let mut module = with_keys(1, 0);
        module[9] = 0xF7;
        assert_eq!(first_database(&module), None);
        // 14-bit lengths.
        assert_eq!(length(&[0x41, 0x02], 0), Some((0x102, 2)));
    }

    #[test]
    fn small_reads_give_the_same_answer() {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(out.len()).min(3);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let good = tiny("0011");
        assert_eq!(verify_rdb(Trickle(&good)).unwrap().version, 11);
    }
}
