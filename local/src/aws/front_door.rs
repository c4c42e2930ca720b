//! The front door of the local stack: the Lambda Invoke API served by the in-process handlers,
//! and a transparent forward of every other request to moto.
//!
//! Answers follow Lambda's wire contract, because moto's Step Functions executor (botocore) and
//! the AWS SDKs read them: every invoke answer carries `x-amzn-RequestId`; a handler error is
//! `200` + `X-Amz-Function-Error: Unhandled` + `{"errorType","errorMessage"}`, which is what lets
//! `Retry`/`Catch` match our `hapilot.*` error names.
//!
//! One front door plays every region, as one moto does: each request's region is its SigV4
//! credential scope (`Credential=<key>/<date>/<region>/<service>/aws4_request`), and invokes
//! go to that region's functions, each with its region's configuration. A region can be
//! blacked out: every request signed for it is refused with a 503 (as a dead regional endpoint
//! answers), Route53's control plane with us-east-1 (it is signed for us-east-1), and each
//! refusal is counted by region and service.
//!
//! Route53 record changes are checked against Route53's own rules first
//! ([`super::route53_records`]): moto stores changes Route53 refuses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use hapilot_adapters::sdk::LOCAL_ACCOUNT_ID;
use hapilot_functions::registry::FunctionRegistry;

use crate::http::serve;

const INVOKE_PREFIX: &str = "/2015-03-31/functions/";
/// Where function URLs are served: `<prefix><region>/<function name>/<path>` (in AWS the
/// region and the function are in the host name, `<url-id>.lambda-url.<region>.on.aws`).
pub const FUNCTION_URL_PREFIX: &str = "/lambda-url/";
const INVOKE_SUFFIX: &str = "/invocations";

/// A running front door; stops serving (and drops every open connection) when dropped.
pub struct FrontDoor {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    registries: RwLock<BTreeMap<String, FunctionRegistry>>,
    upstream: SocketAddr,
    region: String,
    client: Client<HttpConnector, Full<Bytes>>,
    dark: RwLock<BTreeSet<String>>,
    refused: Mutex<BTreeMap<(String, String), u64>>,
    served: Mutex<BTreeMap<(String, String), u64>>,
    /// S3 conditional writes (`If-None-Match`, `If-Match`) are atomic in S3; moto checks, then
    /// writes, on concurrent threads. They pass here one at a time.
    conditional_writes: tokio::sync::Mutex<()>,
    /// Faults armed for the AWS calls it serves.
    faults: crate::aws::faults::Faults,
}

/// The region and service a request is signed for (its SigV4 credential scope).
pub fn credential_scope(authorization: &str) -> Option<(String, String)> {
    let credential = authorization.split("Credential=").nth(1)?;
    let scope: Vec<&str> = credential.split([',', ' ']).next()?.split('/').collect();
    match scope.as_slice() {
        [_key, _date, region, service, "aws4_request"] => {
            Some((region.to_string(), service.to_string()))
        }
        _ => None,
    }
}

impl FrontDoor {
    /// Serves on `listener`: invokes go to the registry of the region they are signed for
    /// (`region`'s when unsigned), everything else to moto at `upstream`.
    pub fn start(
        listener: TcpListener,
        registries: BTreeMap<String, FunctionRegistry>,
        upstream: SocketAddr,
        region: &str,
    ) -> Self {
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let shared = Arc::new(Shared {
            registries: RwLock::new(registries),
            upstream,
            region: region.to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            dark: RwLock::default(),
            refused: Mutex::default(),
            served: Mutex::default(),
            conditional_writes: tokio::sync::Mutex::new(()),
            faults: crate::aws::faults::Faults::default(),
        });
        let served = shared.clone();
        let task = serve(listener, move |req| {
            let shared = served.clone();
            async move { route(&shared, req).await }
        });
        Self { addr, shared, task }
    }

    /// Serves `registry` as `region`'s functions from the next invoke on, like a Lambda
    /// deployment with a new configuration.
    pub fn replace_registry(&self, region: &str, registry: FunctionRegistry) {
        self.shared
            .registries
            .write()
            .expect("registry lock")
            .insert(region.to_string(), registry);
    }

    /// Blacks `region` out (`true`) or brings it back.
    pub fn set_dark(&self, region: &str, dark: bool) {
        let mut set = self.shared.dark.write().expect("dark lock");
        if dark {
            set.insert(region.to_string());
        } else {
            set.remove(region);
        }
    }

