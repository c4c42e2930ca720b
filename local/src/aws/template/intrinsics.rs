//! CloudFormation's intrinsic functions and conditions, as the CloudFormation User Guide's
//! "Intrinsic function reference" defines them, over a translated (plain CloudFormation, JSON)
//! template: `Ref` (parameters, pseudo parameters, resources), `Fn::Sub` (both forms, `${!Literal}`
//! escapes), `Fn::GetAtt`, `Fn::If` with `AWS::NoValue`, `Fn::Select`, `Fn::Join`, `Fn::Split`,
//! `Fn::FindInMap`, `Fn::Base64`, `Fn::GetAZs`, and the condition functions `Fn::Equals`,
//! `Fn::And`, `Fn::Or`, `Fn::Not`, `Condition`. Pure: what a resource resolves to is asked of
//! [`Scope`]; nothing here calls AWS.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// What the template's values resolve against.
pub struct Scope<'a> {
    /// Parameter name -> its value (a string; a list for `CommaDelimitedList` / `List<...>`).
    pub parameters: &'a BTreeMap<String, Value>,
    /// `AWS::Region`, `AWS::AccountId`, `AWS::StackName`, `AWS::Partition`, `AWS::URLSuffix`,
    /// `AWS::StackId`.
    pub pseudo: &'a BTreeMap<String, String>,
    /// Evaluated conditions (empty while the conditions themselves are evaluated).
    pub conditions: &'a BTreeMap<String, bool>,
    /// The template's `Mappings`.
    pub mappings: &'a Value,
    /// Resource logical id -> its `Ref` value, once created.
    pub refs: &'a BTreeMap<String, Value>,
    /// (logical id, attribute) -> value, once created.
    pub attributes: &'a BTreeMap<(String, String), Value>,
}

/// Why a value could not be resolved; names the function and the path in the template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IntrinsicError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, IntrinsicError> {
    Err(IntrinsicError(message.into()))
}

/// Resolves every intrinsic function in `value`. `None` is `AWS::NoValue`: the property (or
/// list item) is removed, as CloudFormation does.
pub fn resolve(value: &Value, scope: &Scope) -> Result<Option<Value>, IntrinsicError> {
    match value {
        Value::Object(map) if map.len() == 1 => {
            let (key, arg) = map.iter().next().expect("one entry");
            match key.as_str() {
                "Ref" => reference(arg, scope),
                "Fn::Sub" => substitute(arg, scope).map(|s| Some(Value::String(s))),
                "Fn::GetAtt" => attribute(arg, scope).map(Some),
                "Fn::If" => choose(arg, scope),
                "Fn::Select" => select(arg, scope).map(Some),
                "Fn::Join" => join(arg, scope).map(|s| Some(Value::String(s))),
                "Fn::Split" => split(arg, scope).map(Some),
                "Fn::FindInMap" => find_in_map(arg, scope).map(Some),
                "Fn::Base64" => {
                    let text = resolve_string(arg, scope, "Fn::Base64")?;
                    use base64::Engine as _;
                    Ok(Some(Value::String(
                        base64::engine::general_purpose::STANDARD.encode(text),
                    )))
                }
                "Fn::GetAZs" => {
                    let region = match resolve_string(arg, scope, "Fn::GetAZs")? {
                        r if r.is_empty() => {
                            scope.pseudo.get("AWS::Region").cloned().unwrap_or_default()
                        }
                        r => r,
                    };
                    Ok(Some(Value::Array(
                        ["a", "b", "c"]
                            .iter()
                            .map(|z| Value::String(format!("{region}{z}")))
                            .collect(),
                    )))
                }
                "Fn::Equals" | "Fn::And" | "Fn::Or" | "Fn::Not" | "Condition" => {
                    condition(value, scope).map(|b| Some(Value::Bool(b)))
                }
                _ => resolve_members(map, scope),
            }
        }
        Value::Object(map) => resolve_members(map, scope),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let Some(v) = resolve(item, scope)? {
                    out.push(v);
                }
            }
            Ok(Some(Value::Array(out)))
        }
        other => Ok(Some(other.clone())),
    }
}

