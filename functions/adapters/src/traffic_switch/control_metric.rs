//! The `health_check` switch: control metrics behind `CALCULATED` Route53 health checks.

use std::collections::BTreeMap;

use aws_config::{Region, SdkConfig};
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};

use super::{TrafficSwitch, control_change, on, parse_control_change};
use crate::AdapterError;

/// Control alarms behind `CALCULATED` health checks.
#[derive(Debug, Clone)]
pub struct ControlMetricSwitch {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
    metric: String,
    alarms: BTreeMap<String, String>,
}

impl ControlMetricSwitch {
    /// Control metrics and alarms in `region`.
    pub fn new(
        sdk: &SdkConfig,
        region: &str,
        namespace: &str,
        metric: &str,
        alarms: BTreeMap<String, String>,
    ) -> Self {
        let config = aws_sdk_cloudwatch::config::Builder::from(sdk)
            .region(Region::new(region.to_string()))
            .build();
        Self {
            client: aws_sdk_cloudwatch::Client::from_conf(config),
            namespace: namespace.to_string(),
            metric: metric.to_string(),
            alarms,
        }
    }

    fn alarm(&self, set: &str) -> Result<&str, AdapterError> {
        self.alarms.get(set).map(String::as_str).ok_or_else(|| {
            AdapterError::NotFound(format!(
                "HAPILOT_TRAFFIC_SWITCH has no control alarm for SetIdentifier {set}"
            ))
        })
    }

    async fn alarm_states(&self) -> Result<BTreeMap<String, String>, AdapterError> {
        let names: Vec<String> = self.alarms.values().cloned().collect();
        let out = self
            .client
            .describe_alarms()
            .set_alarm_names(Some(names))
            .send()
            .await
            .map_err(AdapterError::aws("DescribeAlarms"))?;
        Ok(out
            .metric_alarms()
            .iter()
            .filter_map(|a| {
                Some((
                    a.alarm_name()?.to_string(),
                    a.state_value()?.as_str().to_string(),
                ))
            })
            .collect())
    }
}

impl TrafficSwitch for ControlMetricSwitch {
    async fn states(&self) -> Result<BTreeMap<String, i64>, AdapterError> {
        let states = self.alarm_states().await?;
        self.alarms
            .iter()
            .map(|(set, alarm)| match states.get(alarm).map(String::as_str) {
                // The alarm fires when the metric says "off".
                Some("ALARM") => Ok((set.clone(), 0)),
                Some(_) => Ok((set.clone(), 100)),
                None => Err(AdapterError::NotFound(format!(
                    "control alarm {alarm} (SetIdentifier {set}) does not exist"
                ))),
            })
            .collect()
    }

    async fn apply(
        &self,
        weights: &[(String, i64)],
        _comment: &str,
    ) -> Result<String, AdapterError> {
        let mut wanted = BTreeMap::new();
        let mut data = Vec::new();
        for (set, weight) in weights {
            self.alarm(set)?;
            wanted.insert(set.clone(), on(*weight));
            data.push(
                MetricDatum::builder()
                    .metric_name(&self.metric)
                    .dimensions(
                        Dimension::builder()
                            .name("SetIdentifier")
                            .value(set)
                            .build(),
                    )
                    .value(if on(*weight) { 1.0 } else { 0.0 })
                    .unit(StandardUnit::Count)
                    .storage_resolution(1)
                    .build(),
            );
        }
        self.client
            .put_metric_data()
            .namespace(&self.namespace)
            .set_metric_data(Some(data))
            .send()
            .await
            .map_err(AdapterError::aws("PutMetricData"))?;
        Ok(control_change(&wanted))
    }

    async fn in_sync(&self, change_id: &str) -> Result<bool, AdapterError> {
        let wanted = parse_control_change(change_id).ok_or_else(|| {
            AdapterError::NotFound(format!("{change_id:?} is not a control change id"))
        })?;
        let states = self.alarm_states().await?;
        for (set, on) in wanted {
            let state = states.get(self.alarm(&set)?).map(String::as_str);
            if (state == Some("ALARM")) == on || state.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
