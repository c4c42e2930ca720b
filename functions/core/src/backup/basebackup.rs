//! PostgreSQL base backups as tar streams (`pg_basebackup -Ft`, barman-cloud data tars),
//! optionally gzip-compressed, verified in one streaming pass:
//!
//! - every tar header checksum and, for gzip, the stream's CRC-32 (the `tar`/`flate2` readers
//!   refuse damaged ones);
//! - `backup_label` present (its start WAL and timeline are returned, to cross-check
//!   `backup.info`);
//! - `global/pg_control` present with a valid CRC-32C;
//! - with a `backup_manifest` (a member of the tar, or given separately): the manifest's own
//!   SHA-256, then every listed file's size and SHA-256 and no listed file missing - what
//!   `pg_verifybackup` checks.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a sound base backup says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseBackupSummary {
    /// Regular files in the archive.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Whether a manifest was found and every listed file matched it.
    pub manifest_verified: bool,
    /// `START WAL LOCATION` file name from `backup_label`.
    pub start_wal: Option<String>,
    /// `START TIMELINE` from `backup_label`.
    pub start_timeline: Option<u32>,
}

/// Why a base backup would not restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum BaseBackupProblem {
    /// Broken compression stream or tar structure.
    #[error("not a readable backup archive: {0}")]
    Archive(String),
    /// `backup_label` is missing: PostgreSQL would start as if it crashed, not as a restore.
    #[error("backup_label is missing")]
    NoBackupLabel,
    /// `global/pg_control` is missing or its CRC-32C is wrong.
    #[error("global/pg_control: {0}")]
    PgControl(String),
    /// The manifest is not valid JSON or its own checksum is wrong.
    #[error("backup_manifest: {0}")]
    Manifest(String),
    /// A file differs from the manifest.
    #[error("{path}: {detail}")]
    File {
        /// Path in the data directory.
        path: String,
        /// What differs.
        detail: String,
    },
}

/// CRC-32C (Castagnoli), as PostgreSQL's `pg_crc32c`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Checks `pg_control`: its CRC-32C is stored right after the data it covers, at the end of
/// `ControlFileData`, whose size differs between major versions. Any 4-byte-aligned offset in
/// the first 512 bytes where the stored value matches the CRC of what precedes it is accepted
/// (a chance match is about one in a billion).
pub fn pg_control_crc_ok(bytes: &[u8]) -> bool {
    (16..bytes.len().min(512).saturating_sub(4))
        .step_by(4)
        .any(|offset| {
            let stored = u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"));
            stored == crc32c(&bytes[..offset])
        })
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(rename = "Files")]
    files: Vec<ManifestFile>,
}

#[derive(Deserialize)]
struct ManifestFile {
    #[serde(rename = "Path")]
    path: Option<String>,
    #[serde(rename = "Encoded-Path")]
    encoded_path: Option<String>,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "Checksum-Algorithm")]
    algorithm: Option<String>,
    #[serde(rename = "Checksum")]
    checksum: Option<String>,
}

