//! A stand-in for the IAM Identity Center (SSO) portal and for STS's `GetCallerIdentity`, on
//! loopback: what an operator's `sso_session` profile talks to when the CLI resolves its
//! credentials. moto serves neither the portal nor identities for portal-issued keys.
//!
//! Rules, from the AWS Single Sign-On Portal API reference, `GetRoleCredentials`:
//! `GET /federation/credentials?account_id=..&role_name=..` with the access token in the
//! `x-amz-sso_bearer_token` header; the answer is `{"roleCredentials": {"accessKeyId",
//! "secretAccessKey", "sessionToken", "expiration"}}` (expiration in epoch milliseconds). A
//! missing or unknown token is `UnauthorizedException` (401); an account or role the token may
//! not use is `ForbiddenException` (403); a request without `account_id` or `role_name` is
//! `InvalidRequestException` (400). Errors carry their name in `x-amzn-ErrorType` (restJson1).
//! STS `GetCallerIdentity` (Query protocol, `Action=GetCallerIdentity`) answers the ARN of the
//! role assumed through the portal for keys it issued, and `InvalidClientTokenId` (403) for any
//! other key.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hyper::StatusCode;
use hyper::body::Incoming;

use crate::http::{Answer, answer, serve_state};

/// One role an access token may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalGrant {
    /// The access token the cached `aws sso login` holds.
    pub access_token: String,
    /// The account.
    pub account_id: String,
    /// The permission set's role name.
    pub role_name: String,
}

/// What the portal knows and what it has handed out.
#[derive(Debug, Default)]
pub struct PortalState {
    grants: Vec<PortalGrant>,
    /// access key id -> (account, role) it was issued for.
    issued: BTreeMap<String, (String, String)>,
    /// The access key ids STS calls were signed with, in order.
    signed_with: Vec<String>,
}

/// One request to the stand-in, reduced to what its rules read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalRequest {
    /// `GetRoleCredentials`.
    RoleCredentials {
        /// `x-amz-sso_bearer_token`.
        token: Option<String>,
        /// `account_id`.
        account_id: Option<String>,
        /// `role_name`.
        role_name: Option<String>,
    },
    /// STS `GetCallerIdentity`, signed with this access key id.
    CallerIdentity {
        /// From the `Authorization` header's `Credential=` scope.
        access_key_id: Option<String>,
    },
}

/// The stand-in's answer: status, `x-amzn-ErrorType` (errors), content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalReply {
    /// HTTP status.
    pub status: u16,
    /// The error's name, for errors.
    pub error_type: Option<&'static str>,
    /// The body's content type.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl PortalState {
    /// A portal that honours `grants`.
    pub fn new(grants: Vec<PortalGrant>) -> Self {
        Self {
            grants,
            issued: BTreeMap::new(),
            signed_with: Vec::new(),
        }
    }

    /// Applies the API reference's rules to one request.
    pub fn reply(&mut self, request: PortalRequest, now_ms: i64) -> PortalReply {
        let json_error = |status: u16, error_type: &'static str, message: &str| PortalReply {
            status,
            error_type: Some(error_type),
            content_type: "application/json",
            body: serde_json::json!({ "message": message }).to_string(),
        };
        match request {
            PortalRequest::RoleCredentials {
                token,
                account_id,
                role_name,
            } => {
                let (Some(account_id), Some(role_name)) = (account_id, role_name) else {
                    return json_error(
                        400,
                        "InvalidRequestException",
                        "account_id and role_name are required",
                    );
                };
                let Some(token) = token else {
                    return json_error(
                        401,
                        "UnauthorizedException",
                        "Session token not found or invalid",
                    );
                };
                if !self.grants.iter().any(|g| g.access_token == token) {
                    return json_error(
                        401,
                        "UnauthorizedException",
                        "Session token not found or invalid",
                    );
                }
                if !self.grants.iter().any(|g| {
                    g.access_token == token
                        && g.account_id == account_id
                        && g.role_name == role_name
                }) {
                    return json_error(403, "ForbiddenException", "No access");
                }
                let key = format!("ASIAPORTAL{:08}", self.issued.len() + 1);
                self.issued
                    .insert(key.clone(), (account_id.clone(), role_name.clone()));
                PortalReply {
                    status: 200,
                    error_type: None,
                    content_type: "application/json",
                    body: serde_json::json!({"roleCredentials": {
                        "accessKeyId": key,
                        "secretAccessKey": format!("secret-of-{key}"),
                        "sessionToken": format!("session-of-{key}"),
                        "expiration": now_ms + 3_600_000,
                    }})
                    .to_string(),
                }
            }
            PortalRequest::CallerIdentity { access_key_id } => {
                self.signed_with.extend(access_key_id.iter().cloned());
                let issued = access_key_id.as_ref().and_then(|k| self.issued.get(k));
                let Some((account, role)) = issued else {
                    return PortalReply {
                        status: 403,
                        error_type: Some("InvalidClientTokenId"),
                        content_type: "text/xml",
                        body: "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error></ErrorResponse>".into(),
                    };
                };
                let key = access_key_id.unwrap_or_default();
                PortalReply {
                    status: 200,
                    error_type: None,
                    content_type: "text/xml",
                    body: format!(
                        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>arn:aws:sts::{account}:assumed-role/AWSReservedSSO_{role}/{key}</Arn><UserId>AROAPORTAL:{key}</UserId><Account>{account}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>portal</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
                    ),
                }
            }
        }
    }
}

