//! The last two rows of the HA document's backup table (section 5.1):
//!
//! - **Configuration** (on change, unlimited, Git): the deployed configuration (templates,
//!   `hapilot.toml`, Kubernetes overlays) kept as Git bundles in the backup bucket
//!   (`git bundle create`), beside the deployment's own record of what it deployed
//!   (`deployed.json`: the commit, when, and the sources it names). The newest bundle must be
//!   no older than the last deployed change and must hold the deployed commit.
//! - **Secrets metadata** (daily, 30 days, Vault backup): a daily export of Vault's secret
//!   metadata (paths and versions, as Vault's KV v2 `metadata` endpoint returns them) that
//!   must never hold a secret's value.
//!
//! Bundle format: <https://git-scm.com/docs/gitformat-bundle> (`# v2 git bundle` or
//! `# v3 git bundle`, capabilities `@key=value`, prerequisites `-<oid>`, references
//! `<oid> <refname>`, an empty line, then a packfile: `PACK`, version 2 or 3, the object
//! count, the objects, and the SHA-1 of everything before it).

use std::io::Read;

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use super::policy::{DataType, Finding, Severity};

/// What a bundle's header and pack say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitBundle {
    /// 2 or 3.
    pub version: u8,
    /// (object id, ref name) of every reference it carries.
    pub refs: Vec<(String, String)>,
    /// Commits it needs from elsewhere (a bundle that is not self-contained).
    pub prerequisites: Vec<String>,
    /// Objects in its pack.
    pub objects: u32,
}

impl GitBundle {
    /// Whether it carries `commit` (a full id, or an abbreviation of at least 7 digits) at a
    /// reference's tip.
    pub fn carries(&self, commit: &str) -> bool {
        let commit = commit.trim().to_ascii_lowercase();
        commit.len() >= 7 && self.refs.iter().any(|(oid, _)| oid.starts_with(&commit))
    }
}

/// Why a bundle is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleProblem {
    /// The first line is not a bundle signature.
    #[error(
        "not a Git bundle: it starts with {0:?}, not \"# v2 git bundle\" or \"# v3 git bundle\""
    )]
    NotABundle(String),
    /// A header line that is none of the documented kinds.
    #[error("bundle header line {0} is malformed: {1:?}")]
    BadHeader(usize, String),
    /// No reference at all: nothing could be restored from it.
    #[error("the bundle carries no reference")]
    NoRefs,
    /// The pack is missing or damaged.
    #[error("the bundle's pack {0}")]
    BadPack(String),
    /// The bytes could not be read.
    #[error("reading the bundle failed: {0}")]
    Read(String),
}

/// Largest header read before giving up (a header lists refs: a few KiB in practice).
const MAX_HEADER: usize = 1 << 20;

/// Reads a bundle from `reader`: its header, then its whole pack, whose trailing SHA-1 must
/// match (a truncated or altered bundle fails here, as `git bundle verify` would).
pub fn verify_git_bundle(reader: impl Read) -> Result<GitBundle, BundleProblem> {
    let mut reader = std::io::BufReader::new(reader);
    let mut lines = Vec::new();
    let mut read = 0;
    loop {
        let mut line = Vec::new();
        let n = std::io::BufRead::read_until(&mut reader, b'\n', &mut line)
            .map_err(|e| BundleProblem::Read(e.to_string()))?;
        read += n;
        let signature =
            line.starts_with(b"# v2 git bundle") || line.starts_with(b"# v3 git bundle");
        if lines.is_empty() && !signature {
            return Err(BundleProblem::NotABundle(
                String::from_utf8_lossy(&line).chars().take(40).collect(),
            ));
        }
        if n == 0 || read > MAX_HEADER {
            return Err(BundleProblem::BadPack(
                "is missing (no end of header)".into(),
            ));
        }
        if line == b"\n" {
            break;
        }
        lines.push(String::from_utf8_lossy(&line).trim_end().to_string());
    }
    let version = match lines.first().map(String::as_str) {
        Some("# v2 git bundle") => 2,
        Some("# v3 git bundle") => 3,
        other => {
            return Err(BundleProblem::NotABundle(
                other.unwrap_or_default().chars().take(40).collect(),
            ));
        }
    };
    let oid =
        |s: &str| (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit());
    let mut refs = Vec::new();
    let mut prerequisites = Vec::new();
    for (i, line) in lines.iter().enumerate().skip(1) {
        if version == 3 && line.starts_with('@') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('-') {
            let id = rest.split(' ').next().unwrap_or_default();
            if !oid(id) {
                return Err(BundleProblem::BadHeader(i + 1, line.clone()));
            }
            prerequisites.push(id.to_string());
            continue;
        }
        match line.split_once(' ') {
            Some((id, name)) if oid(id) && !name.is_empty() => {
                refs.push((id.to_ascii_lowercase(), name.to_string()))
            }
            _ => return Err(BundleProblem::BadHeader(i + 1, line.clone())),
        }
    }
    if refs.is_empty() {
        return Err(BundleProblem::NoRefs);
    }
    let objects = verify_pack(&mut reader)?;
    Ok(GitBundle {
        version,
        refs,
        prerequisites,
        objects,
    })
}

