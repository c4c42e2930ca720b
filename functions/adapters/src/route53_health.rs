//! What readiness reads about traffic: the global name's records with their health checks
//! (Route53's control plane, read-only) and each health check's `HealthCheckStatus` metric,
//! which Route53 publishes in us-east-1 only.

use std::collections::BTreeMap;
use std::future::Future;

use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use hapilot_core::readiness::{HealthCheckView, RecordView};

use crate::AdapterError;

/// The region Route53 publishes its health-check metrics in.
pub const HEALTH_METRICS_REGION: &str = "us-east-1";

/// Reads the global name's wiring and health.
pub trait TrafficReader: Send + Sync {
    /// Every record of `name` in `zone` that has a `SetIdentifier` (weighted or latency), by
    /// set identifier, each with its health check when that exists.
    fn records(
        &self,
        zone: &str,
        name: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, RecordView>, AdapterError>> + Send;

    /// The newest `AWS/Route53 HealthCheckStatus` (Minimum) of `health_check_id` in the last
    /// 5 minutes; None when there is none.
    fn health_status(
        &self,
        health_check_id: &str,
    ) -> impl Future<Output = Result<Option<f64>, AdapterError>> + Send;
}

/// [`TrafficReader`] on Route53 and CloudWatch in us-east-1.
#[derive(Debug, Clone)]
pub struct Route53Health {
    route53: aws_sdk_route53::Client,
    metrics: aws_sdk_cloudwatch::Client,
}

impl Route53Health {
    /// Clients from `config` (CloudWatch's pointed at us-east-1).
    pub fn from_sdk(config: &aws_config::SdkConfig) -> Self {
        let metrics = config
            .to_builder()
            .region(aws_config::Region::new(HEALTH_METRICS_REGION))
            .build();
        Self {
            route53: aws_sdk_route53::Client::new(config),
            metrics: aws_sdk_cloudwatch::Client::new(&metrics),
        }
    }

    async fn health_check(&self, id: &str) -> Result<Option<HealthCheckView>, AdapterError> {
        match self
            .route53
            .get_health_check()
            .health_check_id(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.health_check().map(|hc| {
                let config = hc.health_check_config();
                HealthCheckView {
                    kind: config
                        .map(|c| c.r#type().as_str().to_string())
                        .unwrap_or_default(),
                    children: config
                        .map(|c| c.child_health_checks().to_vec())
                        .unwrap_or_default(),
                    routing_control_arn: config
                        .and_then(|c| c.routing_control_arn())
                        .map(str::to_string),
                }
            })),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_health_check()) =>
            {
                Ok(None)
            }
            Err(e) => Err(AdapterError::aws("GetHealthCheck")(e)),
        }
    }
}

impl TrafficReader for Route53Health {
    async fn records(
        &self,
        zone: &str,
        name: &str,
    ) -> Result<BTreeMap<String, RecordView>, AdapterError> {
        let mut out = BTreeMap::new();
        for r in crate::dns::named_record_sets(&self.route53, zone, name).await? {
            let Some(set) = r.set_identifier() else {
                continue;
            };
            let health_check = match r.health_check_id() {
                Some(id) => self.health_check(id).await?,
                None => None,
            };
            out.insert(
                set.to_string(),
                RecordView {
                    weight: r.weight(),
                    health_check_id: r.health_check_id().map(str::to_string),
                    health_check,
                },
            );
        }
        Ok(out)
    }

    async fn health_status(&self, health_check_id: &str) -> Result<Option<f64>, AdapterError> {
        let now = std::time::SystemTime::now();
        let out = self
            .metrics
            .get_metric_statistics()
            .namespace("AWS/Route53")
            .metric_name("HealthCheckStatus")
            .dimensions(
                Dimension::builder()
                    .name("HealthCheckId")
                    .value(health_check_id)
                    .build(),
            )
            .start_time((now - std::time::Duration::from_secs(300)).into())
            .end_time(now.into())
            .period(60)
            .statistics(Statistic::Minimum)
            .send()
            .await
            .map_err(AdapterError::aws("GetMetricStatistics"))?;
        Ok(out
            .datapoints()
            .iter()
            .filter_map(|d| Some((d.timestamp()?.secs(), d.minimum()?)))
            .max_by_key(|(t, _)| *t)
            .map(|(_, v)| v))
    }
}

/// In-memory [`TrafficReader`]: the records by SetIdentifier and each health check's status.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone, Default)]
pub struct MemoryTraffic {
    /// SetIdentifier -> record.
    pub records: BTreeMap<String, RecordView>,
    /// Health check id -> newest `HealthCheckStatus`.
    pub statuses: BTreeMap<String, f64>,
}

#[cfg(any(test, feature = "fakes"))]
impl TrafficReader for MemoryTraffic {
    async fn records(
        &self,
        _zone: &str,
        _name: &str,
    ) -> Result<BTreeMap<String, RecordView>, AdapterError> {
        Ok(self.records.clone())
    }

    async fn health_status(&self, health_check_id: &str) -> Result<Option<f64>, AdapterError> {
        Ok(self.statuses.get(health_check_id).copied())
    }
}
