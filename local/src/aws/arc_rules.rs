//! The rules of Route53 ARC's cluster data plane (`route53-recovery-cluster`), which moto does
//! not have: what the loopback stand-in in [`crate::aws::arc`] answers, as pure functions over the
//! cluster's state, unit-tested.
//!
//! Shaped as the API reference and the SDK's model give it:
//! - AWS JSON 1.0: `POST /`, `Content-Type: application/x-amz-json-1.0`, the operation in
//!   `X-Amz-Target: ToggleCustomerAPI.<Operation>`.
//! - `GetRoutingControlState {RoutingControlArn}` answers `{RoutingControlArn,
//!   RoutingControlState, RoutingControlName}`; states are `On` and `Off`.
//! - `UpdateRoutingControlState {RoutingControlArn, RoutingControlState,
//!   SafetyRulesToOverride?}` and `UpdateRoutingControlStates {UpdateRoutingControlStateEntries:
//!   [{RoutingControlArn, RoutingControlState}], SafetyRulesToOverride?}` answer `{}`. A batch is
//!   all or nothing: every entry is checked, then the safety rules on the state after all of
//!   them, then all are applied.
//! - `ListRoutingControls {ControlPanelArn?}` answers `{RoutingControls: [...]}`.
//! - Errors are `{"__type": "<Name>", "message": ...}`: `ValidationException` (400, with
//!   `reason` and `fields`), `ResourceNotFoundException` (404, `resourceId`, `resourceType`),
//!   `ConflictException` (409: a safety rule blocks the update; its message names the rule's ARN
//!   so an operator can override it, as the developer guide describes),
//!   `UnknownOperationException` and `SerializationException` (400).
//!
//! Safety rules are assertion rules: at least `min_on` of the asserted controls must be `On`
//! after the update, unless the rule's ARN is in `SafetyRulesToOverride`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// The target prefix of every operation.
pub const TARGET_PREFIX: &str = "ToggleCustomerAPI.";

/// One routing control.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingControl {
    /// Its name.
    pub name: String,
    /// The control panel it belongs to.
    pub control_panel_arn: String,
    /// `On`: traffic flows to its cell.
    pub on: bool,
}

/// An assertion safety rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AssertionRule {
    /// The rule's ARN.
    pub arn: String,
    /// The controls it looks at.
    pub asserted_controls: Vec<String>,
    /// How many of them must be `On`.
    pub min_on: usize,
}

/// The cluster's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterState {
    /// Routing control ARN -> control.
    pub controls: BTreeMap<String, RoutingControl>,
    /// The safety rules.
    pub rules: Vec<AssertionRule>,
}

/// An answer: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Value,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Self { status: 200, body }
    }

    fn error(status: u16, name: &str, message: impl Into<String>, extra: Value) -> Self {
        let mut body = json!({"__type": name, "message": message.into()});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        Self { status, body }
    }

    /// The error name, when it is an error.
    pub fn error_name(&self) -> Option<&str> {
        self.body["__type"].as_str()
    }
}

fn invalid(field: &str, message: &str) -> Reply {
    Reply::error(
        400,
        "ValidationException",
        format!("1 validation error detected: {field}: {message}"),
        json!({"reason": "fieldValidationFailed", "fields": [{"name": field, "message": message}]}),
    )
}

fn not_found(arn: &str) -> Reply {
    Reply::error(
        404,
        "ResourceNotFoundException",
        format!("routing control {arn} does not exist"),
        json!({"resourceId": arn, "resourceType": "RoutingControl"}),
    )
}

fn parse_state(value: &Value, field: &str) -> Result<bool, Reply> {
    match value.as_str() {
        Some("On") => Ok(true),
        Some("Off") => Ok(false),
        Some(_) => Err(invalid(field, "must be one of On, Off")),
        None => Err(invalid(field, "is required")),
    }
}

fn state_name(on: bool) -> &'static str {
    if on { "On" } else { "Off" }
}

