//! The local deployment of the templates: `infra/parameters/local.json`'s stacks (the HA pair's
//! `template.yaml` in us-east-1 and us-west-2, `witness.yaml` in eu-west-1) deployed on a
//! running local stack, and each region's functions configured from what the templates set.

use std::collections::BTreeMap;
use std::path::Path;

use hapilot_functions::config::Settings;

use super::parameters::resolve_parameters;
use super::stack::{DeployedStack, deploy};
use super::{Deployment, Template};
use crate::{LocalError, LocalStack};

/// The deployed stacks, by region.
#[derive(Debug, Clone, Default)]
pub struct TemplateDeployment {
    /// Region -> its stack.
    pub stacks: BTreeMap<String, DeployedStack>,
}

impl TemplateDeployment {
    /// The stack deployed in `region`.
    pub fn stack(&self, region: &str) -> Result<&DeployedStack, LocalError> {
        self.stacks.get(region).ok_or_else(|| {
            LocalError::Invalid(format!("the parameters file deploys no stack in {region}"))
        })
    }
}

/// Translates, checks and deploys every stack of the parameters file at `parameters`, its
/// `{{world:...}}` values taken from `world`. Nothing is created when a parameter is refused.
pub async fn deploy_templates(
    stack: &LocalStack,
    parameters: &Path,
    world: &BTreeMap<String, String>,
) -> Result<TemplateDeployment, LocalError> {
    let deployment = Deployment::load(parameters)?.fill(world)?;
    let infra = parameters
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| crate::project_root().join("infra"));
    let cache = crate::project_root().join(".hapilot").join("templates");
    // Every template is translated and every parameter checked before anything is created.
    let mut planned = Vec::new();
    for spec in &deployment.stacks {
        let template = Template::translate(
            &stack.python(),
            &infra.join(&spec.template),
            &spec.region,
            &cache,
        )?;
        let values = resolve_parameters(&template.parameters(), &spec.parameters).map_err(|e| {
            LocalError::Invalid(format!(
                "stack {} ({}) in {}: {e}",
                spec.name, spec.template, spec.region
            ))
        })?;
        planned.push((spec.clone(), template, values));
    }
    let mut out = TemplateDeployment::default();
    for (spec, template, values) in planned {
        let deployed = deploy(
            (&stack.observer_config(&spec.region), &stack.endpoint_url()),
            &template,
            &spec.name,
            &spec.region,
            values,
        )
        .await?;
        out.stacks.insert(spec.region.clone(), deployed);
    }
    Ok(out)
}

/// One region's functions' environment, merged: the local Lambda host serves a region's
/// functions from one configuration, so a variable two functions set differently is refused
/// (the host would run one of them with the other's value).
pub fn region_environment(stack: &DeployedStack) -> Result<BTreeMap<String, String>, LocalError> {
    let mut merged: BTreeMap<String, (String, String)> = BTreeMap::new();
    for function in stack.functions.values() {
        for (k, v) in &function.environment {
            match merged.get(k) {
                Some((other, value)) if value != v => {
                    return Err(LocalError::Invalid(format!(
                        "{} in {}: {k} is {v:?} for {} but {value:?} for {other}; the local Lambda host serves one configuration per region",
                        stack.name, stack.region, function.name
                    )));
                }
                Some(_) => {}
                None => {
                    merged.insert(k.clone(), (function.name.clone(), v.clone()));
                }
            }
        }
    }
    Ok(merged.into_iter().map(|(k, (_, v))| (k, v)).collect())
}

/// The settings `deployed`'s functions start with: their environment parsed as a Lambda's
/// init parses it, then every secret it names read from the region's Secrets Manager.
pub async fn region_settings(
    stack: &LocalStack,
    deployed: &DeployedStack,
) -> Result<Settings, LocalError> {
    let env = region_environment(deployed)?;
    let mut settings = Settings::from_lookup(|k| env.get(k).cloned()).map_err(|e| {
        LocalError::Invalid(format!(
            "{} in {}: its functions would not start: {e}",
            deployed.name, deployed.region
        ))
    })?;
    let secrets = hapilot_adapters::secrets::SecretsManager::from_sdk(
        &stack.observer_config(&deployed.region),
    );
    use hapilot_functions::catalog::Credential;
    settings
        .read_secrets(
            &secrets,
            &[
                Credential::Database,
                Credential::Kubernetes,
                Credential::Vault,
                Credential::Canary,
            ],
        )
        .await
        .map_err(|e| {
            LocalError::Invalid(format!(
                "{} in {}: reading its secrets: {e}",
                deployed.name, deployed.region
            ))
        })?;
    Ok(settings)
}

/// Creates (or replaces) secret `name` in `region` with `text`, as the operator does before
/// deploying.
pub async fn put_secret(
    stack: &LocalStack,
    region: &str,
    name: &str,
    text: &str,
) -> Result<(), LocalError> {
    let client = aws_sdk_secretsmanager::Client::new(&stack.observer_config(region));
    match client
        .create_secret()
        .name(name)
        .secret_string(text)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if format!("{e:?}").contains("ResourceExistsException") => client
            .put_secret_value()
            .secret_id(name)
            .secret_string(text)
            .send()
            .await
            .map(|_| ())
            .map_err(LocalError::aws("PutSecretValue")),
        Err(e) => Err(LocalError::aws("CreateSecret")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::template::stack::DeployedFunction;

    fn function(name: &str, env: &[(&str, &str)]) -> DeployedFunction {
        DeployedFunction {
            logical_id: name.into(),
            name: name.into(),
            binary: name.into(),
            environment: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            role_arn: String::new(),
        }
    }

    #[test]
    fn a_region_environment_merges_and_refuses_conflicts() {
        let mut stack = DeployedStack {
            name: "hapilot".into(),
            region: "us-west-2".into(),
            ..Default::default()
        };
        stack.functions.insert(
            "a".into(),
            function("a", &[("HAPILOT_TIER", "Critical"), ("HAPILOT_X", "1")]),
        );
        stack.functions.insert(
            "b".into(),
            function("b", &[("HAPILOT_TIER", "Critical"), ("HAPILOT_Y", "2")]),
        );
        let env = region_environment(&stack).unwrap();
        assert_eq!(env.len(), 3);
        stack
            .functions
            .insert("c".into(), function("c", &[("HAPILOT_TIER", "High")]));
        let err = region_environment(&stack).unwrap_err().to_string();
        assert!(err.contains("HAPILOT_TIER"), "{err}");
    }
}
