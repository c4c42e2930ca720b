//! Lambda `answer-approval`, behind a function URL with `AWS_IAM` auth: the one way to answer a
//! run that waits for a human. The approver is who AWS says signed the request (the function
//! URL's request context), checked against the deployment's approvers (`HAPILOT_APPROVERS`);
//! the function reads the waiting task's token itself, sends the answer (SendTaskSuccess) and
//! journals it beside the request. No operator needs `states:SendTaskSuccess` or the token, so
//! nobody can answer in someone else's name.
//!
//! Request: `POST` with `{"machine", "execution", "approved": bool, "comment", "operator"?}`.
//! Answers are HTTP answers (a function URL turns a handler error into a bare 502): 200 with
//! the decision, 400 for a malformed request, 403 for a caller who is not an approver, 404 when
//! nothing waits, 409 when the run no longer waits (answered already, timed out).

use hapilot_adapters::journal::Journal;
use hapilot_adapters::orchestrator::Orchestrator;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::config::Settings;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    machine: String,
    execution: String,
    approved: bool,
    #[serde(default)]
    comment: String,
    /// What the answerer says they are (kept beside the verified identity, never instead).
    #[serde(default)]
    operator: Option<String>,
}

/// A function URL answer.
fn http(status: u16, body: Value) -> Value {
    json!({
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": body.to_string(),
    })
}

fn refused(status: u16, message: impl Into<String>) -> Value {
    let message = message.into();
    tracing::warn!(status, %message, "approval answer refused");
    http(status, json!({ "error": message }))
}