fn resolve_members(
    map: &serde_json::Map<String, Value>,
    scope: &Scope,
) -> Result<Option<Value>, IntrinsicError> {
    let mut out = serde_json::Map::new();
    for (k, v) in map {
        if let Some(v) = resolve(v, scope)? {
            out.insert(k.clone(), v);
        }
    }
    Ok(Some(Value::Object(out)))
}

/// Resolves `value` to a string (numbers and booleans as CloudFormation stringifies them).
pub fn resolve_string(value: &Value, scope: &Scope, what: &str) -> Result<String, IntrinsicError> {
    match resolve(value, scope)? {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::Bool(b)) => Ok(b.to_string()),
        Some(other) => fail(format!("{what}: expected a string, got {other}")),
        None => fail(format!("{what}: AWS::NoValue where a string is needed")),
    }
}

fn reference(arg: &Value, scope: &Scope) -> Result<Option<Value>, IntrinsicError> {
    let Some(name) = arg.as_str() else {
        return fail(format!("Ref: expected a name, got {arg}"));
    };
    if name == "AWS::NoValue" {
        return Ok(None);
    }
    if name == "AWS::NotificationARNs" {
        return Ok(Some(Value::Array(Vec::new())));
    }
    if let Some(v) = scope.pseudo.get(name) {
        return Ok(Some(Value::String(v.clone())));
    }
    if let Some(v) = scope.parameters.get(name) {
        return Ok(Some(v.clone()));
    }
    if let Some(v) = scope.refs.get(name) {
        return Ok(Some(v.clone()));
    }
    fail(format!(
        "Ref: {name} is neither a parameter, a pseudo parameter nor a resource created so far"
    ))
}

fn attribute(arg: &Value, scope: &Scope) -> Result<Value, IntrinsicError> {
    let (resource, name) = match arg {
        Value::Array(parts) if parts.len() == 2 => (
            resolve_string(&parts[0], scope, "Fn::GetAtt")?,
            resolve_string(&parts[1], scope, "Fn::GetAtt")?,
        ),
        Value::String(dotted) => match dotted.split_once('.') {
            Some((r, a)) => (r.to_string(), a.to_string()),
            None => return fail(format!("Fn::GetAtt: {dotted:?} is not Resource.Attribute")),
        },
        other => {
            return fail(format!(
                "Fn::GetAtt: expected [resource, attribute], got {other}"
            ));
        }
    };
    scope
        .attributes
        .get(&(resource.clone(), name.clone()))
        .cloned()
        .ok_or_else(|| IntrinsicError(format!("Fn::GetAtt: {resource}.{name} is not known")))
}

fn choose(arg: &Value, scope: &Scope) -> Result<Option<Value>, IntrinsicError> {
    let Some([name, yes, no]) = arg.as_array().map(Vec::as_slice) else {
        return fail(format!(
            "Fn::If: expected [condition, then, else], got {arg}"
        ));
    };
    let Some(name) = name.as_str() else {
        return fail("Fn::If: the condition must be a name");
    };
    let Some(holds) = scope.conditions.get(name) else {
        return fail(format!("Fn::If: no condition named {name}"));
    };
    resolve(if *holds { yes } else { no }, scope)
}

fn select(arg: &Value, scope: &Scope) -> Result<Value, IntrinsicError> {
    let Some([index, list]) = arg.as_array().map(Vec::as_slice) else {
        return fail(format!("Fn::Select: expected [index, list], got {arg}"));
    };
    let index: usize = resolve_string(index, scope, "Fn::Select")?
        .parse()
        .map_err(|_| IntrinsicError("Fn::Select: the index is not a number".into()))?;
    match resolve(list, scope)? {
        Some(Value::Array(items)) => items.get(index).cloned().ok_or_else(|| {
            IntrinsicError(format!(
                "Fn::Select: index {index} is out of range of {} items",
                items.len()
            ))
        }),
        other => fail(format!("Fn::Select: expected a list, got {other:?}")),
    }
}

