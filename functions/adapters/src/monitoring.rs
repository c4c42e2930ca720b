//! CloudWatch: reading alarms (to re-verify an event) and putting hapilot's own metrics, either
//! through the API (`PutMetricData`) or, in Lambda, as embedded metric format (EMF) log lines
//! that CloudWatch Logs turns into metrics: no API call on the run's path, no throttling, no
//! `cloudwatch:PutMetricData` permission.

use std::future::Future;

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};

use crate::AdapterError;

/// Reads an alarm's current state.
pub trait AlarmReader: Send + Sync {
    /// `ALARM`, `OK`, `INSUFFICIENT_DATA`, or `None` when there is no such alarm.
    fn alarm_state(
        &self,
        alarm_name: &str,
    ) -> impl Future<Output = Result<Option<String>, AdapterError>> + Send;

    /// The same, for an alarm in `region` (the region its ARN names), with a short deadline:
    /// a dark region must cost seconds, not the SDK's default retries.
    fn alarm_state_in(
        &self,
        region: &str,
        alarm_name: &str,
    ) -> impl Future<Output = Result<Option<String>, AdapterError>> + Send;
}

/// One metric value.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue {
    /// Metric name, e.g. `FailoverDurationSeconds`.
    pub name: String,
    /// The value.
    pub value: f64,
    /// `Seconds`, `Count`, ...
    pub unit: String,
    /// Stored at 1-second resolution (alarms over 10-second periods need it).
    pub high_resolution: bool,
}

impl MetricValue {
    /// A duration in seconds.
    pub fn seconds(name: impl Into<String>, value: f64) -> Self {
        Self {
            name: name.into(),
            value,
            unit: "Seconds".into(),
            high_resolution: false,
        }
    }

    /// A count (1/0 for a verdict).
    pub fn count(name: impl Into<String>, value: f64) -> Self {
        Self {
            name: name.into(),
            value,
            unit: "Count".into(),
            high_resolution: false,
        }
    }

    /// The same value at 1-second storage resolution.
    pub fn high_resolution(mut self) -> Self {
        self.high_resolution = true;
        self
    }
}

/// Puts metrics.
pub trait Metrics: Send + Sync {
    /// Puts `values` in `namespace` with `dimensions`.
    fn put(
        &self,
        namespace: &str,
        dimensions: &[(String, String)],
        values: &[MetricValue],
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;
}

/// [`AlarmReader`] and [`Metrics`] on CloudWatch.
#[derive(Debug, Clone)]
pub struct CloudWatch {
    client: aws_sdk_cloudwatch::Client,
    sdk: Option<std::sync::Arc<aws_config::SdkConfig>>,
}

impl CloudWatch {
    /// A CloudWatch client from `config`.
    pub fn from_sdk(config: &aws_config::SdkConfig) -> Self {
        Self {
            client: aws_sdk_cloudwatch::Client::new(config),
            sdk: Some(std::sync::Arc::new(config.clone())),
        }
    }

    /// Uses `client` (alarms of other regions are then read through it too).
    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        Self { client, sdk: None }
    }

    fn client_in(&self, region: &str) -> aws_sdk_cloudwatch::Client {
        let Some(sdk) = &self.sdk else {
            return self.client.clone();
        };
        let config = aws_sdk_cloudwatch::config::Builder::from(sdk.as_ref())
            .region(aws_config::Region::new(region.to_string()))
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(std::time::Duration::from_secs(5))
                    .operation_attempt_timeout(std::time::Duration::from_secs(2))
                    .build(),
            )
            .build();
        aws_sdk_cloudwatch::Client::from_conf(config)
    }
}

async fn read_alarm_state(
    client: &aws_sdk_cloudwatch::Client,
    alarm_name: &str,
) -> Result<Option<String>, AdapterError> {
    let out = client
        .describe_alarms()
        .alarm_names(alarm_name)
        .send()
        .await
        .map_err(AdapterError::aws("DescribeAlarms"))?;
    Ok(out
        .metric_alarms()
        .iter()
        .find(|a| a.alarm_name() == Some(alarm_name))
        .and_then(|a| a.state_value().map(|s| s.as_str().to_string())))
}

