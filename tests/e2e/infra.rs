//! `infra/template.yaml` and the code stay in step: every function, substitution, state machine
//! and IAM action in one is in the other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use hapilot::local::deploy::{definitions_in, local_substitutions};
use hapilot::local::project_root;
use hapilot_functions::catalog::FUNCTIONS;
use serde_norway::Value;

fn template() -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(project_root().join("infra/template.yaml")).unwrap();
    let doc: Value = serde_norway::from_str(&text).unwrap();
    let resources = doc["Resources"].as_mapping().unwrap();
    resources
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.clone()))
        .collect()
}

fn of_type<'a>(resources: &'a BTreeMap<String, Value>, kind: &str) -> Vec<(&'a String, &'a Value)> {
    resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .collect()
}

/// The string inside a plain or tagged (`!Ref x`, `!GetAtt x.Arn`) scalar.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Tagged(t) => scalar(&t.value),
        other => format!("{other:?}"),
    }
}

#[test]
fn every_function_is_in_the_template_with_exactly_the_actions_its_code_calls() {
    let resources = template();
    let functions = of_type(&resources, "AWS::Serverless::Function");
    let in_template: BTreeSet<String> = functions
        .iter()
        .map(|(_, r)| scalar(&r["Metadata"]["BuildProperties"]["Binary"]))
        .collect();
    let in_code: BTreeSet<String> = FUNCTIONS.iter().map(|f| f.name.to_string()).collect();
    assert_eq!(in_template, in_code, "template functions vs catalog");
    for (id, r) in functions {
        let binary = scalar(&r["Metadata"]["BuildProperties"]["Binary"]);
        let spec = hapilot_functions::catalog::find(&binary).unwrap();
        assert_eq!(
            r["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{id}"
        );
        assert!(
            Path::new(&format!(
                "{}/functions/lambdas/src/bin/{binary}.rs",
                env!("CARGO_MANIFEST_DIR")
            ))
            .exists(),
            "{binary} has no src/bin target"
        );
        let mut granted = BTreeSet::new();
        for policy in r["Properties"]["Policies"]
            .as_sequence()
            .cloned()
            .unwrap_or_default()
        {
            for statement in policy["Statement"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
            {
                for action in statement["Action"]
                    .as_sequence()
                    .cloned()
                    .unwrap_or_default()
                {
                    let action = scalar(&action);
                    assert!(
                        !action.contains('*'),
                        "{id} grants a wildcard action {action}"
                    );
                    granted.insert(action);
                }
            }
        }
        let called: BTreeSet<String> = spec.role_actions().iter().map(|a| a.to_string()).collect();
        assert_eq!(
            granted, called,
            "{id}: IAM actions granted vs called by the code"
        );
        let group = scalar(&r["Properties"]["LoggingConfig"]["LogGroup"]);
        assert!(
            resources.contains_key(&group),
            "{id} logs to {group}, which the template does not define"
        );
    }
}

#[test]
fn every_state_machine_is_deployed_with_every_substitution_it_uses() {
    let resources = template();
    let machines = of_type(&resources, "AWS::Serverless::StateMachine");
    let deployed: BTreeMap<String, &Value> = machines
        .iter()
        .map(|(_, r)| {
            let uri = scalar(&r["Properties"]["DefinitionUri"]);
            (uri.rsplit('/').next().unwrap().to_string(), *r)
        })
        .collect();
    let files = definitions_in(&project_root().join("statemachines"));
    let names: BTreeSet<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        deployed.keys().cloned().collect::<BTreeSet<_>>(),
        names,
        "template vs statemachines/"
    );
    let local = local_substitutions("us-east-1");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let used: BTreeSet<String> = text
            .split("${")
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_string()))
            .collect();
        let name = file.file_name().unwrap().to_str().unwrap();
        let subs = deployed[name]["Properties"]["DefinitionSubstitutions"]
            .as_mapping()
            .unwrap();
        for var in &used {
            let value = subs.get(var.as_str()).unwrap_or_else(|| {
                panic!("{name} uses ${{{var}}}, which the template does not define")
            });
            assert!(
                local.contains_key(var),
                "{name} uses ${{{var}}}, which the local stack does not resolve"
            );
            // The template must point the name at the function the catalog says it is.
            let spec = FUNCTIONS.iter().find(|f| f.substitution == var).unwrap();
            let pascal: String = spec
                .name
                .split('-')
                .map(|w| w[..1].to_uppercase() + &w[1..])
                .collect();
            assert_eq!(
                scalar(value),
                format!("{pascal}Function.Arn"),
                "{name}: {var}"
            );
        }
        // Every state says what it is for.
        let asl: serde_json::Value = serde_json::from_str(&text).unwrap();
        for (state, body) in asl["States"].as_object().unwrap() {
            assert!(
                body.get("Comment").is_some(),
                "{name}: state {state} has no Comment"
            );
        }
    }
}