fn join(arg: &Value, scope: &Scope) -> Result<String, IntrinsicError> {
    let Some([delimiter, list]) = arg.as_array().map(Vec::as_slice) else {
        return fail(format!("Fn::Join: expected [delimiter, list], got {arg}"));
    };
    let Some(delimiter) = delimiter.as_str() else {
        return fail("Fn::Join: the delimiter must be a string");
    };
    let items = match resolve(list, scope)? {
        Some(Value::Array(items)) => items,
        other => return fail(format!("Fn::Join: expected a list, got {other:?}")),
    };
    let mut parts = Vec::with_capacity(items.len());
    for item in &items {
        parts.push(resolve_string(item, scope, "Fn::Join")?);
    }
    Ok(parts.join(delimiter))
}

fn split(arg: &Value, scope: &Scope) -> Result<Value, IntrinsicError> {
    let Some([delimiter, text]) = arg.as_array().map(Vec::as_slice) else {
        return fail(format!(
            "Fn::Split: expected [delimiter, string], got {arg}"
        ));
    };
    let Some(delimiter) = delimiter.as_str() else {
        return fail("Fn::Split: the delimiter must be a string");
    };
    let text = resolve_string(text, scope, "Fn::Split")?;
    Ok(Value::Array(
        text.split(delimiter)
            .map(|s| Value::String(s.to_string()))
            .collect(),
    ))
}

fn find_in_map(arg: &Value, scope: &Scope) -> Result<Value, IntrinsicError> {
    let Some([map, top, second]) = arg.as_array().map(Vec::as_slice) else {
        return fail(format!(
            "Fn::FindInMap: expected [map, key, key], got {arg}"
        ));
    };
    let map = resolve_string(map, scope, "Fn::FindInMap")?;
    let top = resolve_string(top, scope, "Fn::FindInMap")?;
    let second = resolve_string(second, scope, "Fn::FindInMap")?;
    scope
        .mappings
        .get(&map)
        .and_then(|m| m.get(&top))
        .and_then(|m| m.get(&second))
        .cloned()
        .ok_or_else(|| IntrinsicError(format!("Fn::FindInMap: {map}.{top}.{second} is not mapped")))
}