    /// Whether `region` is blacked out.
    pub fn is_dark(&self, region: &str) -> bool {
        self.handle().is_dark(region)
    }

    /// Requests refused because their region was dark: (region, service) -> count.
    pub fn refused_calls(&self) -> BTreeMap<(String, String), u64> {
        self.shared.refused.lock().expect("refused lock").clone()
    }

    /// Requests served: (region, service) -> count (`lambda` for invokes).
    pub fn served_calls(&self) -> BTreeMap<(String, String), u64> {
        self.shared.served.lock().expect("served lock").clone()
    }

    /// The faults armed in this stack (the simulated systems share them).
    pub fn faults(&self) -> crate::aws::faults::Faults {
        self.shared.faults.clone()
    }

    /// A handle that outlives borrows (for the data plane's loop).
    pub fn handle(&self) -> FrontDoorHandle {
        FrontDoorHandle {
            shared: self.shared.clone(),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL clients use, e.g. `http://127.0.0.1:4566`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A clonable view of a front door: which regions are dark, and each region's handlers.
#[derive(Clone)]
pub struct FrontDoorHandle {
    shared: Arc<Shared>,
}

impl FrontDoorHandle {
    /// Whether `region` is blacked out.
    pub fn is_dark(&self, region: &str) -> bool {
        self.shared.dark.read().expect("dark lock").contains(region)
    }

    /// `region`'s handler of `function`.
    pub fn handler(
        &self,
        region: &str,
        function: &str,
    ) -> Option<hapilot_functions::registry::Handler> {
        self.shared
            .registries
            .read()
            .expect("registry lock")
            .get(region)?
            .get(function)
    }
}

impl Drop for FrontDoor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn route(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let scope = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(credential_scope);
    if let Some((region, service)) = &scope {
        let key = (region.clone(), service.clone());
        if shared.dark.read().expect("dark lock").contains(region) {
            *shared
                .refused
                .lock()
                .expect("refused lock")
                .entry(key)
                .or_default() += 1;
            let mut response = Response::new(Full::new(Bytes::from(format!(
                "hapilot local stack: region {region} is blacked out\n"
            ))));
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            return response;
        }
        *shared
            .served
            .lock()
            .expect("served lock")
            .entry(key)
            .or_default() += 1;
    }
    if let Some((region, service)) = &scope {
        let json = req.headers().contains_key("x-amz-target")
            || req
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.contains("amz-json"));
        let protocol = crate::aws::faults::Protocol::of_aws(service, json);
        if let Some(refused) = shared
            .faults
            .apply(
                region,
                service,
                &crate::aws::faults::call_of(&req),
                protocol,
            )
            .await
        {
            return refused;
        }
    }
    if let Some(rest) = req.uri().path().strip_prefix(FUNCTION_URL_PREFIX) {
        let rest = rest.to_string();
        return serve_function_url(shared, &rest, req).await;
    }
    if req.method() == Method::POST
        && let Some(raw) = req
            .uri()
            .path()
            .strip_prefix(INVOKE_PREFIX)
            .and_then(|p| p.strip_suffix(INVOKE_SUFFIX))
    {
        let raw = raw.to_string();
        let region = scope
            .map(|(region, _)| region)
            .or_else(|| arn_region(&raw))
            .unwrap_or_else(|| shared.region.clone());
        return serve_invoke(shared, &region, &raw, req).await;
    }
    // IAM's policy simulator, which moto lacks: answered here from the roles' policies in moto.
    if req.method() == Method::POST && scope.as_ref().is_some_and(|(_, service)| service == "iam") {
        let (parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return bad_gateway(&format!("could not read the request body: {e}")),
        };
        let form = crate::aws::iam::form(&body);
        if form.first("Action") == Some("SimulatePrincipalPolicy") {
            let (status, xml) =
                crate::aws::iam::simulate_principal_policy(shared.upstream, &form).await;
            let mut response = Response::new(Full::new(Bytes::from(xml)));
            *response.status_mut() = status;
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/xml"),
            );
            return response;
        }
        return forward_bytes(shared, parts, body).await;
    }
    if req.method() == Method::POST
        && let Some(zone) = super::route53_records::change_batch_zone(req.uri().path())
    {
        let zone = zone.to_string();
        let (parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return bad_gateway(&format!("could not read the request body: {e}")),
        };
        return match record_change_refusal(shared, &parts, &zone, &body).await {
            Ok(None) => forward_bytes(shared, parts, body).await,
            Ok(Some(refusal)) => {
                tracing::info!(code = refusal.code, message = %refusal.message, "Route53 refuses a change batch");
                let request_id = uuid::Uuid::new_v4().to_string();
                let mut response =
                    Response::new(Full::new(Bytes::from(refusal.to_xml(&request_id))));
                *response.status_mut() =
                    StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
                if let Ok(id) = HeaderValue::from_str(&request_id) {
                    response.headers_mut().insert("x-amzn-requestid", id);
                }
                response
            }
            Err(e) => bad_gateway(&e),
        };
    }
    if matches!(*req.method(), Method::PUT | Method::DELETE)
        && (req.headers().contains_key(hyper::header::IF_NONE_MATCH)
            || req.headers().contains_key(hyper::header::IF_MATCH))
    {
        let _one_at_a_time = shared.conditional_writes.lock().await;
        return forward(shared, req).await;
    }
    forward(shared, req).await
}

/// A function URL with `AWS_IAM` auth, as Lambda serves it: the request must be SigV4-signed
/// for `lambda` in the URL's region by a principal whose policies allow
/// `lambda:InvokeFunctionUrl` on the function (else `403 {"Message":"Forbidden"}`, all Lambda
/// says); the function gets the payload format 2.0 event with the signer in
/// `requestContext.authorizer.iam`, and its `{statusCode, headers, body}` is the answer (an error
/// is `502 Internal Server Error`). Locally the signer is known by the access key of an IAM user
/// in moto; the signature itself is not checked (moto does not check any).
async fn serve_function_url(
    shared: &Shared,
    rest: &str,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let forbidden = || answer_json(StatusCode::FORBIDDEN, json!({"Message": "Forbidden"}));
    let mut parts = rest.splitn(3, '/');
    let (Some(region), Some(function)) = (parts.next(), parts.next()) else {
        return answer_json(
            StatusCode::NOT_FOUND,
            json!({"Message": "no such function URL"}),
        );
    };
    let path = format!("/{}", parts.next().unwrap_or_default());
    let (region, function) = (region.to_string(), function.to_string());
    let authorization = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let scope = credential_scope(&authorization);
    let access_key = authorization
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').next())
        .unwrap_or_default()
        .to_string();
    if scope != Some((region.clone(), "lambda".to_string())) || access_key.is_empty() {
        tracing::info!(%function, ?scope, "function URL call without a lambda signature for its region");
        return forbidden();
    }
    let arn = format!("arn:aws:lambda:{region}:{LOCAL_ACCOUNT_ID}:function:{function}");
    let context = [(
        "lambda:functionurlauthtype".to_string(),
        vec!["AWS_IAM".to_string()],
    )]
    .into();
    let caller = match crate::aws::iam::authorize_access_key(
        shared.upstream,
        &access_key,
        "lambda:InvokeFunctionUrl",
        &arn,
        &context,
    )
    .await
    {
        Ok((caller, "allowed")) => caller,
        Ok((caller, decision)) => {
            tracing::info!(%caller, %function, decision, "function URL call not allowed");
            return forbidden();
        }
        Err(e) => {
            tracing::info!(%function, error = %e, "function URL call by an unknown signer");
            return forbidden();
        }
    };
    let Some(handler) = shared
        .registries
        .read()
        .expect("registry lock")
        .get(&region)
        .and_then(|r| r.get(&function))
    else {
        return answer_json(
            StatusCode::NOT_FOUND,
            json!({"Message": format!("no function {function} in {region}")}),
        );
    };
    let method = req.method().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), json!(v.to_str().ok()?))))
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let (body, base64) = match std::str::from_utf8(&body) {
        Ok(text) => (text.to_string(), false),
        Err(_) => {
            use base64::Engine;
            (
                base64::engine::general_purpose::STANDARD.encode(&body),
                true,
            )
        }
    };
    let now = chrono::Utc::now();
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT_ID,
            "apiId": function,
            "authorizer": {"iam": {
                "accessKey": access_key,
                "accountId": LOCAL_ACCOUNT_ID,
                "callerId": caller.rsplit('/').next().unwrap_or_default(),
                "userArn": caller,
                "userId": caller.rsplit('/').next().unwrap_or_default(),
            }},
            "domainName": format!("{function}.lambda-url.{region}.on.aws"),
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": headers.get("user-agent").cloned().unwrap_or_default()},
            "requestId": uuid::Uuid::new_v4().to_string(),
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "body": body,
        "isBase64Encoded": base64,
    });
    match tokio::spawn(handler(event)).await {
        Ok(Ok(result)) if result.get("statusCode").is_some() => {
            let status = result["statusCode"]
                .as_u64()
                .and_then(|s| StatusCode::from_u16(s as u16).ok())
                .unwrap_or(StatusCode::OK);
            let body = result["body"].as_str().unwrap_or_default().to_string();
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = status;
            for (k, v) in result["headers"].as_object().into_iter().flatten() {
                if let (Ok(k), Some(Ok(v))) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    v.as_str().map(HeaderValue::from_str),
                ) {
                    response.headers_mut().insert(k, v);
                }
            }
            response
        }
        // A result without a status code is the body of a 200, as Lambda reads it.
        Ok(Ok(result)) => answer_json(StatusCode::OK, result),
        Ok(Err(e)) => {
            tracing::warn!(%function, error = %e, "function URL handler failed");
            answer_json(
                StatusCode::BAD_GATEWAY,
                json!({"Message": "Internal Server Error"}),
            )
        }
        Err(_) => answer_json(
            StatusCode::BAD_GATEWAY,
            json!({"Message": "Internal Server Error"}),
        ),
    }
}

