//! Where the global name sends traffic, moved by one of three switches (`HAPILOT_TRAFFIC_SWITCH`):
//!
//! - `weights`: Route53 weighted records (`ChangeResourceRecordSets`). Route53's control plane
//!   is served from us-east-1 and is outside its data-plane SLA: for planned moves (graceful
//!   switchover, canary failback) with both regions up.
//! - `health_check`: every region's record carries a `CALCULATED` Route53 health check = its
//!   endpoint's check AND a `CLOUDWATCH_METRIC` check on a control alarm that lives in the region
//!   that takes over. Turning a region off = `PutMetricData` of 0 to its control metric in that
//!   region; the alarm fires, the check fails, Route53's data plane stops answering the region.
//!   No Route53 API call.
//! - `arc_routing_control`: Route53 ARC routing controls, set through the cluster's data-plane
//!   API (`route53-recovery-cluster`), trying the cluster's regional endpoints in turn.
//!
//! All three speak "weights" (SetIdentifier -> 0..255); the on/off switches read a weight above 0
//! as on and report on as 100, so snapshots and compensation work the same for all three.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use aws_config::{Region, SdkConfig};
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_route53recoverycluster::types::{RoutingControlState, UpdateRoutingControlStateEntry};
use serde::{Deserialize, Serialize};

use crate::AdapterError;
use crate::dns::{Dns, Route53Dns};

/// How a deployment moves traffic (`HAPILOT_TRAFFIC_SWITCH`; default `weights`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TrafficSwitchConfig {
    /// Route53 weighted records through the control plane. A struct variant with no fields,
    /// so that `deny_unknown_fields` refuses `{"kind": "weights", "zone": ...}` too (serde
    /// ignores extra fields of a unit variant).
    Weights {},
    /// Control alarms behind `CALCULATED` health checks, flipped with `PutMetricData`.
    HealthCheck {
        /// The region of the control metrics and alarms (the region that takes over).
        region: String,
        /// Namespace of the control metric (default `hapilot/Traffic`).
        #[serde(default = "default_control_namespace")]
        namespace: String,
        /// The control metric's name (default `RegionEnabled`; dimension `SetIdentifier`).
        #[serde(default = "default_control_metric")]
        metric: String,
        /// SetIdentifier -> the control alarm's name (in `region`).
        alarms: BTreeMap<String, String>,
    },
    /// Route53 ARC routing controls through the recovery cluster's data plane.
    ArcRoutingControl {
        /// The cluster's regional endpoints, tried in this order.
        endpoints: Vec<ArcEndpoint>,
        /// SetIdentifier -> routing control ARN.
        controls: BTreeMap<String, String>,
    },
}

/// One regional endpoint of an ARC cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArcEndpoint {
    /// The endpoint's region (requests are signed for it).
    pub region: String,
    /// `https://host1.route53-recovery-cluster.<region>.amazonaws.com/v1` or similar.
    pub url: String,
}

fn default_control_namespace() -> String {
    "hapilot/Traffic".into()
}

fn default_control_metric() -> String {
    "RegionEnabled".into()
}

impl Default for TrafficSwitchConfig {
    fn default() -> Self {
        TrafficSwitchConfig::Weights {}
    }
}

impl TrafficSwitchConfig {
    /// The name operators use: `weights`, `health_check`, `arc_routing_control`.
    pub fn kind(&self) -> &'static str {
        match self {
            TrafficSwitchConfig::Weights {} => "weights",
            TrafficSwitchConfig::HealthCheck { .. } => "health_check",
            TrafficSwitchConfig::ArcRoutingControl { .. } => "arc_routing_control",
        }
    }
}

/// Reads and moves where traffic goes.
pub trait TrafficSwitch: Send + Sync {
    /// SetIdentifier -> weight (on/off switches: 100 on, 0 off).
    fn states(&self) -> impl Future<Output = Result<BTreeMap<String, i64>, AdapterError>> + Send;
    /// Sets the given sets (a weight above 0 is "on" for on/off switches); returns a change id
    /// for [`TrafficSwitch::in_sync`].
    fn apply(
        &self,
        weights: &[(String, i64)],
        comment: &str,
    ) -> impl Future<Output = Result<String, AdapterError>> + Send;
    /// Whether the change has taken effect where the data plane reads it.
    fn in_sync(&self, change_id: &str) -> impl Future<Output = Result<bool, AdapterError>> + Send;
}

