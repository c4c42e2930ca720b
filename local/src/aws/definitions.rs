//! "Deploying" the state machines to the local stack: resolving `${...}` substitutions to local
//! ARNs, exactly the names `infra/template.yaml` resolves with `DefinitionSubstitutions`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hapilot_adapters::sdk::LOCAL_ACCOUNT_ID;
use hapilot_functions::catalog::FUNCTIONS;

use crate::LocalError;

/// The role moto records for local state machines (it checks nothing).
pub const LOCAL_STATES_ROLE: &str = "arn:aws:iam::123456789012:role/hapilot-local-states";

/// Substitution name -> value for the local stack in `region`.
pub fn local_substitutions(region: &str) -> BTreeMap<String, String> {
    FUNCTIONS
        .iter()
        .map(|f| {
            (
                f.substitution.to_string(),
                format!(
                    "arn:aws:lambda:{region}:{LOCAL_ACCOUNT_ID}:function:{}",
                    f.name
                ),
            )
        })
        .collect()
}

/// The ARN moto gives a state machine created under `name` in `region`.
pub fn local_state_machine_arn(region: &str, name: &str) -> String {
    format!("arn:aws:states:{region}:{LOCAL_ACCOUNT_ID}:stateMachine:{name}")
}

/// Replaces every `${Name}` in `definition`; an unknown name is an error that lists them all,
/// so a typo is found at deploy time, not halfway through a failover.
pub fn resolve(
    definition: &str,
    substitutions: &BTreeMap<String, String>,
) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(definition.len());
    let mut missing = Vec::new();
    let mut rest = definition;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match substitutions.get(name) {
                    Some(value) => out.push_str(value),
                    None => {
                        if !missing.iter().any(|m| m == name) {
                            missing.push(name.to_string());
                        }
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

/// The state machine name of a definition file: `statemachines/failover.asl.json` -> `failover`.
pub fn machine_name(file: &Path) -> String {
    let stem = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    stem.strip_suffix(".asl.json").unwrap_or(stem).to_string()
}

/// Every `*.asl.json` in `dir`, sorted (none when the directory does not exist).
pub fn definitions_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".asl.json")))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Reads, resolves and checks one definition file.
pub fn load_definition(
    file: &Path,
    substitutions: &BTreeMap<String, String>,
) -> Result<String, LocalError> {
    let fail = |detail: String| LocalError::StateMachine {
        file: file.to_path_buf(),
        detail,
    };
    let text = std::fs::read_to_string(file).map_err(|e| fail(format!("cannot read: {e}")))?;
    let resolved = resolve(&text, substitutions)
        .map_err(|missing| fail(format!("unknown substitution(s) {}", missing.join(", "))))?;
    serde_json::from_str::<serde_json::Value>(&resolved)
        .map_err(|e| fail(format!("not valid JSON: {e}")))?;
    Ok(resolved)
}

/// Creates every definition as a state machine; returns name -> ARN.
pub async fn deploy(
    sfn: &aws_sdk_sfn::Client,
    files: &[PathBuf],
    substitutions: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, LocalError> {
    let mut deployed = BTreeMap::new();
    for file in files {
        let definition = load_definition(file, substitutions)?;
        let name = machine_name(file);
        let created = sfn
            .create_state_machine()
            .name(&name)
            .definition(definition)
            .role_arn(LOCAL_STATES_ROLE)
            .send()
            .await
            .map_err(|e| LocalError::StateMachine {
                file: file.clone(),
                detail: format!(
                    "CreateStateMachine failed: {}",
                    hapilot_adapters::error_chain(&e)
                ),
            })?;
        deployed.insert(name, created.state_machine_arn().to_string());
    }
    Ok(deployed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_known_and_lists_unknown_names() {
        let subs = local_substitutions("eu-west-1");
        let ok = resolve(r#"{"Resource":"${CheckHealthFunctionArn}"}"#, &subs).unwrap();
        assert_eq!(
            ok,
            r#"{"Resource":"arn:aws:lambda:eu-west-1:123456789012:function:check-health"}"#
        );
        let err = resolve("${Nope} ${CheckHealthFunctionArn} ${Nope} ${Other}", &subs).unwrap_err();
        assert_eq!(err, vec!["Nope".to_string(), "Other".to_string()]);
        assert_eq!(
            resolve("no subs ${ unterminated", &subs).unwrap(),
            "no subs ${ unterminated"
        );
    }

    #[test]
    fn names_come_from_file_names() {
        assert_eq!(
            machine_name(Path::new("statemachines/failover.asl.json")),
            "failover"
        );
    }
}
