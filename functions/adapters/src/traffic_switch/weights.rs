//! The `weights` switch: Route53 weighted records (`ChangeResourceRecordSets`).

use std::collections::BTreeMap;

use super::TrafficSwitch;
use crate::AdapterError;
use crate::dns::{Dns, Route53Dns};

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
