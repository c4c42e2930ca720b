//! IAM's policy simulator for the local stack (`SimulatePrincipalPolicy`, which moto lacks),
//! answered by the front door from the role's own policies as moto holds them, shaped like the
//! API reference: form-encoded request (`PolicySourceArn`, `ActionNames.member.N`,
//! `ResourceArns.member.N`), XML `EvaluationResults` with `EvalDecision` `allowed`,
//! `implicitDeny` or `explicitDeny`.
//!
//! The rules (identity policies only, as IAM evaluates them within one account):
//! - an explicit `Deny` whose action and resource match wins;
//! - else an `Allow` whose action and resource match allows;
//! - else the decision is `implicitDeny`.
//!
//! Actions match case-insensitively with `*` and `?`, resources case-sensitively. `NotAction` and
//! `NotResource` match what they do not list. A simulated resource of `*` (the default) matches
//! every statement resource. A statement's `Condition` holds when every operator holds for every
//! key against the request's `ContextEntries` (keys case-insensitive): `StringEquals`,
//! `StringNotEquals`, `StringEqualsIgnoreCase`, `StringLike`, `StringNotLike`, `ArnEquals`,
//! `ArnLike`, `ArnNotEquals`, `ArnNotLike`, `Bool`, each with `...IfExists`. A key the context
//! lacks fails the condition (IAM lists it under `MissingContextValues`), except under
//! `...IfExists`; an operator this simulator does not know fails it too, never allows.

use std::net::SocketAddr;

use hyper::StatusCode;
use serde_json::Value;

/// A form-encoded request body.
pub struct Form(Vec<(String, String)>);

impl Form {
    /// The first value of `key`.
    pub fn first(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The values of a list parameter `<key>.member.N`, in N order.
    pub fn members(&self, key: &str) -> Vec<String> {
        let prefix = format!("{key}.member.");
        let mut found: Vec<(u32, String)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(&prefix)
                    .and_then(|n| n.parse().ok())
                    .map(|n| (n, v.clone()))
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, v)| v).collect()
    }
}

/// Parses `application/x-www-form-urlencoded`.
pub fn form(body: &[u8]) -> Form {
    let text = String::from_utf8_lossy(body);
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    Form(
        text.split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (decode(k), decode(v)),
                None => (decode(kv), String::new()),
            })
            .collect(),
    )
}

/// `*` and `?` glob matching.
fn glob(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    let (mut pi, mut vi, mut star, mut mark) = (0, 0, None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The request context: key (lower case) -> its values.
pub type Context = std::collections::BTreeMap<String, Vec<String>>;

/// Whether a statement's `Condition` block holds for `context`.
pub fn conditions_hold(conditions: &Value, context: &Context) -> bool {
    let Some(operators) = conditions.as_object() else {
        return false;
    };
    operators.iter().all(|(operator, keys)| {
        let (operator, if_exists) = match operator.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (operator.as_str(), false),
        };
        let Some(keys) = keys.as_object() else {
            return false;
        };
        keys.iter().all(|(key, wanted)| {
            let wanted = strings(wanted);
            let Some(actual) = context.get(&key.to_ascii_lowercase()) else {
                return if_exists;
            };
            let any = |f: &dyn Fn(&str, &str) -> bool| {
                actual.iter().any(|a| wanted.iter().any(|w| f(w, a)))
            };
            match operator {
                "StringEquals" | "ArnEquals" => any(&|w, a| w == a),
                "StringEqualsIgnoreCase" => any(&|w, a| w.eq_ignore_ascii_case(a)),
                "StringNotEquals" | "ArnNotEquals" => !any(&|w, a| w == a),
                "StringLike" | "ArnLike" => any(&|w, a| glob(w, a)),
                "StringNotLike" | "ArnNotLike" => !any(&|w, a| glob(w, a)),
                "Bool" => any(&|w, a| w.eq_ignore_ascii_case(a)),
                _ => false,
            }
        })
    })
}

/// The `ContextEntries` of a request.
pub fn context_entries(form: &Form) -> Context {
    let mut out = Context::new();
    for n in 1.. {
        let Some(name) = form.first(&format!("ContextEntries.member.{n}.ContextKeyName")) else {
            break;
        };
        out.insert(
            name.to_ascii_lowercase(),
            form.members(&format!("ContextEntries.member.{n}.ContextKeyValues")),
        );
    }
    out
}

fn statement_matches(statement: &Value, action: &str, resource: &str, context: &Context) -> bool {
    if let Some(conditions) = statement.get("Condition")
        && !conditions_hold(conditions, context)
    {
        return false;
    }
    let action_hit = |list: &Value| {
        strings(list)
            .iter()
            .any(|p| glob(&p.to_ascii_lowercase(), &action.to_ascii_lowercase()))
    };
    let actions = match (statement.get("Action"), statement.get("NotAction")) {
        (Some(list), _) => action_hit(list),
        (None, Some(list)) => !action_hit(list),
        _ => false,
    };
    let resource_hit =
        |list: &Value| resource == "*" || strings(list).iter().any(|p| glob(p, resource));
    let resources = match (statement.get("Resource"), statement.get("NotResource")) {
        (Some(list), _) => resource_hit(list),
        (None, Some(list)) => resource == "*" || !strings(list).iter().any(|p| glob(p, resource)),
        _ => false,
    };
    actions && resources
}

/// IAM's decision for `action` on `resource` under `policies` (policy documents), with the
/// request's `context`.
pub fn decide(policies: &[Value], action: &str, resource: &str, context: &Context) -> &'static str {
    let statements: Vec<&Value> = policies
        .iter()
        .flat_map(|p| match &p["Statement"] {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            single @ Value::Object(_) => vec![single],
            _ => Vec::new(),
        })
        .filter(|s| statement_matches(s, action, resource, context))
        .collect();
    if statements.iter().any(|s| s["Effect"] == "Deny") {
        "explicitDeny"
    } else if statements.iter().any(|s| s["Effect"] == "Allow") {
        "allowed"
    } else {
        "implicitDeny"
    }
}

