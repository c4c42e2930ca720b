//! The templates themselves, deployed into the local stack: `infra/template.yaml` and
//! `infra/witness.yaml` go through AWS's own SAM transform (`aws-sam-translator`, the version
//! `sam deploy` uses, run offline by `local/sam/translate.py`), their parameters are checked as
//! CloudFormation checks them, their conditions and intrinsic functions resolved
//! ([`intrinsics`]), and every resource is created in moto or registered with the local Lambda
//! host ([`stack`]). What no template holds (the gateways, databases, Kubernetes, the hosted
//! zone and its records, the secrets' contents) stays the world's.

pub mod intrinsics;
pub mod parameters;
pub mod stack;
pub mod world;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::LocalError;

/// One template translated to plain CloudFormation (JSON, long-form intrinsics).
#[derive(Debug, Clone)]
pub struct Template {
    /// The SAM template it came from.
    pub path: PathBuf,
    /// The translated document.
    pub doc: Value,
}

impl Template {
    /// Translates `path` for `region` with the SAM transform in the venv whose Python is
    /// `python`. The result is cached under `cache_dir` by the template's content, the region
    /// and the translator's version, so many worlds in one test run translate once.
    pub fn translate(
        python: &Path,
        path: &Path,
        region: &str,
        cache_dir: &Path,
    ) -> Result<Self, LocalError> {
        let text = std::fs::read_to_string(path)
            .map_err(LocalError::io(format!("reading {}", path.display())))?;
        let script = crate::project_root().join("local/sam/translate.py");
        let script_text = std::fs::read_to_string(&script)
            .map_err(LocalError::io(format!("reading {}", script.display())))?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (
            &text,
            region,
            &script_text,
            crate::aws::moto::SAM_TRANSLATOR_VERSION,
        )
            .hash(&mut hasher);
        let cached = cache_dir.join(format!(
            "{}-{region}-{:016x}.json",
            path.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("template"),
            hasher.finish()
        ));
        if let Ok(doc) = std::fs::read_to_string(&cached)
            .map_err(|_| ())
            .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|_| ()))
        {
            return Ok(Self {
                path: path.to_path_buf(),
                doc,
            });
        }
        let out = Command::new(python)
            .arg(&script)
            .arg(path)
            .arg(region)
            .current_dir(path.parent().unwrap_or(Path::new(".")))
            .output()
            .map_err(LocalError::io(format!("running {}", script.display())))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(LocalError::Invalid(format!(
                "the SAM transform refused {}: {last}",
                path.display()
            )));
        }
        let doc: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            LocalError::Invalid(format!(
                "the SAM transform of {} is not JSON: {e}",
                path.display()
            ))
        })?;
        std::fs::create_dir_all(cache_dir)
            .map_err(LocalError::io(format!("creating {}", cache_dir.display())))?;
        // Written whole, then renamed: parallel tests never read half a file.
        let partial = cached.with_extension(format!("{}.partial", std::process::id()));
        std::fs::write(&partial, &out.stdout)
            .and_then(|_| std::fs::rename(&partial, &cached))
            .map_err(LocalError::io(format!("caching {}", cached.display())))?;
        Ok(Self {
            path: path.to_path_buf(),
            doc,
        })
    }

    /// The template's `Parameters`.
    pub fn parameters(&self) -> serde_json::Map<String, Value> {
        self.section("Parameters")
    }

    /// The default of parameter `name`, as text.
    pub fn parameter_default(&self, name: &str) -> Option<String> {
        self.parameters()
            .get(name)
            .and_then(|p| p.get("Default"))
            .map(|d| match d {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
    }

    /// The template's `Resources`.
    pub fn resources(&self) -> serde_json::Map<String, Value> {
        self.section("Resources")
    }

    /// A top-level section (empty when absent).
    pub fn section(&self, name: &str) -> serde_json::Map<String, Value> {
        self.doc
            .get(name)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    /// The directory relative paths in the template start from.
    pub fn dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }
}

/// One stack of a parameters file: which template, in which region, under which name, with
/// which parameter values (the `--parameter-overrides` of `sam deploy`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct StackSpec {
    /// The stack name (`AWS::StackName`).
    pub name: String,
    /// The template, relative to the parameters file's `infra/` directory.
    pub template: String,
    /// The region it is deployed in.
    pub region: String,
    /// Parameter values. A value `{{world:<key>}}` is filled from what the local world knows
    /// only once it runs (ports, the hosted zone's id, secret names).
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

/// A parameters file: the stacks of one deployment, in the order they are deployed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// The stacks.
    pub stacks: Vec<StackSpec>,
}

/// The local world's parameters file.
pub fn local_parameters_file() -> PathBuf {
    crate::project_root().join("infra/parameters/local.json")
}

impl Deployment {
    /// Reads a parameters file.
    pub fn load(path: &Path) -> Result<Self, LocalError> {
        let text = std::fs::read_to_string(path)
            .map_err(LocalError::io(format!("reading {}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| LocalError::Invalid(format!("{}: {e}", path.display())))
    }

    /// The stack of `template` (file name) in `region`.
    pub fn stack(&self, template: &str, region: &str) -> Option<&StackSpec> {
        self.stacks
            .iter()
            .find(|s| s.template == template && s.region == region)
    }

    /// Fills every `{{world:<key>}}` value from `world`; a key the world does not know is an
    /// error naming it and the stack.
    pub fn fill(&self, world: &BTreeMap<String, String>) -> Result<Self, LocalError> {
        let mut out = self.clone();
        for stack in &mut out.stacks {
            for (name, value) in stack.parameters.iter_mut() {
                if let Some(key) = value
                    .strip_prefix("{{world:")
                    .and_then(|v| v.strip_suffix("}}"))
                {
                    *value = world.get(key).cloned().ok_or_else(|| {
                        LocalError::Invalid(format!(
                            "{} in {}: parameter {name} asks the world for {key:?}, which it does not provide",
                            stack.name, stack.region
                        ))
                    })?;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_values_fill_placeholders_and_unknown_keys_are_named() {
        let deployment = Deployment {
            stacks: vec![StackSpec {
                name: "hapilot".into(),
                template: "template.yaml".into(),
                region: "us-west-2".into(),
                parameters: BTreeMap::from([
                    ("HostedZoneId".into(), "{{world:hosted_zone_id}}".into()),
                    ("Tier".into(), "Critical".into()),
                ]),
            }],
        };
        let filled = deployment
            .fill(&BTreeMap::from([("hosted_zone_id".into(), "Z1".into())]))
            .unwrap();
        assert_eq!(filled.stacks[0].parameters["HostedZoneId"], "Z1");
        assert_eq!(filled.stacks[0].parameters["Tier"], "Critical");
        let err = deployment.fill(&BTreeMap::new()).unwrap_err().to_string();
        assert!(
            err.contains("hosted_zone_id") && err.contains("HostedZoneId"),
            "{err}"
        );
    }

    #[test]
    fn the_repository_parameters_file_names_both_templates_in_three_regions() {
        let deployment = Deployment::load(&local_parameters_file()).unwrap();
        for (template, region) in [
            ("template.yaml", "us-east-1"),
            ("template.yaml", "us-west-2"),
            ("witness.yaml", "eu-west-1"),
        ] {
            assert!(
                deployment.stack(template, region).is_some(),
                "{template} in {region}"
            );
        }
    }
}
