//! Creating a translated template's resources on the local stack, in dependency order, as
//! CloudFormation would: conditions first, then each resource once everything it refers to
//! exists, its properties resolved ([`super::intrinsics`]). moto gets every resource it has an
//! API for (buckets, topics, queues, IAM roles and their policies, alarms, dashboards, health
//! checks, state machines, schedules); the functions go to the local Lambda host with exactly
//! their resolved `Environment`; EventBridge rules stay here, because delivering events is the
//! local world's job (moto delivers none). Resources nothing local consumes (log groups, KMS
//! keys, Lambda permissions and invoke configs) are recorded with their resolved properties
//! and listed in the stack's `recorded` so a report can say so.

use std::collections::{BTreeMap, BTreeSet};

use aws_config::SdkConfig;
use serde_json::{Value, json};

use super::Template;
use super::intrinsics::{IntrinsicError, Scope, evaluate_conditions, references, resolve};
use crate::LocalError;

/// The account every local resource lives in.
pub const ACCOUNT: &str = hapilot_adapters::sdk::LOCAL_ACCOUNT_ID;

/// A function of a deployed stack, as the local Lambda host runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedFunction {
    /// The template's logical id.
    pub logical_id: String,
    /// `FunctionName`.
    pub name: String,
    /// Which handler (`Metadata.BuildProperties.Binary`, the binary `sam build` builds).
    pub binary: String,
    /// Its resolved `Environment.Variables`.
    pub environment: BTreeMap<String, String>,
    /// Its role's ARN.
    pub role_arn: String,
}

/// An EventBridge rule of a deployed stack.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployedRule {
    /// The rule's name.
    pub name: String,
    /// Its resolved event pattern.
    pub pattern: Value,
    /// Target ARNs (functions, state machines, event buses).
    pub targets: Vec<String>,
}

/// A Scheduler schedule of a deployed stack.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployedSchedule {
    /// The schedule's name.
    pub name: String,
    /// `rate(...)` / `cron(...)`.
    pub expression: String,
    /// `ENABLED` / `DISABLED`.
    pub state: String,
    /// The target's ARN.
    pub target: String,
    /// The target's input (JSON text), if any.
    pub input: Option<String>,
}

/// What one template became in one region.
#[derive(Debug, Clone, Default)]
pub struct DeployedStack {
    /// `AWS::StackName`.
    pub name: String,
    /// The region.
    pub region: String,
    /// Every parameter's value.
    pub parameters: BTreeMap<String, Value>,
    /// Every condition's value.
    pub conditions: BTreeMap<String, bool>,
    /// Logical id -> `Ref` value of every created resource.
    pub refs: BTreeMap<String, Value>,
    /// Logical id -> type, of every resource created or recorded.
    pub types: BTreeMap<String, String>,
    /// Function name -> function.
    pub functions: BTreeMap<String, DeployedFunction>,
    /// State machine name -> ARN.
    pub state_machines: BTreeMap<String, String>,
    /// The EventBridge rules.
    pub rules: Vec<DeployedRule>,
    /// The schedules.
    pub schedules: Vec<DeployedSchedule>,
    /// Alarm names.
    pub alarms: Vec<String>,
    /// Output name -> value.
    pub outputs: BTreeMap<String, String>,
    /// Resources recorded but not created anywhere: (logical id, type).
    pub recorded: Vec<(String, String)>,
    /// Resources skipped because their condition is false.
    pub skipped: Vec<String>,
}

impl DeployedStack {
    /// The function deployed from handler `binary`, if this stack has one.
    pub fn function_for(&self, binary: &str) -> Option<&DeployedFunction> {
        self.functions.values().find(|f| f.binary == binary)
    }

    /// The state machine whose name is `<stack>-<short>` (or `short` itself).
    pub fn state_machine(&self, short: &str) -> Option<&str> {
        self.state_machines
            .get(&format!("{}-{short}", self.name))
            .or_else(|| self.state_machines.get(short))
            .map(String::as_str)
    }