/// Weights on Route53 records of one name.
#[derive(Debug, Clone)]
pub struct WeightSwitch {
    dns: Route53Dns,
    zone: String,
    name: String,
}

impl WeightSwitch {
    /// The weighted records of `name` in `zone`.
    pub fn new(dns: Route53Dns, zone: &str, name: &str) -> Self {
        Self {
            dns,
            zone: zone.to_string(),
            name: name.to_string(),
        }
    }
}

impl TrafficSwitch for WeightSwitch {
    async fn states(&self) -> Result<BTreeMap<String, i64>, AdapterError> {
        Ok(self
            .dns
            .weighted_records(&self.zone, &self.name)
            .await?
            .into_iter()
            .map(|r| (r.set_identifier, r.weight))
            .collect())
    }

    async fn apply(
        &self,
        weights: &[(String, i64)],
        comment: &str,
    ) -> Result<String, AdapterError> {
        self.dns
            .set_weights(&self.zone, &self.name, weights, comment)
            .await
    }

    async fn in_sync(&self, change_id: &str) -> Result<bool, AdapterError> {
        self.dns.change_in_sync(change_id).await
    }
}

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

/// Route53 ARC routing controls through the cluster's regional endpoints.
#[derive(Debug, Clone)]
pub struct ArcSwitch {
    clients: Vec<(String, aws_sdk_route53recoverycluster::Client)>,
    controls: BTreeMap<String, String>,
}

impl ArcSwitch {
    /// A client per endpoint, each signed for its region.
    pub fn new(
        sdk: &SdkConfig,
        endpoints: &[ArcEndpoint],
        controls: BTreeMap<String, String>,
    ) -> Self {
        let clients = endpoints
            .iter()
            .map(|e| {
                let config = aws_sdk_route53recoverycluster::config::Builder::from(sdk)
                    .region(Region::new(e.region.clone()))
                    .endpoint_url(&e.url)
                    .timeout_config(
                        aws_config::timeout::TimeoutConfig::builder()
                            .operation_attempt_timeout(Duration::from_secs(5))
                            .build(),
                    )
                    .build();
                (
                    e.url.clone(),
                    aws_sdk_route53recoverycluster::Client::from_conf(config),
                )
            })
            .collect();
        Self { clients, controls }
    }

    fn control(&self, set: &str) -> Result<&str, AdapterError> {
        self.controls.get(set).map(String::as_str).ok_or_else(|| {
            AdapterError::NotFound(format!(
                "HAPILOT_TRAFFIC_SWITCH has no routing control for SetIdentifier {set}"
            ))
        })
    }

    /// Runs `call` against each endpoint in turn until one answers; the error names them all.
    async fn on_any<T, F, Fut>(&self, operation: &'static str, call: F) -> Result<T, AdapterError>
    where
        F: Fn(aws_sdk_route53recoverycluster::Client) -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let mut failures = Vec::new();
        for (url, client) in &self.clients {
            match call(client.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) => failures.push(format!("{url}: {e}")),
            }
        }
        Err(AdapterError::Aws {
            operation,
            detail: if failures.is_empty() {
                "no cluster endpoint configured".into()
            } else {
                failures.join("; ")
            },
        })
    }
}

impl TrafficSwitch for ArcSwitch {
    async fn states(&self) -> Result<BTreeMap<String, i64>, AdapterError> {
        let mut out = BTreeMap::new();
        for (set, arn) in &self.controls {
            let state = self
                .on_any("GetRoutingControlState", |c| async move {
                    c.get_routing_control_state()
                        .routing_control_arn(arn)
                        .send()
                        .await
                        .map(|o| o.routing_control_state().clone())
                        .map_err(|e| crate::error::error_chain(&e))
                })
                .await?;
            out.insert(
                set.clone(),
                if state == RoutingControlState::On {
                    100
                } else {
                    0
                },
            );
        }
        Ok(out)
    }

