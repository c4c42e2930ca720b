//! Pictures of the state machines: a Mermaid flowchart drawn from an `.asl.json` definition, and
//! the copies in docs/state-machines.md of them kept in step with the definitions.
//!
//! docs/state-machines.md holds one fenced `mermaid` block per machine between
//! `<!-- diagram: <machine> -->` and `<!-- /diagram -->`; `hapilot diagrams --write` rewrites
//! them, `hapilot diagrams --check` (and a test) fails when one is stale.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::HapilotError;

/// The Mermaid flowchart of one state machine definition (ASL JSON).
///
/// Shapes say what a state does: a Task is a box, a Choice a rhombus, a Wait a circle-ended
/// box, a Pass a parallelogram, Succeed and Fail stadiums (Fail in red), a Map a subgraph of its
/// iteration's states. Solid arrows are `Next`, `Default` and choice rules (labelled with their
/// condition); dotted arrows are `Catch`es, labelled with the errors they catch.
pub fn mermaid(definition: &Value) -> Result<String, HapilotError> {
    let mut out = String::from("flowchart TD\n");
    let start = definition["StartAt"]
        .as_str()
        .ok_or_else(|| invalid("no StartAt"))?;
    let states = definition["States"]
        .as_object()
        .ok_or_else(|| invalid("no States"))?;
    let _ = writeln!(out, "  start((start)) --> {}", node_id("", start));
    draw_states(&mut out, "", states, 1)?;
    out.push_str("  classDef fail fill:#fdd,stroke:#c33\n");
    out.push_str("  classDef succeed fill:#dfd,stroke:#3a3\n");
    Ok(out)
}

fn invalid(what: &str) -> HapilotError {
    HapilotError::Invalid(format!("not a state machine definition: {what}"))
}

fn draw_states(
    out: &mut String,
    scope: &str,
    states: &serde_json::Map<String, Value>,
    depth: usize,
) -> Result<(), HapilotError> {
    let pad = "  ".repeat(depth);
    for (name, state) in states {
        let id = node_id(scope, name);
        let kind = state["Type"].as_str().unwrap_or("?");
        let label = escape(name);
        match kind {
            "Map" | "Parallel" => {
                let _ = writeln!(out, "{pad}subgraph {id} [\"{label} ({kind})\"]");
                let inner_scope = format!("{id}__");
                let mut branches: Vec<&Value> = state["Branches"]
                    .as_array()
                    .map(|b| b.iter().collect())
                    .unwrap_or_default();
                for key in ["ItemProcessor", "Iterator"] {
                    if state[key].is_object() {
                        branches.push(&state[key]);
                    }
                }
                for branch in branches {
                    if let (Some(start), Some(inner)) =
                        (branch["StartAt"].as_str(), branch["States"].as_object())
                    {
                        let _ = writeln!(
                            out,
                            "{pad}  {id}_start(( )) --> {}",
                            node_id(&inner_scope, start)
                        );
                        draw_states(out, &inner_scope, inner, depth + 1)?;
                    }
                }
                let _ = writeln!(out, "{pad}end");
            }
            _ => {
                let shape = match kind {
                    "Choice" => format!("{id}{{\"{label}\"}}"),
                    "Wait" => format!("{id}([\"{label}\"])"),
                    "Pass" => format!("{id}[/\"{label}\"/]"),
                    "Succeed" => format!("{id}([\"{label}\"]):::succeed"),
                    "Fail" => format!("{id}([\"{label}\"]):::fail"),
                    _ => format!("{id}[\"{label}\"]"),
                };
                let _ = writeln!(out, "{pad}{shape}");
            }
        }
        if let Some(next) = state["Next"].as_str() {
            let _ = writeln!(out, "{pad}{id} --> {}", node_id(scope, next));
        }
        for rule in state["Choices"].as_array().into_iter().flatten() {
            if let Some(next) = rule["Next"].as_str() {
                let _ = writeln!(
                    out,
                    "{pad}{id} -->|\"{}\"| {}",
                    escape(&condition(rule)),
                    node_id(scope, next)
                );
            }
        }
        if let Some(default) = state["Default"].as_str() {
            let _ = writeln!(out, "{pad}{id} -->|otherwise| {}", node_id(scope, default));
        }
        for catch in state["Catch"].as_array().into_iter().flatten() {
            if let Some(next) = catch["Next"].as_str() {
                let errors: Vec<&str> = catch["ErrorEquals"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|e| if e == "States.ALL" { "any error" } else { e })
                    .collect();
                let _ = writeln!(
                    out,
                    "{pad}{id} -.->|\"{}\"| {}",
                    escape(&errors.join(", ")),
                    node_id(scope, next)
                );
            }
        }
    }
    Ok(())
}