impl AlarmReader for CloudWatch {
    async fn alarm_state_in(
        &self,
        region: &str,
        alarm_name: &str,
    ) -> Result<Option<String>, AdapterError> {
        read_alarm_state(&self.client_in(region), alarm_name).await
    }

    async fn alarm_state(&self, alarm_name: &str) -> Result<Option<String>, AdapterError> {
        read_alarm_state(&self.client, alarm_name).await
    }
}

impl Metrics for CloudWatch {
    async fn put(
        &self,
        namespace: &str,
        dimensions: &[(String, String)],
        values: &[MetricValue],
    ) -> Result<(), AdapterError> {
        let dims: Vec<Dimension> = dimensions
            .iter()
            .map(|(n, v)| Dimension::builder().name(n).value(v).build())
            .collect();
        let data: Vec<MetricDatum> = values
            .iter()
            .map(|m| {
                MetricDatum::builder()
                    .metric_name(&m.name)
                    .value(m.value)
                    .unit(StandardUnit::from(m.unit.as_str()))
                    .set_dimensions(Some(dims.clone()))
                    .storage_resolution(if m.high_resolution { 1 } else { 60 })
                    .build()
            })
            .collect();
        self.client
            .put_metric_data()
            .namespace(namespace)
            .set_metric_data(Some(data))
            .send()
            .await
            .map_err(AdapterError::aws("PutMetricData"))?;
        Ok(())
    }
}

/// The embedded metric format document for one [`Metrics::put`]: the `_aws` metadata naming the
/// namespace, the one dimension set and each metric with its unit, then the dimension values and
/// metric values as top-level members (CloudWatch's EMF specification).
pub fn emf_document(
    namespace: &str,
    dimensions: &[(String, String)],
    values: &[MetricValue],
    timestamp_ms: i64,
) -> serde_json::Value {
    let mut root = serde_json::Map::new();
    root.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dimensions.iter().map(|(name, _)| name).collect::<Vec<_>>()],
                "Metrics": values.iter()
                    .map(|m| if m.high_resolution {
                        serde_json::json!({"Name": m.name, "Unit": m.unit, "StorageResolution": 1})
                    } else {
                        serde_json::json!({"Name": m.name, "Unit": m.unit})
                    })
                    .collect::<Vec<_>>(),
            }],
        }),
    );
    for (name, value) in dimensions {
        root.insert(name.clone(), serde_json::Value::String(value.clone()));
    }
    for m in values {
        root.insert(m.name.clone(), serde_json::json!(m.value));
    }
    serde_json::Value::Object(root)
}

/// [`Metrics`] as EMF lines on standard output (Lambda sends stdout to CloudWatch Logs, which
/// extracts the metrics).
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbeddedMetrics;

impl Metrics for EmbeddedMetrics {
    async fn put(
        &self,
        namespace: &str,
        dimensions: &[(String, String)],
        values: &[MetricValue],
    ) -> Result<(), AdapterError> {
        use std::io::Write;
        let line = emf_document(
            namespace,
            dimensions,
            values,
            chrono::Utc::now().timestamp_millis(),
        )
        .to_string();
        // One write of one line under the lock: a log line interleaved into it would lose the
        // metrics.
        writeln!(std::io::stdout().lock(), "{line}").map_err(|e| AdapterError::Aws {
            operation: "embedded metrics (stdout)",
            detail: e.to_string(),
        })
    }
}

/// Where a deployment's metrics go: `HAPILOT_METRICS=api` (PutMetricData; the local stack and
/// the CLI) or `emf` (log lines; what the template sets for the Lambdas).
#[derive(Debug, Clone)]
pub enum MetricSink {
    /// `PutMetricData`.
    Api(CloudWatch),
    /// EMF on stdout.
    Embedded(EmbeddedMetrics),
}

