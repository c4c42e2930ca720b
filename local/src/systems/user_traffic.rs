//! Simulated user traffic and the two places the canary gate reads it from.
//!
//! Each simulated region serves requests at a rate with an error rate that a test or the drill
//! sets ([`TrafficModel::set`]); counters are exact integrals of those rates over time. The
//! gateways expose them on `/metrics`, which a real Prometheus scrapes
//! ([`crate::systems::prometheus::LocalPrometheus`]), and a [`LoadBalancerMetrics`] publisher puts each
//! second's request and 5xx counts into the region's CloudWatch, as an application load
//! balancer does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{Region, SdkConfig};
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};

/// Requests per second, error rate and latency of one region, over time.
#[derive(Debug)]
pub struct TrafficModel {
    started: Instant,
    /// In time order.
    segments: Mutex<Vec<Segment>>,
}

/// From `from` on: `rps` requests per second, `error_rate` of them 5xx, latencies lognormal
/// around `median_secs` (sigma [`LATENCY_SIGMA`]).
#[derive(Debug, Clone, Copy)]
struct Segment {
    from: Instant,
    rps: f64,
    error_rate: f64,
    median_secs: f64,
}

/// The spread of the simulated latencies (ln seconds), as request latencies of one service.
pub const LATENCY_SIGMA: f64 = 0.25;

/// The latency histogram's upper bounds, seconds (`le`).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1.2, 1.6, 2.4, 5.0, 10.0,
];

impl Default for TrafficModel {
    fn default() -> Self {
        let now = Instant::now();
        Self {
            started: now,
            segments: Mutex::new(vec![Segment {
                from: now,
                rps: 0.0,
                error_rate: 0.0,
                median_secs: 0.2,
            }]),
        }
    }
}

impl TrafficModel {
    /// From now on, `rps` requests per second of which `error_rate` (0-1) fail with 5xx.
    pub fn set(&self, rps: f64, error_rate: f64) {
        let mut segments = self.segments.lock().expect("traffic lock");
        let last = *segments.last().expect("a first segment");
        segments.push(Segment {
            from: Instant::now(),
            rps: rps.max(0.0),
            error_rate: error_rate.clamp(0.0, 1.0),
            ..last
        });
    }

    /// From now on, request latencies center on `median_secs`.
    pub fn set_latency(&self, median_secs: f64) {
        let mut segments = self.segments.lock().expect("traffic lock");
        let last = *segments.last().expect("a first segment");
        segments.push(Segment {
            from: Instant::now(),
            median_secs: median_secs.max(1e-6),
            ..last
        });
    }

    /// Each segment's share of `[from, to)`: (requests, the segment).
    fn served(&self, from: Instant, to: Instant) -> Vec<(f64, Segment)> {
        let segments = self.segments.lock().expect("traffic lock");
        let mut out = Vec::new();
        for (i, s) in segments.iter().enumerate() {
            let end = segments.get(i + 1).map(|n| n.from).unwrap_or(to);
            let (a, b) = (s.from.max(from), end.min(to));
            if b > a {
                out.push((s.rps * (b - a).as_secs_f64(), *s));
            }
        }
        out
    }

    /// (requests, errors) served between `from` and `to`.
    pub fn between(&self, from: Instant, to: Instant) -> (f64, f64) {
        self.served(from, to)
            .iter()
            .fold((0.0, 0.0), |(r, e), (n, s)| (r + n, e + n * s.error_rate))
    }

    /// Requests since the start that took at most each of [`LATENCY_BUCKETS`] seconds
    /// (a cumulative histogram's counters), and the sum of their latencies.
    pub fn latency_histogram(&self) -> (Vec<f64>, f64) {
        let served = self.served(self.started, Instant::now());
        let buckets = LATENCY_BUCKETS
            .iter()
            .map(|le| {
                served
                    .iter()
                    .map(|(n, s)| {
                        n * hapilot_core::canary_judge::normal_cdf(
                            (le.ln() - s.median_secs.ln()) / LATENCY_SIGMA,
                        )
                    })
                    .sum()
            })
            .collect();
        // The mean of a lognormal: median * exp(sigma^2 / 2).
        let sum = served
            .iter()
            .map(|(n, s)| n * s.median_secs * (LATENCY_SIGMA * LATENCY_SIGMA / 2.0).exp())
            .sum();
        (buckets, sum)
    }

    /// (requests, errors) over the last `window`.
    pub fn last(&self, window: Duration) -> (f64, f64) {
        let now = Instant::now();
        self.between(now.checked_sub(window).unwrap_or(self.started), now)
    }

    /// Totals since the start (the counters a `/metrics` endpoint exposes).
    pub fn totals(&self) -> (f64, f64) {
        self.between(self.started, Instant::now())
    }
}

/// Puts each region's per-second request and 5xx counts into that region's CloudWatch, as a
/// load balancer does; stops when dropped.
pub struct LoadBalancerMetrics {
    task: tokio::task::JoinHandle<()>,
}

/// The namespace the local load balancers publish to.
pub const LB_NAMESPACE: &str = "AWS/ApplicationELB";

impl LoadBalancerMetrics {
    /// Publishes every second for `regions` (region -> (load balancer dimension value, traffic)).
    pub fn start(sdk: &SdkConfig, regions: BTreeMap<String, (String, Arc<TrafficModel>)>) -> Self {
        let clients: Vec<(aws_sdk_cloudwatch::Client, String, Arc<TrafficModel>)> = regions
            .into_iter()
            .map(|(region, (lb, model))| {
                let config = aws_sdk_cloudwatch::config::Builder::from(sdk)
                    .region(Region::new(region))
                    .build();
                (aws_sdk_cloudwatch::Client::from_conf(config), lb, model)
            })
            .collect();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut last = Instant::now();
            loop {
                tick.tick().await;
                let now = Instant::now();
                let stamp = std::time::SystemTime::now() - (now - last);
                for (client, lb, model) in &clients {
                    let (requests, errors) = model.between(last, now);
                    let datum = |name: &str, value: f64| {
                        MetricDatum::builder()
                            .metric_name(name)
                            .dimensions(Dimension::builder().name("LoadBalancer").value(lb).build())
                            .timestamp(stamp.into())
                            .value(value)
                            .unit(StandardUnit::Count)
                            .build()
                    };
                    let _ = client
                        .put_metric_data()
                        .namespace(LB_NAMESPACE)
                        .metric_data(datum("RequestCount", requests))
                        .metric_data(datum("HTTPCode_Target_5XX_Count", errors))
                        .send()
                        .await;
                }
                last = now;
            }
        });
        Self { task }
    }
}

impl Drop for LoadBalancerMetrics {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_integrate_the_rates() {
        let m = TrafficModel::default();
        let t0 = Instant::now();
        m.segments.lock().unwrap().push(Segment {
            from: t0,
            rps: 100.0,
            error_rate: 0.25,
            median_secs: 0.2,
        });
        let (r, e) = m.between(t0, t0 + Duration::from_secs(2));
        assert!(
            (r - 200.0).abs() < 1e-6 && (e - 50.0).abs() < 1e-6,
            "{r} {e}"
        );
    }
}
