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

/// Sends the answer through the deployment's approval function URL (`url`), signed with the
/// caller's own credentials: the function establishes who answers from the signature (and
/// checks it against the approvers), reads the task token itself and journals the answer.
pub async fn answer_through_url(
    sdk: &aws_config::SdkConfig,
    url: &str,
    (machine, execution): (&str, &str),
    approved: bool,
    comment: &str,
) -> Result<Value, HapilotError> {
    let body = json!({
        "machine": machine,
        "execution": execution,
        "approved": approved,
        "comment": comment,
        "operator": operator(),
    })
    .to_string();
    let region = url_region(url)
        .or_else(|| sdk.region().map(|r| r.to_string()))
        .ok_or_else(|| {
            HapilotError::Invalid(format!("cannot tell the region of {url}: set AWS_REGION"))
        })?;
    let headers = sign_for_lambda(sdk, url, &region, &body).await?;
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.map_err(|e| HapilotError::Aws {
        operation: "InvokeFunctionUrl",
        detail: format!("{url} did not answer: {e}"),
    })?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let said: Value = serde_json::from_str(&text).unwrap_or(json!({ "error": text }));
    if status.is_success() {
        return Ok(said);
    }
    let why = said["error"]
        .as_str()
        .or_else(|| said["Message"].as_str())
        .unwrap_or("no detail")
        .to_string();
    Err(HapilotError::Aws {
        operation: "InvokeFunctionUrl",
        detail: format!(
            "the approval function refused the answer (HTTP {status}): {why}{}",
            if status.as_u16() == 403 && why == "Forbidden" {
                ". Your identity needs lambda:InvokeFunctionUrl on it (the stack's OperatorPolicy)"
            } else {
                ""
            }
        ),
    })
}

/// The region a function URL names: `https://<id>.lambda-url.<region>.on.aws/`, or the local
/// stack's `.../lambda-url/<region>/<function>/`.
fn url_region(url: &str) -> Option<String> {
    let rest = url.split("://").nth(1)?;
    let host = rest.split('/').next()?;
    if let Some(r) = host
        .split(".lambda-url.")
        .nth(1)
        .and_then(|r| r.split('.').next())
    {
        return Some(r.to_string());
    }
    rest.split("/lambda-url/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .map(str::to_string)
}

/// SigV4 headers for a `POST` of `body` to `url` as service `lambda` in `region`, signed with
/// the SDK configuration's credentials (a profile, SSO, the environment).
async fn sign_for_lambda(
    sdk: &aws_config::SdkConfig,
    url: &str,
    region: &str,
    body: &str,
) -> Result<Vec<(String, String)>, HapilotError> {
    use aws_credential_types::provider::ProvideCredentials;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let no_credentials = |detail: String| HapilotError::Aws {
        operation: "InvokeFunctionUrl",
        detail: format!("cannot sign the answer: {detail}"),
    };
    let provider = sdk
        .credentials_provider()
        .ok_or_else(|| no_credentials("no AWS credentials are configured".into()))?;
    let credentials = provider
        .provide_credentials()
        .await
        .map_err(|e| no_credentials(hapilot_adapters::error_chain(&e)))?;
    let identity = credentials.into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("lambda")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| no_credentials(e.to_string()))?
        .into();
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_default()
        .to_string();
    let headers = [
        ("content-type", "application/json"),
        ("host", host.as_str()),
    ];
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|e| no_credentials(e.to_string()))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| no_credentials(e.to_string()))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// Sends the answer to the approval `execution` of `machine` waits for, directly (a deployment
/// without an approval URL: the caller needs `states:SendTaskSuccess`, and `by` is what STS says
/// of the caller's credentials).
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
    fn the_region_is_read_from_a_function_url() {
        assert_eq!(
            url_region("https://abcdefg.lambda-url.us-west-2.on.aws/").as_deref(),
            Some("us-west-2")
        );
        assert_eq!(
            url_region("http://127.0.0.1:4566/lambda-url/eu-west-1/hapilot-answer-approval/")
                .as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(url_region("http://example.com/x"), None);
    }

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