/// The pack: signature, version, object count, and the SHA-1 trailer over all of it.
fn verify_pack(reader: &mut impl Read) -> Result<u32, BundleProblem> {
    let mut hasher = Sha1::new();
    let mut head = [0u8; 12];
    reader
        .read_exact(&mut head)
        .map_err(|_| BundleProblem::BadPack("is missing or shorter than its header".into()))?;
    if &head[..4] != b"PACK" {
        return Err(BundleProblem::BadPack("does not start with PACK".into()));
    }
    let version = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if version != 2 && version != 3 {
        return Err(BundleProblem::BadPack(format!("has version {version}")));
    }
    let objects = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
    hasher.update(head);
    // The last 20 bytes are the trailer: keep them out of the hash until the end is known.
    let mut tail: Vec<u8> = Vec::with_capacity(20);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| BundleProblem::Read(e.to_string()))?;
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 20 {
            let cut = tail.len() - 20;
            hasher.update(&tail[..cut]);
            tail.drain(..cut);
        }
    }
    if tail.len() < 20 {
        return Err(BundleProblem::BadPack("is truncated (no checksum)".into()));
    }
    if hasher.finalize().as_slice() != tail.as_slice() {
        return Err(BundleProblem::BadPack(
            "checksum does not match its content (truncated or altered)".into(),
        ));
    }
    Ok(objects)
}

/// What the deployment says it deployed (`deployed.json` beside the bundles, written by the
/// deploy after `sam deploy` / `kubectl apply`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployedConfig {
    /// The configuration repository's commit that was deployed.
    pub commit: String,
    /// When (epoch seconds).
    pub deployed_at: i64,
    /// What the deployment names as its configuration (templates, `hapilot.toml`, overlays).
    #[serde(default)]
    pub sources: Vec<String>,
}

/// The newest bundle as the audit read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewestBundle {
    /// Its key.
    pub key: String,
    /// When it was written (epoch seconds).
    pub time: i64,
    /// Its header, or why it could not be read (a corrupt bundle is reported by the
    /// verification already).
    pub bundle: Result<GitBundle, String>,
}

fn finding(
    kind: &str,
    severity: Severity,
    key: Option<String>,
    message: String,
    fix: &str,
) -> Finding {
    super::verdicts::finding(
        kind,
        (severity, "deployed_change"),
        DataType::Configuration,
        key,
        message,
        fix,
    )
}

/// The configuration's "on change" promise: the newest bundle holds what was deployed and is
/// no older than its deployment (`grace_secs` after it at most). No bundle at all is the
/// freshness check's `no_backup`; no `deployed.json` leaves the promise unjudgeable (a warning
/// saying so).
pub fn judge_configuration(
    newest: Option<&NewestBundle>,
    deployed: Result<Option<DeployedConfig>, String>,
    marker_key: &str,
    grace_secs: i64,
) -> Vec<Finding> {
    let deployed = match deployed {
        Ok(Some(d)) => d,
        Ok(None) => {
            return vec![finding(
                "config_deploy_unknown",
                Severity::Warning,
                Some(marker_key.to_string()),
                format!(
                    "no {marker_key}: the audit cannot tell whether the newest bundle holds what is deployed"
                ),
                "have the deployment write deployed.json (commit, deployed_at, sources) beside the bundles after each deploy",
            )];
        }
        Err(why) => {
            return vec![finding(
                "config_deploy_unknown",
                Severity::Warning,
                Some(marker_key.to_string()),
                format!("{marker_key} cannot be read: {why}"),
                "write it as {\"commit\": \"<sha>\", \"deployed_at\": <epoch seconds>, \"sources\": [...]}",
            )];
        }
    };
    let Some(newest) = newest else {
        return Vec::new();
    };
    let mut findings = Vec::new();
    let at = crate::time::epoch_text(deployed.deployed_at);
    if newest.time + grace_secs < deployed.deployed_at {
        findings.push(finding(
            "config_backup_stale",
            Severity::Critical,
            Some(newest.key.clone()),
            format!(
                "the newest configuration bundle ({}, {}) is older than the last deployed change (commit {} at {at})",
                newest.key,
                crate::time::epoch_text(newest.time),
                deployed.commit
            ),
            "run the configuration backup (git bundle create --all) after every deploy and upload it to the backup bucket",
        ));
    }
    if let Ok(bundle) = &newest.bundle
        && !bundle.carries(&deployed.commit)
    {
        findings.push(finding(
            "config_commit_missing",
            Severity::Critical,
            Some(newest.key.clone()),
            format!(
                "the deployed commit {} (at {at}) is at no reference of the newest bundle {} ({} refs)",
                deployed.commit,
                newest.key,
                bundle.refs.len()
            ),
            "bundle the branch that was deployed (git bundle create <file> --all) after the deploy",
        ));
    }
    findings
}