/// A policy document as IAM returns it (URL-encoded JSON) or plain JSON.
fn document(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok().or_else(|| {
        serde_json::from_str(&percent_encoding::percent_decode_str(text).decode_utf8_lossy()).ok()
    })
}

/// An IAM client straight to moto (the front door's own reads; never refused as dark).
fn moto_iam(moto: SocketAddr) -> aws_sdk_iam::Client {
    let config = aws_sdk_iam::Config::builder()
        .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
        .region(aws_sdk_iam::config::Region::new("us-east-1"))
        .endpoint_url(format!("http://{moto}"))
        .credentials_provider(aws_sdk_iam::config::Credentials::new(
            "hapilot-local",
            "hapilot-local",
            None,
            None,
            "local",
        ))
        .build();
    aws_sdk_iam::Client::from_conf(config)
}

/// Who signed with `access_key` and whether their policies let them `action` `resource`, as
/// IAM authentication and authorization would say it: `Ok((arn, decision))` for a key of an IAM
/// user moto knows (its inline and attached policies decide), `Err` for a key nobody owns (AWS
/// refuses the signature). Only users' long-term keys are known locally.
pub async fn authorize_access_key(
    moto: SocketAddr,
    access_key: &str,
    action: &str,
    resource: &str,
    context: &Context,
) -> Result<(String, &'static str), String> {
    let iam = moto_iam(moto);
    let error = |e: &dyn std::error::Error| hapilot_adapters::error_chain(e);
    let used = iam
        .get_access_key_last_used()
        .access_key_id(access_key)
        .send()
        .await
        .map_err(|e| format!("access key {access_key} is not known: {}", error(&e)))?;
    let user = used
        .user_name()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| format!("access key {access_key} belongs to no user"))?
        .to_string();
    let got = iam
        .get_user()
        .user_name(&user)
        .send()
        .await
        .map_err(|e| error(&e))?;
    let arn = got
        .user()
        .map(|u| u.arn().to_string())
        .unwrap_or_else(|| format!("arn:aws:iam::123456789012:user/{user}"));
    let mut policies = Vec::new();
    let inline = iam
        .list_user_policies()
        .user_name(&user)
        .send()
        .await
        .map_err(|e| error(&e))?;
    for policy in inline.policy_names() {
        let got = iam
            .get_user_policy()
            .user_name(&user)
            .policy_name(policy)
            .send()
            .await
            .map_err(|e| error(&e))?;
        policies.extend(document(got.policy_document()));
    }
    let attached = iam
        .list_attached_user_policies()
        .user_name(&user)
        .send()
        .await
        .map_err(|e| error(&e))?;
    for policy in attached.attached_policies() {
        if let Some(arn) = policy.policy_arn() {
            policies.extend(managed_policy(&iam, arn).await?);
        }
    }
    Ok((arn, decide(&policies, action, resource, context)))
}

/// A managed policy's default version, as documents.
async fn managed_policy(iam: &aws_sdk_iam::Client, arn: &str) -> Result<Vec<Value>, String> {
    let error = |e: &dyn std::error::Error| hapilot_adapters::error_chain(e);
    let got = iam
        .get_policy()
        .policy_arn(arn)
        .send()
        .await
        .map_err(|e| error(&e))?;
    let Some(version) = got.policy().and_then(|p| p.default_version_id()) else {
        return Ok(Vec::new());
    };
    let got = iam
        .get_policy_version()
        .policy_arn(arn)
        .version_id(version)
        .send()
        .await
        .map_err(|e| error(&e))?;
    Ok(got
        .policy_version()
        .and_then(|v| v.document())
        .and_then(document)
        .into_iter()
        .collect())
}