impl Metrics for MetricSink {
    async fn put(
        &self,
        namespace: &str,
        dimensions: &[(String, String)],
        values: &[MetricValue],
    ) -> Result<(), AdapterError> {
        match self {
            MetricSink::Api(cloudwatch) => cloudwatch.put(namespace, dimensions, values).await,
            MetricSink::Embedded(emf) => emf.put(namespace, dimensions, values).await,
        }
    }
}

/// One value put: (namespace, dimensions, value).
#[cfg(any(test, feature = "fakes"))]
pub type PutValue = (String, Vec<(String, String)>, MetricValue);

/// In-memory [`Metrics`] and [`AlarmReader`] for handler unit tests: the alarms' states as
/// set, and every value put with its namespace and dimensions.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone, Default)]
pub struct MemoryMonitoring {
    /// (region or "", alarm name) -> state.
    pub alarms: std::collections::BTreeMap<(String, String), String>,
    put: std::sync::Arc<std::sync::Mutex<Vec<PutValue>>>,
}

#[cfg(any(test, feature = "fakes"))]
impl MemoryMonitoring {
    /// Every value put: (namespace, dimensions, value).
    pub fn values(&self) -> Vec<PutValue> {
        self.put.lock().expect("put").clone()
    }

    /// The value of metric `name` last put, if any.
    pub fn last(&self, name: &str) -> Option<f64> {
        self.values()
            .into_iter()
            .rev()
            .find(|(_, _, v)| v.name == name)
            .map(|(_, _, v)| v.value)
    }
}

#[cfg(any(test, feature = "fakes"))]
impl Metrics for MemoryMonitoring {
    async fn put(
        &self,
        namespace: &str,
        dimensions: &[(String, String)],
        values: &[MetricValue],
    ) -> Result<(), AdapterError> {
        let mut put = self.put.lock().expect("put");
        for v in values {
            put.push((namespace.to_string(), dimensions.to_vec(), v.clone()));
        }
        Ok(())
    }
}

#[cfg(any(test, feature = "fakes"))]
impl AlarmReader for MemoryMonitoring {
    async fn alarm_state(&self, alarm_name: &str) -> Result<Option<String>, AdapterError> {
        Ok(self
            .alarms
            .get(&(String::new(), alarm_name.to_string()))
            .cloned())
    }

    async fn alarm_state_in(
        &self,
        region: &str,
        alarm_name: &str,
    ) -> Result<Option<String>, AdapterError> {
        Ok(self
            .alarms
            .get(&(region.to_string(), alarm_name.to_string()))
            .cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_documents_follow_the_specification() {
        let doc = emf_document(
            "hapilot",
            &[
                ("StateMachine".into(), "failover".into()),
                ("Region".into(), "us-west-2".into()),
            ],
            &[
                MetricValue::seconds("FailoverDurationSeconds", 12.5),
                MetricValue::count("FailoverSucceeded", 1.0),
            ],
            1_764_000_000_000,
        );
        assert_eq!(
            doc,
            serde_json::json!({
                "_aws": {
                    "Timestamp": 1_764_000_000_000_i64,
                    "CloudWatchMetrics": [{
                        "Namespace": "hapilot",
                        "Dimensions": [["StateMachine", "Region"]],
                        "Metrics": [
                            {"Name": "FailoverDurationSeconds", "Unit": "Seconds"},
                            {"Name": "FailoverSucceeded", "Unit": "Count"}
                        ]
                    }]
                },
                "StateMachine": "failover",
                "Region": "us-west-2",
                "FailoverDurationSeconds": 12.5,
                "FailoverSucceeded": 1.0
            })
        );
        // Every metric and dimension named in the metadata has its member (else CloudWatch
        // drops the metric).
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        for name in directive["Dimensions"][0].as_array().unwrap() {
            assert!(doc[name.as_str().unwrap()].is_string());
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            assert!(doc[metric["Name"].as_str().unwrap()].is_number());
        }
    }
}