/// A Choice rule in a few words: `$.lag.within_rpo is true`, `$.mode = graceful`.
fn condition(rule: &Value) -> String {
    for (key, joiner) in [("And", " and "), ("Or", " or ")] {
        if let Some(parts) = rule[key].as_array() {
            return parts.iter().map(condition).collect::<Vec<_>>().join(joiner);
        }
    }
    if rule["Not"].is_object() {
        return format!("not ({})", condition(&rule["Not"]));
    }
    let variable = rule["Variable"].as_str().unwrap_or("?");
    let Some(object) = rule.as_object() else {
        return variable.to_string();
    };
    for (key, value) in object {
        let (op, path) = match key.strip_suffix("Path") {
            Some(op) if key != "Variable" => (op, true),
            _ => (key.as_str(), false),
        };
        let symbol = match op {
            "BooleanEquals" => "is",
            "StringEquals" | "NumericEquals" | "TimestampEquals" => "=",
            "NumericGreaterThan" | "TimestampGreaterThan" | "StringGreaterThan" => ">",
            "NumericGreaterThanEquals" | "TimestampGreaterThanEquals" => ">=",
            "NumericLessThan" | "TimestampLessThan" | "StringLessThan" => "<",
            "NumericLessThanEquals" | "TimestampLessThanEquals" => "<=",
            "IsPresent" => "present:",
            "IsNull" => "null:",
            "StringMatches" => "matches",
            _ => continue,
        };
        let value = match value {
            Value::String(s) if !path => s.clone(),
            other if !path => other.to_string(),
            other => other.as_str().unwrap_or("?").to_string(),
        };
        return format!("{variable} {symbol} {value}");
    }
    variable.to_string()
}

/// A Mermaid node id: the state name with anything but letters, digits and `_` replaced.
fn node_id(scope: &str, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{scope}{clean}")
}