fn answer_json(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Route53's refusal of a `ChangeResourceRecordSets` body, if it refuses it: the batch is
/// checked against the zone's records and health checks as moto holds them
/// ([`super::route53_records`]).
async fn record_change_refusal(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    zone: &str,
    body: &Bytes,
) -> Result<Option<super::route53_records::Refusal>, String> {
    use super::route53_records as rules;
    let changes = match rules::parse_change_batch(&String::from_utf8_lossy(body)) {
        Ok(c) => c,
        Err(refusal) => return Ok(Some(refusal)),
    };
    let mut current = Vec::new();
    let mut query = String::new();
    loop {
        let (status, page) = upstream_get(
            shared,
            parts,
            &format!("/2013-04-01/hostedzone/{zone}/rrset{query}"),
        )
        .await?;
        if !status.is_success() {
            // No such zone and the like: moto answers with Route53's error.
            return Ok(None);
        }
        let (records, next) = rules::parse_record_page(&String::from_utf8_lossy(&page))
            .map_err(|e| format!("moto's record listing of {zone} is unreadable: {e}"))?;
        current.extend(records);
        let Some((name, record_type, identifier)) = next else {
            break;
        };
        let encode = |t: &str| {
            percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        query = format!("?name={}&type={}", encode(&name), encode(&record_type));
        if let Some(id) = identifier {
            query.push_str(&format!("&identifier={}", encode(&id)));
        }
    }
    let zone_name = current
        .iter()
        .find(|r| r.record_type == "SOA")
        .map(|r| r.name.clone())
        .unwrap_or_else(|| zone.to_string());
    let mut health_checks = BTreeSet::new();
    for id in changes
        .iter()
        .filter_map(|c| c.record.health_check_id.clone())
        .collect::<BTreeSet<_>>()
    {
        let (status, _) =
            upstream_get(shared, parts, &format!("/2013-04-01/healthcheck/{id}")).await?;
        if status.is_success() {
            health_checks.insert(id);
        }
    }
    Ok(rules::check_change_batch(&zone_name, &current, &changes, &health_checks).err())
}

/// A `GET` of `path` from moto, signed as the request in `parts` was (moto reads the scope).
async fn upstream_get(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    path: &str,
) -> Result<(StatusCode, Bytes), String> {
    let mut builder = Request::builder()
        .method(Method::GET)
        .uri(format!("http://{}{path}", shared.upstream));
    for name in [
        hyper::header::AUTHORIZATION,
        HeaderName::from_static("x-amz-date"),
    ] {
        if let Some(value) = parts.headers.get(&name) {
            builder = builder.header(name, value);
        }
    }
    let request = builder
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("could not ask moto for {path}: {e}"))?;
    let answer = shared
        .client
        .request(request)
        .await
        .map_err(|e| format!("moto at {} did not answer {path}: {e}", shared.upstream))?;
    let status = answer.status();
    let body = answer
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("moto's answer to {path} broke off: {e}"))?
        .to_bytes();
    Ok((status, body))
}