/// What a secrets-metadata export holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretsMetadataSummary {
    /// Secrets listed.
    pub secrets: usize,
}

/// Why an export is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataProblem {
    /// Not the documented JSON.
    #[error("not a secrets-metadata export: {0}")]
    Malformed(String),
    /// It holds values: the export leaks what it must only describe.
    #[error("it holds secret values ({0}): a metadata export must carry paths and versions only")]
    HoldsValues(String),
}

/// Keys that carry a secret's value in Vault's responses (`data` of a KV read, `value`).
const VALUE_KEYS: [&str; 3] = ["data", "value", "values"];

/// Reads an export: `{"exported_at", "secrets": [{"path", "current_version", "versions"?, ...}]}`
/// (each entry what `GET /v1/<mount>/metadata/<path>` answers, plus its path). Any `data`,
/// `value` or `values` key anywhere is a leak.
pub fn verify_secrets_metadata(
    mut reader: impl Read,
) -> Result<SecretsMetadataSummary, MetadataProblem> {
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .map_err(|e| MetadataProblem::Malformed(e.to_string()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| MetadataProblem::Malformed(e.to_string()))?;
    let secrets = doc["secrets"]
        .as_array()
        .ok_or_else(|| MetadataProblem::Malformed("no \"secrets\" list".into()))?;
    for (i, s) in secrets.iter().enumerate() {
        if s["path"].as_str().is_none_or(str::is_empty) || !s["current_version"].is_u64() {
            return Err(MetadataProblem::Malformed(format!(
                "secrets[{i}] has no path or current_version"
            )));
        }
        if let Some(found) = value_key(s) {
            return Err(MetadataProblem::HoldsValues(format!(
                "secrets[{i}] ({}) has {found:?}",
                s["path"].as_str().unwrap_or_default()
            )));
        }
    }
    Ok(SecretsMetadataSummary {
        secrets: secrets.len(),
    })
}

fn value_key(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Object(map) => {
            map.iter()
                .find_map(|(k, v)| match VALUE_KEYS.contains(&k.as_str()) {
                    true => Some(k.clone()),
                    false => value_key(v),
                })
        }
        serde_json::Value::Array(items) => items.iter().find_map(value_key),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bundle as `git bundle create` writes it: header, then a pack with a valid trailer.
    fn bundle(header: &str, pack_body: &[u8]) -> Vec<u8> {
        let mut pack = b"PACK".to_vec();
        pack.extend(2u32.to_be_bytes());
        pack.extend(1u32.to_be_bytes());
        pack.extend(pack_body);
        let sum = Sha1::digest(&pack);
        pack.extend(sum.as_slice());
        let mut out = header.as_bytes().to_vec();
        out.extend(b"\n");
        out.extend(pack);
        out
    }

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn a_bundle_is_read_and_its_pack_checked() {
        let good = bundle(
            &format!("# v2 git bundle\n{SHA} refs/heads/main\n"),
            b"objects",
        );
        let b = verify_git_bundle(good.as_slice()).unwrap();
        assert_eq!(
            b.refs,
            vec![(SHA.to_string(), "refs/heads/main".to_string())]
        );
        assert_eq!((b.version, b.objects), (2, 1));
        assert!(b.carries("0123456789ab") && !b.carries("012345") && !b.carries("fedcba9"));
        let v3 = bundle(
            &format!("# v3 git bundle\n@object-format=sha1\n-{SHA} base\n{SHA} HEAD\n"),
            b"x",
        );
        assert_eq!(
            verify_git_bundle(v3.as_slice())
                .unwrap()
                .prerequisites
                .len(),
            1
        );

        let mut truncated = good.clone();
        truncated.truncate(good.len() - 5);
        assert!(matches!(
            verify_git_bundle(truncated.as_slice()),
            Err(BundleProblem::BadPack(_))
        ));
        let mut altered = good.clone();
        let n = altered.len() - 22;
        altered[n] ^= 1;
        assert!(
            verify_git_bundle(altered.as_slice())
                .unwrap_err()
                .to_string()
                .contains("checksum")
        );
        assert!(matches!(
            verify_git_bundle(&b"PK\x03\x04zip"[..]),
            Err(BundleProblem::NotABundle(_))
        ));
        let no_refs = bundle("# v2 git bundle\n", b"x");
        assert_eq!(
            verify_git_bundle(no_refs.as_slice()),
            Err(BundleProblem::NoRefs)
        );
        let bad = bundle("# v2 git bundle\nnot-an-oid refs/heads/main\n", b"x");
        assert!(matches!(
            verify_git_bundle(bad.as_slice()),
            Err(BundleProblem::BadHeader(2, _))
        ));
    }

    fn newest(time: i64) -> NewestBundle {
        NewestBundle {
            key: "config/20261206T100000Z.bundle".into(),
            time,
            bundle: Ok(GitBundle {
                version: 2,
                refs: vec![(SHA.into(), "refs/heads/main".into())],
                prerequisites: vec![],
                objects: 3,
            }),
        }
    }

    fn deployed(commit: &str, at: i64) -> Result<Option<DeployedConfig>, String> {
        Ok(Some(DeployedConfig {
            commit: commit.into(),
            deployed_at: at,
            sources: vec!["infra/template.yaml".into()],
        }))
    }

    #[test]
    fn the_newest_bundle_must_hold_the_deployed_commit_and_follow_the_deploy() {
        let kinds = |f: Vec<Finding>| f.into_iter().map(|f| f.kind).collect::<Vec<_>>();
        let key = "config/deployed.json";
        assert!(judge_configuration(Some(&newest(1_000)), deployed(SHA, 900), key, 60).is_empty());
        // Within the grace after the deploy: the bundle job runs after it.
        assert!(
            judge_configuration(Some(&newest(1_000)), deployed(SHA, 1_050), key, 60).is_empty()
        );
        assert_eq!(
            kinds(judge_configuration(
                Some(&newest(1_000)),
                deployed(SHA, 2_000),
                key,
                60
            )),
            ["config_backup_stale"]
        );
        assert_eq!(
            kinds(judge_configuration(
                Some(&newest(1_000)),
                deployed("fedcba98", 900),
                key,
                60
            )),
            ["config_commit_missing"]
        );
        assert_eq!(
            kinds(judge_configuration(Some(&newest(1_000)), Ok(None), key, 60)),
            ["config_deploy_unknown"]
        );
        assert!(judge_configuration(None, deployed(SHA, 900), key, 60).is_empty());
    }

    #[test]
    fn a_metadata_export_lists_paths_and_versions_and_never_values() {
        let ok = r#"{"exported_at": "2026-12-06T00:00:00Z", "secrets": [
            {"path": "secret/gateway/openai", "current_version": 3, "versions": {"3": {"created_time": "t", "destroyed": false}}}]}"#;
        assert_eq!(verify_secrets_metadata(ok.as_bytes()).unwrap().secrets, 1);
        let leak = r#"{"secrets": [{"path": "secret/gateway/openai", "current_version": 3, "data": {"api_key": "sk-..."}}]}"#;
        assert!(matches!(
            verify_secrets_metadata(leak.as_bytes()),
            Err(MetadataProblem::HoldsValues(_))
        ));
        let nested = r#"{"secrets": [{"path": "p", "current_version": 1, "versions": {"1": {"value": "x"}}}]}"#;
        assert!(matches!(
            verify_secrets_metadata(nested.as_bytes()),
            Err(MetadataProblem::HoldsValues(_))
        ));
        assert!(matches!(
            verify_secrets_metadata(&b"{}"[..]),
            Err(MetadataProblem::Malformed(_))
        ));
        assert!(matches!(
            verify_secrets_metadata(&b"not json"[..]),
            Err(MetadataProblem::Malformed(_))
        ));
        let no_version = r#"{"secrets": [{"path": "p"}]}"#;
        assert!(matches!(
            verify_secrets_metadata(no_version.as_bytes()),
            Err(MetadataProblem::Malformed(_))
        ));
    }
}