/// Text safe inside a quoted Mermaid label.
fn escape(text: &str) -> String {
    text.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

const BEGIN: &str = "<!-- diagram: ";
const END: &str = "<!-- /diagram -->";

/// `readme` with each `<!-- diagram: <machine> -->` block redrawn from
/// `<definitions>/<machine>.asl.json`. Fails naming a block whose machine has no definition or
/// whose end marker is missing.
pub fn redraw_readme(readme: &str, definitions: &Path) -> Result<String, HapilotError> {
    let mut out = String::with_capacity(readme.len());
    let mut rest = readme;
    while let Some(at) = rest.find(BEGIN) {
        let after_marker = &rest[at + BEGIN.len()..];
        let Some(close) = after_marker.find("-->") else {
            return Err(HapilotError::Invalid(
                "the document: an unclosed `<!-- diagram:` marker".into(),
            ));
        };
        let machine = after_marker[..close].trim().to_string();
        let body_start = at + BEGIN.len() + close + 3;
        let Some(end) = rest[body_start..].find(END) else {
            return Err(HapilotError::Invalid(format!(
                "the document: the diagram of {machine} has no `{END}`"
            )));
        };
        let path = definitions.join(format!("{machine}.asl.json"));
        let text = std::fs::read_to_string(&path)
            .map_err(HapilotError::io(format!("reading {}", path.display())))?;
        let definition: Value = serde_json::from_str(&text)
            .map_err(|e| HapilotError::Invalid(format!("{} is not JSON: {e}", path.display())))?;
        out.push_str(&rest[..body_start]);
        out.push_str("\n```mermaid\n");
        out.push_str(&mermaid(&definition)?);
        out.push_str("```\n");
        out.push_str(END);
        rest = &rest[body_start + end + END.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "StartAt": "Plan",
            "States": {
                "Plan": {"Type": "Task", "Resource": "x", "Next": "Ok?",
                         "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}]},
                "Ok?": {"Type": "Choice",
                        "Choices": [{"Variable": "$.ok", "BooleanEquals": true, "Next": "Each"},
                                    {"And": [{"Variable": "$.n", "NumericGreaterThan": 2},
                                             {"Variable": "$.m", "StringEquals": "a\"b"}],
                                     "Next": "Failed"}],
                        "Default": "Failed"},
                "Each": {"Type": "Map", "ItemProcessor": {"StartAt": "Item", "States": {
                    "Item": {"Type": "Task", "Resource": "y", "End": true}}}, "Next": "Done"},
                "Done": {"Type": "Succeed"},
                "Failed": {"Type": "Fail", "Error": "e"}
            }
        })
    }

    #[test]
    fn every_state_edge_and_catch_is_drawn() {
        let chart = mermaid(&sample()).unwrap();
        for line in [
            "start((start)) --> Plan",
            "Plan[\"Plan\"]",
            "Plan --> Ok_",
            "Plan -.->|\"any error\"| Failed",
            "Ok_{\"Ok?\"}",
            "Ok_ -->|\"$.ok is true\"| Each",
            "Ok_ -->|\"$.n #gt; 2 and $.m = a#quot;b\"| Failed",
            "Ok_ -->|otherwise| Failed",
            "subgraph Each [\"Each (Map)\"]",
            "Each_start(( )) --> Each__Item",
            "Each__Item[\"Item\"]",
            "Each --> Done",
            "Done([\"Done\"]):::succeed",
            "Failed([\"Failed\"]):::fail",
        ] {
            assert!(
                chart.lines().any(|l| l.trim() == line),
                "missing {line:?} in\n{chart}"
            );
        }
    }

    #[test]
    fn the_documented_diagrams_are_current() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let readme = std::fs::read_to_string(root.join("docs/state-machines.md")).unwrap();
        let drawn = redraw_readme(&readme, &root.join("statemachines")).unwrap();
        for machine in [
            "failover",
            "failback",
            "reprotect",
            "dr-restore",
            "restore-test",
            "dr-drill",
            "backup-audit",
        ] {
            assert!(
                readme.contains(&format!("{BEGIN}{machine} -->")),
                "docs/state-machines.md has no diagram of {machine}"
            );
        }
        assert!(
            drawn == readme,
            "a diagram in docs/state-machines.md is stale: run `cargo run -- diagram --readme docs/state-machines.md`"
        );
    }

    #[test]
    fn a_definition_without_states_is_refused() {
        assert!(mermaid(&json!({"StartAt": "A"})).is_err());
        assert!(mermaid(&json!({"States": {}})).is_err());
    }

    #[test]
    fn the_readme_blocks_are_redrawn_and_the_rest_kept() {
        let dir = std::env::temp_dir().join(format!("hapilot-diagram-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("m.asl.json"), sample().to_string()).unwrap();
        let readme = "intro\n<!-- diagram: m -->\nstale\n<!-- /diagram -->\noutro\n";
        let drawn = redraw_readme(readme, &dir).unwrap();
        assert!(drawn.starts_with("intro\n<!-- diagram: m -->\n```mermaid\nflowchart TD\n"));
        assert!(drawn.ends_with("```\n<!-- /diagram -->\noutro\n"));
        assert!(!drawn.contains("stale"));
        assert_eq!(redraw_readme(&drawn, &dir).unwrap(), drawn, "idempotent");
        let missing = redraw_readme("<!-- diagram: nope -->\n<!-- /diagram -->", &dir);
        assert!(missing.unwrap_err().to_string().contains("nope.asl.json"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
