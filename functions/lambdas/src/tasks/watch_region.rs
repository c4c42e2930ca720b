//! Lambda `watch-region` (EventBridge Scheduler, every minute, in the standby and the witness
//! region): this region's own view of the others. Route53 publishes its health-check metrics
//! only in us-east-1, the region whose failure they should report; so every region that may
//! have to act watches for itself. Probes every other region's `/health` `samples` times,
//! `interval_ms` apart (default 6 x 10 s: Route53's cadence within one invocation), and after
//! each probe puts `hapilot/RegionHealth Healthy` (1 or 0; dimensions `Region` = the watched,
//! `Vantage` = this one) at 1-second resolution. The alarm on it ("3 of 3 periods of 10 s below
//! 1") is this vantage point's vote, and its state change starts the alarm router here.
//! Input: `{"samples"?, "interval_ms"?, "timeout_ms"?}`; output: what each probe saw.

use std::time::Duration;

use hapilot_adapters::Prober;
use hapilot_adapters::monitoring::{MetricValue, Metrics};
use hapilot_core::ErrorName;
use hapilot_core::health::{HealthCheckRequest, judge_sample};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::FunctionError;
use crate::config::Settings;
use crate::error::parse_input;

/// The metric namespace of the vantage points' votes.
pub const NAMESPACE: &str = "hapilot/RegionHealth";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default = "default_samples")]
    samples: u32,
    #[serde(default = "default_interval_ms")]
    interval_ms: u64,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

fn default_samples() -> u32 {
    6
}

fn default_interval_ms() -> u64 {
    10_000
}

fn default_timeout_ms() -> u64 {
    4_000
}

/// Watches every configured region but `vantage` (this function's own region).
pub async fn watch_region(
    settings: &Settings,
    vantage: &str,
    prober: &impl Prober,
    metrics: &impl Metrics,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        samples,
        interval_ms,
        timeout_ms,
    } = parse_input(input)?;
    // Same limits as any health check: a schedule's input cannot make the function run away.
    let plan = HealthCheckRequest {
        url: "http://watched/health".into(),
        label: None,
        samples: Some(samples),
        timeout_ms: Some(timeout_ms),
        interval_ms: Some(interval_ms),
        expect_body: None,
        min_healthy: None,
        require_healthy: false,
    }
    .plan()?;
    let watched: Vec<(&String, &String)> = settings
        .regions
        .iter()
        .filter(|(region, _)| region.as_str() != vantage)
        .map(|(region, config)| (region, &config.health_url))
        .collect();
    let mut seen: Map<String, Value> = Map::new();
    for sample in 0..samples {
        if sample > 0 {
            tokio::time::sleep(Duration::from_millis(interval_ms)).await;
        }
        for (region, url) in &watched {
            let observation = prober.probe(url, Duration::from_millis(timeout_ms)).await;
            let result = judge_sample(&observation, &plan);
            metrics
                .put(
                    NAMESPACE,
                    &[
                        ("Region".into(), region.to_string()),
                        ("Vantage".into(), vantage.to_string()),
                    ],
                    &[
                        MetricValue::count("Healthy", if result.healthy { 1.0 } else { 0.0 })
                            .high_resolution(),
                    ],
                )
                .await
                .map_err(FunctionError::from_adapter(ErrorName::RecordFailed))?;
            seen.entry(region.to_string())
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .expect("inserted as an array")
                .push(json!({ "healthy": result.healthy, "reason": result.reason }));
        }
    }
    Ok(json!({ "vantage": vantage, "probes": seen }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::monitoring::MemoryMonitoring;
    use hapilot_adapters::prober::MemoryProber;
    use hapilot_core::health::ProbeObservation;

    #[tokio::test]
    async fn every_other_region_gets_one_vote_per_probe_and_the_vantage_watches_not_itself() {
        let settings = Settings::fixture(&["us-east-1", "us-west-2", "eu-west-1"]);
        let mut prober = MemoryProber::default();
        prober.answers.insert(
            "http://eu-west-1/health".into(),
            ProbeObservation {
                status: Some(200),
                body: "healthy".into(),
                latency_ms: 3,
                failure: None,
            },
        );
        // us-east-1 answers nothing: the fake refuses the connection.
        let metrics = MemoryMonitoring::default();
        let out = watch_region(
            &settings,
            "us-west-2",
            &prober,
            &metrics,
            json!({"samples": 2, "interval_ms": 1, "timeout_ms": 100}),
        )
        .await
        .unwrap();
        assert_eq!(out["vantage"], "us-west-2");
        let probes = out["probes"].as_object().unwrap();
        assert_eq!(
            probes.keys().collect::<Vec<_>>(),
            ["eu-west-1", "us-east-1"]
        );
        assert_eq!(probes["us-east-1"].as_array().unwrap().len(), 2);
        let votes: Vec<(String, f64)> = metrics
            .values()
            .into_iter()
            .map(|(namespace, dims, v)| {
                assert_eq!(namespace, NAMESPACE);
                assert!(dims.contains(&("Vantage".into(), "us-west-2".into())));
                (dims[0].1.clone(), v.value)
            })
            .collect();
        assert_eq!(votes.len(), 4, "two regions, two probes each");
        assert!(votes.contains(&("eu-west-1".into(), 1.0)));
        assert!(votes.contains(&("us-east-1".into(), 0.0)));
    }

    #[tokio::test]
    async fn a_schedule_cannot_make_it_run_away() {
        let settings = Settings::fixture(&["us-east-1", "us-west-2"]);
        let err = watch_region(
            &settings,
            "us-west-2",
            &MemoryProber::default(),
            &MemoryMonitoring::default(),
            json!({"samples": 100000}),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), "hapilot.InvalidInput", "{err}");
    }
}