/// Checks the manifest's own SHA-256 (over everything before the `"Manifest-Checksum"` line).
pub fn verify_manifest_checksum(text: &str) -> Result<(), BaseBackupProblem> {
    let at = text
        .find("\n\"Manifest-Checksum\"")
        .ok_or_else(|| BaseBackupProblem::Manifest("no Manifest-Checksum line".into()))?;
    let stored = text[at..]
        .split('"')
        .nth(3)
        .ok_or_else(|| BaseBackupProblem::Manifest("unreadable Manifest-Checksum".into()))?;
    let computed = hex(&Sha256::digest(&text.as_bytes()[..at + 1]));
    if stored.eq_ignore_ascii_case(&computed) {
        Ok(())
    } else {
        Err(BaseBackupProblem::Manifest(format!(
            "checksum {stored} but the contents hash to {computed}"
        )))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Verifies a base backup tar stream (plain or gzip), with `manifest` when it is a separate
/// file; otherwise a `backup_manifest` member is used if present.
pub fn verify_base_backup(
    reader: impl Read,
    manifest: Option<&str>,
) -> Result<BaseBackupSummary, BaseBackupProblem> {
    let archive_error = |e: std::io::Error| BaseBackupProblem::Archive(e.to_string());
    let mut buffered = BufReader::with_capacity(64 * 1024, reader);
    let gzip = buffered
        .fill_buf()
        .map_err(archive_error)?
        .starts_with(&[0x1f, 0x8b]);
    let stream: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let mut archive = tar::Archive::new(stream);
    let mut seen: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut label = None;
    let mut control = None;
    let mut member_manifest = None;
    let mut buf = vec![0u8; 64 * 1024];
    for entry in archive.entries().map_err(archive_error)? {
        let mut entry = entry.map_err(archive_error)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(archive_error)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let keep = matches!(
            path.as_str(),
            "backup_label" | "global/pg_control" | "backup_manifest"
        );
        let mut kept = Vec::new();
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            let n = entry.read(&mut buf).map_err(archive_error)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
            if keep {
                kept.extend_from_slice(&buf[..n]);
            }
        }
        match path.as_str() {
            "backup_label" => label = Some(String::from_utf8_lossy(&kept).into_owned()),
            "global/pg_control" => control = Some(kept),
            "backup_manifest" => {
                member_manifest = Some(String::from_utf8_lossy(&kept).into_owned());
                continue;
            }
            _ => {}
        }
        seen.insert(path, (size, hex(&hasher.finalize())));
    }
    if gzip {
        std::io::copy(&mut archive.into_inner(), &mut std::io::sink()).map_err(archive_error)?;
    }
    let label = label.ok_or(BaseBackupProblem::NoBackupLabel)?;
    let control = control.ok_or_else(|| BaseBackupProblem::PgControl("missing".into()))?;
    if !pg_control_crc_ok(&control) {
        return Err(BaseBackupProblem::PgControl(
            "CRC-32C does not match its contents".into(),
        ));
    }
    let manifest_text = manifest.map(str::to_string).or(member_manifest);
    let manifest_verified = match &manifest_text {
        None => false,
        Some(text) => {
            verify_manifest_checksum(text)?;
            let manifest: Manifest = serde_json::from_str(text)
                .map_err(|e| BaseBackupProblem::Manifest(format!("not valid JSON: {e}")))?;
            for f in &manifest.files {
                let path = match (&f.path, &f.encoded_path) {
                    (Some(p), _) => p.clone(),
                    (None, Some(e)) => String::from_utf8_lossy(&unhex(e)).into_owned(),
                    (None, None) => {
                        return Err(BaseBackupProblem::Manifest(
                            "a file entry has no Path".into(),
                        ));
                    }
                };
                let fail = |detail: String| BaseBackupProblem::File {
                    path: path.clone(),
                    detail,
                };
                let (size, digest) = seen
                    .get(&path)
                    .ok_or_else(|| fail("listed in the manifest but missing".into()))?;
                if *size != f.size {
                    return Err(fail(format!("size {size}, manifest says {}", f.size)));
                }
                if f.algorithm.as_deref() == Some("SHA256")
                    && let Some(listed) = &f.checksum
                    && !listed.eq_ignore_ascii_case(digest)
                {
                    return Err(fail(format!("SHA-256 {digest}, manifest says {listed}")));
                }
            }
            true
        }
    };
    let line = |prefix: &str| {
        label
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    Ok(BaseBackupSummary {
        files: seen.len() as u64,
        bytes: seen.values().map(|v| v.0).sum(),
        manifest_verified,
        start_wal: line("START WAL LOCATION:")
            .and_then(|l| l.split("(file ").nth(1))
            .map(|f| f.trim_end_matches(')').to_string()),
        start_timeline: line("START TIMELINE:").and_then(|t| t.parse().ok()),
    })
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_reference_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn pg_control_crc_is_found_whatever_the_version_layout() {
        let mut control = vec![0u8; 8192];
        for (i, b) in control.iter_mut().take(296).enumerate() {
            *b = (i * 7) as u8;
        }
        let crc = crc32c(&control[..296]);
        control[296..300].copy_from_slice(&crc.to_le_bytes());
        assert!(pg_control_crc_ok(&control));
        control[100] ^= 1;
        assert!(!pg_control_crc_ok(&control));
    }
}