/// Answers one request: `target` is the `X-Amz-Target` header, `body` the request body.
/// Changes `state` only when the whole request is accepted.
pub fn serve(state: &mut ClusterState, target: &str, body: &[u8]) -> Reply {
    let Some(operation) = target.strip_prefix(TARGET_PREFIX) else {
        return Reply::error(
            400,
            "UnknownOperationException",
            format!("unknown target {target:?}"),
            json!({}),
        );
    };
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Reply::error(
                    400,
                    "SerializationException",
                    "the request body is not a JSON object",
                    json!({}),
                );
            }
        }
    };
    match operation {
        "GetRoutingControlState" => get_state(state, &request),
        "UpdateRoutingControlState" => {
            let entries = json!([{
                "RoutingControlArn": request["RoutingControlArn"],
                "RoutingControlState": request["RoutingControlState"],
            }]);
            update(state, &entries, &request["SafetyRulesToOverride"])
        }
        "UpdateRoutingControlStates" => update(
            state,
            &request["UpdateRoutingControlStateEntries"],
            &request["SafetyRulesToOverride"],
        ),
        "ListRoutingControls" => {
            let panel = request["ControlPanelArn"].as_str();
            let controls: Vec<Value> = state
                .controls
                .iter()
                .filter(|(_, c)| panel.is_none_or(|p| p == c.control_panel_arn))
                .map(|(arn, c)| {
                    json!({
                        "ControlPanelArn": c.control_panel_arn,
                        "RoutingControlArn": arn,
                        "RoutingControlName": c.name,
                        "RoutingControlState": state_name(c.on),
                    })
                })
                .collect();
            Reply::ok(json!({ "RoutingControls": controls }))
        }
        other => Reply::error(
            400,
            "UnknownOperationException",
            format!("unknown operation {other}"),
            json!({}),
        ),
    }
}

fn get_state(state: &ClusterState, request: &Value) -> Reply {
    let Some(arn) = request["RoutingControlArn"].as_str() else {
        return invalid("RoutingControlArn", "is required");
    };
    match state.controls.get(arn) {
        Some(c) => Reply::ok(json!({
            "RoutingControlArn": arn,
            "RoutingControlState": state_name(c.on),
            "RoutingControlName": c.name,
        })),
        None => not_found(arn),
    }
}

fn update(state: &mut ClusterState, entries: &Value, overrides: &Value) -> Reply {
    let Some(entries) = entries.as_array().filter(|e| !e.is_empty()) else {
        return invalid("UpdateRoutingControlStateEntries", "is required");
    };
    let overrides: Vec<&str> = overrides
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut after: BTreeMap<String, bool> = state
        .controls
        .iter()
        .map(|(arn, c)| (arn.clone(), c.on))
        .collect();
    for entry in entries {
        let Some(arn) = entry["RoutingControlArn"].as_str() else {
            return invalid("RoutingControlArn", "is required");
        };
        let on = match parse_state(&entry["RoutingControlState"], "RoutingControlState") {
            Ok(on) => on,
            Err(reply) => return reply,
        };
        if !state.controls.contains_key(arn) {
            return not_found(arn);
        }
        after.insert(arn.to_string(), on);
    }
    for rule in &state.rules {
        if overrides.contains(&rule.arn.as_str()) {
            continue;
        }
        let on = rule
            .asserted_controls
            .iter()
            .filter(|c| after.get(*c).copied().unwrap_or(false))
            .count();
        if on < rule.min_on {
            return Reply::error(
                409,
                "ConflictException",
                format!(
                    "the update is blocked by safety rule {}: at least {} of its {} routing controls must be On, {on} would be",
                    rule.arn,
                    rule.min_on,
                    rule.asserted_controls.len()
                ),
                json!({"resourceId": rule.arn, "resourceType": "SafetyRule"}),
            );
        }
    }
    for (arn, on) in after {
        if let Some(control) = state.controls.get_mut(&arn) {
            control.on = on;
        }
    }
    Reply::ok(json!({}))
}

#[cfg(test)]
/// The conformance cases of the ARC stand-in. Sources: Route 53 ARC API reference
/// (Recovery Cluster: `GetRoutingControlState`, `UpdateRoutingControlState`,
/// `UpdateRoutingControlStates`, `ListRoutingControls`, their errors) and the developer guide's
/// "Safety rules" (assertion rules, `SafetyRulesToOverride`).
mod tests {
    use super::*;

    const PRIMARY: &str = "arn:aws:route53-recovery-control::1:controlpanel/p/routingcontrol/a";
    const STANDBY: &str = "arn:aws:route53-recovery-control::1:controlpanel/p/routingcontrol/b";
    const RULE: &str = "arn:aws:route53-recovery-control::1:controlpanel/p/safetyrule/one-on";

    fn cluster() -> ClusterState {
        let control = |name: &str, on| RoutingControl {
            name: name.into(),
            control_panel_arn: "arn:aws:route53-recovery-control::1:controlpanel/p".into(),
            on,
        };
        ClusterState {
            controls: BTreeMap::from([
                (PRIMARY.to_string(), control("primary", true)),
                (STANDBY.to_string(), control("secondary", true)),
            ]),
            rules: vec![AssertionRule {
                arn: RULE.into(),
                asserted_controls: vec![PRIMARY.into(), STANDBY.into()],
                min_on: 1,
            }],
        }
    }

    fn call(state: &mut ClusterState, op: &str, body: Value) -> Reply {
        serve(
            state,
            &format!("{TARGET_PREFIX}{op}"),
            body.to_string().as_bytes(),
        )
    }

