//! Task `choose-standby`: with more than one secondary in the plan's `candidates`, measure
//! each (its gateway's health through its own URL, its database's data at risk, the failover's
//! replicas already ready there) and choose with [`hapilot_core::standby::choose_standby`]. One
//! candidate is the pinned standby: nothing is measured. Nothing is changed either way; the
//! measurements and the choice go into the journal and, through the state, the report and any
//! approval request.
//!
//! Input: `{"plan": <FailoverPlan>, "run"}`; output: `{"chosen": <RegionSite> | null, "best":
//! <RegionSite>, "scores", "summary", "pinned"?}` (`best`: the top-ranked even when not
//! eligible, what a human's approval fails over to).

use hapilot_adapters::Prober;
use hapilot_adapters::database::Database;
use hapilot_adapters::journal::Journal;
use hapilot_adapters::scaler::Scaler;
use hapilot_core::capacity::judge;
use hapilot_core::failover::{FailoverPlan, RegionSite, assess_data_loss};
use hapilot_core::health::HealthCheckRequest;
use hapilot_core::standby::{CandidateView, choose_standby as choose};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::check_health::probe_endpoint;
use crate::config::Settings;
use crate::error::parse_input;
use crate::run::{RunContext, record};
use crate::scale_region::ready_replicas;

#[derive(Deserialize)]
struct Input {
    plan: FailoverPlan,
    run: RunContext,
}

/// Chooses the run's standby among the plan's candidates.
pub async fn choose_standby<D: Database, S: Scaler>(
    prober: &impl Prober,
    database: impl Fn(&str) -> Result<D, FunctionError>,
    scaler: impl Fn(&str) -> Result<Option<S>, FunctionError>,
    settings: &Settings,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input { plan, run } = parse_input(input)?;
    if plan.candidates.len() <= 1 {
        let out = json!({
            "chosen": plan.standby,
            "best": plan.standby,
            "pinned": true,
            "scores": [],
            "summary": format!("standby {} pinned: the run has no other candidate", plan.standby.region),
        });
        record(journal, &run, json!({ "measurements": out })).await?;
        return Ok(out);
    }
    // All at once: a dark candidate's probes time out beside the others, not after them.
    let views = futures_util::future::join_all(plan.candidates.iter().enumerate().map(
        |(preference, site)| {
            measure(
                prober, &database, &scaler, settings, &plan, site, preference,
            )
        },
    ))
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    let choice = choose(&views, plan.rpo_secs);
    let site_of = |region: &str| plan.candidates.iter().find(|c| c.region == region).cloned();
    let best = choice
        .scores
        .first()
        .and_then(|s| site_of(&s.region))
        .unwrap_or_else(|| plan.standby.clone());
    let out = json!({
        "chosen": choice.chosen.as_deref().and_then(site_of),
        "best": best,
        "scores": choice.scores,
        "summary": choice.summary,
    });
    record(journal, &run, json!({ "measurements": out })).await?;
    Ok(out)
}

