//! Simulated user traffic and the two places the canary gate reads it from.
//!
//! Each simulated region serves requests at a rate with an error rate that a test or the drill
//! sets ([`TrafficModel::set`]); counters are exact integrals of those rates over time. A
//! [`SimulatedPrometheus`] answers the Prometheus HTTP API subset hapilot's default queries use
//! (`sum(increase(http_requests_total{region="R"[,status=~"5.."]}[Ns]))`), and a
//! [`LoadBalancerMetrics`] publisher puts each second's request and 5xx counts into the region's
//! CloudWatch, as an application load balancer does.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{Region, SdkConfig};
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::http::{Answer, answer, serve_state};

/// Requests per second and error rate of one region, over time.
#[derive(Debug)]
pub struct TrafficModel {
    started: Instant,
    /// (from, requests per second, error rate), in time order.
    segments: Mutex<Vec<(Instant, f64, f64)>>,
}

impl Default for TrafficModel {
    fn default() -> Self {
        let now = Instant::now();
        Self {
            started: now,
            segments: Mutex::new(vec![(now, 0.0, 0.0)]),
        }
    }
}

impl TrafficModel {
    /// From now on, `rps` requests per second of which `error_rate` (0-1) fail with 5xx.
    pub fn set(&self, rps: f64, error_rate: f64) {
        self.segments.lock().expect("traffic lock").push((
            Instant::now(),
            rps.max(0.0),
            error_rate.clamp(0.0, 1.0),
        ));
    }

    /// (requests, errors) served between `from` and `to`.
    pub fn between(&self, from: Instant, to: Instant) -> (f64, f64) {
        let segments = self.segments.lock().expect("traffic lock");
        let mut requests = 0.0;
        let mut errors = 0.0;
        for (i, (start, rps, rate)) in segments.iter().enumerate() {
            let end = segments.get(i + 1).map(|s| s.0).unwrap_or(to);
            let (a, b) = ((*start).max(from), end.min(to));
            if b > a {
                let n = rps * (b - a).as_secs_f64();
                requests += n;
                errors += n * rate;
            }
        }
        (requests, errors)
    }

    /// (requests, errors) over the last `window`.
    pub fn last(&self, window: Duration) -> (f64, f64) {
        let now = Instant::now();
        self.between(now.checked_sub(window).unwrap_or(self.started), now)
    }

    /// Totals since the start (the counters a `/metrics` endpoint exposes).
    pub fn totals(&self) -> (f64, f64) {
        self.between(self.started, Instant::now())
    }
}

struct PrometheusState {
    regions: BTreeMap<String, Arc<TrafficModel>>,
    down: Mutex<bool>,
    /// The `Authorization` value an authenticating proxy in front of it requires.
    authorization: Mutex<Option<String>>,
}

/// A Prometheus HTTP API stand-in over the regions' traffic models; stops when dropped.
pub struct SimulatedPrometheus {
    addr: SocketAddr,
    state: Arc<PrometheusState>,
    task: tokio::task::JoinHandle<()>,
}

impl SimulatedPrometheus {
    /// Serves queries about `regions`.
    pub async fn start(regions: BTreeMap<String, Arc<TrafficModel>>) -> std::io::Result<Self> {
        let state = Arc::new(PrometheusState {
            regions,
            down: Mutex::new(false),
            authorization: Mutex::new(None),
        });
        let (addr, task) = serve_state(
            state.clone(),
            |state, req| async move { query(&state, req) },
        )
        .await?;
        Ok(Self { addr, state, task })
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Puts it behind an authenticating proxy: every request then needs `Authorization` to be
    /// exactly `authorization` (`Bearer <token>`, or [`super::http::basic_authorization`]).
    pub fn require_authorization(&self, authorization: &str) {
        *self.state.authorization.lock().expect("auth lock") = Some(authorization.to_string());
    }

    /// Makes every query fail with 503 (a Prometheus outage).
    pub fn set_down(&self, down: bool) {
        *self.state.down.lock().expect("down lock") = down;
    }
}

impl Drop for SimulatedPrometheus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn bad_data(message: String) -> Answer {
    answer(
        StatusCode::BAD_REQUEST,
        "application/json",
        json!({ "status": "error", "errorType": "bad_data", "error": message }).to_string(),
    )
}

/// Parses `sum(increase(http_requests_total{LABELS}[Ns]))` into (region, errors only, window).
fn parse_query(q: &str) -> Option<(String, bool, u64)> {
    let inner = q
        .trim()
        .strip_prefix("sum(increase(http_requests_total{")?
        .strip_suffix("]))")?;
    let (labels, window) = inner.split_once("}[")?;
    let window: u64 = window.strip_suffix('s')?.parse().ok()?;
    let mut region = None;
    let mut errors_only = false;
    for label in labels.split(',').map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(v) = label
            .strip_prefix("region=\"")
            .and_then(|v| v.strip_suffix('"'))
        {
            region = Some(v.to_string());
        } else if label == "status=~\"5..\"" {
            errors_only = true;
        } else {
            return None;
        }
    }
    Some((region?, errors_only, window))
}