    /// The `Ref` value of a logical id, as text.
    pub fn reference(&self, logical_id: &str) -> Option<String> {
        self.refs.get(logical_id).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

/// Deploys `template` as stack `name` in `region` with the given (already checked) parameter
/// values, through `sdk` (signed for `region`; Route53 and IAM are global); function URLs are
/// served by the front door at `front_door`.
pub async fn deploy(
    (sdk, front_door): (&SdkConfig, &str),
    template: &Template,
    name: &str,
    region: &str,
    parameters: BTreeMap<String, Value>,
) -> Result<DeployedStack, LocalError> {
    let pseudo: BTreeMap<String, String> = BTreeMap::from([
        ("AWS::Region".into(), region.to_string()),
        ("AWS::AccountId".into(), ACCOUNT.to_string()),
        ("AWS::StackName".into(), name.to_string()),
        ("AWS::Partition".into(), "aws".into()),
        ("AWS::URLSuffix".into(), "amazonaws.com".into()),
        (
            "AWS::StackId".into(),
            format!("arn:aws:cloudformation:{region}:{ACCOUNT}:stack/{name}/local"),
        ),
    ]);
    let mappings = template.doc.get("Mappings").cloned().unwrap_or(json!({}));
    let empty_refs = BTreeMap::new();
    let empty_attrs = BTreeMap::new();
    let empty_conditions = BTreeMap::new();
    let conditions = evaluate_conditions(
        &template.section("Conditions"),
        &Scope {
            parameters: &parameters,
            pseudo: &pseudo,
            conditions: &empty_conditions,
            mappings: &mappings,
            refs: &empty_refs,
            attributes: &empty_attrs,
        },
    )
    .map_err(|e| invalid(template, &e))?;
    let resources = template.resources();
    let order = creation_order(&resources)?;
    let mut out = DeployedStack {
        name: name.to_string(),
        region: region.to_string(),
        parameters: parameters.clone(),
        conditions: conditions.clone(),
        ..Default::default()
    };
    let mut attributes: BTreeMap<(String, String), Value> = BTreeMap::new();
    let mut clients = Clients::new(sdk);
    clients.endpoint = front_door.to_string();
    for logical in order {
        let resource = &resources[&logical];
        if let Some(c) = resource.get("Condition").and_then(Value::as_str)
            && !conditions.get(c).copied().unwrap_or(false)
        {
            out.skipped.push(logical.clone());
            continue;
        }
        let kind = resource
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let scope = Scope {
            parameters: &parameters,
            pseudo: &pseudo,
            conditions: &conditions,
            mappings: &mappings,
            refs: &out.refs,
            attributes: &attributes,
        };
        let properties = resolve(resource.get("Properties").unwrap_or(&json!({})), &scope)
            .map_err(|e| invalid(template, &IntrinsicError(format!("{logical}: {}", e.0))))?
            .unwrap_or(json!({}));
        let created = create(
            &clients,
            template,
            name,
            region,
            &logical,
            &kind,
            resource,
            &properties,
            &mut out,
        )
        .await?;
        out.types.insert(logical.clone(), kind);
        out.refs.insert(logical.clone(), created.reference);
        for (attr, value) in created.attributes {
            attributes.insert((logical.clone(), attr), value);
        }
    }
    let scope = Scope {
        parameters: &parameters,
        pseudo: &pseudo,
        conditions: &conditions,
        mappings: &mappings,
        refs: &out.refs,
        attributes: &attributes,
    };
    for (output, spec) in template.section("Outputs") {
        if let Some(c) = spec.get("Condition").and_then(Value::as_str)
            && !conditions.get(c).copied().unwrap_or(false)
        {
            continue;
        }
        if let Some(Value::String(v)) = spec
            .get("Value")
            .map(|v| resolve(v, &scope))
            .transpose()
            .map_err(|e| invalid(template, &e))?
            .flatten()
        {
            out.outputs.insert(output, v);
        }
    }
    Ok(out)
}

fn invalid(template: &Template, e: &IntrinsicError) -> LocalError {
    LocalError::Invalid(format!("{}: {}", template.path.display(), e.0))
}

/// The order CloudFormation may create `resources` in: each after everything it refers to
/// (`Ref`, `Fn::GetAtt`, `Fn::Sub`) and its `DependsOn`. A circle is refused, naming it.
pub fn creation_order(
    resources: &serde_json::Map<String, Value>,
) -> Result<Vec<String>, LocalError> {
    let names: BTreeSet<String> = resources.keys().cloned().collect();
    let mut needs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (logical, resource) in resources {
        let mut deps = references(resource.get("Properties").unwrap_or(&Value::Null), &names);
        match resource.get("DependsOn") {
            Some(Value::String(d)) => {
                deps.insert(d.clone());
            }
            Some(Value::Array(ds)) => {
                deps.extend(ds.iter().filter_map(Value::as_str).map(str::to_string));
            }
            _ => {}
        }
        deps.remove(logical);
        if let Some(unknown) = deps.iter().find(|d| !names.contains(*d)) {
            return Err(LocalError::Invalid(format!(
                "{logical} depends on {unknown}, which the template does not declare"
            )));
        }
        needs.insert(logical.clone(), deps);
    }
    let mut order = Vec::with_capacity(needs.len());
    let mut done: BTreeSet<String> = BTreeSet::new();
    while done.len() < needs.len() {
        let ready: Vec<String> = needs
            .iter()
            .filter(|(n, deps)| !done.contains(*n) && deps.iter().all(|d| done.contains(d)))
            .map(|(n, _)| n.clone())
            .collect();
        if ready.is_empty() {
            let stuck: Vec<&String> = needs.keys().filter(|n| !done.contains(*n)).collect();
            return Err(LocalError::Invalid(format!(
                "circular dependency between resources: {stuck:?}"
            )));
        }
        for n in ready {
            done.insert(n.clone());
            order.push(n);
        }
    }
    Ok(order)
}

struct Clients {
    /// The front door's URL (function URLs are served under it).
    endpoint: String,
    s3: aws_sdk_s3::Client,
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    iam: aws_sdk_iam::Client,
    sfn: aws_sdk_sfn::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    route53: aws_sdk_route53::Client,
    scheduler: aws_sdk_scheduler::Client,
}

impl Clients {
    fn new(sdk: &SdkConfig) -> Self {
        Self {
            endpoint: sdk.endpoint_url().unwrap_or_default().to_string(),
            s3: hapilot_adapters::sdk::s3(sdk),
            sns: aws_sdk_sns::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            iam: aws_sdk_iam::Client::new(sdk),
            sfn: aws_sdk_sfn::Client::new(sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            route53: aws_sdk_route53::Client::new(sdk),
            scheduler: aws_sdk_scheduler::Client::new(sdk),
        }
    }
}

struct Created {
    reference: Value,
    attributes: Vec<(String, Value)>,
}

impl Created {
    /// A resource with a `Ref` value and no attributes.
    fn plain(reference: Value) -> Self {
        Self {
            reference,
            attributes: Vec::new(),
        }
    }
}

fn text(props: &Value, key: &str) -> Option<String> {
    props.get(key).and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

/// A resolved string map (`Environment.Variables`, `DefinitionSubstitutions`), values as text.
fn text_map(map: Option<&Value>) -> BTreeMap<String, String> {
    map.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn number(props: &Value, key: &str) -> Option<f64> {
    props
        .get(key)
        .and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()))
}

/// A physical name CloudFormation would generate: `<stack>-<LogicalId>-<suffix>`, cut to `max`.
fn generated_name(stack: &str, logical: &str, max: usize, lower: bool) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_uppercase();
    let mut name = format!("{stack}-{logical}-{suffix}");
    if lower {
        name = name.to_lowercase();
    }
    if name.len() > max {
        let keep = max - suffix.len() - 1;
        name = format!("{}-{suffix}", &name[..keep]);
        if lower {
            name = name.to_lowercase();
        }
    }
    name
}

#[allow(clippy::too_many_arguments)]
async fn create(
    c: &Clients,
    template: &Template,
    stack: &str,
    region: &str,
    logical: &str,
    kind: &str,
    resource: &Value,
    props: &Value,
    out: &mut DeployedStack,
) -> Result<Created, LocalError> {
    let aws = |op: &'static str| {
        move |e: String| LocalError::Aws {
            operation: op,
            detail: format!("{logical}: {e}"),
        }
    };
    let chain = |e: &dyn std::error::Error| hapilot_adapters::error_chain(e);
    match kind {
        "AWS::S3::Bucket" => {
            let bucket = text(props, "BucketName")
                .unwrap_or_else(|| generated_name(stack, logical, 63, true));
            let mut create = c.s3.create_bucket().bucket(&bucket);
            if region != "us-east-1" {
                create = create.create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                            region,
                        ))
                        .build(),
                );
            }
            // Object Lock can only be turned on when the bucket is created (S3 turns versioning
            // on with it).
            let locked = props["ObjectLockEnabled"] == json!(true)
                || props["ObjectLockEnabled"] == json!("true");
            if locked {
                create = create.object_lock_enabled_for_bucket(true);
            }
            create
                .send()
                .await
                .map_err(|e| aws("CreateBucket")(chain(&e)))?;
            let retention = &props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"];
            if locked && !retention.is_null() {
                use aws_sdk_s3::types::{
                    DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled,
                    ObjectLockRetentionMode, ObjectLockRule,
                };
                let days = retention["Days"]
                    .as_i64()
                    .or_else(|| retention["Days"].as_str().and_then(|d| d.parse().ok()));
                c.s3.put_object_lock_configuration()
                    .bucket(&bucket)
                    .object_lock_configuration(
                        ObjectLockConfiguration::builder()
                            .object_lock_enabled(ObjectLockEnabled::Enabled)
                            .rule(
                                ObjectLockRule::builder()
                                    .default_retention(
                                        DefaultRetention::builder()
                                            .mode(ObjectLockRetentionMode::from(
                                                text(retention, "Mode")
                                                    .unwrap_or_default()
                                                    .as_str(),
                                            ))
                                            .set_days(days.map(|d| d as i32))
                                            .build(),
                                    )
                                    .build(),
                            )
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| aws("PutObjectLockConfiguration")(chain(&e)))?;
            }
            if text(&props["VersioningConfiguration"], "Status").as_deref() == Some("Enabled") {
                c.s3.put_bucket_versioning()
                    .bucket(&bucket)
                    .versioning_configuration(
                        aws_sdk_s3::types::VersioningConfiguration::builder()
                            .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| aws("PutBucketVersioning")(chain(&e)))?;
            }
            Ok(Created {
                reference: json!(bucket),
                attributes: vec![
                    ("Arn".into(), json!(format!("arn:aws:s3:::{bucket}"))),
                    (
                        "DomainName".into(),
                        json!(format!("{bucket}.s3.amazonaws.com")),
                    ),
                ],
            })
        }
        "AWS::S3::BucketPolicy" => {
            let bucket = text(props, "Bucket").unwrap_or_default();
            // moto 5.2.5 answers 403 to every object request when any statement carries a
            // Condition: it cannot evaluate one (no request context) and then denies even for
            // a Deny whose condition does not hold (moto/iam/access_control.py,
            // IAMPolicyStatement.is_action_permitted). Such statements are recorded, not sent.
            let mut document = props["PolicyDocument"].clone();
            let mut conditional = false;
            if let Some(statements) = document.get_mut("Statement").and_then(Value::as_array_mut) {
                let before = statements.len();
                statements.retain(|st| st.get("Condition").is_none());
                conditional = statements.len() != before;
            }
            if conditional {
                out.recorded.push((
                    format!("{logical} (conditional statements)"),
                    kind.to_string(),
                ));
            }
            if document["Statement"]
                .as_array()
                .is_some_and(|s| !s.is_empty())
            {
                c.s3.put_bucket_policy()
                    .bucket(&bucket)
                    .policy(document.to_string())
                    .send()
                    .await
                    .map_err(|e| aws("PutBucketPolicy")(chain(&e)))?;
            }
            Ok(Created::plain(json!(bucket)))
        }
        "AWS::SNS::Topic" => {
            let name = text(props, "TopicName")
                .unwrap_or_else(|| generated_name(stack, logical, 256, false));
            let mut create = c.sns.create_topic().name(&name);
            if let Some(key) = text(props, "KmsMasterKeyId") {
                create = create.attributes("KmsMasterKeyId", key);
            }
            let arn = create
                .send()
                .await
                .map_err(|e| aws("CreateTopic")(chain(&e)))?
                .topic_arn()
                .unwrap_or_default()
                .to_string();
            Ok(Created {
                reference: json!(arn),
                attributes: vec![
                    ("TopicName".into(), json!(name)),
                    ("TopicArn".into(), json!(arn)),
                ],
            })
        }
        "AWS::SNS::Subscription" => {
            let arn = c
                .sns
                .subscribe()
                .topic_arn(text(props, "TopicArn").unwrap_or_default())
                .protocol(text(props, "Protocol").unwrap_or_default())
                .endpoint(text(props, "Endpoint").unwrap_or_default())
                .send()
                .await
                .map_err(|e| aws("Subscribe")(chain(&e)))?
                .subscription_arn()
                .unwrap_or_default()
                .to_string();
            Ok(Created::plain(json!(arn)))
        }
        "AWS::SQS::Queue" => {
            let name = text(props, "QueueName")
                .unwrap_or_else(|| generated_name(stack, logical, 80, false));
            let url = c
                .sqs
                .create_queue()
                .queue_name(&name)
                .send()
                .await
                .map_err(|e| aws("CreateQueue")(chain(&e)))?
                .queue_url()
                .unwrap_or_default()
                .to_string();
            Ok(Created {
                reference: json!(url),
                attributes: vec![
                    (
                        "Arn".into(),
                        json!(format!("arn:aws:sqs:{region}:{ACCOUNT}:{name}")),
                    ),
                    ("QueueName".into(), json!(name)),
                    ("QueueUrl".into(), json!(url)),
                ],
            })
        }
        "AWS::SQS::QueuePolicy" => {
            for queue in props["Queues"].as_array().cloned().unwrap_or_default() {
                c.sqs
                    .set_queue_attributes()
                    .queue_url(queue.as_str().unwrap_or_default())
                    .attributes(
                        aws_sdk_sqs::types::QueueAttributeName::Policy,
                        props["PolicyDocument"].to_string(),
                    )
                    .send()
                    .await
                    .map_err(|e| aws("SetQueueAttributes")(chain(&e)))?;
            }
            Ok(Created::plain(json!(logical)))
        }
        "AWS::IAM::Role" => {
            let name = text(props, "RoleName")
                .unwrap_or_else(|| generated_name(stack, logical, 64, false));
            let created = c
                .iam
                .create_role()
                .role_name(&name)
                .assume_role_policy_document(props["AssumeRolePolicyDocument"].to_string())
                .send()
                .await
                .map_err(|e| aws("CreateRole")(chain(&e)))?;
            let arn = created
                .role()
                .map(|r| r.arn().to_string())
                .unwrap_or_else(|| format!("arn:aws:iam::{ACCOUNT}:role/{name}"));
            for policy in props["Policies"].as_array().cloned().unwrap_or_default() {
                let mut document = policy["PolicyDocument"].clone();
                // SAM's policy templates and invoke-config policies carry no Version, which
                // IAM accepts (it defaults to 2008-10-17) and moto refuses; none of them uses
                // policy variables, the one thing the two versions read differently.
                if let Some(d) = document.as_object_mut() {
                    d.entry("Version").or_insert(json!("2012-10-17"));
                }
                c.iam
                    .put_role_policy()
                    .role_name(&name)
                    .policy_name(text(&policy, "PolicyName").unwrap_or_default())
                    .policy_document(document.to_string())
                    .send()
                    .await
                    .map_err(|e| aws("PutRolePolicy")(chain(&e)))?;
            }
            for managed in props["ManagedPolicyArns"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                // moto knows AWS's managed policies; one it does not know is recorded only.
                let _ = c
                    .iam
                    .attach_role_policy()
                    .role_name(&name)
                    .policy_arn(managed.as_str().unwrap_or_default())
                    .send()
                    .await;
            }
            Ok(Created {
                reference: json!(name),
                attributes: vec![("Arn".into(), json!(arn)), ("RoleId".into(), json!(name))],
            })
        }
        "AWS::Lambda::Function" => {
            let name = text(props, "FunctionName")
                .unwrap_or_else(|| generated_name(stack, logical, 64, false));
            let binary = resource
                .pointer("/Metadata/BuildProperties/Binary")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    LocalError::Invalid(format!(
                        "{}: {logical} has no Metadata.BuildProperties.Binary: the local Lambda host cannot tell which handler it runs",
                        template.path.display()
                    ))
                })?
                .to_string();
            let environment = text_map(props.pointer("/Environment/Variables"));
            let arn = format!("arn:aws:lambda:{region}:{ACCOUNT}:function:{name}");
            out.functions.insert(
                name.clone(),
                DeployedFunction {
                    logical_id: logical.to_string(),
                    name: name.clone(),
                    binary,
                    environment,
                    role_arn: text(props, "Role").unwrap_or_default(),
                },
            );
            Ok(Created {
                reference: json!(name),
                attributes: vec![("Arn".into(), json!(arn))],
            })
        }
        "AWS::StepFunctions::StateMachine" => {
            let name = text(props, "StateMachineName")
                .unwrap_or_else(|| generated_name(stack, logical, 80, false));
            let definition = match (
                props.get("DefinitionString"),
                props.get("Definition"),
                props.pointer("/DefinitionS3Location/Key"),
            ) {
                (Some(Value::String(s)), _, _) => s.clone(),
                (_, Some(d), _) => d.to_string(),
                (_, _, Some(Value::String(key))) => {
                    let file = template.dir().join(key);
                    std::fs::read_to_string(&file)
                        .map_err(LocalError::io(format!("reading {}", file.display())))?
                }
                _ => {
                    return Err(LocalError::Invalid(format!(
                        "{logical}: no definition (DefinitionString, Definition or DefinitionS3Location)"
                    )));
                }
            };
            let substitutions = text_map(props.get("DefinitionSubstitutions"));
            let definition = crate::aws::definitions::resolve(&definition, &substitutions)
                .map_err(|missing| LocalError::StateMachine {
                    file: template.path.clone(),
                    detail: format!(
                        "{logical}: DefinitionSubstitutions lacks {}",
                        missing.join(", ")
                    ),
                })?;
            let arn = c
                .sfn
                .create_state_machine()
                .name(&name)
                .definition(definition)
                .role_arn(
                    text(props, "RoleArn")
                        .unwrap_or_else(|| crate::aws::definitions::LOCAL_STATES_ROLE.to_string()),
                )
                .send()
                .await
                .map_err(|e| LocalError::StateMachine {
                    file: template.path.clone(),
                    detail: format!("{logical}: CreateStateMachine failed: {}", chain(&e)),
                })?
                .state_machine_arn()
                .to_string();
            out.state_machines.insert(name.clone(), arn.clone());
            Ok(Created {
                reference: json!(arn),
                attributes: vec![("Name".into(), json!(name)), ("Arn".into(), json!(arn))],
            })
        }
        "AWS::CloudWatch::Alarm" => {
            let name = text(props, "AlarmName")
                .unwrap_or_else(|| generated_name(stack, logical, 255, false));
            put_alarm(&c.cloudwatch, &name, props)
                .await
                .map_err(|e| aws("PutMetricAlarm")(e))?;
            out.alarms.push(name.clone());
            Ok(Created {
                reference: json!(name),
                attributes: vec![(
                    "Arn".into(),
                    json!(format!(
                        "arn:aws:cloudwatch:{region}:{ACCOUNT}:alarm:{name}"
                    )),
                )],
            })
        }
        "AWS::CloudWatch::Dashboard" => {
            let name = text(props, "DashboardName")
                .unwrap_or_else(|| generated_name(stack, logical, 255, false));
            c.cloudwatch
                .put_dashboard()
                .dashboard_name(&name)
                .dashboard_body(text(props, "DashboardBody").unwrap_or_else(|| "{}".into()))
                .send()
                .await
                .map_err(|e| aws("PutDashboard")(chain(&e)))?;
            Ok(Created::plain(json!(name)))
        }
        "AWS::Route53::HealthCheck" => {
            let id = create_health_check(&c.route53, props)
                .await
                .map_err(|e| aws("CreateHealthCheck")(e))?;
            Ok(Created {
                reference: json!(id),
                attributes: vec![("HealthCheckId".into(), json!(id))],
            })
        }
        "AWS::Scheduler::Schedule" => {
            let name =
                text(props, "Name").unwrap_or_else(|| generated_name(stack, logical, 64, false));
            let target = &props["Target"];
            let schedule = DeployedSchedule {
                name: name.clone(),
                expression: text(props, "ScheduleExpression").unwrap_or_default(),
                state: text(props, "State").unwrap_or_else(|| "ENABLED".into()),
                target: text(target, "Arn").unwrap_or_default(),
                input: text(target, "Input"),
            };
            let mut built = aws_sdk_scheduler::types::Target::builder()
                .arn(&schedule.target)
                .role_arn(text(target, "RoleArn").unwrap_or_default());
            if let Some(input) = &schedule.input {
                built = built.input(input);
            }
            let mut create = c
                .scheduler
                .create_schedule()
                .name(&name)
                .schedule_expression(&schedule.expression)
                .state(aws_sdk_scheduler::types::ScheduleState::from(
                    schedule.state.as_str(),
                ))
                .flexible_time_window(
                    aws_sdk_scheduler::types::FlexibleTimeWindow::builder()
                        .mode(aws_sdk_scheduler::types::FlexibleTimeWindowMode::Off)
                        .build()
                        .map_err(|e| aws("CreateSchedule")(e.to_string()))?,
                )
                .target(
                    built
                        .build()
                        .map_err(|e| aws("CreateSchedule")(e.to_string()))?,
                );
            if let Some(tz) = text(props, "ScheduleExpressionTimezone") {
                create = create.schedule_expression_timezone(tz);
            }
            let arn = create
                .send()
                .await
                .map_err(|e| aws("CreateSchedule")(chain(&e)))?
                .schedule_arn()
                .to_string();
            out.schedules.push(schedule);
            Ok(Created {
                reference: json!(name),
                attributes: vec![("Arn".into(), json!(arn))],
            })
        }
        "AWS::Events::Rule" => {
            let name =
                text(props, "Name").unwrap_or_else(|| generated_name(stack, logical, 64, false));
            out.rules.push(DeployedRule {
                name: name.clone(),
                pattern: props.get("EventPattern").cloned().unwrap_or(Value::Null),
                targets: props["Targets"]
                    .as_array()
                    .map(|ts| ts.iter().filter_map(|t| text(t, "Arn")).collect())
                    .unwrap_or_default(),
            });
            Ok(Created {
                reference: json!(name),
                attributes: vec![(
                    "Arn".into(),
                    json!(format!("arn:aws:events:{region}:{ACCOUNT}:rule/{name}")),
                )],
            })
        }
        "AWS::Logs::LogGroup" => {
            let name = text(props, "LogGroupName")
                .unwrap_or_else(|| generated_name(stack, logical, 512, false));
            out.recorded.push((logical.to_string(), kind.to_string()));
            Ok(Created {
                reference: json!(name),
                attributes: vec![(
                    "Arn".into(),
                    json!(format!(
                        "arn:aws:logs:{region}:{ACCOUNT}:log-group:{name}:*"
                    )),
                )],
            })
        }
        "AWS::KMS::Key" => {
            let id = uuid::Uuid::new_v4().to_string();
            out.recorded.push((logical.to_string(), kind.to_string()));
            Ok(Created {
                reference: json!(id),
                attributes: vec![
                    (
                        "Arn".into(),
                        json!(format!("arn:aws:kms:{region}:{ACCOUNT}:key/{id}")),
                    ),
                    ("KeyId".into(), json!(id)),
                ],
            })
        }
        // A function URL is served by the front door under its region and function name; it
        // authenticates callers as AWS_IAM does (see `front_door`).
        "AWS::Lambda::Url" => {
            let target = text(props, "TargetFunctionArn").unwrap_or_default();
            let function = target.rsplit(':').next().unwrap_or_default().to_string();
            let auth = text(props, "AuthType").unwrap_or_default();
            if auth != "AWS_IAM" {
                return Err(LocalError::Invalid(format!(
                    "{}: {logical} has AuthType {auth:?}; the local front door serves AWS_IAM function URLs only",
                    template.path.display()
                )));
            }
            let url = format!(
                "{}/{}{region}/{function}/",
                c.endpoint.trim_end_matches('/'),
                crate::aws::front_door::FUNCTION_URL_PREFIX.trim_start_matches('/')
            );
            Ok(Created {
                reference: json!(target),
                attributes: vec![
                    ("FunctionUrl".into(), json!(url)),
                    ("FunctionArn".into(), json!(target)),
                ],
            })
        }
        "AWS::IAM::ManagedPolicy" => {
            let name = text(props, "ManagedPolicyName")
                .unwrap_or_else(|| generated_name(stack, logical, 128, false));
            let created = c
                .iam
                .create_policy()
                .policy_name(&name)
                .policy_document(props["PolicyDocument"].to_string())
                .send()
                .await
                .map_err(|e| aws("CreatePolicy")(chain(&e)))?;
            let arn = created
                .policy()
                .and_then(|p| p.arn())
                .map(str::to_string)
                .unwrap_or_else(|| format!("arn:aws:iam::{ACCOUNT}:policy/{name}"));
            Ok(Created::plain(json!(arn)))
        }
        "AWS::Lambda::Permission" | "AWS::Lambda::EventInvokeConfig" => {
            out.recorded.push((logical.to_string(), kind.to_string()));
            Ok(Created::plain(json!(logical)))
        }
        other => Err(LocalError::Invalid(format!(
            "{}: {logical} is a {other}, which the local stack cannot deploy yet",
            template.path.display()
        ))),
    }
}

