//! CloudWatch: reading alarms (to re-verify an event) and putting hapilot's own metrics.

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
}

impl MetricValue {
    /// A duration in seconds.
    pub fn seconds(name: impl Into<String>, value: f64) -> Self {
        Self {
            name: name.into(),
            value,
            unit: "Seconds".into(),
        }
    }

    /// A count (1/0 for a verdict).
    pub fn count(name: impl Into<String>, value: f64) -> Self {
        Self {
            name: name.into(),
            value,
            unit: "Count".into(),
        }
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
}

impl CloudWatch {
    /// A CloudWatch client from `config`.
    pub fn from_sdk(config: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_cloudwatch::Client::new(config))
    }

    /// Uses `client`.
    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        Self { client }
    }
}

impl AlarmReader for CloudWatch {
    async fn alarm_state(&self, alarm_name: &str) -> Result<Option<String>, AdapterError> {
        let out = self
            .client
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
