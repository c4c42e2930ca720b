//! A run's input checked against its state machine's JSON schema (`statemachines/schemas/
//! <machine>.input.json`, built into the CLI) before anything is asked of AWS: a typo or a
//! missing region is said at once, with the field's path, instead of by a failed run.
//!
//! Only the JSON Schema keywords our schemas use are understood; a schema using another one is
//! refused by a test, so a keyword is never silently ignored.

use serde_json::Value;

/// The keywords [`problems`] understands (annotations included).
pub const KEYWORDS: [&str; 20] = [
    "$schema",
    "$id",
    "$defs",
    "$ref",
    "title",
    "description",
    "default",
    "examples",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "items",
    "minItems",
    "maxItems",
];

/// The input schemas, by state machine.
pub const SCHEMAS: [(&str, &str); 8] = [
    (
        "failover",
        include_str!("../statemachines/schemas/failover.input.json"),
    ),
    (
        "failback",
        include_str!("../statemachines/schemas/failback.input.json"),
    ),
    (
        "reprotect",
        include_str!("../statemachines/schemas/reprotect.input.json"),
    ),
    (
        "dr-restore",
        include_str!("../statemachines/schemas/dr-restore.input.json"),
    ),
    (
        "restore-test",
        include_str!("../statemachines/schemas/restore-test.input.json"),
    ),
    (
        "dr-drill",
        include_str!("../statemachines/schemas/dr-drill.input.json"),
    ),
    (
        "backup-audit",
        include_str!("../statemachines/schemas/backup-audit.input.json"),
    ),
    (
        "readiness",
        include_str!("../statemachines/schemas/readiness.input.json"),
    ),
];

/// The input schema of `machine` (a name as deployed, `<stack>-<machine>`, or an ARN), if it is
/// one of hapilot's.
pub fn schema_of(machine: &str) -> Option<Value> {
    let name = machine.rsplit(':').next().unwrap_or(machine);
    SCHEMAS
        .iter()
        .find(|(m, _)| name == *m || name.ends_with(&format!("-{m}")))
        .and_then(|(_, text)| serde_json::from_str(text).ok())
}