/// The function name inside a path segment that may be a name, `name:qualifier`, a full ARN or
/// a partial ARN (`123456789012:function:name`), percent-encoded or not.
pub fn function_name(raw: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let after = match decoded.find(":function:") {
        Some(at) => &decoded[at + ":function:".len()..],
        None => &decoded[..],
    };
    after.split(':').next().unwrap_or_default().to_string()
}

/// The region of a function ARN in an invoke path, if it is one.
fn arn_region(raw: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let rest = decoded.strip_prefix("arn:aws:lambda:")?;
    rest.split(':')
        .next()
        .filter(|r| !r.is_empty())
        .map(str::to_string)
}

async fn serve_invoke(
    shared: &Shared,
    region: &str,
    raw_name: &str,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let name = function_name(raw_name);
    let invocation_type = req
        .headers()
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse")
        .to_string();
    let handler = shared
        .registries
        .read()
        .expect("registry lock")
        .get(region)
        .and_then(|r| r.get(&name));
    let Some(handler) = handler else {
        let arn = format!("arn:aws:lambda:{region}:{LOCAL_ACCOUNT_ID}:function:{name}");
        tracing::warn!(function = %name, "invoke of an unknown function");
        return aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {arn}"),
            &request_id,
        );
    };
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContentException",
                &format!("Could not read request body: {e}"),
                &request_id,
            );
        }
    };
    let event: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return aws_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    &format!("Could not parse request body into json: {e}"),
                    &request_id,
                );
            }
        }
    };
    match invocation_type.as_str() {
        "DryRun" => return lambda_answer(StatusCode::NO_CONTENT, Bytes::new(), &request_id, None),
        "Event" => {
            let name = name.clone();
            tokio::spawn(async move {
                let outcome = tokio::spawn(handler(event)).await;
                log_outcome(&name, "Event", &outcome);
            });
            return lambda_answer(StatusCode::ACCEPTED, Bytes::new(), &request_id, None);
        }
        _ => {}
    }
    let started = Instant::now();
    // A separate task, so a panicking handler is reported like Lambda does and the host lives on.
    let outcome = tokio::spawn(handler(event)).await;
    let elapsed_ms = started.elapsed().as_millis();
    log_outcome(&name, &request_id, &outcome);
    tracing::debug!(function = %name, %request_id, elapsed_ms, "invoke done");
    match outcome {
        Ok(Ok(result)) => lambda_answer(
            StatusCode::OK,
            Bytes::from(result.to_string()),
            &request_id,
            None,
        ),
        Ok(Err(e)) => {
            let body = json!({ "errorType": e.error_type(), "errorMessage": e.to_string() });
            lambda_answer(
                StatusCode::OK,
                Bytes::from(body.to_string()),
                &request_id,
                Some("Unhandled"),
            )
        }
        Err(join_error) => {
            // The same errorType and message lambda_runtime's panic layer reports in AWS.
            let message = match join_error.try_into_panic() {
                Ok(payload) => match payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                {
                    Some(msg) => format!("Lambda panicked: {msg}"),
                    None => "Lambda panicked".to_string(),
                },
                Err(_) => "Lambda invocation was cancelled".to_string(),
            };
            let error_type = std::any::type_name::<Box<dyn std::any::Any + Send>>();
            let body = json!({ "errorType": error_type, "errorMessage": message });
            lambda_answer(
                StatusCode::OK,
                Bytes::from(body.to_string()),
                &request_id,
                Some("Unhandled"),
            )
        }
    }
}