/// Every identity policy of the role `name` (inline and attached), read from moto.
async fn role_policies(iam: &aws_sdk_iam::Client, name: &str) -> Result<Vec<Value>, String> {
    let error = |e: &dyn std::error::Error| hapilot_adapters::error_chain(e);
    let mut out = Vec::new();
    let inline = iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| error(&e))?;
    for policy in inline.policy_names() {
        let got = iam
            .get_role_policy()
            .role_name(name)
            .policy_name(policy)
            .send()
            .await
            .map_err(|e| error(&e))?;
        out.extend(document(got.policy_document()));
    }
    let attached = iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| error(&e))?;
    for policy in attached.attached_policies() {
        if let Some(arn) = policy.policy_arn() {
            out.extend(managed_policy(iam, arn).await?);
        }
    }
    Ok(out)
}

/// Text escaped for an XML element or attribute (the AWS query-protocol answers played here).
pub(crate) fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn error_xml(status: StatusCode, code: &str, message: &str) -> (StatusCode, String) {
    (
        status,
        format!(
            "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
            xml_escape(message),
            uuid::Uuid::new_v4()
        ),
    )
}

/// Answers `SimulatePrincipalPolicy` for a role, reading its policies from moto at `moto`.
pub async fn simulate_principal_policy(moto: SocketAddr, form: &Form) -> (StatusCode, String) {
    let Some(source) = form.first("PolicySourceArn") else {
        return error_xml(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            "1 validation error detected: Value null at 'policySourceArn' failed to satisfy constraint: Member must not be null",
        );
    };
    let Some(role) = source
        .split(":role/")
        .nth(1)
        .and_then(|path| path.rsplit('/').next())
    else {
        return error_xml(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            &format!("this local simulator takes role ARNs only, not {source}"),
        );
    };
    let actions = form.members("ActionNames");
    let context = context_entries(form);
    let mut resources = form.members("ResourceArns");
    if resources.is_empty() {
        resources.push("*".into());
    }
    let iam = moto_iam(moto);
    let policies = match role_policies(&iam, role).await {
        Ok(p) => p,
        Err(e) if e.contains("NoSuchEntity") || e.contains("cannot be found") => {
            return error_xml(
                StatusCode::NOT_FOUND,
                "NoSuchEntity",
                &format!("The role with name {role} cannot be found."),
            );
        }
        Err(e) => {
            return error_xml(StatusCode::INTERNAL_SERVER_ERROR, "ServiceFailure", &e);
        }
    };
    let mut members = String::new();
    for action in &actions {
        for resource in &resources {
            members.push_str(&format!(
                "<member><EvalActionName>{}</EvalActionName><EvalResourceName>{}</EvalResourceName><EvalDecision>{}</EvalDecision><MatchedStatements/><MissingContextValues/></member>",
                xml_escape(action),
                xml_escape(resource),
                decide(&policies, action, resource, &context)
            ));
        }
    }
    (
        StatusCode::OK,
        format!(
            "<SimulatePrincipalPolicyResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated><EvaluationResults>{members}</EvaluationResults></SimulatePrincipalPolicyResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></SimulatePrincipalPolicyResponse>",
            uuid::Uuid::new_v4()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deny_beats_allow_beats_nothing() {
        let allow = json!({"Statement": [{"Effect": "Allow", "Action": ["s3:PutObject", "sns:*"], "Resource": "*"}]});
        let deny =
            json!({"Statement": {"Effect": "Deny", "Action": "sns:Publish", "Resource": "*"}});
        assert_eq!(
            decide(
                std::slice::from_ref(&allow),
                "s3:PutObject",
                "*",
                &Context::new()
            ),
            "allowed"
        );
        assert_eq!(
            decide(
                std::slice::from_ref(&allow),
                "SNS:publish",
                "*",
                &Context::new()
            ),
            "allowed"
        );
        assert_eq!(
            decide(
                std::slice::from_ref(&allow),
                "s3:GetObject",
                "*",
                &Context::new()
            ),
            "implicitDeny"
        );
        assert_eq!(
            decide(&[allow, deny], "sns:Publish", "*", &Context::new()),
            "explicitDeny"
        );
        assert_eq!(
            decide(&[], "s3:PutObject", "*", &Context::new()),
            "implicitDeny"
        );
    }

    #[test]
    fn resources_not_lists_and_conditions_follow_the_rules() {
        let bucket = json!({"Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::audit/runs/*"}]});
        assert_eq!(
            decide(
                std::slice::from_ref(&bucket),
                "s3:PutObject",
                "arn:aws:s3:::audit/runs/x",
                &Context::new()
            ),
            "allowed"
        );
        assert_eq!(
            decide(
                std::slice::from_ref(&bucket),
                "s3:PutObject",
                "arn:aws:s3:::other/x",
                &Context::new()
            ),
            "implicitDeny"
        );
        assert_eq!(
            decide(&[bucket], "s3:PutObject", "*", &Context::new()),
            "allowed",
            "* simulates every resource"
        );
        let not_action =
            json!({"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]});
        assert_eq!(
            decide(
                std::slice::from_ref(&not_action),
                "s3:GetObject",
                "*",
                &Context::new()
            ),
            "allowed"
        );
        assert_eq!(
            decide(&[not_action], "iam:PassRole", "*", &Context::new()),
            "implicitDeny"
        );
        let conditional = json!({"Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*",
            "Condition": {"StringLike": {"s3:prefix": ["reports/*"]}}}]});
        assert_eq!(
            decide(
                std::slice::from_ref(&conditional),
                "s3:ListBucket",
                "*",
                &Context::new()
            ),
            "implicitDeny",
            "a key the simulation lacks fails the condition"
        );
        let reports = Context::from([("s3:prefix".to_string(), vec!["reports/2026".to_string()])]);
        assert_eq!(
            decide(
                std::slice::from_ref(&conditional),
                "s3:ListBucket",
                "*",
                &reports
            ),
            "allowed"
        );
        let runs = Context::from([("s3:prefix".to_string(), vec!["runs/x".to_string()])]);
        assert_eq!(
            decide(&[conditional], "s3:ListBucket", "*", &runs),
            "implicitDeny"
        );
    }

    #[test]
    fn the_templates_namespace_condition_and_its_operators() {
        // infra/template.yaml: shift-traffic may PutMetricData only into hapilot/Traffic.
        let policy = json!({"Statement": [{"Effect": "Allow", "Action": "cloudwatch:PutMetricData",
            "Resource": "*", "Condition": {"StringEquals": {"cloudwatch:namespace": "hapilot/Traffic"}}}]});
        let ns =
            |v: &str| Context::from([("cloudwatch:namespace".to_string(), vec![v.to_string()])]);
        let decide_in = |c: &Context| {
            decide(
                std::slice::from_ref(&policy),
                "cloudwatch:PutMetricData",
                "*",
                c,
            )
        };
        assert_eq!(decide_in(&ns("hapilot/Traffic")), "allowed");
        assert_eq!(decide_in(&ns("hapilot/Other")), "implicitDeny");
        assert_eq!(decide_in(&Context::new()), "implicitDeny");
        let cond = |c: Value, ctx: &Context| conditions_hold(&c, ctx);
        let tls = Context::from([("aws:securetransport".to_string(), vec!["false".to_string()])]);
        assert!(cond(
            json!({"Bool": {"aws:SecureTransport": "false"}}),
            &tls
        ));
        assert!(!cond(
            json!({"StringNotEquals": {"aws:SecureTransport": "false"}}),
            &tls
        ));
        assert!(cond(
            json!({"StringEqualsIfExists": {"aws:PrincipalArn": "x"}}),
            &tls
        ));
        assert!(
            !cond(
                json!({"NumericLessThan": {"aws:SecureTransport": "1"}}),
                &tls
            ),
            "unknown operators never allow"
        );
        let form = form(b"ContextEntries.member.1.ContextKeyName=cloudwatch%3Anamespace&ContextEntries.member.1.ContextKeyValues.member.1=hapilot%2FTraffic&ContextEntries.member.1.ContextKeyType=string");
        assert_eq!(context_entries(&form), ns("hapilot/Traffic"));
    }

    #[test]
    fn globs_and_forms() {
        assert!(glob("cloudwatch:Describe*", "cloudwatch:DescribeAlarms"));
        assert!(glob("s?:Get*", "s3:GetObject"));
        assert!(!glob("s3:Get*", "s3:PutObject"));
        let f = form(b"Action=SimulatePrincipalPolicy&ActionNames.member.2=b&ActionNames.member.1=a%3Ax&PolicySourceArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr");
        assert_eq!(f.first("Action"), Some("SimulatePrincipalPolicy"));
        assert_eq!(f.members("ActionNames"), ["a:x", "b"]);
        assert_eq!(f.first("PolicySourceArn"), Some("arn:aws:iam::1:role/r"));
    }
}
