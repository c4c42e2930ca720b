//! What the canary gate reads: a real Prometheus scraping every gateway (behind a bearer-token
//! proxy), and the load balancers' CloudWatch metrics.

use std::collections::BTreeMap;

use hapilot_adapters::canary_metrics::TrafficSource;

use super::PerRegion;
use super::{PRIMARY_REGION, STANDBY_REGION, WITNESS_REGION};
use crate::LocalError;
use crate::systems::gateway::SimulatedGateway;
use crate::systems::prometheus::LocalPrometheus;
use crate::systems::user_traffic::LoadBalancerMetrics;

/// The token of the proxy in front of the local Prometheus.
pub(super) const PROMETHEUS_TOKEN: &str = "local-prometheus-token";

/// Prometheus over every gateway's traffic and the load balancers' metrics.
pub(super) async fn start(
    sdk: &aws_config::SdkConfig,
    gateways: &PerRegion<SimulatedGateway>,
) -> Result<(LocalPrometheus, LoadBalancerMetrics), LocalError> {
    let mut scraped = vec![
        gateways.primary.metrics_target(),
        gateways.standby.metrics_target(),
    ];
    scraped.extend(gateways.third.iter().map(|eu| eu.metrics_target()));
    let prometheus = LocalPrometheus::start(&scraped).await?;
    prometheus.require_authorization(&format!("Bearer {PROMETHEUS_TOKEN}"));
    let mut balancers = BTreeMap::from([
        (
            PRIMARY_REGION.to_string(),
            (load_balancer(PRIMARY_REGION), gateways.primary.traffic()),
        ),
        (
            STANDBY_REGION.to_string(),
            (load_balancer(STANDBY_REGION), gateways.standby.traffic()),
        ),
    ]);
    if let Some(eu) = &gateways.third {
        balancers.insert(
            WITNESS_REGION.to_string(),
            (load_balancer(WITNESS_REGION), eu.traffic()),
        );
    }
    Ok((prometheus, LoadBalancerMetrics::start(sdk, balancers)))
}

/// The load balancer dimension value of a region's (simulated) ALB.
pub(super) fn load_balancer(region: &str) -> String {
    format!("app/gateway-{region}/0123456789abcdef")
}

/// The Prometheus provider with the HA document's style of queries, through the bearer-token
/// proxy the local Prometheus sits behind.
pub(super) fn prometheus_source(url: &str) -> TrafficSource {
    TrafficSource::Prometheus {
        url: url.to_string(),
        request_query: r#"sum(increase(http_requests_total{region="{region}"}[{window}]))"#
            .to_string(),
        error_query:
            r#"sum(increase(http_requests_total{region="{region}",status=~"5.."}[{window}]))"#
                .to_string(),
        ca_file: None,
        auth: Some(hapilot_adapters::http_client::HttpAuth::Bearer {
            token: PROMETHEUS_TOKEN.into(),
        }),
        // The gateways' own latency histogram; Prometheus scrapes every 250 ms, so a rate()
        // over one second has four points.
        latency: hapilot_adapters::canary_metrics::LatencyQueries {
            preset: Some(hapilot_adapters::canary_metrics::LatencyPreset::Http),
            rate_window_ms: 1_000,
            ..Default::default()
        },
    }
}
