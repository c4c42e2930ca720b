//! The world runs at AWS's pace scaled by one factor, DNS caching included: a resolver keeps
//! the global name's answer for the records' TTL (60 s in AWS, scaled here) after Route53
//! changed it, so what checks the global name right after a switch sees the old region.

use std::time::{Duration, Instant};

use hapilot::local::deployment::{DatabaseSetup, PRIMARY_SET, RECORD_TTL_SECONDS, STANDBY_SET};
use hapilot::local::pace::Pace;
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