/// A running portal: its address and what it has seen.
pub struct SsoPortal {
    /// `http://127.0.0.1:<port>`: `AWS_ENDPOINT_URL_SSO` and `AWS_ENDPOINT_URL_STS`.
    pub url: String,
    state: Arc<Mutex<PortalState>>,
    task: tokio::task::JoinHandle<()>,
}

impl SsoPortal {
    /// Serves a portal that honours `grants` on a free loopback port.
    pub async fn start(grants: Vec<PortalGrant>) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(PortalState::new(grants)));
        let (addr, task) = serve_state(state.clone(), route).await?;
        Ok(Self {
            url: format!("http://{addr}"),
            state,
            task,
        })
    }

    /// Access key ids handed out so far.
    pub fn issued_keys(&self) -> Vec<String> {
        let state = self.state.lock().expect("portal lock");
        state.issued.keys().cloned().collect()
    }
}

impl SsoPortal {
    /// The access key ids STS calls were signed with, in order.
    pub fn signed_with(&self) -> Vec<String> {
        self.state.lock().expect("portal lock").signed_with.clone()
    }
}

impl Drop for SsoPortal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn route(state: Arc<Mutex<PortalState>>, req: hyper::Request<Incoming>) -> Answer {
    use http_body_util::BodyExt;
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let query: BTreeMap<String, String> = req
        .uri()
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let request = if req.uri().path() == "/federation/credentials" {
        PortalRequest::RoleCredentials {
            token: header("x-amz-sso_bearer_token"),
            account_id: query.get("account_id").cloned(),
            role_name: query.get("role_name").cloned(),
        }
    } else {
        let authorization = header("authorization");
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if !String::from_utf8_lossy(&body).contains("Action=GetCallerIdentity") {
            return answer(StatusCode::NOT_FOUND, "text/plain", "not served here\n");
        }
        PortalRequest::CallerIdentity {
            access_key_id: authorization.and_then(|a| {
                a.split("Credential=")
                    .nth(1)
                    .and_then(|c| c.split('/').next())
                    .map(str::to_string)
            }),
        }
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let reply = state.lock().expect("portal lock").reply(request, now_ms);
    let mut response = answer(
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        reply.content_type,
        reply.body,
    );
    if let Some(error_type) = reply.error_type {
        response.headers_mut().insert(
            "x-amzn-errortype",
            hyper::header::HeaderValue::from_static(error_type),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn portal() -> PortalState {
        PortalState::new(vec![PortalGrant {
            access_token: "tok".into(),
            account_id: "111122223333".into(),
            role_name: "OnCall".into(),
        }])
    }

    fn ask(token: Option<&str>, account: Option<&str>, role: Option<&str>) -> PortalRequest {
        PortalRequest::RoleCredentials {
            token: token.map(str::to_string),
            account_id: account.map(str::to_string),
            role_name: role.map(str::to_string),
        }
    }

    #[test]
    fn get_role_credentials_refuses_as_the_api_reference_says() {
        let mut p = portal();
        let r = p.reply(ask(None, Some("111122223333"), Some("OnCall")), 0);
        assert_eq!(
            (r.status, r.error_type),
            (401, Some("UnauthorizedException"))
        );
        let r = p.reply(ask(Some("stale"), Some("111122223333"), Some("OnCall")), 0);
        assert_eq!(
            (r.status, r.error_type),
            (401, Some("UnauthorizedException"))
        );
        let r = p.reply(ask(Some("tok"), Some("999999999999"), Some("OnCall")), 0);
        assert_eq!((r.status, r.error_type), (403, Some("ForbiddenException")));
        let r = p.reply(ask(Some("tok"), None, Some("OnCall")), 0);
        assert_eq!(
            (r.status, r.error_type),
            (400, Some("InvalidRequestException"))
        );
        assert!(p.issued.is_empty(), "no refusal hands out keys");
    }

    #[test]
    fn issued_keys_are_known_to_sts_and_no_others() {
        let mut p = portal();
        let r = p.reply(
            ask(Some("tok"), Some("111122223333"), Some("OnCall")),
            1_000,
        );
        assert_eq!(r.status, 200);
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let key = body["roleCredentials"]["accessKeyId"].as_str().unwrap();
        assert_eq!(body["roleCredentials"]["expiration"], 3_601_000);
        let me = p.reply(
            PortalRequest::CallerIdentity {
                access_key_id: Some(key.to_string()),
            },
            0,
        );
        assert!(
            me.body
                .contains("arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_OnCall/"),
            "{}",
            me.body
        );
        let stranger = p.reply(
            PortalRequest::CallerIdentity {
                access_key_id: Some("AKIAOTHER".into()),
            },
            0,
        );
        assert_eq!(stranger.error_type, Some("InvalidClientTokenId"));
    }
}