/// One candidate as the run sees it now. A database or Kubernetes API that cannot be read
/// leaves that number unknown (an unknown data at risk makes the candidate ineligible).
async fn measure<D: Database, S: Scaler>(
    prober: &impl Prober,
    database: &impl Fn(&str) -> Result<D, FunctionError>,
    scaler: &impl Fn(&str) -> Result<Option<S>, FunctionError>,
    settings: &Settings,
    plan: &FailoverPlan,
    site: &RegionSite,
    preference: usize,
) -> Result<CandidateView, FunctionError> {
    let check = HealthCheckRequest {
        url: site.health_url.clone(),
        label: Some(site.region.clone()),
        samples: Some(plan.probe.samples),
        timeout_ms: Some(plan.probe.timeout_ms),
        interval_ms: Some(plan.probe.interval_ms),
        expect_body: None,
        min_healthy: None,
        require_healthy: false,
    }
    .plan()?;
    let health = probe_endpoint(prober, &check).await;
    let at_risk_secs = match database(&site.region) {
        Ok(db) => match db.replication_status().await {
            Ok(status) => assess_data_loss(&status, plan.rpo_secs).at_risk_secs,
            Err(_) => None,
        },
        Err(_) => None,
    };
    // The share of the failover's replicas ready there now; unknown when they cannot be read.
    let ready_fraction = match scaler(&site.region)? {
        Some(scaler) => match ready_replicas(&scaler, settings).await {
            Ok(observed) if !observed.is_empty() => Some(judge(&observed).ready_fraction),
            _ => None,
        },
        None => None,
    };
    Ok(CandidateView {
        region: site.region.clone(),
        healthy: health.healthy,
        health: health.summary,
        at_risk_secs,
        ready_fraction,
        preference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::database::MemoryDatabase;
    use hapilot_adapters::journal::MemoryJournal;
    use hapilot_adapters::prober::MemoryProber;
    use hapilot_adapters::scaler::MemoryScaler;
    use hapilot_core::failover::{FailoverRequest, ReplicationStatus, plan_failover};
    use hapilot_core::health::ProbeObservation;
    use hapilot_core::tier::Tier;

    fn site(region: &str, set: &str) -> RegionSite {
        RegionSite {
            region: region.into(),
            health_url: format!("http://{region}/health"),
            set_identifier: set.into(),
        }
    }

    fn plan(candidates: &[&str]) -> FailoverPlan {
        let request: FailoverRequest = serde_json::from_value(json!({
            "primary_region": "us-east-1", "standby_region": "us-west-2",
            "standby_candidates": candidates, "probe_samples": 2, "probe_interval_ms": 0,
            "mode": "ungraceful"
        }))
        .unwrap();
        plan_failover(
            &request,
            &[
                site("us-east-1", "primary"),
                site("us-west-2", "secondary"),
                site("eu-west-1", "tertiary"),
            ],
            "http://global/health",
            Tier::Critical,
        )
        .unwrap()
    }

    fn prober(healthy: &[&str]) -> MemoryProber {
        let mut prober = MemoryProber::default();
        for region in ["us-west-2", "eu-west-1"] {
            prober.answers.insert(
                format!("http://{region}/health"),
                ProbeObservation {
                    status: Some(if healthy.contains(&region) { 200 } else { 503 }),
                    body: r#"{"status": "healthy"}"#.into(),
                    latency_ms: 2,
                    failure: None,
                },
            );
        }
        prober
    }

    fn lagging(secs: f64) -> MemoryDatabase {
        MemoryDatabase::new(ReplicationStatus {
            in_recovery: true,
            replay_lag_secs: Some(secs),
            unreplayed_bytes: Some(0),
            streaming: Some(true),
            ..Default::default()
        })
    }

    fn input(plan: &FailoverPlan) -> Value {
        json!({"plan": plan, "run": {"machine": "failover", "execution": "f-1",
               "state": "ChooseStandby", "entered": "2026-12-01T09:00:00Z"}})
    }

    /// Both healthy: the one with less data at risk; us-west-2 degraded: eu-west-1; both
    /// degraded: nobody, the best-ranked offered to a human; one candidate: pinned, unmeasured.
    #[tokio::test]
    async fn the_candidate_that_loses_least_is_chosen_and_a_degraded_one_never() {
        let settings = Settings::with_defaults();
        let journal = MemoryJournal::default();
        let plan = plan(&["eu-west-1"]);
        let database = |r: &str| {
            Ok(if r == "us-west-2" {
                lagging(40.0)
            } else {
                lagging(3.0)
            })
        };
        let scaler = |_: &str| {
            Ok(Some(MemoryScaler::with(&[
                ("litellm", 5),
                ("agentgateway", 3),
            ])))
        };
        let both = choose_standby(
            &prober(&["us-west-2", "eu-west-1"]),
            database,
            scaler,
            &settings,
            &journal,
            input(&plan),
        )
        .await
        .unwrap();
        assert_eq!(both["chosen"]["region"], "eu-west-1", "{both:#}");
        assert_eq!(both["chosen"]["set_identifier"], "tertiary");
        assert_eq!(both["scores"].as_array().unwrap().len(), 2);
        let degraded = choose_standby(
            &prober(&["eu-west-1"]),
            |_: &str| Ok(lagging(0.0)),
            scaler,
            &settings,
            &journal,
            input(&plan),
        )
        .await
        .unwrap();
        assert_eq!(degraded["chosen"]["region"], "eu-west-1", "{degraded:#}");
        let none = choose_standby(
            &prober(&[]),
            database,
            scaler,
            &settings,
            &journal,
            input(&plan),
        )
        .await
        .unwrap();
        assert!(none["chosen"].is_null(), "{none:#}");
        assert_eq!(none["best"]["region"], "eu-west-1");
        assert!(
            none["summary"]
                .as_str()
                .unwrap()
                .contains("without a human")
        );
        let pinned = choose_standby(
            &MemoryProber::default(),
            |_: &str| -> Result<MemoryDatabase, FunctionError> { panic!("not measured") },
            |_: &str| -> Result<Option<MemoryScaler>, FunctionError> { panic!("not measured") },
            &settings,
            &journal,
            input(&self::plan(&[])),
        )
        .await
        .unwrap();
        assert_eq!(pinned["pinned"], true);
        assert_eq!(pinned["chosen"]["region"], "us-west-2");
    }
}