type Outcome = Result<Result<Value, hapilot_functions::FunctionError>, tokio::task::JoinError>;

fn log_outcome(function: &str, request_id: &str, outcome: &Outcome) {
    match outcome {
        Ok(Ok(_)) => tracing::info!(%function, %request_id, "invoke succeeded"),
        Ok(Err(e)) => {
            tracing::info!(%function, %request_id, error_type = e.error_type(), error = %e, "invoke failed")
        }
        Err(e) => tracing::error!(%function, %request_id, error = %e, "handler panicked"),
    }
}

fn lambda_answer(
    status: StatusCode,
    body: Bytes,
    request_id: &str,
    function_error: Option<&str>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        "x-amz-executed-version",
        HeaderValue::from_static("$LATEST"),
    );
    insert_request_id(headers, request_id);
    if let Some(kind) = function_error {
        headers.insert(
            "x-amz-function-error",
            HeaderValue::from_str(kind).expect("static ASCII"),
        );
    }
    response
}

fn aws_error(
    status: StatusCode,
    error_type: &str,
    message: &str,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let body = json!({ "Type": "User", "Message": message, "message": message });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        "x-amzn-errortype",
        HeaderValue::from_str(error_type).unwrap_or(HeaderValue::from_static("ServiceException")),
    );
    insert_request_id(headers, request_id);
    response
}