    /// API reference, `GetRoutingControlState`: the state and the control's name.
    #[test]
    fn get_answers_state_and_name() {
        let mut state = cluster();
        let reply = call(
            &mut state,
            "GetRoutingControlState",
            json!({"RoutingControlArn": PRIMARY}),
        );
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.body,
            json!({"RoutingControlArn": PRIMARY, "RoutingControlState": "On", "RoutingControlName": "primary"})
        );
    }

    /// API reference, `UpdateRoutingControlStates`: one batch, checked on the state after it.
    #[test]
    fn a_batch_flips_both_controls_at_once_even_through_a_state_the_rule_forbids() {
        let mut state = cluster();
        // One at a time, Off then On would pass through "none On" only if ordered badly; the
        // batch is judged on the state after all its entries.
        let reply = call(
            &mut state,
            "UpdateRoutingControlStates",
            json!({"UpdateRoutingControlStateEntries": [
                {"RoutingControlArn": PRIMARY, "RoutingControlState": "Off"},
                {"RoutingControlArn": STANDBY, "RoutingControlState": "On"}
            ]}),
        );
        assert_eq!((reply.status, reply.body.clone()), (200, json!({})));
        assert!(!state.controls[PRIMARY].on && state.controls[STANDBY].on);
    }

    /// Developer guide, "Safety rules": `ConflictException` naming the rule; an override.
    #[test]
    fn a_safety_rule_blocks_all_off_by_name_and_an_override_lets_it_through() {
        let mut state = cluster();
        let all_off = json!([
            {"RoutingControlArn": PRIMARY, "RoutingControlState": "Off"},
            {"RoutingControlArn": STANDBY, "RoutingControlState": "Off"}
        ]);
        let reply = call(
            &mut state,
            "UpdateRoutingControlStates",
            json!({"UpdateRoutingControlStateEntries": all_off}),
        );
        assert_eq!(reply.status, 409);
        assert_eq!(reply.error_name(), Some("ConflictException"));
        assert!(reply.body["message"].as_str().unwrap().contains(RULE));
        assert_eq!(reply.body["resourceId"], RULE);
        assert_eq!(state, cluster(), "nothing changed");
        let reply = call(
            &mut state,
            "UpdateRoutingControlStates",
            json!({"UpdateRoutingControlStateEntries": all_off, "SafetyRulesToOverride": [RULE]}),
        );
        assert_eq!(reply.status, 200);
        assert!(!state.controls[PRIMARY].on && !state.controls[STANDBY].on);
    }

    /// API reference, errors: `ValidationException`, `ResourceNotFoundException`, unknown
    /// operations; a refused request changes nothing.
    #[test]
    fn bad_requests_are_refused_by_name_and_change_nothing() {
        let mut state = cluster();
        let unknown = "arn:aws:route53-recovery-control::1:controlpanel/p/routingcontrol/zz";
        for (op, body, status, name) in [
            (
                "UpdateRoutingControlStates",
                json!({"UpdateRoutingControlStateEntries": [
                    {"RoutingControlArn": PRIMARY, "RoutingControlState": "Off"},
                    {"RoutingControlArn": unknown, "RoutingControlState": "On"}
                ]}),
                404,
                "ResourceNotFoundException",
            ),
            (
                "UpdateRoutingControlState",
                json!({"RoutingControlArn": PRIMARY, "RoutingControlState": "OFF"}),
                400,
                "ValidationException",
            ),
            (
                "UpdateRoutingControlStates",
                json!({"UpdateRoutingControlStateEntries": []}),
                400,
                "ValidationException",
            ),
            (
                "GetRoutingControlState",
                json!({}),
                400,
                "ValidationException",
            ),
            (
                "DeleteEverything",
                json!({}),
                400,
                "UnknownOperationException",
            ),
        ] {
            let reply = call(&mut state, op, body);
            assert_eq!(
                (reply.status, reply.error_name()),
                (status, Some(name)),
                "{op}"
            );
        }
        assert_eq!(serve(&mut state, "Other.Op", b"{}").status, 400);
        assert_eq!(
            serve(
                &mut state,
                "ToggleCustomerAPI.GetRoutingControlState",
                b"not json"
            )
            .error_name(),
            Some("SerializationException")
        );
        assert_eq!(state, cluster(), "nothing changed");
    }

    /// API reference, `ListRoutingControls`: every control of a control panel.
    #[test]
    fn list_answers_every_control_of_a_panel() {
        let mut state = cluster();
        let reply = call(&mut state, "ListRoutingControls", json!({}));
        let controls = reply.body["RoutingControls"].as_array().unwrap();
        assert_eq!(controls.len(), 2);
        assert_eq!(controls[0]["RoutingControlState"], "On");
    }
}
