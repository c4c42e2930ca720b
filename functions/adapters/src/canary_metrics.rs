//! Traffic metrics of a region (requests and 5xx errors over a window), for the canary gate.
//!
//! Two providers: CloudWatch `GetMetricData` (the load balancer's request and 5xx counts, two
//! metric queries; the ratio is computed by the caller, since metric math is not portable), and
//! the Prometheus HTTP API (`/api/v1/query` with configurable query templates, `{region}` and
//! `{window}` substituted). No data is an error, never zero traffic.

use std::collections::BTreeMap;
use std::future::Future;

use aws_config::{Region, SdkConfig};
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use hapilot_core::canary::TrafficMeasurement;
use serde::{Deserialize, Serialize};

use crate::AdapterError;

/// Where traffic metrics come from (deployment configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrafficSource {
    /// CloudWatch metrics of each region's load balancer.
    Cloudwatch {
        /// e.g. `AWS/ApplicationELB`.
        namespace: String,
        /// e.g. `RequestCount`.
        request_metric: String,
        /// e.g. `HTTPCode_Target_5XX_Count`.
        error_metric: String,
        /// Per region: the dimensions that select its load balancer (`LoadBalancer` -> `app/...`).
        dimensions: BTreeMap<String, BTreeMap<String, String>>,
    },
    /// A Prometheus server.
    Prometheus {
        /// Base URL, e.g. `http://prometheus:9090`.
        url: String,
        /// Query for requests in the window, e.g.
        /// `sum(increase(http_requests_total{region="{region}"}[{window}]))`.
        request_query: String,
        /// Query for 5xx errors in the window.
        error_query: String,
        /// PEM file of the CA that signed Prometheus' certificate.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca_file: Option<String>,
        /// Bearer token or basic authentication (Prometheus behind a proxy, Grafana Cloud).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auth: Option<crate::http_client::HttpAuth>,
        /// Latency series for the canary judge: the gateway's own histograms
        /// ([`LatencyPreset`]), and/or name -> query template (`{region}`, `{rate_window}`).
        #[serde(default, skip_serializing_if = "LatencyQueries::is_empty")]
        latency: LatencyQueries,
    },
}

/// The latency series the canary judge compares, sampled over the bake with `query_range`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyQueries {
    /// p50/p95/p99 of a known gateway's own latency histogram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<LatencyPreset>,
    /// More series: name -> PromQL template (`{region}`, `{rate_window}` substituted).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub queries: BTreeMap<String, String>,
    /// The `rate()` window of the templates, milliseconds (at least two scrape intervals).
    #[serde(default = "default_rate_window")]
    pub rate_window_ms: u64,
    /// Samples per bake window.
    #[serde(default = "default_samples")]
    pub samples: u32,
}

impl Default for LatencyQueries {
    fn default() -> Self {
        Self {
            preset: None,
            queries: BTreeMap::new(),
            rate_window_ms: default_rate_window(),
            samples: default_samples(),
        }
    }
}

fn default_rate_window() -> u64 {
    60_000
}
fn default_samples() -> u32 {
    12
}

/// Gateways whose latency histograms hapilot knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyPreset {
    /// LiteLLM's `litellm_request_total_latency_metric` (seconds).
    Litellm,
    /// vLLM's `vllm:e2e_request_latency_seconds`.
    Vllm,
    /// A plain `http_request_duration_seconds` histogram (the local world's gateways).
    Http,
}

impl LatencyQueries {
    /// Nothing configured: the judge compares error counts only.
    pub fn is_empty(&self) -> bool {
        self.preset.is_none() && self.queries.is_empty()
    }

    /// Every series by name: the preset's p50/p95/p99, then the explicit ones.
    pub fn templates(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(preset) = self.preset {
            let histogram = match preset {
                LatencyPreset::Litellm => "litellm_request_total_latency_metric_bucket",
                LatencyPreset::Vllm => "vllm:e2e_request_latency_seconds_bucket",
                LatencyPreset::Http => "http_request_duration_seconds_bucket",
            };
            for (name, q) in [("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99")] {
                out.insert(
                    format!("{name} latency (s)"),
                    format!(
                        r#"histogram_quantile({q}, sum by (le) (rate({histogram}{{region="{{region}}"}}[{{rate_window}}])))"#
                    ),
                );
            }
        }
        out.extend(self.queries.clone());
        out
    }
}

/// Latency series by name, each sampled over a window (`None`: missing or unreadable).
pub type LatencySeries = Vec<(String, Option<Vec<f64>>)>;