    async fn apply(
        &self,
        weights: &[(String, i64)],
        _comment: &str,
    ) -> Result<String, AdapterError> {
        let mut entries = Vec::new();
        let mut wanted = BTreeMap::new();
        for (set, weight) in weights {
            wanted.insert(set.clone(), on(*weight));
            entries.push(
                UpdateRoutingControlStateEntry::builder()
                    .routing_control_arn(self.control(set)?)
                    .routing_control_state(if on(*weight) {
                        RoutingControlState::On
                    } else {
                        RoutingControlState::Off
                    })
                    .build()
                    .map_err(AdapterError::aws("UpdateRoutingControlStates"))?,
            );
        }
        let entries = &entries;
        self.on_any("UpdateRoutingControlStates", |c| async move {
            c.update_routing_control_states()
                .set_update_routing_control_state_entries(Some(entries.clone()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| crate::error::error_chain(&e))
        })
        .await?;
        Ok(control_change(&wanted))
    }

    async fn in_sync(&self, change_id: &str) -> Result<bool, AdapterError> {
        let wanted = parse_control_change(change_id).ok_or_else(|| {
            AdapterError::NotFound(format!("{change_id:?} is not a control change id"))
        })?;
        let states = self.states().await?;
        Ok(wanted
            .iter()
            .all(|(set, on)| states.get(set).is_some_and(|w| (*w > 0) == *on)))
    }
}

/// The switch a deployment configured.
#[derive(Debug, Clone)]
pub enum AnyTrafficSwitch {
    /// Route53 weights.
    Weights(WeightSwitch),
    /// Control metrics.
    HealthCheck(ControlMetricSwitch),
    /// ARC routing controls.
    Arc(ArcSwitch),
}

impl AnyTrafficSwitch {
    /// Builds the configured switch; `weights` needs the zone and name of the global record.
    pub fn new(
        config: &TrafficSwitchConfig,
        sdk: &SdkConfig,
        zone_and_name: Option<(&str, &str)>,
    ) -> Result<Self, AdapterError> {
        Ok(match config {
            TrafficSwitchConfig::Weights {} => {
                let (zone, name) = zone_and_name.ok_or_else(|| {
                    AdapterError::NotFound(
                        "the weights switch needs HAPILOT_HOSTED_ZONE_ID and HAPILOT_RECORD_NAME"
                            .into(),
                    )
                })?;
                AnyTrafficSwitch::Weights(WeightSwitch::new(Route53Dns::from_sdk(sdk), zone, name))
            }
            TrafficSwitchConfig::HealthCheck {
                region,
                namespace,
                metric,
                alarms,
            } => AnyTrafficSwitch::HealthCheck(ControlMetricSwitch::new(
                sdk,
                region,
                namespace,
                metric,
                alarms.clone(),
            )),
            TrafficSwitchConfig::ArcRoutingControl {
                endpoints,
                controls,
            } => AnyTrafficSwitch::Arc(ArcSwitch::new(sdk, endpoints, controls.clone())),
        })
    }

    /// `weights`, `health_check` or `arc_routing_control`.
    pub fn kind(&self) -> &'static str {
        match self {
            AnyTrafficSwitch::Weights(_) => "weights",
            AnyTrafficSwitch::HealthCheck(_) => "health_check",
            AnyTrafficSwitch::Arc(_) => "arc_routing_control",
        }
    }
}

impl TrafficSwitch for AnyTrafficSwitch {
    async fn states(&self) -> Result<BTreeMap<String, i64>, AdapterError> {
        match self {
            AnyTrafficSwitch::Weights(s) => s.states().await,
            AnyTrafficSwitch::HealthCheck(s) => s.states().await,
            AnyTrafficSwitch::Arc(s) => s.states().await,
        }
    }

