//! Answering a run that waits for a human (`hapilot approve` / `hapilot deny`).
//!
//! The waiting task left `runs/<machine>/<execution>/approval.json` (with its task token) in the
//! audit bucket. The answer goes back with SendTaskSuccess and a decision payload
//! `{"approved", "by", "comment", "answered_at"}` (not SendTaskFailure, whose cause would be
//! lost), and is journalled next to the request.

use hapilot_aws::journal::{Journal, S3Journal};
use serde_json::{Value, json};

use crate::HapilotError;

/// Who answers, as recorded: `$HAPILOT_OPERATOR`, else `$USER`, else `unknown`.
pub fn operator() -> String {
    std::env::var("HAPILOT_OPERATOR")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Sends the answer to the approval `execution` of `machine` waits for.
pub async fn answer(
    sdk: &aws_config::SdkConfig,
    bucket: &str,
    machine: &str,
    execution: &str,
    approved: bool,
    comment: &str,
) -> Result<Value, HapilotError> {
    let journal = S3Journal::from_sdk(sdk, bucket);
    let key = format!("runs/{machine}/{execution}/approval.json");
    let pending = journal
        .get(&key)
        .await
        .map_err(|e| HapilotError::Aws {
            operation: "GetObject",
            detail: e.to_string(),
        })?
        .ok_or_else(|| HapilotError::Aws {
            operation: "GetObject",
            detail: format!(
                "no pending approval for {machine} run {execution} (s3://{bucket}/{key})"
            ),
        })?;
    let token = pending["token"].as_str().unwrap_or_default();
    let decision = json!({
        "approved": approved,
        "by": operator(),
        "comment": comment,
        "answered_at": chrono::Utc::now().to_rfc3339(),
    });
    aws_sdk_sfn::Client::new(sdk)
        .send_task_success()
        .task_token(token)
        .output(decision.to_string())
        .send()
        .await
        .map_err(HapilotError::aws("SendTaskSuccess"))?;
    journal
        .put(
            &format!("runs/{machine}/{execution}/approval-answer.json"),
            &decision,
        )
        .await
        .map_err(|e| HapilotError::Aws {
            operation: "PutObject",
            detail: e.to_string(),
        })?;
    Ok(decision)
}