/// Measures a region's traffic.
pub trait TrafficMetrics: Send + Sync {
    /// Requests and errors of `region` over the last `window_secs`.
    fn measure(
        &self,
        region: &str,
        window_secs: u64,
    ) -> impl Future<Output = Result<TrafficMeasurement, AdapterError>> + Send;

    /// Each configured latency series of `region`, sampled over the last `window_secs`
    /// (`None`: missing or unreadable, which the judge calls inconclusive); empty when none
    /// is configured.
    fn latency(
        &self,
        region: &str,
        window_secs: u64,
    ) -> impl Future<Output = LatencySeries> + Send {
        let _ = (region, window_secs);
        async { Vec::new() }
    }
}

/// [`TrafficMetrics`] from either provider.
#[derive(Debug, Clone)]
pub struct TrafficProvider {
    source: TrafficSource,
    sdk: SdkConfig,
    http: reqwest::Client,
}

impl TrafficProvider {
    /// Measures with `source`; CloudWatch calls go to each region's endpoint from `sdk`.
    pub fn new(source: TrafficSource, sdk: SdkConfig, http: reqwest::Client) -> Self {
        Self { source, sdk, http }
    }

    async fn cloudwatch(
        &self,
        region: &str,
        window_secs: u64,
        namespace: &str,
        request_metric: &str,
        error_metric: &str,
        dimensions: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<TrafficMeasurement, AdapterError> {
        let dims = dimensions.get(region).ok_or_else(|| {
            AdapterError::NotFound(format!(
                "no load balancer dimensions configured for region {region}"
            ))
        })?;
        let config = aws_sdk_cloudwatch::config::Builder::from(&self.sdk)
            .region(Region::new(region.to_string()))
            .build();
        let client = aws_sdk_cloudwatch::Client::from_conf(config);
        let period = (window_secs.max(1).div_ceil(60) * 60) as i32;
        let query = |id: &str, metric: &str| {
            MetricDataQuery::builder()
                .id(id)
                .return_data(true)
                .metric_stat(
                    MetricStat::builder()
                        .metric(
                            Metric::builder()
                                .namespace(namespace)
                                .metric_name(metric)
                                .set_dimensions(Some(
                                    dims.iter()
                                        .map(|(n, v)| Dimension::builder().name(n).value(v).build())
                                        .collect(),
                                ))
                                .build(),
                        )
                        .period(period)
                        .stat("Sum")
                        .build(),
                )
                .build()
        };
        let end = std::time::SystemTime::now();
        let start = end - std::time::Duration::from_secs(window_secs.max(1));
        let out = client
            .get_metric_data()
            .metric_data_queries(query("requests", request_metric))
            .metric_data_queries(query("errors", error_metric))
            .start_time(start.into())
            .end_time(end.into())
            .send()
            .await
            .map_err(AdapterError::aws("GetMetricData"))?;
        let sum = |id: &str| {
            out.metric_data_results()
                .iter()
                .find(|r| r.id() == Some(id))
                .map(|r| (r.values().len(), r.values().iter().sum::<f64>()))
        };
        match (sum("requests"), sum("errors")) {
            (Some((n, requests)), errors) if n > 0 => Ok(TrafficMeasurement {
                requests,
                errors: errors.map(|e| e.1).unwrap_or(0.0),
            }),
            _ => Err(AdapterError::NotFound(format!(
                "CloudWatch has no {namespace}/{request_metric} data for {region} in the last {window_secs} s"
            ))),
        }
    }

    /// A GET to the Prometheus API, with the provider's authentication when it has one.
    fn get(&self, url: reqwest::Url) -> reqwest::RequestBuilder {
        let request = self.http.get(url);
        match &self.source {
            TrafficSource::Prometheus {
                auth: Some(auth), ..
            } => auth.apply(request),
            _ => request,
        }
    }

    /// One series' values over the last `window_secs` (`query_range`), NaN dropped (no
    /// traffic in a `rate()` window); `None` when the query fails or returns nothing.
    async fn prometheus_range(
        &self,
        url: &str,
        query: &str,
        window_secs: u64,
        samples: u32,
    ) -> Option<Vec<f64>> {
        let end = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs_f64();
        let step = (window_secs.max(1) as f64 / f64::from(samples.max(2))).max(0.001);
        let endpoint = format!("{}/api/v1/query_range", url.trim_end_matches('/'));
        let url = reqwest::Url::parse_with_params(
            &endpoint,
            &[
                ("query", query.to_string()),
                ("start", format!("{:.3}", end - window_secs.max(1) as f64)),
                ("end", format!("{end:.3}")),
                ("step", format!("{step:.3}")),
            ],
        )
        .ok()?;
        let body: serde_json::Value = self.get(url).send().await.ok()?.json().await.ok()?;
        if body["status"] != "success" {
            return None;
        }
        let values: Vec<f64> = body["data"]["result"].as_array()?.first()?["values"]
            .as_array()?
            .iter()
            .filter_map(|v| v[1].as_str()?.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .collect();
        (!values.is_empty()).then_some(values)
    }

    async fn prometheus(
        &self,
        url: &str,
        template: &str,
        region: &str,
        window_secs: u64,
    ) -> Result<f64, AdapterError> {
        let query = template
            .replace("{region}", region)
            .replace("{window}", &format!("{window_secs}s"));
        let endpoint = format!("{}/api/v1/query", url.trim_end_matches('/'));
        let fail = |detail: String| AdapterError::Http {
            system: "Prometheus",
            url: endpoint.clone(),
            detail,
        };
        let url = reqwest::Url::parse_with_params(&endpoint, &[("query", query.as_str())])
            .map_err(|e| fail(crate::error::error_chain(&e)))?;
        let response = self.get(url).send().await.map_err(|e| {
            fail(crate::error::error_chain(&e))
                .transient_if(crate::error::send_failure_is_transient(&e))
        })?;
        let status = response.status();
        if matches!(status.as_u16(), 401 | 403) {
            return Err(fail(format!(
                "HTTP {status}: the credentials were refused or missing (set the provider's auth \
                 through HAPILOT_CANARY_SECRET)"
            )));
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| fail(format!("HTTP {status}: {e}")))?;
        if body["status"] != "success" {
            return Err(fail(format!(
                "HTTP {status}: {} {}",
                body["errorType"], body["error"]
            )));
        }
        let value = body["data"]["result"]
            .as_array()
            .and_then(|r| r.first())
            .and_then(|s| s["value"][1].as_str())
            .ok_or_else(|| fail(format!("empty result for {query}")))?;
        let value: f64 = value
            .parse()
            .map_err(|_| fail(format!("not a number: {value}")))?;
        if value.is_nan() {
            return Err(fail(format!("NaN for {query}")));
        }
        Ok(value)
    }
}

impl TrafficMetrics for TrafficProvider {
    async fn measure(
        &self,
        region: &str,
        window_secs: u64,
    ) -> Result<TrafficMeasurement, AdapterError> {
        match &self.source {
            TrafficSource::Cloudwatch {
                namespace,
                request_metric,
                error_metric,
                dimensions,
            } => {
                self.cloudwatch(
                    region,
                    window_secs,
                    namespace,
                    request_metric,
                    error_metric,
                    dimensions,
                )
                .await
            }
            TrafficSource::Prometheus {
                url,
                request_query,
                error_query,
                ..
            } => Ok(TrafficMeasurement {
                requests: self
                    .prometheus(url, request_query, region, window_secs)
                    .await?,
                errors: self
                    .prometheus(url, error_query, region, window_secs)
                    .await?,
            }),
        }
    }

    async fn latency(&self, region: &str, window_secs: u64) -> LatencySeries {
        let TrafficSource::Prometheus { url, latency, .. } = &self.source else {
            return Vec::new();
        };
        let rate_window = format!("{}ms", latency.rate_window_ms.max(1));
        let mut out = Vec::new();
        for (name, template) in latency.templates() {
            let query = template
                .replace("{region}", region)
                .replace("{rate_window}", &rate_window);
            let values = self
                .prometheus_range(url, &query, window_secs, latency.samples)
                .await;
            out.push((name, values));
        }
        out
    }
}

/// In-memory [`TrafficMetrics`]: a fixed measurement per region.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone, Default)]
pub struct MemoryTrafficMetrics {
    /// Region -> requests and errors in any window.
    pub regions: std::collections::BTreeMap<String, TrafficMeasurement>,
    /// Region -> latency series by name (`None`: missing).
    pub latencies: std::collections::BTreeMap<String, LatencySeries>,
}

#[cfg(any(test, feature = "fakes"))]
impl TrafficMetrics for MemoryTrafficMetrics {
    async fn measure(
        &self,
        region: &str,
        _window_secs: u64,
    ) -> Result<TrafficMeasurement, AdapterError> {
        self.regions
            .get(region)
            .cloned()
            .ok_or_else(|| AdapterError::NotFound(format!("no traffic metrics for {region}")))
    }

    async fn latency(&self, region: &str, _window_secs: u64) -> LatencySeries {
        self.latencies.get(region).cloned().unwrap_or_default()
    }
}