    async fn apply(
        &self,
        weights: &[(String, i64)],
        comment: &str,
    ) -> Result<String, AdapterError> {
        match self {
            AnyTrafficSwitch::Weights(s) => s.apply(weights, comment).await,
            AnyTrafficSwitch::HealthCheck(s) => s.apply(weights, comment).await,
            AnyTrafficSwitch::Arc(s) => s.apply(weights, comment).await,
        }
    }

    async fn in_sync(&self, change_id: &str) -> Result<bool, AdapterError> {
        match self {
            AnyTrafficSwitch::Weights(s) => s.in_sync(change_id).await,
            AnyTrafficSwitch::HealthCheck(s) => s.in_sync(change_id).await,
            AnyTrafficSwitch::Arc(s) => s.in_sync(change_id).await,
        }
    }
}

/// In-memory [`TrafficSwitch`]: weights by SetIdentifier, every change in sync at once.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone, Default)]
pub struct MemoryTrafficSwitch {
    weights: std::sync::Arc<std::sync::Mutex<BTreeMap<String, i64>>>,
    changes: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

#[cfg(any(test, feature = "fakes"))]
impl MemoryTrafficSwitch {
    /// A switch with these weights.
    pub fn with(weights: &[(&str, i64)]) -> Self {
        let switch = Self::default();
        switch
            .weights
            .lock()
            .expect("weights")
            .extend(weights.iter().map(|(s, w)| (s.to_string(), *w)));
        switch
    }

    /// The comments of every change applied.
    pub fn changes(&self) -> Vec<String> {
        self.changes.lock().expect("changes").clone()
    }
}

#[cfg(any(test, feature = "fakes"))]
impl TrafficSwitch for MemoryTrafficSwitch {
    async fn states(&self) -> Result<BTreeMap<String, i64>, AdapterError> {
        Ok(self.weights.lock().expect("weights").clone())
    }

    async fn apply(
        &self,
        weights: &[(String, i64)],
        comment: &str,
    ) -> Result<String, AdapterError> {
        let mut all = self.weights.lock().expect("weights");
        for (set, _) in weights {
            if !all.contains_key(set) {
                return Err(AdapterError::NotFound(format!(
                    "no record with SetIdentifier {set}"
                )));
            }
        }
        all.extend(weights.iter().cloned());
        let mut changes = self.changes.lock().expect("changes");
        changes.push(comment.to_string());
        Ok(format!("change-{}", changes.len()))
    }

    async fn in_sync(&self, _change_id: &str) -> Result<bool, AdapterError> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_change_ids_round_trip_and_nothing_else_parses() {
        let wanted = BTreeMap::from([("primary".to_string(), false), ("secondary".into(), true)]);
        let id = control_change(&wanted);
        assert_eq!(id, "controls:primary=off,secondary=on");
        assert_eq!(parse_control_change(&id), Some(wanted));
        assert_eq!(parse_control_change("/change/C123"), None);
        assert_eq!(parse_control_change("controls:primary=maybe"), None);
    }

    #[test]
    fn the_setting_parses_each_kind_and_refuses_unknown_fields() {
        let hc: TrafficSwitchConfig = serde_json::from_str(
            r#"{"kind": "health_check", "region": "us-west-2",
                "alarms": {"primary": "hapilot-control-primary"}}"#,
        )
        .unwrap();
        assert_eq!(hc.kind(), "health_check");
        match hc {
            TrafficSwitchConfig::HealthCheck {
                namespace, metric, ..
            } => assert_eq!(
                (namespace.as_str(), metric.as_str()),
                ("hapilot/Traffic", "RegionEnabled")
            ),
            other => panic!("{other:?}"),
        }
        assert!(
            serde_json::from_str::<TrafficSwitchConfig>(r#"{"kind": "weights", "zone": "x"}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<TrafficSwitchConfig>(r#"{"kind": "dns"}"#).is_err());
        assert_eq!(
            serde_json::from_str::<TrafficSwitchConfig>(r#"{"kind": "weights"}"#).unwrap(),
            TrafficSwitchConfig::default()
        );
    }
}
