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

/// Where the run waits: what the on-call's `hapilot` must be pointed at to answer it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerAt {
    /// The region of the stack running the run (`AWS_REGION` of the function).
    pub region: Option<String>,
    /// The audit bucket holding the pending approval.
    pub bucket: Option<String>,
}

impl AnswerAt {
    /// The flags that point `hapilot approve/deny` at this stack, e.g.
    /// ` --region us-west-2 --bucket hapilot-audit-...`.
    fn flags(&self) -> String {
        let mut flags = String::new();
        if let Some(region) = &self.region {
            flags.push_str(&format!(" --region {region}"));
        }
        if let Some(bucket) = &self.bucket {
            flags.push_str(&format!(" --bucket {bucket}"));
        }
        flags
    }
}

/// Asks for approval.
pub async fn request_approval(
    journal: &impl Journal,
    notifier: &impl Notifier,
    at: &AnswerAt,
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
        "hapilot run {execution} ({machine}) is waiting for a human at {state}.\n\
         Region: {region}. Audit bucket: {bucket}.\n\n{reason}\n\n\
         Approve:  hapilot approve {execution} --machine {machine}{flags} --comment \"why\"\n\
         Deny:     hapilot deny {execution} --machine {machine}{flags} --comment \"why\"\n\n\
         Without an answer within {timeout_seconds} s the run stops safely and changes nothing more.",
        execution = run.execution,
        machine = run.machine,
        state = run.state,
        region = at.region.as_deref().unwrap_or("(this stack's)"),
        bucket = at.bucket.as_deref().unwrap_or("(this stack's)"),
        flags = at.flags(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::journal::MemoryJournal;
    use hapilot_adapters::notifier::MemoryNotifier;

    /// The page carries where to answer: the region and bucket, inside the exact commands.
    #[tokio::test]
    async fn the_page_says_where_and_the_exact_commands_to_answer() {
        let (journal, notifier) = (MemoryJournal::default(), MemoryNotifier::default());
        let at = AnswerAt {
            region: Some("us-west-2".into()),
            bucket: Some("hapilot-audit-1-us-west-2".into()),
        };
        let input = json!({
            "token": "t-1", "reason": "replica 40 s behind, over the RPO", "timeout_seconds": 900,
            "run": {"machine": "failover", "execution": "f-1", "state": "AwaitApproval",
                    "entered": "2026-12-01T09:01:00Z"}
        });
        request_approval(&journal, &notifier, &at, input)
            .await
            .unwrap();
        let sent = notifier.sent();
        assert_eq!(sent.len(), 1);
        let (subject, message) = &sent[0];
        assert_eq!(subject, "hapilot: approval needed (f-1)");
        assert!(
            message.contains("Region: us-west-2. Audit bucket: hapilot-audit-1-us-west-2."),
            "{message}"
        );
        assert!(
            message.contains("hapilot approve f-1 --machine failover --region us-west-2 --bucket hapilot-audit-1-us-west-2 --comment \"why\""),
            "{message}"
        );
        assert!(
            message.contains("hapilot deny f-1 --machine failover --region us-west-2 --bucket hapilot-audit-1-us-west-2 --comment \"why\""),
            "{message}"
        );
        let pending = journal
            .get("runs/failover/f-1/approval.json")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(pending["token"], "t-1");
    }
}