fn insert_request_id(headers: &mut hyper::HeaderMap, request_id: &str) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", v);
    }
}

/// Headers that describe one connection, not the message: never forwarded.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

async fn forward(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return bad_gateway(&format!("could not read the request body: {e}")),
    };
    forward_bytes(shared, parts, body).await
}

async fn forward_bytes(
    shared: &Shared,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let uri = format!("http://{}{}", shared.upstream, path);
    let mut builder = Request::builder().method(parts.method).uri(uri);
    for (name, value) in parts.headers.iter().filter(|(n, _)| !is_hop_by_hop(n)) {
        builder = builder.header(name, value);
    }
    let request = match builder.body(Full::new(body)) {
        Ok(r) => r,
        Err(e) => return bad_gateway(&format!("could not forward the request: {e}")),
    };
    let answer = match shared.client.request(request).await {
        Ok(a) => a,
        Err(e) => {
            return bad_gateway(&format!("moto at {} did not answer: {e}", shared.upstream));
        }
    };
    let (parts, body) = answer.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return bad_gateway(&format!("moto's answer broke off: {e}")),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = parts.status;
    for (name, value) in parts.headers.iter().filter(|(n, _)| !is_hop_by_hop(n)) {
        response.headers_mut().append(name, value.clone());
    }
    response
}

fn bad_gateway(message: &str) -> Response<Full<Bytes>> {
    tracing::warn!(message, "front door: forward failed");
    let mut response = Response::new(Full::new(Bytes::from(format!(
        "hapilot local stack: {message}\n"
    ))));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

/// Invokes `function` through a front door at `endpoint` the way EventBridge or the CLI does;
/// a function error comes back as `Err((errorType, errorMessage))`.
pub async fn invoke(
    endpoint: &str,
    function: &str,
    payload: &Value,
) -> Result<Value, (String, String)> {
    let response = reqwest::Client::new()
        .post(format!(
            "{endpoint}{INVOKE_PREFIX}{function}{INVOKE_SUFFIX}"
        ))
        .body(payload.to_string())
        .send()
        .await
        .map_err(|e| ("Transport".to_string(), e.to_string()))?;
    let function_error = response.headers().contains_key("x-amz-function-error");
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| ("InvalidResponse".to_string(), e.to_string()))?;
    if function_error || !status.is_success() {
        let kind = body["errorType"]
            .as_str()
            .or(body["Type"].as_str())
            .unwrap_or("Unknown");
        let message = body["errorMessage"]
            .as_str()
            .or(body["Message"].as_str())
            .unwrap_or("");
        return Err((kind.to_string(), message.to_string()));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::{arn_region, credential_scope, function_name};

    #[test]
    fn the_region_comes_from_the_credential_scope_or_the_function_arn() {
        let auth = "AWS4-HMAC-SHA256 Credential=ak/20261130/us-west-2/lambda/aws4_request, \
                    SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(
            credential_scope(auth),
            Some(("us-west-2".into(), "lambda".into()))
        );
        assert_eq!(credential_scope("Bearer x"), None);
        assert_eq!(
            arn_region("arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3Ax").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(arn_region("check-health"), None);
    }

    #[test]
    fn function_names_in_every_form() {
        for raw in [
            "check-health",
            "check-health:$LATEST",
            "arn:aws:lambda:us-east-1:123456789012:function:check-health",
            "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Acheck-health",
            "arn:aws:lambda:us-east-1:123456789012:function:check-health:prod",
            "123456789012:function:check-health",
        ] {
            assert_eq!(function_name(raw), "check-health", "{raw}");
        }
    }
}
