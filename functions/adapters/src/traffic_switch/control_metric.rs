//! The `health_check` switch: control metrics behind `CALCULATED` Route53 health checks.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use aws_config::{Region, SdkConfig};
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_route53recoverycluster::types::{RoutingControlState, UpdateRoutingControlStateEntry};
use serde::{Deserialize, Serialize};

use crate::AdapterError;
use crate::dns::{Dns, Route53Dns};
use super::*;

/// The prefix of a control-metric change id: `controls:<set>=<on|off>,...`. The change is the
/// alarms reaching the wanted states, so the id carries what was wanted (no state kept).
const CONTROL_CHANGE: &str = "controls:";

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

/// The on/off value a weight means for a control.
fn on(weight: i64) -> bool {
    weight > 0
}

/// Parses a control change id back into SetIdentifier -> on.
pub fn parse_control_change(change_id: &str) -> Option<BTreeMap<String, bool>> {
    change_id
        .strip_prefix(CONTROL_CHANGE)?
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (set, state) = pair.split_once('=')?;
            let on = match state {
                "on" => true,
                "off" => false,
                _ => return None,
            };
            Some((set.to_string(), on))
        })
        .collect()
}

fn control_change(wanted: &BTreeMap<String, bool>) -> String {
    let parts: Vec<String> = wanted
        .iter()
        .map(|(s, on)| format!("{s}={}", if *on { "on" } else { "off" }))
        .collect();
    format!("{CONTROL_CHANGE}{}", parts.join(","))
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
