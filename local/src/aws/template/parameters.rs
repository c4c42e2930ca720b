//! Parameter values checked as CloudFormation checks them before it creates anything (User
//! Guide, "Parameters" section syntax): a value for every parameter without a `Default`, no
//! value for a parameter the template does not declare, `AllowedValues`, `AllowedPattern` (the
//! whole value must match), `MinLength` / `MaxLength`, `MinValue` / `MaxValue` and that a
//! `Number` is a number. `CommaDelimitedList` and `List<...>` become lists. Refused values are
//! reported all at once, in CloudFormation's words, and nothing is deployed.

use std::collections::BTreeMap;

use serde_json::Value;

/// Checks `given` against `declared` (a template's `Parameters`) and returns every parameter's
/// value: given, else its default.
pub fn resolve_parameters(
    declared: &serde_json::Map<String, Value>,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Value>, String> {
    let mut problems = Vec::new();
    let unknown: Vec<&String> = given
        .keys()
        .filter(|k| !declared.contains_key(*k))
        .collect();
    if !unknown.is_empty() {
        problems.push(format!(
            "Parameters: {unknown:?} do not exist in the template"
        ));
    }
    let mut missing = Vec::new();
    let mut out = BTreeMap::new();
    for (name, spec) in declared {
        let value = match (given.get(name), spec.get("Default")) {
            (Some(v), _) => v.clone(),
            (None, Some(Value::String(d))) => d.clone(),
            (None, Some(d)) => d.to_string(),
            (None, None) => {
                missing.push(name.clone());
                continue;
            }
        };
        if let Err(e) = check(name, spec, &value) {
            problems.push(e);
            continue;
        }
        let kind = spec.get("Type").and_then(Value::as_str).unwrap_or("String");
        let is_list = kind == "CommaDelimitedList" || kind.starts_with("List<");
        out.insert(
            name.clone(),
            if is_list {
                Value::Array(
                    value
                        .split(',')
                        .map(|s| Value::String(s.trim().to_string()))
                        .collect(),
                )
            } else {
                Value::String(value)
            },
        );
    }
    if !missing.is_empty() {
        problems.insert(0, format!("Parameters: {missing:?} must have values"));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems.join("; "))
    }
}

fn check(name: &str, spec: &Value, value: &str) -> Result<(), String> {
    let kind = spec.get("Type").and_then(Value::as_str).unwrap_or("String");
    if let Some(allowed) = spec.get("AllowedValues").and_then(Value::as_array) {
        let allowed: Vec<String> = allowed
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        if !allowed.iter().any(|a| a == value) {
            return Err(format!(
                "Parameter '{name}' must be one of AllowedValues {allowed:?} (got {value:?})"
            ));
        }
    }
    if let Some(pattern) = spec.get("AllowedPattern").and_then(Value::as_str) {
        // CloudFormation matches the whole value against the pattern.
        let whole = format!("^(?:{pattern})$");
        let re = regex::Regex::new(&whole)
            .map_err(|e| format!("Parameter '{name}': AllowedPattern does not compile: {e}"))?;
        let items: Vec<&str> = if kind == "CommaDelimitedList" {
            value.split(',').collect()
        } else {
            vec![value]
        };
        if let Some(bad) = items.iter().find(|i| !re.is_match(i)) {
            return Err(format!(
                "Parameter '{name}' must match pattern {pattern} (got {bad:?})"
            ));
        }
    }
    let length = value.chars().count() as u64;
    if let Some(min) = spec.get("MinLength").and_then(number)
        && (length as f64) < min
    {
        {
            return Err(format!(
                "Parameter '{name}' must contain at least {min} characters"
            ));
        }
    }
    if let Some(max) = spec.get("MaxLength").and_then(number)
        && (length as f64) > max
    {
        {
            return Err(format!(
                "Parameter '{name}' must contain at most {max} characters"
            ));
        }
    }
    if kind == "Number" {
        let n: f64 = value
            .trim()
            .parse()
            .map_err(|_| format!("Parameter '{name}' must be a number (got {value:?})"))?;
        if let Some(min) = spec.get("MinValue").and_then(number)
            && n < min
        {
            return Err(format!(
                "Parameter '{name}' must be a number not less than {min}"
            ));
        }
        if let Some(max) = spec.get("MaxValue").and_then(number)
            && n > max
        {
            return Err(format!(
                "Parameter '{name}' must be a number not greater than {max}"
            ));
        }
    }
    Ok(())
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn declared() -> serde_json::Map<String, Value> {
        json!({
            "RegionRole": {"Type": "String", "AllowedValues": ["primary", "standby"]},
            "PeerRegion": {"Type": "String", "AllowedPattern": "^[a-z]{2}(-gov)?-[a-z]+-[0-9]$"},
            "Prefix": {"Type": "String", "Default": "hapilot", "AllowedPattern": "[a-z-]+"},
            "Cooldown": {"Type": "Number", "Default": 1800, "MinValue": 0},
            "Subnets": {"Type": "CommaDelimitedList", "Default": ""},
            "Table": {"Type": "String", "Default": "LiteLLM_SpendLogs", "MaxLength": 63}
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_fill_in_and_lists_split() {
        let out = resolve_parameters(
            &declared(),
            &given(&[("RegionRole", "standby"), ("PeerRegion", "us-east-1")]),
        )
        .unwrap();
        assert_eq!(out["Prefix"], json!("hapilot"));
        assert_eq!(out["Cooldown"], json!("1800"));
        assert_eq!(out["Subnets"], json!([""]));
        assert_eq!(out["Table"], json!("LiteLLM_SpendLogs"));
    }

    #[test]
    fn refusals_are_cloudformations_and_all_reported() {
        let err = resolve_parameters(
            &declared(),
            &given(&[
                ("PeerRegion", "US-EAST-1"),
                ("Prefix", "Hapilot"),
                ("Cooldown", "-1"),
                ("Nope", "x"),
            ]),
        )
        .unwrap_err();
        for expected in [
            "[\"Nope\"] do not exist",
            "[\"RegionRole\"] must have values",
            "'PeerRegion' must match pattern",
            "'Prefix' must match pattern",
            "'Cooldown' must be a number not less than 0",
        ] {
            assert!(err.contains(expected), "{expected} in {err}");
        }
        let err = resolve_parameters(
            &declared(),
            &given(&[("RegionRole", "witness"), ("PeerRegion", "us-east-1")]),
        )
        .unwrap_err();
        assert!(err.contains("must be one of AllowedValues"), "{err}");
        let err = resolve_parameters(
            &declared(),
            &given(&[
                ("RegionRole", "primary"),
                ("PeerRegion", "us-east-1"),
                ("Cooldown", "soon"),
            ]),
        )
        .unwrap_err();
        assert!(err.contains("must be a number"), "{err}");
    }
}
