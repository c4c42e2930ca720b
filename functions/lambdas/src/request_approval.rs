//! Task `request-approval` (invoked with `.waitForTaskToken`): park the run until a human
//! answers. Stores the pending approval (with its task token) in the run's journal folder and
//! notifies the on-call with what is at stake and how to answer:
//! `hapilot approve <execution>` / `hapilot deny <execution> --comment "..."`.

use hapilot_adapters::journal::Journal;
use hapilot_adapters::notifier::Notifier;
use hapilot_core::ErrorName;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;
use crate::run::{RunContext, now_rfc3339, record};

#[derive(Deserialize)]
struct Input {
    token: String,
    reason: String,
    #[serde(default)]
    details: Value,
    timeout_seconds: u64,
    run: RunContext,
}

/// The journal object name of a run's pending approval.
pub const APPROVAL_OBJECT: &str = "approval.json";

/// Asks for approval.
pub async fn request_approval(
    journal: &impl Journal,
    notifier: &impl Notifier,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        token,
        reason,
        details,
        timeout_seconds,
        run,
    } = parse_input(input)?;
    let pending = json!({
        "machine": run.machine,
        "execution": run.execution,
        "state": run.state,
        "reason": reason,
        "details": details,
        "asked_at": now_rfc3339(),
        "timeout_seconds": timeout_seconds,
        "token": token,
    });
    journal
        .put(&run.run_object(APPROVAL_OBJECT), &pending)
        .await
        .map_err(FunctionError::from_adapter(ErrorName::RecordFailed))?;
    let message = format!(
        "hapilot run {execution} ({machine}) is waiting for a human at {state}.\n\n{reason}\n\n\
         Approve:  hapilot approve {execution} --machine {machine} --comment \"why\"\n\
         Deny:     hapilot deny {execution} --machine {machine} --comment \"why\"\n\n\
         Without an answer within {timeout_seconds} s the run stops safely and changes nothing more.",
        execution = run.execution,
        machine = run.machine,
        state = run.state,
    );
    notifier
        .notify(
            &format!("hapilot: approval needed ({})", run.execution),
            &message,
        )
        .await
        .map_err(FunctionError::from_adapter(ErrorName::RecordFailed))?;
    record(
        journal,
        &run,
        json!({ "measurements": { "reason": reason, "details": details } }),
    )
    .await?;
    Ok(json!({ "requested": true }))
}
