//! `infra/template.yaml` and the code stay in step: every function, substitution, state machine
//! and IAM action in one is in the other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use hapilot::local::aws::definitions::{definitions_in, local_substitutions};
use hapilot::local::project_root;
use hapilot_functions::catalog::FUNCTIONS;
use serde_norway::Value;

fn template() -> BTreeMap<String, Value> {
    resources_of("template.yaml")
}

/// The resources of `infra/<file>`.
fn resources_of(file: &str) -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(project_root().join("infra").join(file)).unwrap();
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

/// The `!Sub` string of a tagged scalar, with sample values for the stack's parameters: the
/// standby stack in us-west-2, us-east-1 its peer, eu-west-1 the witness.
fn substituted(v: &Value) -> String {
    let mut s = scalar(v);
    for (name, value) in [
        ("${AWS::Region}", "us-west-2"),
        ("${AWS::Partition}", "aws"),
        ("${AWS::AccountId}", "123456789012"),
        ("${AWS::StackName}", "hapilot"),
        ("${PeerRegion}", "us-east-1"),
        ("${PrimaryRegion}", "us-east-1"),
        ("${StandbyRegion}", "us-west-2"),
        ("${WitnessRegion}", "eu-west-1"),
        ("${AlarmNamePrefix}", "hapilot"),
        ("${PrimarySetIdentifier}", "primary"),
        ("${StandbySetIdentifier}", "secondary"),
        ("${ThirdSetIdentifier}", "tertiary"),
        ("${Tier}", "Critical"),
    ] {
        s = s.replace(name, value);
    }
    s
}

/// The standby's branch of an `!If [IsStandby, a, b]`.
fn standby_branch(v: &Value) -> &Value {
    let Value::Tagged(t) = v else {
        panic!("not an !If: {v:?}")
    };
    assert_eq!(t.tag.to_string(), "!If");
    assert_eq!(scalar(&t.value[0]), "IsStandby");
    &t.value[1]
}

