//! Vault raft snapshots (`vault/<timestamp>.snap`): a gzip-compressed tar holding `meta.json`,
//! `state.bin` and `SHA256SUMS` (`<hex>  <name>` per member). Verification streams the archive
//! once: the gzip trailer's CRC-32, every tar header checksum, and each member's SHA-256 against
//! `SHA256SUMS`.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a sound snapshot says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultSnapshotSummary {
    /// Raft index of the snapshot (from `meta.json`), when present.
    pub index: Option<u64>,
    /// Raft term, when present.
    pub term: Option<u64>,
    /// Size of `state.bin`.
    pub state_bytes: u64,
}

/// Why a snapshot would not restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum VaultSnapshotProblem {
    /// Not a gzip stream, a broken tar, or a CRC error in the compression stream.
    #[error("not a readable snapshot archive: {0}")]
    Archive(String),
    /// A required member is missing.
    #[error("member {0} is missing")]
    Missing(String),
    /// A member's SHA-256 differs from `SHA256SUMS`.
    #[error("member {name}: SHA-256 {computed} does not match SHA256SUMS ({listed})")]
    Digest {
        /// Member name.
        name: String,
        /// Listed in SHA256SUMS.
        listed: String,
        /// Computed.
        computed: String,
    },
    /// A member is not listed in `SHA256SUMS`, or `SHA256SUMS` lists one that is absent.
    #[error("SHA256SUMS and the archive disagree about member {0}")]
    Unlisted(String),
}

/// Verifies a snapshot stream.
pub fn verify_vault_snapshot(
    reader: impl Read,
) -> Result<VaultSnapshotSummary, VaultSnapshotProblem> {
    let archive_error = |e: std::io::Error| VaultSnapshotProblem::Archive(e.to_string());
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
    let mut digests: BTreeMap<String, String> = BTreeMap::new();
    let mut sums: Option<String> = None;
    let mut meta: Option<serde_json::Value> = None;
    let mut state_bytes = None;
    for entry in archive.entries().map_err(archive_error)? {
        let mut entry = entry.map_err(archive_error)?;
        let name = entry
            .path()
            .map_err(archive_error)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if name == "SHA256SUMS" || name == "meta.json" {
            let mut text = String::new();
            entry.read_to_string(&mut text).map_err(archive_error)?;
            if name == "meta.json" {
                digests.insert(name.clone(), hex(&Sha256::digest(text.as_bytes())));
                meta = serde_json::from_str(&text).ok();
            } else {
                sums = Some(text);
            }
            continue;
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut bytes = 0u64;
        loop {
            let n = entry.read(&mut buf).map_err(archive_error)?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
            hasher.update(&buf[..n]);
        }
        if name == "state.bin" {
            state_bytes = Some(bytes);
        }
        digests.insert(name, hex(&hasher.finalize()));
    }
    // tar stops at its end-of-archive blocks; read the gzip stream to its end so its trailer
    // (CRC-32 and length) is checked too.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink()).map_err(archive_error)?;
    let sums = sums.ok_or_else(|| VaultSnapshotProblem::Missing("SHA256SUMS".into()))?;
    let state_bytes =
        state_bytes.ok_or_else(|| VaultSnapshotProblem::Missing("state.bin".into()))?;
    if !digests.contains_key("meta.json") {
        return Err(VaultSnapshotProblem::Missing("meta.json".into()));
    }
    let listed: BTreeMap<String, String> = sums
        .lines()
        .filter_map(|l| l.split_once(char::is_whitespace))
        .map(|(d, n)| {
            (
                n.trim().trim_start_matches(['*', '.', '/']).to_string(),
                d.to_ascii_lowercase(),
            )
        })
        .collect();
    for (name, computed) in &digests {
        match listed.get(name) {
            Some(d) if d == computed => {}
            Some(d) => {
                return Err(VaultSnapshotProblem::Digest {
                    name: name.clone(),
                    listed: d.clone(),
                    computed: computed.clone(),
                });
            }
            None => return Err(VaultSnapshotProblem::Unlisted(name.clone())),
        }
    }
    if let Some(name) = listed.keys().find(|n| !digests.contains_key(*n)) {
        return Err(VaultSnapshotProblem::Unlisted(name.clone()));
    }
    let field = |k: &str| {
        meta.as_ref()
            .and_then(|m| m[k].as_u64().or_else(|| m[k.to_ascii_uppercase()].as_u64()))
    };
    Ok(VaultSnapshotSummary {
        index: field("Index").or_else(|| field("index")),
        term: field("Term").or_else(|| field("term")),
        state_bytes,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds a snapshot in the documented layout: a fixture for tests and the local world's
/// backups, compiled only with the `fixtures` feature (never into a Lambda).
#[cfg(any(test, feature = "fixtures"))]
pub fn build_vault_snapshot(meta: &serde_json::Value, state: &[u8]) -> std::io::Result<Vec<u8>> {
    let meta = serde_json::to_vec(meta)?;
    let sums = format!(
        "{}  meta.json\n{}  state.bin\n",
        hex(&Sha256::digest(&meta)),
        hex(&Sha256::digest(state))
    );
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (name, data) in [
        ("meta.json", &meta[..]),
        ("state.bin", state),
        ("SHA256SUMS", sums.as_bytes()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        builder.append_data(&mut header, name, data)?;
    }
    builder.into_inner()?.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Vec<u8> {
        let meta = serde_json::json!({"ID": "5-1234-1700000000000", "Index": 1234, "Term": 5, "Version": 1});
        let state: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        build_vault_snapshot(&meta, &state).unwrap()
    }

    #[test]
    fn a_sound_snapshot_verifies() {
        let s = verify_vault_snapshot(&snapshot()[..]).unwrap();
        assert_eq!(
            (s.index, s.term, s.state_bytes),
            (Some(1234), Some(5), 800_000)
        );
    }

    #[test]
    fn every_kind_of_damage_is_caught() {
        let good = snapshot();
        let mut flipped = good.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x40;
        assert!(
            verify_vault_snapshot(&flipped[..]).is_err(),
            "a flipped byte inside the gzip stream"
        );
        assert!(
            verify_vault_snapshot(&good[..good.len() / 3]).is_err(),
            "truncated"
        );
        let mut bad_trailer = good.clone();
        let crc_at = bad_trailer.len() - 8;
        bad_trailer[crc_at] ^= 0xFF;
        assert!(
            verify_vault_snapshot(&bad_trailer[..]).is_err(),
            "the gzip CRC-32 must be checked"
        );
        assert!(matches!(
            verify_vault_snapshot(&b"not gzip"[..]),
            Err(VaultSnapshotProblem::Archive(_))
        ));
        // A snapshot whose state.bin does not match its SHA256SUMS.
        let meta = serde_json::json!({"Index": 1, "Term": 1});
        let mut tampered = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        for (name, data) in [
            ("meta.json", serde_json::to_vec(&meta).unwrap()),
            ("state.bin", b"other state".to_vec()),
            (
                "SHA256SUMS",
                format!(
                    "{}  meta.json\n{}  state.bin\n",
                    hex(&Sha256::digest(serde_json::to_vec(&meta).unwrap())),
                    hex(&Sha256::digest(b"state"))
                )
                .into_bytes(),
            ),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_cksum();
            tampered.append_data(&mut h, name, &data[..]).unwrap();
        }
        let tampered = tampered.into_inner().unwrap().finish().unwrap();
        assert!(
            matches!(verify_vault_snapshot(&tampered[..]), Err(VaultSnapshotProblem::Digest { name, .. }) if name == "state.bin")
        );
    }
}
