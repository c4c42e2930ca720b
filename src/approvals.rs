//! Answering a run that waits for a human (`hapilot approve` / `hapilot deny`).
//!
//! The waiting task left `runs/<machine>/<execution>/approval.json` (with its task token) in the
//! audit bucket; only `request-approval` may write it (the bucket policy denies everyone else).
//! The answer goes back with SendTaskSuccess and a decision payload `{"approved", "by",
//! "operator", "comment", "answered_at", "decided"}` (not SendTaskFailure, whose cause would be
//! lost), and is journalled next to the request. `by` is the caller's identity as AWS knows it
//! (STS GetCallerIdentity), never what the environment claims.

use hapilot_adapters::journal::{Journal, S3Journal};
use serde_json::{Value, json};

use crate::HapilotError;

/// What the answerer says they are: `$HAPILOT_OPERATOR`, else `$USER`, else `unknown`. Kept
/// beside the verified identity, never instead of it.
pub fn operator() -> String {
    std::env::var("HAPILOT_OPERATOR")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// The caller's identity (its ARN) as STS sees it.
pub async fn caller_identity(sdk: &aws_config::SdkConfig) -> Result<String, HapilotError> {
    let me = aws_sdk_sts::Client::new(sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| HapilotError::Aws {
            operation: "GetCallerIdentity",
            detail: format!(
                "cannot tell who is answering, and an answer needs an identity: {}",
                hapilot_adapters::error_chain(&e)
            ),
        })?;
    me.arn()
        .map(str::to_string)
        .ok_or_else(|| HapilotError::Aws {
            operation: "GetCallerIdentity",
            detail: "STS answered without an ARN".into(),
        })
}

/// The approval `execution` of `machine` waits for, as `request-approval` stored it; refused
/// when it is missing or names another run.
pub async fn pending(
    sdk: &aws_config::SdkConfig,
    bucket: &str,
    machine: &str,
    execution: &str,
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
    if pending["machine"] != machine || pending["execution"] != execution {
        return Err(HapilotError::Aws {
            operation: "GetObject",
            detail: format!(
                "s3://{bucket}/{key} names {} run {}, not {machine} run {execution}: refusing to answer it",
                pending["machine"], pending["execution"]
            ),
        });
    }
    Ok(pending)
}

/// What a pending approval asks, for the person about to answer it: run, step, why, and what
/// is at stake (votes, replication lag, data at risk), without the task token.
pub fn describe(pending: &Value) -> String {
    let mut out = format!(
        "{} run {} waits at {} (asked {}, times out after {} s):\n  {}\n",
        pending["machine"].as_str().unwrap_or("?"),
        pending["execution"].as_str().unwrap_or("?"),
        pending["state"].as_str().unwrap_or("?"),
        pending["asked_at"].as_str().unwrap_or("?"),
        pending["timeout_seconds"],
        pending["reason"].as_str().unwrap_or("(no reason given)"),
    );
    let details = &pending["details"];
    if let Some(votes) = details["votes"].as_array() {
        out.push_str("  votes:\n");
        for v in votes {
            out.push_str(&format!(
                "    {}: {} ({})\n",
                v["vantage"].as_str().unwrap_or("?"),
                v["vote"].as_str().unwrap_or("?"),
                v["detail"].as_str().unwrap_or("")
            ));
        }
    }
    if let Some(object) = details.as_object() {
        for (key, value) in object.iter().filter(|(k, _)| k.as_str() != "votes") {
            if !value.is_null() {
                out.push_str(&format!("  {key}: {value}\n"));
            }
        }
    }
    out
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
    let pending = pending(sdk, bucket, machine, execution).await?;
    let by = caller_identity(sdk).await?;
    let token = pending["token"].as_str().unwrap_or_default();
    let decision = json!({
        "approved": approved,
        "by": by,
        "operator": operator(),
        "comment": comment,
        "answered_at": chrono::Utc::now().to_rfc3339(),
        "decided": {
            "state": pending["state"],
            "reason": pending["reason"],
            "asked_at": pending["asked_at"],
        },
    });
    aws_sdk_sfn::Client::new(sdk)
        .send_task_success()
        .task_token(token)
        .output(decision.to_string())
        .send()
        .await
        .map_err(HapilotError::aws("SendTaskSuccess"))?;
    S3Journal::from_sdk(sdk, bucket)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_says_what_is_decided_without_the_token() {
        let text = describe(&json!({
            "machine": "failover", "execution": "failover-x", "state": "RequestApproval",
            "reason": "2 of 3 vantage points could not be read",
            "details": {"votes": [{"vantage": "arn:...:alarm:w", "vote": "down", "detail": "ALARM"}],
                        "replication": {"lag_seconds": 12.5}},
            "asked_at": "2026-11-30T22:00:00Z", "timeout_seconds": 900, "token": "SECRET-TOKEN"
        }));
        assert!(text.contains("failover run failover-x waits at RequestApproval"));
        assert!(text.contains("2 of 3 vantage points"));
        assert!(text.contains("arn:...:alarm:w: down (ALARM)"));
        assert!(text.contains("lag_seconds"));
        assert!(!text.contains("SECRET-TOKEN"));
    }
}
