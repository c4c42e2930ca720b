//! The canary failback's test inputs: quick steps, short bakes, the weights a step leaves.

use serde_json::{Value, json};

/// A failback request from us-west-2 back to us-east-1 in two quick steps, plus `extra`.
pub fn failback_input(extra: Value) -> Value {
    let mut input = json!({
        "primary_region": "us-east-1", "standby_region": "us-west-2",
        "steps": [25, 100], "bake_seconds": 1,
        "probe_samples": 2, "probe_timeout_ms": 500, "probe_interval_ms": 50,
        "dns_sync_timeout_seconds": 10, "approval_timeout_seconds": 30
    });
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            input[k] = v;
        }
    }
    input
}

/// The global name's weights when the primary has `primary` of 100.
pub fn split_weights(primary: i64) -> std::collections::BTreeMap<String, i64> {
    [
        ("primary".to_string(), primary),
        ("secondary".to_string(), 100 - primary),
    ]
    .into()
}
