//! Traffic steering through Route53 weighted records.

use std::future::Future;

use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecordSet};
use serde::{Deserialize, Serialize};

use hapilot_core::weights::{GlobalRecord, RecordRouting};

use crate::AdapterError;

/// One weighted record of the global name, as an operator reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightedRecord {
    /// `SetIdentifier` (one per region).
    pub set_identifier: String,
    /// Current weight (0-255).
    pub weight: i64,
    /// The record type (`A`, `CNAME`, ...).
    pub record_type: String,
    /// The health check attached to it, kept on every change.
    pub health_check_id: Option<String>,
}

/// Reads and sets the weights of the global name's weighted records.
pub trait Dns: Send + Sync {
    /// Every weighted record of `name` in `zone` (records of another routing policy are not
    /// weighted records, whatever their set identifiers).
    fn weighted_records(
        &self,
        zone: &str,
        name: &str,
    ) -> impl Future<Output = Result<Vec<WeightedRecord>, AdapterError>> + Send;

    /// Sets the weights of the given set identifiers in one atomic change (everything else about
    /// each record, health check included, stays as it is). Returns the change id.
    fn set_weights(
        &self,
        zone: &str,
        name: &str,
        weights: &[(String, i64)],
        comment: &str,
    ) -> impl Future<Output = Result<String, AdapterError>> + Send;

    /// Every record of `name` in `zone` with its routing policy.
    fn record_routing(
        &self,
        zone: &str,
        name: &str,
    ) -> impl Future<Output = Result<Vec<GlobalRecord>, AdapterError>> + Send;

    /// Whether the change has reached every Route53 name server.
    fn change_in_sync(
        &self,
        change_id: &str,
    ) -> impl Future<Output = Result<bool, AdapterError>> + Send;
}

/// [`Dns`] on Route53.
#[derive(Debug, Clone)]
pub struct Route53Dns {
    client: aws_sdk_route53::Client,
}

impl Route53Dns {
    /// A Route53 client from `config`.
    pub fn from_sdk(config: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_route53::Client::new(config))
    }

    /// Uses `client`.
    pub fn new(client: aws_sdk_route53::Client) -> Self {
        Self { client }
    }

    async fn record_sets(
        &self,
        zone: &str,
        name: &str,
    ) -> Result<Vec<ResourceRecordSet>, AdapterError> {
        let mut out = named_record_sets(&self.client, zone, name).await?;
        out.retain(|r| r.weight().is_some());
        Ok(out)
    }
}

/// Every record set of `name` in `zone` (all pages), for the weights and for readiness.
pub(crate) async fn named_record_sets(
    client: &aws_sdk_route53::Client,
    zone: &str,
    name: &str,
) -> Result<Vec<ResourceRecordSet>, AdapterError> {
    let wanted = normalize(name);
    let mut out = Vec::new();
    let mut start: Option<(String, aws_sdk_route53::types::RrType, Option<String>)> = None;
    loop {
        let mut req = client.list_resource_record_sets().hosted_zone_id(zone);
        if let Some((n, t, id)) = start.take() {
            req = req
                .start_record_name(n)
                .start_record_type(t)
                .set_start_record_identifier(id);
        }
        let page = req
            .send()
            .await
            .map_err(AdapterError::aws("ListResourceRecordSets"))?;
        out.extend(
            page.resource_record_sets()
                .iter()
                .filter(|r| normalize(r.name()) == wanted)
                .cloned(),
        );
        if !page.is_truncated() {
            return Ok(out);
        }
        match (page.next_record_name(), page.next_record_type()) {
            (Some(n), Some(t)) => {
                start = Some((
                    n.to_string(),
                    t.clone(),
                    page.next_record_identifier().map(str::to_string),
                ))
            }
            _ => return Ok(out),
        }
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Dns for Route53Dns {
    async fn weighted_records(
        &self,
        zone: &str,
        name: &str,
    ) -> Result<Vec<WeightedRecord>, AdapterError> {
        Ok(self
            .record_sets(zone, name)
            .await?
            .iter()
            .map(|r| WeightedRecord {
                set_identifier: r.set_identifier().unwrap_or_default().to_string(),
                weight: r.weight().unwrap_or_default(),
                record_type: r.r#type().as_str().to_string(),
                health_check_id: r.health_check_id().map(str::to_string),
            })
            .collect())
    }

    async fn set_weights(
        &self,
        zone: &str,
        name: &str,
        weights: &[(String, i64)],
        comment: &str,
    ) -> Result<String, AdapterError> {
        let current = self.record_sets(zone, name).await?;
        let mut changes = Vec::new();
        for (set_identifier, weight) in weights {
            let record = current
                .iter()
                .find(|r| r.set_identifier() == Some(set_identifier.as_str()))
                .ok_or_else(|| {
                    AdapterError::NotFound(format!(
                        "no weighted record {name} with SetIdentifier {set_identifier} in zone {zone}"
                    ))
                })?;
            let mut updated = record.clone();
            updated.weight = Some(*weight);
            changes.push(
                Change::builder()
                    .action(ChangeAction::Upsert)
                    .resource_record_set(updated)
                    .build()
                    .map_err(|e| AdapterError::aws("ChangeResourceRecordSets")(e))?,
            );
        }
        let batch = ChangeBatch::builder()
            .comment(comment)
            .set_changes(Some(changes))
            .build()
            .map_err(|e| AdapterError::aws("ChangeResourceRecordSets")(e))?;
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(batch)
            .send()
            .await
            .map_err(AdapterError::aws("ChangeResourceRecordSets"))?;
        Ok(out
            .change_info()
            .map(|c| c.id().to_string())
            .unwrap_or_default())
    }

    async fn record_routing(
        &self,
        zone: &str,
        name: &str,
    ) -> Result<Vec<GlobalRecord>, AdapterError> {
        Ok(named_record_sets(&self.client, zone, name)
            .await?
            .iter()
            .map(|r| GlobalRecord {
                set_identifier: r.set_identifier().unwrap_or_default().to_string(),
                routing: if r.weight().is_some() {
                    RecordRouting::Weighted
                } else if r.region().is_some() {
                    RecordRouting::Latency
                } else if r.failover().is_some() {
                    RecordRouting::Failover
                } else if r.geo_location().is_some() {
                    RecordRouting::Geolocation
                } else if r.multi_value_answer().is_some() {
                    RecordRouting::MultiValue
                } else {
                    RecordRouting::Simple
                },
            })
            .collect())
    }

    async fn change_in_sync(&self, change_id: &str) -> Result<bool, AdapterError> {
        let out = self
            .client
            .get_change()
            .id(change_id)
            .send()
            .await
            .map_err(AdapterError::aws("GetChange"))?;
        Ok(out
            .change_info()
            .map(|c| c.status() == &ChangeStatus::Insync)
            .unwrap_or(false))
    }
}