#[test]
fn the_standby_stack_acts_on_a_quorum_and_moves_traffic_through_the_data_plane() {
    let text = std::fs::read_to_string(project_root().join("infra/template.yaml")).unwrap();
    let doc: Value = serde_norway::from_str(&text).unwrap();
    let resources = template();

    // The trigger: quorum 2 of the standby's own prober, the witness's, and Route53's alarm.
    let triggers = substituted(standby_branch(
        &resources["AlarmRouterFunction"]["Properties"]["Environment"]["Variables"]["HAPILOT_FAILOVER_TRIGGERS"],
    ));
    let triggers: Vec<hapilot_core::alarm::FailoverTrigger> =
        serde_json::from_str(&triggers).unwrap();
    assert_eq!(triggers.len(), 1);
    let trigger = &triggers[0];
    assert_eq!(trigger.votes_needed(), 2);
    let regions: Vec<String> = trigger
        .vantage_alarms
        .iter()
        .map(|a| hapilot_core::alarm::AlarmRef::parse(a).unwrap().region)
        .collect();
    assert_eq!(regions, ["us-west-2", "eu-west-1", "us-east-1"]);
    let own_vote = substituted(&resources["WatchPeerAlarm"]["Properties"]["AlarmName"]);
    assert!(trigger.vantage_alarms[0].ends_with(&format!(":alarm:{own_vote}")));
    let witness: Value = serde_norway::from_str(
        &std::fs::read_to_string(project_root().join("infra/witness.yaml")).unwrap(),
    )
    .unwrap();
    let witness_vote =
        substituted(&witness["Resources"]["WatchPrimaryAlarm"]["Properties"]["AlarmName"]);
    assert!(trigger.vantage_alarms[1].ends_with(&format!(":alarm:{witness_vote}")));
    assert!(trigger.vantage_alarms[2].ends_with(":alarm:hapilot-primary-health"));
    assert_eq!(
        substituted(&resources["PrimaryHealthAlarm"]["Properties"]["AlarmName"]),
        "hapilot-primary-health"
    );

    // The switch: control alarms in this region, behind each record's CALCULATED check; with
    // a second secondary (ThirdSetIdentifier), a third.
    let Value::Tagged(third) = standby_branch(
        &doc["Globals"]["Function"]["Environment"]["Variables"]["HAPILOT_TRAFFIC_SWITCH"],
    ) else {
        panic!("the standby's switch depends on HasThirdRegion")
    };
    assert_eq!(scalar(&third.value[0]), "HasThirdRegion");
    let switch_of = |v: &Value| -> BTreeMap<String, String> {
        let switch: hapilot_adapters::traffic_switch::TrafficSwitchConfig =
            serde_json::from_str(&substituted(v)).unwrap();
        let hapilot_adapters::traffic_switch::TrafficSwitchConfig::HealthCheck {
            region,
            alarms,
            ..
        } = switch
        else {
            panic!("the standby's emergency switch is health_check: {switch:?}")
        };
        assert_eq!(region, "us-west-2");
        alarms
    };
    let three = switch_of(&third.value[1]);
    let alarms = switch_of(&third.value[2]);
    assert_eq!(alarms.len(), 2, "{alarms:?}");
    assert_eq!(three.len(), 3, "{three:?}");
    for (set, alarm, check) in [
        ("primary", "ControlPrimaryAlarm", "PrimaryRecordCheck"),
        ("secondary", "ControlStandbyAlarm", "StandbyRecordCheck"),
        ("tertiary", "ControlThirdAlarm", "ThirdRecordCheck"),
    ] {
        let alarms = &three;
        assert_eq!(
            alarms[set],
            substituted(&resources[alarm]["Properties"]["AlarmName"])
        );
        let config = &resources[check]["Properties"]["HealthCheckConfig"];
        assert_eq!(config["Type"].as_str(), Some("CALCULATED"));
        let children: Vec<String> = config["ChildHealthChecks"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(scalar)
            .collect();
        let control = &resources[&children[1]]["Properties"]["HealthCheckConfig"];
        assert_eq!(control["Type"].as_str(), Some("CLOUDWATCH_METRIC"));
        assert_eq!(scalar(&control["AlarmIdentifier"]["Name"]), alarm);
        assert_eq!(
            resources[&children[0]]["Properties"]["HealthCheckConfig"]["Type"].as_str(),
            Some("HTTPS")
        );
    }
}

/// The `Key=Value` parameters of the first `sam deploy` command in `infra/README.md` that uses
/// `template` (continuation lines joined).
/// The parameters each `infra/samconfig.toml` environment passes: (environment, template,
/// parameter names).
fn samconfig_deploys() -> Vec<(String, String, BTreeSet<String>)> {
    let text = std::fs::read_to_string(project_root().join("infra/samconfig.toml")).unwrap();
    let config: toml::Table = toml::from_str(&text).unwrap();
    config
        .iter()
        .filter(|(_, v)| v.is_table())
        .map(|(env, sections)| {
            let template = sections["build"]["parameters"]["template_file"]
                .as_str()
                .unwrap()
                .to_string();
            let names = sections["deploy"]["parameters"]["parameter_overrides"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .filter_map(|word| word.split_once('=').map(|(key, _)| key.to_string()))
                .collect();
            (env.clone(), template, names)
        })
        .collect()
}

/// Every stack the documented deploy (`infra/samconfig.toml`) and the local world
/// (`infra/parameters/local.json`) create gets every parameter its template requires, and none
/// the template does not declare.
#[test]
fn every_deploy_passes_every_required_parameter() {
    let mut deploys = samconfig_deploys();
    let local = hapilot::local::aws::template::Deployment::load(
        &hapilot::local::aws::template::local_parameters_file(),
    )
    .unwrap();
    for stack in local.stacks {
        deploys.push((
            format!("local.json {}", stack.region),
            stack.template,
            stack.parameters.keys().cloned().collect(),
        ));
    }
    assert_eq!(deploys.len(), 6);
    for (env, template, passed) in deploys {
        let text = std::fs::read_to_string(project_root().join("infra").join(&template)).unwrap();
        let doc: Value = serde_norway::from_str(&text).unwrap();
        let declared = doc["Parameters"].as_mapping().unwrap();
        let required: BTreeSet<String> = declared
            .iter()
            .filter(|(_, p)| p.get("Default").is_none())
            .map(|(k, _)| k.as_str().unwrap().to_string())
            .collect();
        let missing: Vec<&String> = required.difference(&passed).collect();
        assert!(missing.is_empty(), "{env} ({template}) misses {missing:?}");
        let known: BTreeSet<String> = declared
            .keys()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        let unknown: Vec<&String> = passed.difference(&known).collect();
        assert!(
            unknown.is_empty(),
            "{template} has no parameters {unknown:?} ({env})"
        );
    }
}

#[test]
fn every_alarm_pages_through_a_topic_whose_key_lets_cloudwatch_publish() {
    for file in ["template.yaml", "witness.yaml"] {
        let resources = resources_of(file);
        let alarms = of_type(&resources, "AWS::CloudWatch::Alarm");
        assert!(alarms.len() >= 3, "{file}");
        alarms_page_through_keys_cloudwatch_may_use(&resources, alarms);
    }
}

fn alarms_page_through_keys_cloudwatch_may_use(
    resources: &BTreeMap<String, Value>,
    alarms: Vec<(&String, &Value)>,
) {
    for (id, alarm) in alarms {
        let properties = &alarm["Properties"];
        for list in ["AlarmActions", "OKActions"] {
            let Some(actions) = properties.get(list).and_then(Value::as_sequence) else {
                continue;
            };
            for action in actions {
                let topic_id = scalar(action);
                let topic = &resources[&topic_id];
                assert_eq!(topic["Type"].as_str(), Some("AWS::SNS::Topic"), "{id}");
                let key_ref = scalar(&topic["Properties"]["KmsMasterKeyId"]);
                let key = resources.get(&key_ref).unwrap_or_else(|| {
                    panic!(
                        "{id}: topic {topic_id} is encrypted with {key_ref}, not a key of this \
                         template (an AWS managed key cannot let CloudWatch publish)"
                    )
                });
                assert_eq!(key["Type"].as_str(), Some("AWS::KMS::Key"));
                let grants_cloudwatch = key["Properties"]["KeyPolicy"]["Statement"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .any(|s| {
                        s["Effect"].as_str() == Some("Allow")
                            && s["Principal"]["Service"].as_str()
                                == Some("cloudwatch.amazonaws.com")
                            && ["kms:Decrypt", "kms:GenerateDataKey*"].iter().all(|a| {
                                s["Action"]
                                    .as_sequence()
                                    .unwrap()
                                    .iter()
                                    .any(|x| x.as_str() == Some(a))
                            })
                    });
                assert!(
                    grants_cloudwatch,
                    "{id}: {key_ref} does not let CloudWatch publish"
                );
            }
        }
    }
}

#[test]
fn only_request_approval_may_write_a_pending_approval() {
    let resources = template();
    let statements = resources["AuditBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap()
        .clone();
    let guard = statements
        .iter()
        .find(|s| scalar(&s["Resource"]).ends_with("/runs/*/approval.json"))
        .expect("a statement guards runs/*/approval.json");
    assert_eq!(guard["Effect"].as_str(), Some("Deny"));
    assert_eq!(guard["Principal"].as_str(), Some("*"));
    assert_eq!(
        scalar(&guard["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]),
        "RequestApprovalFunctionRole.Arn"
    );
}

#[test]
fn each_role_reads_exactly_the_secrets_its_function_uses() {
    let resources = template();
    for (id, r) in of_type(&resources, "AWS::Serverless::Function") {
        let binary = scalar(&r["Metadata"]["BuildProperties"]["Binary"]);
        let spec = hapilot_functions::catalog::find(&binary).unwrap();
        let mut read: BTreeSet<String> = BTreeSet::new();
        for policy in r["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            for statement in policy["Statement"].as_sequence().into_iter().flatten() {
                let grants = statement["Action"].as_sequence().is_some_and(|a| {
                    a.iter()
                        .any(|x| x.as_str() == Some("secretsmanager:GetSecretValue"))
                });
                if !grants {
                    continue;
                }
                for resource in statement["Resource"].as_sequence().into_iter().flatten() {
                    let arn = scalar(resource);
                    let name = arn
                        .split("secret:${")
                        .nth(1)
                        .and_then(|rest| rest.split('}').next())
                        .unwrap_or_else(|| panic!("{id}: unexpected secret resource {arn}"));
                    read.insert(name.to_string());
                }
            }
        }
        let mut expected: BTreeSet<String> = spec
            .credentials
            .iter()
            .map(|c| c.parameter().to_string())
            .collect();
        if spec.reads_regions() {
            expected.insert("RegionsConfigSecret".into());
        }
        assert_eq!(
            read, expected,
            "{id}: secrets its role may read vs what it uses"
        );
    }
}

#[test]
fn the_dashboard_shows_metrics_hapilot_publishes_and_names_only_what_the_template_has() {
    let text = std::fs::read_to_string(project_root().join("infra/template.yaml")).unwrap();
    let doc: Value = serde_norway::from_str(&text).unwrap();
    let resources = template();
    let dashboard = &resources["OperationsDashboard"];
    assert_eq!(
        dashboard["Type"].as_str(),
        Some("AWS::CloudWatch::Dashboard")
    );
    let body = scalar(&dashboard["Properties"]["DashboardBody"]);
    // Every ${Name} is a parameter, a resource or a pseudo parameter.
    let parameters = doc["Parameters"].as_mapping().unwrap();
    let mut rest = body.as_str();
    while let Some(at) = rest.find("${") {
        let end = rest[at..].find('}').unwrap() + at;
        let name = &rest[at + 2..end];
        assert!(
            name.starts_with("AWS::")
                || resources.contains_key(name)
                || parameters.contains_key(Value::String(name.to_string())),
            "the dashboard names ${{{name}}}, which the template does not have"
        );
        rest = &rest[end..];
    }
    let substituted = body
        .split("${")
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part.to_string()
            } else {
                format!("X{}", &part[part.find('}').unwrap() + 1..])
            }
        })
        .collect::<String>();
    let json: serde_json::Value = serde_json::from_str(&substituted)
        .unwrap_or_else(|e| panic!("the dashboard body is not JSON: {e}\n{substituted}"));
    let published = [
        (hapilot_functions::watch_region::NAMESPACE, "Healthy"),
        ("hapilot/Database", "ReplicationLagSeconds"),
        ("hapilot", "FailoverDurationSeconds"),
        ("hapilot", "FailbackDurationSeconds"),
        ("hapilot", "DataAtRiskSeconds"),
        (
            hapilot_functions::report_backup_audit::NAMESPACE,
            "AchievableRpoSeconds",
        ),
        (hapilot_functions::evaluate_readiness::NAMESPACE, "Score"),
        ("AWS/States", "ExecutionsSucceeded"),
        ("AWS/States", "ExecutionsFailed"),
    ];
    let widgets = json["widgets"].as_array().unwrap();
    let mut shown = BTreeSet::new();
    for metric in widgets
        .iter()
        .filter_map(|w| w["properties"]["metrics"].as_array())
        .flatten()
    {
        let first = &metric[0];
        if let Some(expression) = first["expression"].as_str() {
            // SEARCH('{namespace,dims} MetricName="name"', ...)
            let namespace = expression
                .split('{')
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap();
            let name = expression
                .split("MetricName=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            shown.insert((namespace.to_string(), name.to_string()));
        } else {
            shown.insert((
                first.as_str().unwrap().to_string(),
                metric[1].as_str().unwrap().to_string(),
            ));
        }
    }
    for (namespace, name) in &shown {
        assert!(
            published.contains(&(namespace.as_str(), name.as_str())),
            "the dashboard shows {namespace} {name}, which nothing publishes"
        );
    }
    assert_eq!(shown.len(), published.len(), "{shown:?}");
}

#[test]
fn readiness_simulates_exactly_the_emergency_paths_roles() {
    let resources = template();
    let functions = of_type(&resources, "AWS::Serverless::Function");
    let logical_of: BTreeMap<String, String> = functions
        .iter()
        .map(|(id, r)| {
            (
                scalar(&r["Metadata"]["BuildProperties"]["Binary"]),
                id.to_string(),
            )
        })
        .collect();
    // The emergency path is what has reserved concurrency.
    let reserved: BTreeSet<String> = functions
        .iter()
        .filter(|(_, r)| !r["Properties"]["ReservedConcurrentExecutions"].is_null())
        .map(|(_, r)| scalar(&r["Metadata"]["BuildProperties"]["Binary"]))
        .collect();
    let listed: BTreeSet<String> = hapilot_functions::catalog::EMERGENCY_PATH
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(reserved, listed, "EMERGENCY_PATH vs reserved concurrency");
    let readiness = &resources["EvaluateReadinessFunction"]["Properties"];
    let roles = scalar(&readiness["Environment"]["Variables"]["HAPILOT_EMERGENCY_ROLES"]);
    let parsed: BTreeMap<String, String> = serde_json::from_str(&roles).unwrap();
    assert_eq!(
        parsed.keys().cloned().collect::<BTreeSet<_>>(),
        listed,
        "HAPILOT_EMERGENCY_ROLES names the emergency path"
    );
    for (function, role) in &parsed {
        assert_eq!(
            role,
            &format!("${{{}Role.Arn}}", logical_of[function]),
            "{function}'s role"
        );
    }
}

/// Every variable the template sets is one of `config::VARIABLES` (a misspelt name would be
/// ignored by a function), and every variable a function requires is set for it, globally or
/// on the function.
#[test]
fn the_template_sets_only_known_variables_and_every_required_one() {
    let text = std::fs::read_to_string(project_root().join("infra/template.yaml")).unwrap();
    let doc: Value = serde_norway::from_str(&text).unwrap();
    let names = |v: &Value| -> BTreeSet<String> {
        v.as_mapping()
            .map(|m| {
                m.keys()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let global = names(&doc["Globals"]["Function"]["Environment"]["Variables"]);
    let resources = template();
    for (name, function) in of_type(&resources, "AWS::Serverless::Function") {
        let own = names(&function["Properties"]["Environment"]["Variables"]);
        for var in global.iter().chain(&own) {
            assert!(
                hapilot_functions::config::variable(var).is_some(),
                "{name} sets {var}, which is no hapilot variable"
            );
        }
        let binary = scalar(&function["Metadata"]["BuildProperties"]["Binary"]);
        if let Some(spec) = FUNCTIONS.iter().find(|f| f.name == binary) {
            for var in spec.requires {
                // The regions come from their secret in a deployment.
                let var = if *var == "HAPILOT_REGIONS" {
                    "HAPILOT_REGIONS_SECRET"
                } else {
                    var
                };
                assert!(
                    global.contains(var) || own.contains(var),
                    "{name} ({binary}) requires {var}, which the template does not set for it"
                );
            }
        }
    }
}

/// Each stack of `infra/samconfig.toml` builds into a directory of its own and deploys the
/// template that build wrote, and the templates it builds exist: the documented deploy can
/// neither ship the source folder nor let one stack's build overwrite another's.
#[test]
fn every_samconfig_environment_deploys_its_own_build() {
    let text = std::fs::read_to_string(project_root().join("infra/samconfig.toml")).unwrap();
    let config: toml::Table = toml::from_str(&text).unwrap();
    let mut build_dirs = BTreeSet::new();
    let mut regions = BTreeSet::new();
    for env in ["primary", "standby", "witness"] {
        let build = &config[env]["build"]["parameters"];
        let deploy = &config[env]["deploy"]["parameters"];
        let source = build["template_file"].as_str().unwrap();
        assert!(
            project_root().join("infra").join(source).exists(),
            "{env} builds {source}, which does not exist"
        );
        let dir = build["build_dir"].as_str().unwrap();
        assert!(build_dirs.insert(dir.to_string()), "{env} shares {dir}");
        assert_eq!(
            deploy["template_file"].as_str().unwrap(),
            format!("{dir}/template.yaml"),
            "{env} must deploy what its build wrote"
        );
        regions.insert(deploy["region"].as_str().unwrap().to_string());
    }
    assert_eq!(regions.len(), 3, "three stacks, three regions: {regions:?}");
}

/// The function a Task state runs (`traffic` for the failover's switch-dependent states, which
/// run one of the traffic functions, all of them idempotent).
fn task_function(state: &serde_json::Value) -> String {
    let named = state["Resource"]
        .as_str()
        .filter(|r| r.starts_with("${"))
        .or_else(|| state["Parameters"]["FunctionName"].as_str());
    match named {
        Some(sub) => {
            let sub = sub.trim_start_matches("${").trim_end_matches('}');
            FUNCTIONS
                .iter()
                .find(|f| f.substitution == sub)
                .unwrap_or_else(|| panic!("no function for ${{{sub}}}"))
                .name
                .to_string()
        }
        None => {
            assert!(
                state["Parameters"].get("FunctionName.$").is_some(),
                "{state}"
            );
            "traffic".into()
        }
    }
}

/// The longest a state's retries can wait in all: each retrier's delays, capped by
/// `MaxDelaySeconds` (full jitter waits at most that).
fn worst_retry_wait(state: &serde_json::Value) -> f64 {
    state["Retry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let interval = r["IntervalSeconds"].as_f64().unwrap_or(1.0);
            let rate = r["BackoffRate"].as_f64().unwrap_or(2.0);
            let cap = r["MaxDelaySeconds"].as_f64().unwrap_or(f64::INFINITY);
            (0..r["MaxAttempts"].as_i64().unwrap_or(3))
                .map(|i| (interval * rate.powi(i as i32)).min(cap))
                .sum::<f64>()
        })
        .sum()
}

/// The most retry waiting on any path of a machine (loops taken once; Catch paths left out:
/// they end the run).
fn longest_retry_path(
    states: &serde_json::Map<String, serde_json::Value>,
    at: &str,
    seen: &mut Vec<String>,
) -> f64 {
    if seen.iter().any(|s| s == at) {
        return 0.0;
    }
    let state = &states[at];
    seen.push(at.to_string());
    let mut next: Vec<&str> = state["Next"].as_str().into_iter().collect();
    next.extend(state["Default"].as_str());
    next.extend(
        state["Choices"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["Next"].as_str()),
    );
    let rest = next
        .into_iter()
        .map(|n| longest_retry_path(states, n, seen))
        .fold(0.0, f64::max);
    seen.pop();
    worst_retry_wait(state) + rest
}

#[test]
fn blips_are_retried_with_jitter_only_where_running_twice_is_safe_and_within_the_rto() {
    use hapilot_functions::catalog::NOT_RETRIED_ON_BLIPS;
    for file in definitions_in(&project_root().join("statemachines")) {
        let name = file.file_name().unwrap().to_str().unwrap().to_string();
        let asl: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let mut pending = vec![asl["States"].clone()];
        while let Some(states) = pending.pop() {
            for (state, body) in states.as_object().unwrap() {
                for branch in body["Branches"].as_array().into_iter().flatten() {
                    pending.push(branch["States"].clone());
                }
                for inner in ["Iterator", "ItemProcessor"] {
                    if body.get(inner).is_some() {
                        pending.push(body[inner]["States"].clone());
                    }
                }
                if body["Type"] != "Task" || body.get("Retry").is_none() {
                    continue;
                }
                let function = task_function(body);
                let retriers = body["Retry"].as_array().unwrap();
                let blips = retriers.iter().any(|r| {
                    r["ErrorEquals"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|e| e == "hapilot.Transient")
                });
                assert_eq!(
                    blips,
                    !NOT_RETRIED_ON_BLIPS.contains(&function.as_str()),
                    "{name}: {state} ({function}) retries hapilot.Transient only when running it twice is safe"
                );
                for r in retriers {
                    assert_eq!(r["JitterStrategy"], "FULL", "{name}: {state}: {r}");
                    assert!(
                        r["MaxDelaySeconds"].as_i64().is_some(),
                        "{name}: {state}: {r}"
                    );
                }
            }
        }
    }
    // The failover's worst case: every step on its longest path exhausting its retries waits
    // at most a third of the Critical tier's RTO (the rest is for detection and the work).
    let failover: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(project_root().join("statemachines/failover.asl.json")).unwrap(),
    )
    .unwrap();
    let states = failover["States"].as_object().unwrap();
    let worst = longest_retry_path(
        states,
        failover["StartAt"].as_str().unwrap(),
        &mut Vec::new(),
    );
    let budget = hapilot_core::tier::Tier::Critical.rto_secs() as f64 / 3.0;
    eprintln!("failover: at most {worst} s of retry waits on one path (budget {budget} s)");
    assert!(worst <= budget, "{worst} s > {budget} s");
}

#[test]
fn the_record_outlives_the_stack_and_no_one_rewrites_it() {
    let resources = template();
    let bucket = &resources["AuditBucket"];
    for policy in ["DeletionPolicy", "UpdateReplacePolicy"] {
        assert_eq!(
            bucket[policy].as_str(),
            Some("Retain"),
            "AuditBucket {policy}"
        );
    }
    let properties = &bucket["Properties"];
    assert_eq!(properties["ObjectLockEnabled"].as_bool(), Some(true));
    let retention = &properties["ObjectLockConfiguration"]["Rule"]["DefaultRetention"];
    assert_eq!(scalar(&retention["Days"]), "JournalLockDays");
    assert_eq!(scalar(&retention["Mode"]), "JournalLockMode");
    // A locked version cannot expire early; the lifecycle must not pretend it can.
    let expiry = properties["LifecycleConfiguration"]["Rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .find_map(|r| r.get("NoncurrentVersionExpiration"))
        .unwrap();
    assert_eq!(scalar(&expiry["NoncurrentDays"]), "JournalLockDays");
    for file in ["template.yaml", "witness.yaml"] {
        let resources = resources_of(file);
        let groups = of_type(&resources, "AWS::Logs::LogGroup");
        assert!(!groups.is_empty());
        for (id, group) in groups {
            assert_eq!(
                group["DeletionPolicy"].as_str(),
                Some("Retain"),
                "{file}: {id}"
            );
        }
    }
}

#[test]
fn every_cross_region_forward_keeps_what_it_could_not_deliver_and_the_witness_is_watched() {
    for file in ["template.yaml", "witness.yaml"] {
        let resources = resources_of(file);
        let alarms = of_type(&resources, "AWS::CloudWatch::Alarm");
        let mut forwards = 0;
        for (id, rule) in of_type(&resources, "AWS::Events::Rule") {
            for target in rule["Properties"]["Targets"].as_sequence().unwrap() {
                if !scalar(&target["Arn"]).contains(":event-bus/") {
                    continue;
                }
                forwards += 1;
                let queue = scalar(&target["DeadLetterConfig"]["Arn"]);
                let queue = queue.trim_end_matches(".Arn");
                assert_eq!(
                    resources[queue]["Type"].as_str(),
                    Some("AWS::SQS::Queue"),
                    "{file}: {id} has no dead-letter queue"
                );
                let watched = alarms.iter().any(|(_, a)| {
                    let p = &a["Properties"];
                    p["MetricName"].as_str() == Some("ApproximateNumberOfMessagesVisible")
                        && scalar(&p["Dimensions"][0]["Value"]) == format!("{queue}.QueueName")
                        && p["AlarmActions"]
                            .as_sequence()
                            .is_some_and(|a| !a.is_empty())
                });
                assert!(
                    watched,
                    "{file}: nothing pages when {queue} holds a message"
                );
            }
        }
        assert!(forwards >= 1, "{file} forwards across regions");
    }
    // The witness's own failures page: its prober's errors, and its silence (missing data is
    // the finding, so it breaches).
    let witness = resources_of("witness.yaml");
    let alarms = of_type(&witness, "AWS::CloudWatch::Alarm");
    let pages = |a: &Value| {
        a["Properties"]["AlarmActions"]
            .as_sequence()
            .is_some_and(|a| !a.is_empty())
    };
    assert!(alarms.iter().any(|(_, a)| {
        pages(a)
            && a["Properties"]["Metrics"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|m| {
                    m["MetricStat"]["Metric"]["MetricName"].as_str() == Some("Errors")
                        && scalar(&m["MetricStat"]["Metric"]["Dimensions"][0]["Value"])
                            == "WatchRegionFunction"
                })
    }));
    assert!(alarms.iter().any(|(_, a)| {
        pages(a)
            && a["Properties"]["Namespace"].as_str() == Some("hapilot/RegionHealth")
            && a["Properties"]["TreatMissingData"].as_str() == Some("breaching")
    }));
}

#[test]
fn only_the_approval_function_answers_runs_and_operators_go_through_its_iam_url() {
    let resources = template();
    let grants = |policy: &Value, action: &str| {
        policy["Statement"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter(|s| s["Effect"].as_str() == Some("Allow"))
            .any(|s| {
                let actions: Vec<String> = match &s["Action"] {
                    Value::Sequence(list) => list.iter().map(scalar).collect(),
                    one => vec![scalar(one)],
                };
                actions.iter().any(|a| {
                    a == action
                        || a == "*"
                        || (a.ends_with('*') && action.starts_with(a.trim_end_matches('*')))
                })
            })
    };
    // Every function's inline policies: only answer-approval may send a task's answer.
    for (id, function) in of_type(&resources, "AWS::Serverless::Function") {
        let answers = function["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
            .any(|p| grants(p, "states:SendTaskSuccess"));
        assert_eq!(answers, id == "AnswerApprovalFunction", "{id}");
    }
    let url = &resources["AnswerApprovalFunction"]["Properties"]["FunctionUrlConfig"];
    assert_eq!(url["AuthType"].as_str(), Some("AWS_IAM"));
    let env = &resources["AnswerApprovalFunction"]["Properties"]["Environment"]["Variables"];
    assert!(env.get("HAPILOT_APPROVERS").is_some());
    // The shipped operator policy: the URL (AWS_IAM only), never the answer itself.
    let operator = &resources["OperatorPolicy"]["Properties"]["PolicyDocument"];
    assert!(grants(operator, "lambda:InvokeFunctionUrl"));
    for forbidden in [
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
        "s3:PutObject",
        "s3:DeleteObject",
    ] {
        assert!(
            !grants(operator, forbidden),
            "the operator policy grants {forbidden}"
        );
    }
    let statement = operator["Statement"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| scalar(&s["Action"]) == "lambda:InvokeFunctionUrl")
        .unwrap();
    assert_eq!(
        statement["Condition"]["StringEquals"]["lambda:FunctionUrlAuthType"].as_str(),
        Some("AWS_IAM")
    );
}

/// Every (machine, state) each function runs in, from the ASLs: a state's `Resource` or
/// `FunctionName`, and for a state that picks its function at run time (`FunctionName.$`), every
/// function a `Pass` state of the machine offers under that name.
fn states_by_function() -> BTreeMap<String, BTreeSet<(String, String)>> {
    fn each_state(states: &serde_json::Value, f: &mut dyn FnMut(&str, &serde_json::Value)) {
        for (name, body) in states.as_object().unwrap() {
            f(name, body);
            for branch in body["Branches"].as_array().into_iter().flatten() {
                each_state(&branch["States"], f);
            }
            for inner in ["Iterator", "ItemProcessor"] {
                if body.get(inner).is_some() {
                    each_state(&body[inner]["States"], f);
                }
            }
        }
    }
    let named = |sub: &str| {
        let sub = sub.trim_start_matches("${").trim_end_matches('}');
        FUNCTIONS
            .iter()
            .find(|f| f.substitution == sub)
            .map(|f| f.name.to_string())
    };
    let mut out: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for file in definitions_in(&project_root().join("statemachines")) {
        let machine = file
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(".asl.json")
            .to_string();
        let asl: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let mut offered: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        each_state(&asl["States"], &mut |_, body| {
            if body["Type"] == "Pass" {
                for (key, value) in body["Result"].as_object().into_iter().flatten() {
                    if let Some(function) = value.as_str().and_then(named) {
                        offered.entry(key.clone()).or_default().insert(function);
                    }
                }
            }
        });
        each_state(&asl["States"], &mut |state, body| {
            if body["Type"] != "Task" {
                return;
            }
            let functions: BTreeSet<String> = match body["Resource"]
                .as_str()
                .filter(|r| r.starts_with("${"))
                .or_else(|| body["Parameters"]["FunctionName"].as_str())
            {
                Some(sub) => named(sub).into_iter().collect(),
                None => body["Parameters"]["FunctionName.$"]
                    .as_str()
                    .and_then(|path| offered.get(path.rsplit('.').next().unwrap()))
                    .cloned()
                    .unwrap_or_default(),
            };
            for function in functions {
                out.entry(function)
                    .or_default()
                    .insert((machine.clone(), state.to_string()));
            }
        });
    }
    out
}

#[test]
fn each_function_writes_only_its_own_journal_keys() {
    let resources = template();
    let states = states_by_function();
    for (id, function) in of_type(&resources, "AWS::Serverless::Function") {
        let binary = scalar(&function["Metadata"]["BuildProperties"]["Binary"]);
        let mut writes: BTreeSet<String> = BTreeSet::new();
        for policy in function["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            for statement in policy["Statement"].as_sequence().into_iter().flatten() {
                let actions: Vec<String> = match &statement["Action"] {
                    Value::Sequence(list) => list.iter().map(scalar).collect(),
                    one => vec![scalar(one)],
                };
                if !actions.iter().any(|a| a == "s3:PutObject" || a == "s3:*") {
                    continue;
                }
                for resource in statement["Resource"].as_sequence().into_iter().flatten() {
                    let resource = scalar(resource);
                    if let Some(key) = resource.strip_prefix("${AuditBucket.Arn}/runs/") {
                        writes.insert(key.to_string());
                    }
                }
            }
        }
        if writes.is_empty() {
            continue;
        }
        let mut expected: BTreeSet<String> = states
            .get(&binary)
            .into_iter()
            .flatten()
            .map(|(machine, state)| format!("{machine}/*-{state}.json"))
            .collect();
        match binary.as_str() {
            "request-approval" => {
                expected.insert("*/approval.json".into());
            }
            "answer-approval" => {
                expected = ["*/approval-answer.json".to_string()].into();
            }
            _ => {}
        }
        assert_eq!(
            writes, expected,
            "{id} ({binary}) may write exactly its own states' journal keys"
        );
    }
}

#[test]
fn pagers_get_only_what_needs_a_human_and_chat_gets_everything() {
    let pager_policy: Value = serde_norway::from_str(hapilot_core::paging::PAGER_FILTER_POLICY)
        .expect("the policy is JSON, and so YAML");
    for file in ["template.yaml", "witness.yaml"] {
        let resources = resources_of(file);
        let mut pagers = 0;
        for (name, subscription) in of_type(&resources, "AWS::SNS::Subscription") {
            let properties = &subscription["Properties"];
            match scalar(&properties["Protocol"]).as_str() {
                "https" => {
                    pagers += 1;
                    assert_eq!(
                        properties["FilterPolicy"], pager_policy,
                        "{file} {name} must filter with hapilot_core::paging::PAGER_FILTER_POLICY"
                    );
                    assert_eq!(
                        scalar(&properties["FilterPolicyScope"]),
                        "MessageAttributes"
                    );
                    assert!(
                        subscription.get("Condition").is_some(),
                        "{file} {name} is optional"
                    );
                }
                "email" => assert!(
                    properties.get("FilterPolicy").is_none(),
                    "{file} {name}: e-mail gets everything"
                ),
                other => panic!("{file} {name}: unexpected protocol {other}"),
            }
        }
        assert_eq!(pagers, 2, "{file}: PagerDuty and Opsgenie");
    }
    let resources = template();
    let slack = of_type(&resources, "AWS::Chatbot::SlackChannelConfiguration");
    assert_eq!(slack.len(), 1);
    assert_eq!(
        scalar(&slack[0].1["Properties"]["SnsTopicArns"][0]),
        "NotificationTopic",
        "Slack gets the one topic, unfiltered"
    );
}