/// What is wrong with `value` against `schema`, one line per problem with the field's path;
/// empty when it conforms.
pub fn problems(schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(schema, schema, value, "", &mut out);
    out
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_type(value: &Value, wanted: &str) -> bool {
    let actual = type_name(value);
    actual == wanted
        || (wanted == "number" && actual == "integer")
        // 5.0 is an integer to JSON Schema.
        || (wanted == "integer" && value.as_f64().is_some_and(|f| f.fract() == 0.0))
}

/// `root` is the whole schema, where `{"$ref": "#/$defs/<name>"}` finds its definitions.
fn check(root: &Value, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let at = if path.is_empty() { "the input" } else { path };
    if let Some(name) = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        return check(root, &root["$defs"][name], value, path, out);
    }
    if let Some(wanted) = schema.get("type") {
        let types: Vec<&str> = match wanted {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() && !types.iter().any(|t| is_type(value, t)) {
            out.push(format!(
                "{at}: is {}, must be {}",
                type_name(value),
                types.join(" or ")
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed.iter().map(Value::to_string).collect();
        out.push(format!("{at}: {value} is not one of {}", names.join(", ")));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            out.push(format!("{at}: {value} is below the minimum {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            out.push(format!("{at}: {value} is above the maximum {max}"));
        }
        if let Some(min) = schema.get("exclusiveMinimum").and_then(Value::as_f64)
            && n <= min
        {
            out.push(format!("{at}: {value} must be above {min}"));
        }
        if let Some(max) = schema.get("exclusiveMaximum").and_then(Value::as_f64)
            && n >= max
        {
            out.push(format!("{at}: {value} must be below {max}"));
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            out.push(format!(
                "{at}: has {} item(s), needs at least {min}",
                items.len()
            ));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && (items.len() as u64) > max
        {
            out.push(format!("{at}: has {} item(s), at most {max}", items.len()));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(root, item_schema, item, &format!("{path}[{i}]"), out);
            }
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(required) {
                out.push(format!("{at}: `{required}` is required"));
            }
        }
        for (key, field) in object {
            let field_path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            match properties.and_then(|p| p.get(key)) {
                Some(field_schema) => check(root, field_schema, field, &field_path, out),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        let known: Vec<&str> = properties
                            .map(|p| p.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        out.push(format!(
                            "{field_path}: unknown field (known: {}; `{key}` is not one of them)",
                            known.join(", ")
                        ));
                    }
                    Some(extra @ Value::Object(_)) => check(root, extra, field, &field_path, out),
                    _ => {}
                },
            }
        }
    }
}

/// Every keyword `schema` uses that [`problems`] does not understand.
pub fn unknown_keywords(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(schema: &Value, out: &mut Vec<String>) {
        let Some(object) = schema.as_object() else {
            return;
        };
        for (key, value) in object {
            if !KEYWORDS.contains(&key.as_str()) {
                out.push(key.clone());
            }
            match key.as_str() {
                "properties" => {
                    for field in value.as_object().into_iter().flat_map(|p| p.values()) {
                        walk(field, out);
                    }
                }
                "items" | "additionalProperties" => walk(value, out),
                "$defs" => {
                    for definition in value.as_object().into_iter().flat_map(|d| d.values()) {
                        walk(definition, out);
                    }
                }
                _ => {}
            }
        }
    }
    walk(schema, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_schema_uses_only_understood_keywords() {
        for (machine, text) in SCHEMAS {
            let schema: Value = serde_json::from_str(text).unwrap();
            assert_eq!(unknown_keywords(&schema), Vec::<String>::new(), "{machine}");
        }
    }

    #[test]
    fn machines_are_found_by_name_stack_name_or_arn() {
        assert!(schema_of("failover").is_some());
        assert!(schema_of("prod-hapilot-dr-restore").is_some());
        assert!(schema_of("arn:aws:states:us-west-2:1:stateMachine:hapilot-failback").is_some());
        assert!(schema_of("someone-elses-machine").is_none());
    }

    #[test]
    fn the_failover_schema_says_what_is_wrong_with_paths() {
        let schema = schema_of("failover").unwrap();
        assert!(
            problems(
                &schema,
                &json!({"primary_region": "us-east-1", "standby_region": "us-west-2"})
            )
            .is_empty()
        );
        let wrong = problems(
            &schema,
            &json!({"primary_region": "us-east-1", "mode": "sideways", "probe_samples": 0, "tier": 3, "primry": 1}),
        );
        let text = wrong.join("\n");
        assert!(text.contains("`standby_region` is required"), "{text}");
        assert!(text.contains("mode: \"sideways\" is not one of"), "{text}");
        assert!(
            text.contains("probe_samples: 0 is below the minimum 1"),
            "{text}"
        );
        assert!(
            text.contains("tier: 3 is not one of \"Standard\", \"High\", \"Critical\""),
            "{text}"
        );
        assert!(text.contains("primry: unknown field (known: "), "{text}");
        assert_eq!(
            problems(&schema, &json!([])),
            ["the input: is array, must be object"]
        );
    }

    #[test]
    fn nested_arrays_and_objects_are_checked() {
        let schema = schema_of("failback").unwrap();
        let wrong = problems(
            &schema,
            &json!({"primary_region": "a", "standby_region": "b", "steps": [50, 150], "gate": {"max_error_rate": 2}}),
        );
        let text = wrong.join("\n");
        assert!(
            text.contains("steps[1]: 150 is above the maximum 100"),
            "{text}"
        );
        assert!(
            text.contains("gate.max_error_rate: 2 is above the maximum 1"),
            "{text}"
        );
    }
}
