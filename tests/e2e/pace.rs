//! The world runs at AWS's pace scaled by one factor, DNS caching included: a resolver keeps
//! the global name's answer for the records' TTL (60 s in AWS, scaled here) after Route53
//! changed it, so what checks the global name right after a switch sees the old region.

use std::time::{Duration, Instant};

use hapilot::local::world::deployment::{
    DatabaseSetup, PRIMARY_SET, RECORD_TTL_SECONDS, STANDBY_SET,
};
use hapilot::local::world::pace::Pace;
use serde_json::Value;

use crate::support::FailoverWorld;

async fn region_answering(url: &str) -> String {
    let body: Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["region"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolvers_keep_the_old_answer_for_the_ttl_then_follow_route53() {
    let world = FailoverWorld::start(DatabaseSetup::Patroni).await;
    let ttl = Pace::compressed().local(RECORD_TTL_SECONDS as f64);
    let url = world.deployment.global.health_url();
    let asked = Instant::now();
    assert_eq!(region_answering(&url).await, "us-east-1");
    world
        .deployment
        .set_weights(world.stack.stack(), &[(PRIMARY_SET, 0), (STANDBY_SET, 100)])
        .await
        .unwrap();
    assert_eq!(
        world
            .deployment
            .dns_answer(world.stack.stack(), "us-east-1")
            .await
            .unwrap()
            .as_deref(),
        Some(STANDBY_SET),
        "Route53 answers the standby at once"
    );
    let cached = region_answering(&url).await;
    assert!(
        asked.elapsed() < ttl,
        "the machine took longer than the TTL to get here; nothing to conclude"
    );
    assert_eq!(
        cached, "us-east-1",
        "the resolver still holds the old answer"
    );
    tokio::time::sleep((ttl + Duration::from_millis(300)).saturating_sub(asked.elapsed())).await;
    assert_eq!(
        region_answering(&url).await,
        "us-west-2",
        "after the TTL the resolver asks Route53 again"
    );
}

#[test]
fn the_failovers_verify_window_outlasts_what_resolvers_cache() {
    // A check through the global name right after the switch meets the old answer for up to
    // the TTL, and Route53's checkers need a failure-threshold round to see a region as it is.
    let window = hapilot_core::failover::DEFAULT_VERIFY_WINDOW_SECS as i64;
    assert!(window >= RECORD_TTL_SECONDS + 3 * 10, "{window}");
    // The compressed pace scales the window with everything else.
    let defaults: Value =
        serde_json::from_str(&Pace::compressed().failover_input_defaults()).unwrap();
    let scaled = defaults["verify_window_seconds"].as_f64().unwrap();
    assert!(
        scaled
            >= Pace::compressed()
                .local(RECORD_TTL_SECONDS as f64)
                .as_secs_f64(),
        "{scaled}"
    );
}

/// A forced failover whose global check meets the dead primary's answer in the users'
/// resolver: the answer was cached just before the run, the weights move at once, and the
/// resolver keeps the old answer for the TTL (18 s at this pace). `window`: the run's
/// `verify_window_seconds`, or the pace's default.
async fn failover_through_a_warm_resolver(window: Option<u64>) -> hapilot::runs::RunOutcome {
    use hapilot::local::systems::gateway::GatewayMode;
    use hapilot::local::world::deployment::{LocalDeployment, WorldOptions};
    let pace = Pace::scaled(0.3).unwrap();
    let stack = crate::support::TestStack::for_templates().await;
    let deployment = LocalDeployment::create_with(
        stack.stack(),
        WorldOptions {
            pace,
            ..WorldOptions::classic(DatabaseSetup::Patroni)
        },
    )
    .await
    .unwrap();
    // The primary's gateway fails; Route53's checkers are not running, so only the run's
    // weights move the name.
    deployment.primary.set_mode(GatewayMode::Failing);
    let url = deployment.global.health_url();
    let cached_at = Instant::now();
    let status = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(&url)
        .send()
        .await
        .unwrap()
        .status();
    assert!(
        status.is_server_error(),
        "the resolver now holds the failing primary: {status}"
    );
    let mut input = serde_json::json!({
        "primary_region": "us-east-1", "standby_region": "us-west-2", "force": true,
        "mode": "ungraceful"
    });
    let defaults: Value = serde_json::from_str(&pace.failover_input_defaults()).unwrap();
    input
        .as_object_mut()
        .unwrap()
        .extend(defaults.as_object().unwrap().clone());
    if let Some(w) = window {
        input["verify_window_seconds"] = w.into();
    }
    let outcome = stack.run("failover", input).await;
    // The stale answer was still held when the run checked (else nothing is proven).
    let ttl = pace.local(RECORD_TTL_SECONDS as f64);
    assert!(
        crate::support::entered(&outcome, "CountGlobalCheck"),
        "the global check never met the cached answer (run took {:?} of the {ttl:?} TTL)\n{}",
        cached_at.elapsed(),
        outcome.history_text()
    );
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verify_window_shorter_than_the_ttl_fails_a_failover_that_worked() {
    let outcome = failover_through_a_warm_resolver(Some(2)).await;
    assert!(!outcome.succeeded(), "{}", outcome.history_text());
    assert!(
        crate::support::entered(&outcome, "FailForward"),
        "{}",
        outcome.history_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_verify_window_waits_out_the_cached_answer() {
    let outcome = failover_through_a_warm_resolver(None).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
}
