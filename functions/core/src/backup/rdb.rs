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
    let mut header = Vec::with_capacity(9);
    let mut last_hashed: Option<u8> = None;
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| RdbProblem::Read(e.to_string()))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if header.len() < 9 {
            let take = (9 - header.len()).min(n);
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
                bytes: 18
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