async fn put_alarm(cw: &aws_sdk_cloudwatch::Client, name: &str, p: &Value) -> Result<(), String> {
    use aws_sdk_cloudwatch::types as t;
    let dimensions = |v: &Value| -> Vec<t::Dimension> {
        v.as_array()
            .map(|ds| {
                ds.iter()
                    .map(|d| {
                        t::Dimension::builder()
                            .name(text(d, "Name").unwrap_or_default())
                            .value(text(d, "Value").unwrap_or_default())
                            .build()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut req = cw
        .put_metric_alarm()
        .alarm_name(name)
        .set_alarm_description(text(p, "AlarmDescription"))
        .set_comparison_operator(
            text(p, "ComparisonOperator").map(|c| t::ComparisonOperator::from(c.as_str())),
        )
        .set_evaluation_periods(number(p, "EvaluationPeriods").map(|n| n as i32))
        .set_datapoints_to_alarm(number(p, "DatapointsToAlarm").map(|n| n as i32))
        .set_threshold(number(p, "Threshold"))
        .set_treat_missing_data(text(p, "TreatMissingData"))
        .set_alarm_actions(Some(strings(&p["AlarmActions"])))
        .set_ok_actions(Some(strings(&p["OKActions"])))
        .set_insufficient_data_actions(Some(strings(&p["InsufficientDataActions"])));
    if let Some(metrics) = p["Metrics"].as_array() {
        let mut queries = Vec::new();
        for m in metrics {
            let mut q = t::MetricDataQuery::builder()
                .id(text(m, "Id").unwrap_or_default())
                .set_expression(text(m, "Expression"))
                .set_label(text(m, "Label"))
                .set_return_data(m.get("ReturnData").and_then(Value::as_bool));
            if let Some(stat) = m.get("MetricStat") {
                q = q.metric_stat(
                    t::MetricStat::builder()
                        .metric(
                            t::Metric::builder()
                                .set_namespace(text(&stat["Metric"], "Namespace"))
                                .set_metric_name(text(&stat["Metric"], "MetricName"))
                                .set_dimensions(Some(dimensions(&stat["Metric"]["Dimensions"])))
                                .build(),
                        )
                        .set_period(number(stat, "Period").map(|n| n as i32))
                        .set_stat(text(stat, "Stat"))
                        .build(),
                );
            }
            queries.push(q.build());
        }
        req = req.set_metrics(Some(queries));
    } else {
        req = req
            .set_namespace(text(p, "Namespace"))
            .set_metric_name(text(p, "MetricName"))
            .set_dimensions(Some(dimensions(&p["Dimensions"])))
            .set_statistic(text(p, "Statistic").map(|s| t::Statistic::from(s.as_str())))
            .set_period(number(p, "Period").map(|n| n as i32));
    }
    req.send()
        .await
        .map(|_| ())
        .map_err(|e| hapilot_adapters::error_chain(&e))
}

async fn create_health_check(r53: &aws_sdk_route53::Client, p: &Value) -> Result<String, String> {
    use aws_sdk_route53::types as t;
    let cfg = &p["HealthCheckConfig"];
    let kind = text(cfg, "Type").unwrap_or_default();
    let mut b = t::HealthCheckConfig::builder()
        .r#type(t::HealthCheckType::from(kind.as_str()))
        .set_ip_address(text(cfg, "IPAddress"))
        .set_port(number(cfg, "Port").map(|n| n as i32))
        .set_resource_path(text(cfg, "ResourcePath"))
        .set_fully_qualified_domain_name(text(cfg, "FullyQualifiedDomainName"))
        .set_search_string(text(cfg, "SearchString"))
        .set_request_interval(number(cfg, "RequestInterval").map(|n| n as i32))
        .set_failure_threshold(number(cfg, "FailureThreshold").map(|n| n as i32))
        .set_inverted(cfg.get("Inverted").and_then(Value::as_bool))
        .set_disabled(cfg.get("Disabled").and_then(Value::as_bool))
        .set_health_threshold(number(cfg, "HealthThreshold").map(|n| n as i32))
        .set_routing_control_arn(text(cfg, "RoutingControlArn"))
        .set_insufficient_data_health_status(
            text(cfg, "InsufficientDataHealthStatus")
                .map(|s| t::InsufficientDataHealthStatus::from(s.as_str())),
        );
    if let Some(children) = cfg["ChildHealthChecks"].as_array() {
        b = b.set_child_health_checks(Some(
            children
                .iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect(),
        ));
    }
    let alarm = cfg.get("AlarmIdentifier");
    if let Some(a) = alarm {
        b = b.alarm_identifier(
            t::AlarmIdentifier::builder()
                .name(text(a, "Name").unwrap_or_default())
                .region(t::CloudWatchRegion::from(
                    text(a, "Region").unwrap_or_default().as_str(),
                ))
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    let id = r53
        .create_health_check()
        .caller_reference(uuid::Uuid::new_v4().to_string())
        .health_check_config(b.build().map_err(|e| e.to_string())?)
        .send()
        .await
        .map_err(|e| hapilot_adapters::error_chain(&e))?
        .health_check()
        .map(|h| h.id().to_string())
        .unwrap_or_default();
    // moto drops AlarmIdentifier, InsufficientDataHealthStatus and RoutingControlArn
    // (LOCAL-STACK.md): the local data plane reads them back from these tags.
    let mut tags: Vec<t::Tag> = p["HealthCheckTags"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|tag| {
                    t::Tag::builder()
                        .set_key(text(tag, "Key"))
                        .set_value(text(tag, "Value"))
                        .build()
                })
                .collect()
        })
        .unwrap_or_default();
    let keep = |k: &str, v: Option<String>| v.map(|v| t::Tag::builder().key(k).value(v).build());
    tags.extend(
        [
            keep(
                crate::aws::data_plane::TAG_ALARM_REGION,
                alarm.and_then(|a| text(a, "Region")),
            ),
            keep(
                crate::aws::data_plane::TAG_ALARM_NAME,
                alarm.and_then(|a| text(a, "Name")),
            ),
            keep(
                crate::aws::data_plane::TAG_INSUFFICIENT_DATA,
                text(cfg, "InsufficientDataHealthStatus"),
            ),
            keep(
                crate::aws::data_plane::TAG_ROUTING_CONTROL,
                text(cfg, "RoutingControlArn"),
            ),
        ]
        .into_iter()
        .flatten(),
    );
    if !tags.is_empty() {
        r53.change_tags_for_resource()
            .resource_type(t::TagResourceType::Healthcheck)
            .resource_id(&id)
            .set_add_tags(Some(tags))
            .send()
            .await
            .map_err(|e| hapilot_adapters::error_chain(&e))?;
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_come_after_what_they_refer_to_and_circles_are_refused() {
        let resources = json!({
            "Machine": {"Type": "AWS::StepFunctions::StateMachine",
                        "Properties": {"DefinitionSubstitutions": {"F": {"Fn::GetAtt": ["Fn", "Arn"]}},
                                       "RoleArn": {"Fn::GetAtt": "MachineRole.Arn"}}},
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Role": {"Fn::Sub": "${FnRole.Arn}"}}},
            "FnRole": {"Type": "AWS::IAM::Role", "Properties": {}},
            "MachineRole": {"Type": "AWS::IAM::Role", "Properties": {}, "DependsOn": "FnRole"}
        });
        let order = creation_order(resources.as_object().unwrap()).unwrap();
        let at = |n: &str| order.iter().position(|o| o == n).unwrap();
        assert!(at("FnRole") < at("Fn"));
        assert!(at("Fn") < at("Machine"));
        assert!(at("MachineRole") < at("Machine"));
        assert!(at("FnRole") < at("MachineRole"));
        let circle = json!({
            "A": {"Type": "X", "Properties": {"B": {"Ref": "B"}}},
            "B": {"Type": "X", "Properties": {"A": {"Ref": "A"}}}
        });
        assert!(creation_order(circle.as_object().unwrap()).is_err());
        let dangling = json!({"A": {"Type": "X", "DependsOn": "Missing"}});
        assert!(creation_order(dangling.as_object().unwrap()).is_err());
    }

    #[test]
    fn generated_names_fit_the_limit_and_keep_the_suffix() {
        let name = generated_name(
            "hapilot",
            "AVeryLongLogicalIdForTheAuditBucketOfThisStack",
            63,
            true,
        );
        assert!(name.len() <= 63, "{name}");
        assert_eq!(name, name.to_lowercase());
        assert!(name.starts_with("hapilot-averylong"));
    }
}