/// `Fn::Sub`: `${Name}` is a parameter, pseudo parameter, resource (`Ref`) or `Resource.Attr`
/// (`GetAtt`); the list form's variables come first; `${!Literal}` stays `${Literal}`.
fn substitute(arg: &Value, scope: &Scope) -> Result<String, IntrinsicError> {
    let (text, variables) = match arg {
        Value::String(t) => (t.clone(), BTreeMap::new()),
        Value::Array(parts) if parts.len() == 2 => {
            let Some(t) = parts[0].as_str() else {
                return fail("Fn::Sub: the first item must be the string");
            };
            let mut vars = BTreeMap::new();
            if let Some(map) = parts[1].as_object() {
                for (k, v) in map {
                    vars.insert(k.clone(), resolve_string(v, scope, "Fn::Sub")?);
                }
            }
            (t.to_string(), vars)
        }
        other => {
            return fail(format!(
                "Fn::Sub: expected a string or [string, vars], got {other}"
            ));
        }
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        if let Some(literal) = name.strip_prefix('!') {
            out.push_str("${");
            out.push_str(literal);
            out.push('}');
        } else if let Some(v) = variables.get(name) {
            out.push_str(v);
        } else if name.contains('.') && !name.starts_with("AWS::") {
            let (r, a) = name.split_once('.').expect("contains a dot");
            let v = attribute(&Value::Array(vec![r.into(), a.into()]), scope)?;
            out.push_str(&scalar(&v, "Fn::Sub")?);
        } else {
            let v = reference(&Value::String(name.to_string()), scope)?
                .ok_or_else(|| IntrinsicError(format!("Fn::Sub: ${{{name}}} is AWS::NoValue")))?;
            out.push_str(&scalar(&v, "Fn::Sub")?);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn scalar(v: &Value, what: &str) -> Result<String, IntrinsicError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => fail(format!("{what}: {other} is not a scalar")),
    }
}

/// Evaluates a condition expression (`Fn::Equals`, `Fn::And`, `Fn::Or`, `Fn::Not`,
/// `Condition`).
pub fn condition(value: &Value, scope: &Scope) -> Result<bool, IntrinsicError> {
    let Some((key, arg)) = value
        .as_object()
        .filter(|m| m.len() == 1)
        .and_then(|m| m.iter().next())
    else {
        return fail(format!(
            "a condition must be one condition function, got {value}"
        ));
    };
    let items = || {
        arg.as_array()
            .ok_or_else(|| IntrinsicError(format!("{key}: expected a list, got {arg}")))
    };
    match key.as_str() {
        "Fn::Equals" => {
            let Some([a, b]) = arg.as_array().map(Vec::as_slice) else {
                return fail(format!("Fn::Equals: expected two values, got {arg}"));
            };
            let a = resolve(a, scope)?.map(|v| scalar(&v, "Fn::Equals").unwrap_or(v.to_string()));
            let b = resolve(b, scope)?.map(|v| scalar(&v, "Fn::Equals").unwrap_or(v.to_string()));
            Ok(a == b)
        }
        "Fn::And" => {
            let list = items()?;
            if !(2..=10).contains(&list.len()) {
                return fail("Fn::And takes 2 to 10 conditions");
            }
            for c in list {
                if !condition(c, scope)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        "Fn::Or" => {
            let list = items()?;
            if !(2..=10).contains(&list.len()) {
                return fail("Fn::Or takes 2 to 10 conditions");
            }
            for c in list {
                if condition(c, scope)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        "Fn::Not" => match arg.as_array().map(Vec::as_slice) {
            Some([c]) => Ok(!condition(c, scope)?),
            _ => fail("Fn::Not takes exactly one condition"),
        },
        "Condition" => {
            let name = arg.as_str().unwrap_or_default();
            scope
                .conditions
                .get(name)
                .copied()
                .ok_or_else(|| IntrinsicError(format!("Condition: {name} is not evaluated yet")))
        }
        other => fail(format!("{other} is not a condition function")),
    }
}

/// Evaluates every condition of the template, in the order they refer to each other.
pub fn evaluate_conditions(
    conditions: &serde_json::Map<String, Value>,
    scope: &Scope,
) -> Result<BTreeMap<String, bool>, IntrinsicError> {
    let mut done: BTreeMap<String, bool> = BTreeMap::new();
    while done.len() < conditions.len() {
        let before = done.len();
        for (name, expr) in conditions {
            if done.contains_key(name) {
                continue;
            }
            let pending: BTreeSet<String> = condition_names(expr)
                .into_iter()
                .filter(|n| !done.contains_key(n))
                .collect();
            if !pending.is_empty() {
                continue;
            }
            let inner = Scope {
                conditions: &done,
                ..*scope
            };
            let value = condition(expr, &inner)
                .map_err(|e| IntrinsicError(format!("condition {name}: {}", e.0)))?;
            done.insert(name.clone(), value);
        }
        if done.len() == before {
            let stuck: Vec<&String> = conditions
                .keys()
                .filter(|n| !done.contains_key(*n))
                .collect();
            return fail(format!(
                "conditions refer to each other in a circle or to nothing: {stuck:?}"
            ));
        }
    }
    Ok(done)
}

fn condition_names(expr: &Value) -> Vec<String> {
    match expr {
        Value::Object(m) => m
            .iter()
            .flat_map(|(k, v)| {
                if k == "Condition" {
                    v.as_str().map(|s| vec![s.to_string()]).unwrap_or_default()
                } else {
                    condition_names(v)
                }
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(condition_names).collect(),
        _ => Vec::new(),
    }
}

/// Every resource `value` refers to (`Ref`, `Fn::GetAtt`, `${Name}` / `${Name.Attr}` in
/// `Fn::Sub`), among `resources`: what must be created first.
pub fn references(value: &Value, resources: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    collect_references(value, resources, &mut out);
    out
}

fn collect_references(value: &Value, resources: &BTreeSet<String>, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(m) if m.len() == 1 => {
            let (k, v) = m.iter().next().expect("one entry");
            match (k.as_str(), v) {
                ("Ref", Value::String(name)) if resources.contains(name) => {
                    out.insert(name.clone());
                }
                ("Fn::GetAtt", Value::Array(parts)) => {
                    if let Some(name) = parts.first().and_then(Value::as_str)
                        && resources.contains(name)
                    {
                        out.insert(name.to_string());
                    }
                }
                ("Fn::GetAtt", Value::String(dotted)) => {
                    if let Some((name, _)) = dotted.split_once('.')
                        && resources.contains(name)
                    {
                        out.insert(name.to_string());
                    }
                }
                ("Fn::Sub", sub) => {
                    let text = match sub {
                        Value::String(t) => t.as_str(),
                        Value::Array(parts) => {
                            if let Some(vars) = parts.get(1) {
                                collect_references(vars, resources, out);
                            }
                            parts.first().and_then(Value::as_str).unwrap_or_default()
                        }
                        _ => "",
                    };
                    let mut rest = text;
                    while let Some(start) = rest.find("${") {
                        let after = &rest[start + 2..];
                        let Some(end) = after.find('}') else { break };
                        let name = after[..end].split('.').next().unwrap_or_default();
                        if resources.contains(name) {
                            out.insert(name.to_string());
                        }
                        rest = &after[end + 1..];
                    }
                }
                _ => collect_references(v, resources, out),
            }
        }
        Value::Object(m) => m
            .values()
            .for_each(|v| collect_references(v, resources, out)),
        Value::Array(items) => items
            .iter()
            .for_each(|v| collect_references(v, resources, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fixture {
        parameters: BTreeMap<String, Value>,
        pseudo: BTreeMap<String, String>,
        conditions: BTreeMap<String, bool>,
        mappings: Value,
        refs: BTreeMap<String, Value>,
        attributes: BTreeMap<(String, String), Value>,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                parameters: BTreeMap::from([
                    ("Tier".into(), json!("Critical")),
                    ("PeerRegion".into(), json!("us-east-1")),
                    ("Subnets".into(), json!(["subnet-a", "subnet-b"])),
                    ("Empty".into(), json!([""])),
                ]),
                pseudo: BTreeMap::from([
                    ("AWS::Region".into(), "us-west-2".into()),
                    ("AWS::AccountId".into(), "123456789012".into()),
                    ("AWS::StackName".into(), "hapilot".into()),
                    ("AWS::Partition".into(), "aws".into()),
                ]),
                conditions: BTreeMap::from([("IsStandby".into(), true)]),
                mappings: json!({"TierTargets": {"Critical": {"RpoSeconds": 300}}}),
                refs: BTreeMap::from([("Topic".into(), json!("arn:aws:sns:us-west-2:1:t"))]),
                attributes: BTreeMap::from([(
                    ("Fn".into(), "Arn".into()),
                    json!("arn:aws:lambda:us-west-2:1:function:f"),
                )]),
            }
        }

        fn scope(&self) -> Scope<'_> {
            Scope {
                parameters: &self.parameters,
                pseudo: &self.pseudo,
                conditions: &self.conditions,
                mappings: &self.mappings,
                refs: &self.refs,
                attributes: &self.attributes,
            }
        }
    }

    fn eval(v: Value) -> Result<Option<Value>, IntrinsicError> {
        let f = Fixture::new();
        resolve(&v, &f.scope())
    }

    #[test]
    fn refs_subs_and_getatts_resolve() {
        assert_eq!(
            eval(json!({"Ref": "Tier"})).unwrap(),
            Some(json!("Critical"))
        );
        assert_eq!(
            eval(json!({"Ref": "Topic"})).unwrap(),
            Some(json!("arn:aws:sns:us-west-2:1:t"))
        );
        assert_eq!(
            eval(json!({"Fn::Sub": "${AWS::StackName}-watch-${PeerRegion} ${Fn.Arn} ${!Literal}"}))
                .unwrap(),
            Some(json!(
                "hapilot-watch-us-east-1 arn:aws:lambda:us-west-2:1:function:f ${Literal}"
            ))
        );
        assert_eq!(
            eval(json!({"Fn::Sub": ["${X}-${AWS::Region}", {"X": {"Ref": "Tier"}}]})).unwrap(),
            Some(json!("Critical-us-west-2"))
        );
        assert_eq!(
            eval(json!({"Fn::GetAtt": ["Fn", "Arn"]})).unwrap(),
            Some(json!("arn:aws:lambda:us-west-2:1:function:f"))
        );
        assert_eq!(
            eval(json!({"Fn::GetAtt": "Fn.Arn"})).unwrap(),
            Some(json!("arn:aws:lambda:us-west-2:1:function:f"))
        );
        assert!(
            eval(json!({"Ref": "Nothing"}))
                .unwrap_err()
                .0
                .contains("Nothing")
        );
        assert!(eval(json!({"Fn::GetAtt": ["Fn", "Nope"]})).is_err());
    }

    #[test]
    fn if_novalue_select_join_split_and_maps() {
        assert_eq!(
            eval(json!({"Fn::If": ["IsStandby", "a", "b"]})).unwrap(),
            Some(json!("a"))
        );
        assert_eq!(
            eval(json!({"A": {"Fn::If": ["IsStandby", {"Ref": "AWS::NoValue"}, 1]}, "B": 2}))
                .unwrap(),
            Some(json!({"B": 2})),
            "AWS::NoValue removes the property"
        );
        assert_eq!(
            eval(json!([1, {"Ref": "AWS::NoValue"}, 3])).unwrap(),
            Some(json!([1, 3]))
        );
        assert_eq!(
            eval(json!({"Fn::Select": [1, {"Ref": "Subnets"}]})).unwrap(),
            Some(json!("subnet-b"))
        );
        assert!(eval(json!({"Fn::Select": [5, {"Ref": "Subnets"}]})).is_err());
        assert_eq!(
            eval(json!({"Fn::Join": [",", {"Ref": "Subnets"}]})).unwrap(),
            Some(json!("subnet-a,subnet-b"))
        );
        assert_eq!(
            eval(json!({"Fn::Join": ["", {"Ref": "Empty"}]})).unwrap(),
            Some(json!(""))
        );
        assert_eq!(
            eval(json!({"Fn::Split": ["-", "a-b"]})).unwrap(),
            Some(json!(["a", "b"]))
        );
        assert_eq!(
            eval(json!({"Fn::FindInMap": ["TierTargets", {"Ref": "Tier"}, "RpoSeconds"]})).unwrap(),
            Some(json!(300))
        );
    }

    #[test]
    fn conditions_evaluate_in_dependency_order() {
        let f = Fixture::new();
        let conditions = json!({
            "ForwardAlarms": {"Fn::And": [{"Condition": "InUsWest2"}, {"Fn::Not": [{"Condition": "PeerIsHere"}]}]},
            "InUsWest2": {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-west-2"]},
            "PeerIsHere": {"Fn::Equals": [{"Ref": "PeerRegion"}, "us-west-2"]},
            "HasVpc": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "Empty"}]}, ""]}]},
            "Either": {"Fn::Or": [{"Condition": "HasVpc"}, {"Condition": "InUsWest2"}]}
        });
        let done = evaluate_conditions(conditions.as_object().unwrap(), &f.scope()).unwrap();
        let holds: Vec<(&str, bool)> = done.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            holds,
            vec![
                ("Either", true),
                ("ForwardAlarms", true),
                ("HasVpc", false),
                ("InUsWest2", true),
                ("PeerIsHere", false)
            ]
        );
        let circle = json!({"A": {"Condition": "B"}, "B": {"Condition": "A"}});
        assert!(evaluate_conditions(circle.as_object().unwrap(), &f.scope()).is_err());
    }

    #[test]
    fn references_find_what_must_exist_first() {
        let resources: BTreeSet<String> = ["Topic", "Fn", "Role"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let value = json!({
            "A": {"Ref": "Topic"}, "B": {"Fn::Sub": "${Fn.Arn}/${AWS::Region}/${Tier}"},
            "C": {"Fn::GetAtt": "Role.Arn"}, "D": {"Ref": "Tier"}
        });
        let found: Vec<String> = references(&value, &resources).into_iter().collect();
        assert_eq!(found, vec!["Fn", "Role", "Topic"]);
    }
}