/// Who signed the request, when they may answer (the function URL's AWS_IAM identity among
/// the deployment's approvers); else the refusal to send back.
fn approver<'a>(context: &'a Value, settings: &Settings) -> Result<&'a str, Value> {
    let Some(caller) = context["authorizer"]["iam"]["userArn"]
        .as_str()
        .filter(|a| !a.is_empty())
    else {
        return Err(refused(
            403,
            "no caller identity in the request: the function URL must use AWS_IAM auth",
        ));
    };
    if !hapilot_core::approval::may_approve(caller, &settings.approvers) {
        return Err(refused(
            403,
            format!(
                "{caller} is not among this deployment's approvers (HAPILOT_APPROVERS, the Approvers parameter){}",
                if settings.approvers.is_empty() {
                    ": none is configured"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(caller)
}

/// The answer in the request's body (plain or base64, as the function URL passes it); else
/// the refusal to send back.
fn read_answer(event: &Value) -> Result<Answer, Value> {
    let body = match (event["body"].as_str(), event["isBase64Encoded"].as_bool()) {
        (Some(b), Some(true)) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default()
        }
        (Some(b), _) => b.to_string(),
        (None, _) => String::new(),
    };
    serde_json::from_str(&body).map_err(|e| {
        refused(
            400,
            format!(
                "the answer is not {{\"machine\", \"execution\", \"approved\", \"comment\"}}: {e}"
            ),
        )
    })
}

/// The decision handed to the waiting run and kept beside its request: the answer, who
/// signed it, and what was asked.
fn decision(answer: &Answer, caller: &str, pending: &Value) -> Value {
    json!({
        "approved": answer.approved,
        "by": caller,
        "operator": answer.operator.clone().unwrap_or_else(|| "unknown".into()),
        "comment": answer.comment,
        "answered_at": chrono::Utc::now().to_rfc3339(),
        "verified_by": "aws_iam",
        "decided": {
            "state": pending["state"],
            "reason": pending["reason"],
            "asked_at": pending["asked_at"],
        },
    })
}

/// Answers the approval the request names, as the caller AWS authenticated.
pub async fn answer_approval(
    settings: &Settings,
    journal: &impl Journal,
    runs: &impl Orchestrator,
    event: Value,
) -> Result<Value, FunctionError> {
    let context = &event["requestContext"];
    if context["http"]["method"].as_str() != Some("POST") {
        return Ok(refused(405, "answer with POST"));
    }
    let caller = match approver(context, settings) {
        Ok(caller) => caller,
        Err(refusal) => return Ok(refusal),
    };
    let answer = match read_answer(&event) {
        Ok(answer) => answer,
        Err(refusal) => return Ok(refusal),
    };
    let key = format!("runs/{}/{}/approval.json", answer.machine, answer.execution);
    let pending = journal
        .get(&key)
        .await
        .map_err(FunctionError::from_adapter(
            hapilot_core::ErrorName::RecordFailed,
        ))?;
    let Some(pending) = pending else {
        return Ok(refused(
            404,
            format!(
                "no pending approval for {} run {} ({key})",
                answer.machine, answer.execution
            ),
        ));
    };
    if pending["machine"] != answer.machine.as_str()
        || pending["execution"] != answer.execution.as_str()
    {
        return Ok(refused(
            409,
            format!(
                "{key} names {} run {}: refusing to answer it",
                pending["machine"], pending["execution"]
            ),
        ));
    }
    let decision = decision(&answer, caller, &pending);
    let token = pending["token"].as_str().unwrap_or_default();
    match runs.answer_task(token, &decision).await {
        Ok(()) => {}
        Err(hapilot_adapters::AdapterError::NotFound(why)) => return Ok(refused(409, why)),
        Err(e) => {
            return Err(FunctionError::from_adapter(
                hapilot_core::ErrorName::RecordFailed,
            )(e));
        }
    }
    journal
        .put(
            &format!(
                "runs/{}/{}/approval-answer.json",
                answer.machine, answer.execution
            ),
            &decision,
        )
        .await
        .map_err(FunctionError::from_adapter(
            hapilot_core::ErrorName::RecordFailed,
        ))?;
    tracing::info!(%decision, "approval answered");
    Ok(http(200, decision))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::journal::MemoryJournal;
    use hapilot_adapters::orchestrator::MemoryOrchestrator;

    const ONCALL: &str = "arn:aws:sts::111122223333:assumed-role/SRE-OnCall/alice";

    fn request(caller: Option<&str>, body: Value) -> Value {
        json!({
            "version": "2.0", "rawPath": "/", "body": body.to_string(), "isBase64Encoded": false,
            "requestContext": {
                "http": {"method": "POST", "path": "/"},
                "authorizer": caller.map(|c| json!({"iam": {"userArn": c, "accountId": "111122223333"}})),
            }
        })
    }

    fn status(answer: &Value) -> u64 {
        answer["statusCode"].as_u64().unwrap()
    }

    /// The approver is who signed, whatever the body claims; someone else is refused and
    /// nothing is answered; a second answer finds the run no longer waiting.
    #[tokio::test]
    async fn the_signer_answers_and_only_an_approver() {
        let mut settings = Settings::with_defaults();
        settings.approvers = vec!["arn:aws:iam::111122223333:role/SRE-OnCall".into()];
        let journal = MemoryJournal::default();
        journal
            .put(
                "runs/failover/f-1/approval.json",
                &json!({"machine": "failover", "execution": "f-1", "state": "RequestApproval",
                        "reason": "data at risk", "asked_at": "2026-12-06T05:00:00Z", "token": "T-1"}),
            )
            .await
            .unwrap();
        let runs = MemoryOrchestrator::default();
        let body = json!({"machine": "failover", "execution": "f-1", "approved": true,
                          "comment": "go", "operator": "claims to be the CTO"});

        let stranger = "arn:aws:iam::111122223333:user/mallory";
        let no = answer_approval(
            &settings,
            &journal,
            &runs,
            request(Some(stranger), body.clone()),
        )
        .await
        .unwrap();
        assert_eq!(status(&no), 403, "{no}");
        assert!(no["body"].as_str().unwrap().contains("mallory"));
        assert!(runs.answers.lock().unwrap().is_empty());
        let unsigned = answer_approval(&settings, &journal, &runs, request(None, body.clone()))
            .await
            .unwrap();
        assert_eq!(status(&unsigned), 403);

        let yes = answer_approval(
            &settings,
            &journal,
            &runs,
            request(Some(ONCALL), body.clone()),
        )
        .await
        .unwrap();
        assert_eq!(status(&yes), 200, "{yes}");
        let answered = runs.answers.lock().unwrap().clone();
        assert_eq!(answered.len(), 1);
        assert_eq!(answered[0].0, "T-1");
        assert_eq!(answered[0].1["by"], ONCALL);
        assert_eq!(answered[0].1["approved"], true);
        let kept = journal
            .get("runs/failover/f-1/approval-answer.json")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept["by"], ONCALL);

        let again = answer_approval(&settings, &journal, &runs, request(Some(ONCALL), body))
            .await
            .unwrap();
        assert_eq!(status(&again), 409, "{again}");
        let nothing = answer_approval(
            &settings,
            &journal,
            &runs,
            request(
                Some(ONCALL),
                json!({"machine": "failback", "execution": "b-9", "approved": false}),
            ),
        )
        .await
        .unwrap();
        assert_eq!(status(&nothing), 404, "{nothing}");
        let malformed = answer_approval(
            &settings,
            &journal,
            &runs,
            request(Some(ONCALL), json!({"approve": "yes"})),
        )
        .await
        .unwrap();
        assert_eq!(status(&malformed), 400, "{malformed}");
    }
}
