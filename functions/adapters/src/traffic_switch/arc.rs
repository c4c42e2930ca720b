//! The `arc_routing_control` switch: Route53 ARC routing controls through the cluster's
//! regional data-plane endpoints.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use aws_config::{Region, SdkConfig};
use aws_sdk_route53recoverycluster::types::{RoutingControlState, UpdateRoutingControlStateEntry};

use super::{ArcEndpoint, TrafficSwitch, control_change, on, parse_control_change};
use crate::AdapterError;

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