fn query(state: &PrometheusState, req: Request<Incoming>) -> Answer {
    let required = state.authorization.lock().expect("auth lock").clone();
    if !super::http::authorized(&req, required.as_deref()) {
        return super::http::unauthorized("prometheus", "Unauthorized\n");
    }
    if *state.down.lock().expect("down lock") {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "Service Unavailable\n",
        );
    }
    if req.uri().path() != "/api/v1/query" {
        return answer(StatusCode::NOT_FOUND, "text/plain", "404 page not found\n");
    }
    let q = req
        .uri()
        .query()
        .and_then(|qs| {
            qs.split('&')
                .find_map(|kv| kv.strip_prefix("query="))
                .map(|v| {
                    percent_encoding::percent_decode_str(&v.replace('+', " "))
                        .decode_utf8_lossy()
                        .into_owned()
                })
        })
        .unwrap_or_default();
    let Some((region, errors_only, window)) = parse_query(&q) else {
        return bad_data(format!(
            "this Prometheus stand-in only answers sum(increase(http_requests_total{{region=\"...\"[,status=~\"5..\"]}}[Ns])), not {q:?}"
        ));
    };
    let result = match state.regions.get(&region) {
        Some(model) => {
            let (requests, errors) = model.last(Duration::from_secs(window));
            let value = if errors_only { errors } else { requests };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            json!([{ "metric": {}, "value": [now, format!("{value}")] }])
        }
        None => json!([]),
    };
    answer(
        StatusCode::OK,
        "application/json",
        json!({ "status": "success", "data": { "resultType": "vector", "result": result } })
            .to_string(),
    )
}

/// Puts each region's per-second request and 5xx counts into that region's CloudWatch, as a
/// load balancer does; stops when dropped.
pub struct LoadBalancerMetrics {
    task: tokio::task::JoinHandle<()>,
}

/// The namespace the local load balancers publish to.
pub const LB_NAMESPACE: &str = "AWS/ApplicationELB";

impl LoadBalancerMetrics {
    /// Publishes every second for `regions` (region -> (load balancer dimension value, traffic)).
    pub fn start(sdk: &SdkConfig, regions: BTreeMap<String, (String, Arc<TrafficModel>)>) -> Self {
        let clients: Vec<(aws_sdk_cloudwatch::Client, String, Arc<TrafficModel>)> = regions
            .into_iter()
            .map(|(region, (lb, model))| {
                let config = aws_sdk_cloudwatch::config::Builder::from(sdk)
                    .region(Region::new(region))
                    .build();
                (aws_sdk_cloudwatch::Client::from_conf(config), lb, model)
            })
            .collect();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut last = Instant::now();
            loop {
                tick.tick().await;
                let now = Instant::now();
                let stamp = std::time::SystemTime::now() - (now - last);
                for (client, lb, model) in &clients {
                    let (requests, errors) = model.between(last, now);
                    let datum = |name: &str, value: f64| {
                        MetricDatum::builder()
                            .metric_name(name)
                            .dimensions(Dimension::builder().name("LoadBalancer").value(lb).build())
                            .timestamp(stamp.into())
                            .value(value)
                            .unit(StandardUnit::Count)
                            .build()
                    };
                    let _ = client
                        .put_metric_data()
                        .namespace(LB_NAMESPACE)
                        .metric_data(datum("RequestCount", requests))
                        .metric_data(datum("HTTPCode_Target_5XX_Count", errors))
                        .send()
                        .await;
                }
                last = now;
            }
        });
        Self { task }
    }
}

impl Drop for LoadBalancerMetrics {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_integrate_the_rates() {
        let m = TrafficModel::default();
        let t0 = Instant::now();
        m.segments.lock().unwrap().push((t0, 100.0, 0.25));
        let (r, e) = m.between(t0, t0 + Duration::from_secs(2));
        assert!(
            (r - 200.0).abs() < 1e-6 && (e - 50.0).abs() < 1e-6,
            "{r} {e}"
        );
        assert_eq!(
            parse_query(
                r#"sum(increase(http_requests_total{region="us-east-1",status=~"5.."}[300s]))"#
            ),
            Some(("us-east-1".to_string(), true, 300))
        );
        assert_eq!(parse_query("up"), None);
    }
}
