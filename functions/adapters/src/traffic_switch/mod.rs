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

use aws_config::SdkConfig;
use serde::{Deserialize, Serialize};

use crate::AdapterError;
use crate::dns::Route53Dns;

pub mod arc;
pub mod control_metric;
#[cfg(any(test, feature = "fakes"))]
pub mod memory;
pub mod weights;

pub use arc::ArcSwitch;
pub use control_metric::ControlMetricSwitch;
#[cfg(any(test, feature = "fakes"))]
pub use memory::MemoryTrafficSwitch;
pub use weights::WeightSwitch;

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

/// The prefix of a control-metric change id: `controls:<set>=<on|off>,...`. The change is the
/// alarms reaching the wanted states, so the id carries what was wanted (no state kept).
pub(crate) const CONTROL_CHANGE: &str = "controls:";

/// The on/off value a weight means for a control.
pub(crate) fn on(weight: i64) -> bool {
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

/// The change id of wanted on/off states (what [`parse_control_change`] reads).
pub(crate) fn control_change(wanted: &BTreeMap<String, bool>) -> String {
    let parts: Vec<String> = wanted
        .iter()
        .map(|(s, on)| format!("{s}={}", if *on { "on" } else { "off" }))
        .collect();
    format!("{CONTROL_CHANGE}{}", parts.join(","))
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
