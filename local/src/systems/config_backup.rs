//! The local backup jobs for the last two rows of the HA document's backup table: the deployed
//! configuration as a Git bundle (a real repository made with the `git` binary, bundled with
//! `git bundle create --all`) beside the deployment's `deployed.json`, and the daily export of
//! Vault's secret metadata (paths and versions, as KV v2's `metadata` endpoint answers).

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::LocalError;
use crate::systems::barman::{BackupObject, compact_time};

/// A bundle of a repository holding `sources` (path, content) in one commit, and that
/// commit's id. Blocking (runs `git`).
pub fn bundle_configuration(sources: &[(&str, &[u8])]) -> Result<(String, Vec<u8>), LocalError> {
    let dir =
        std::env::temp_dir().join(format!("hapilot-config-{}", uuid::Uuid::new_v4().simple()));
    let result = bundle_in(&dir, sources);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn bundle_in(dir: &Path, sources: &[(&str, &[u8])]) -> Result<(String, Vec<u8>), LocalError> {
    let git = |args: &[&str]| -> Result<String, LocalError> {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=hapilot",
                "-c",
                "user.email=hapilot@localhost",
            ])
            .args([
                "-c",
                "init.defaultBranch=main",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .output()
            .map_err(LocalError::io("running git"))?;
        if !out.status.success() {
            return Err(LocalError::io(format!("git {}", args.join(" ")))(
                std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    std::fs::create_dir_all(dir).map_err(LocalError::io("creating the config repository"))?;
    git(&["init", "-q"])?;
    for (path, content) in sources {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(LocalError::io("writing a config source"))?;
        }
        std::fs::write(&file, content).map_err(LocalError::io("writing a config source"))?;
    }
    git(&["add", "-A"])?;
    git(&["commit", "-q", "-m", "deployed configuration"])?;
    let commit = git(&["rev-parse", "HEAD"])?;
    git(&["bundle", "create", "-q", "config.bundle", "--all"])?;
    let bytes =
        std::fs::read(dir.join("config.bundle")).map_err(LocalError::io("reading the bundle"))?;
    Ok((commit, bytes))
}

/// The configuration backup's objects under `config/`: the bundle (named by `bundled_at`)
/// and the deployment's `deployed.json` (`commit` deployed at `deployed_at`).
pub fn configuration_objects(
    (commit, bundle): (&str, Vec<u8>),
    bundled_at: i64,
    deployed_at: i64,
    sources: &[&str],
) -> Vec<BackupObject> {
    vec![
        BackupObject {
            key: format!("config/{}.bundle", compact_time(bundled_at)),
            bytes: bundle,
        },
        BackupObject {
            key: "config/deployed.json".into(),
            bytes: json!({"commit": commit, "deployed_at": deployed_at, "sources": sources})
                .to_string()
                .into_bytes(),
        },
    ]
}

/// A secrets-metadata export taken at `at`: each (path, current version) with its versions'
/// metadata, never a value.
pub fn secrets_metadata_export(secrets: &[(&str, u64)], at: i64) -> BackupObject {
    let created = hapilot_core::time::epoch_text(at - 86_400);
    let entries: Vec<_> = secrets
        .iter()
        .map(|(path, version)| {
            json!({
                "path": path,
                "current_version": version,
                "versions": {version.to_string(): {"created_time": created, "deletion_time": "", "destroyed": false}},
            })
        })
        .collect();
    BackupObject {
        key: format!("vault-metadata/secrets-metadata-{}.json", compact_time(at)),
        bytes: json!({"exported_at": hapilot_core::time::epoch_text(at), "secrets": entries})
            .to_string()
            .into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_is_one_the_audit_reads_and_carries_the_commit() {
        let (commit, bytes) = bundle_configuration(&[
            ("hapilot.toml", b"[settings]\n"),
            ("infra/template.yaml", b"x"),
        ])
        .unwrap();
        let bundle = hapilot_core::backup::config::verify_git_bundle(bytes.as_slice()).unwrap();
        assert!(bundle.carries(&commit), "{bundle:?}");
        let export = secrets_metadata_export(&[("secret/gateway/litellm", 2)], 1_800_000_000);
        assert_eq!(
            hapilot_core::backup::config::verify_secrets_metadata(export.bytes.as_slice())
                .unwrap()
                .secrets,
            1
        );
    }
}
