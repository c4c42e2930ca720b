//! The real failure hapilot exists for: the primary region goes dark, its APIs with it.
//! Three regions on one local stack (primary us-east-1, standby us-west-2, witness eu-west-1),
//! the probers and alarms of each vantage point, the local Route53 data plane and CloudWatch
//! evaluation running, and the front door refusing everything signed for a dark region.

use std::time::{Duration, Instant};

use hapilot::local::systems::gateway::GatewayMode;
use hapilot::local::world::deployment::{
    DatabaseSetup, Databases, LocalDeployment, PRIMARY_SET, RecordRouting, STANDBY_REGION,
    STANDBY_SET, SwitchSetup, THIRD_SET, WITNESS_REGION, WorldOptions, routing_control_arn,
};
use hapilot::runs::follow;
use serde_json::Value;

use crate::support::{RUN_TIMEOUT, TestStack, entered};

/// One local period of 10 s.
const TICK: Duration = Duration::from_millis(300);

struct RegionalWorld {
    stack: TestStack,
    deployment: LocalDeployment,
    data_plane: hapilot::local::aws::data_plane::DataPlane,
}

impl RegionalWorld {
    async fn start(routing: RecordRouting) -> Self {
        Self::start_with(WorldOptions::regional(DatabaseSetup::Patroni, routing)).await
    }

    async fn start_with(options: WorldOptions) -> Self {
        let stack = TestStack::for_templates().await;
        let deployment = LocalDeployment::create_with(stack.stack(), options)
            .await
            .unwrap_or_else(|e| panic!("the local deployment was not created: {e}"));
        let data_plane = deployment.start_data_plane(stack.stack(), TICK);
        let world = Self {
            stack,
            deployment,
            data_plane,
        };
        // Every vantage point has seen the primary up before anything breaks.
        world
            .wait_for(|w| async move { w.watch_alarms_ok().await })
            .await;
        world
    }

    async fn watch_alarms_ok(&self) -> bool {
        self.deployment
            .vantage_points_see_primary_up(self.stack.stack())
            .await
            .unwrap()
    }

    async fn wait_for<'a, F, Fut>(&'a self, condition: F)
    where
        F: Fn(&'a Self) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if condition(self).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "timed out; deliveries so far: {:#?}",
            self.data_plane.deliveries()
        );
    }

    /// The first decision of the standby's router that settles the incident (not a recovery's
    /// `not_an_alarm`, not an `awaiting_quorum` while the vantage points' alarms catch up).
    async fn decision(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(d) = self
                .data_plane
                .deliveries()
                .into_iter()
                .filter_map(|d| d.decision.ok())
                .find(|d| d["reason"] != "not_an_alarm" && d["reason"] != "awaiting_quorum")
            {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no decision: {:#?}", self.data_plane.deliveries());
    }

    async fn answer(&self, client: &str) -> Option<String> {
        self.deployment
            .dns_answer(self.stack.stack(), client)
            .await
            .unwrap()
    }

    async fn follow_in_standby(&self, execution_arn: &str) -> hapilot::runs::RunOutcome {
        let sfn = aws_sdk_sfn::Client::new(&self.stack.stack().sdk_config_in(STANDBY_REGION));
        follow(&sfn, execution_arn, RUN_TIMEOUT, |_| {})
            .await
            .unwrap_or_else(|e| panic!("following {execution_arn}: {e}"))
    }
}

async fn dark_primary_fails_over(options: WorldOptions) -> RegionalWorld {
    let world = RegionalWorld::start_with(options).await;
    assert_eq!(
        world.answer("us-east-1").await.as_deref(),
        Some(PRIMARY_SET)
    );

    let route53_before = route53_calls(&world.stack.stack().served_calls());
    world.stack.stack().black_out("us-east-1");
    world.deployment.primary.set_mode(GatewayMode::Failing);
    let decision = world.decision().await;
    assert_eq!(decision["decision"], "start", "{decision:#}");
    let votes: Vec<&str> = decision["votes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["vote"].as_str().unwrap())
        .collect();
    assert_eq!(votes, ["down", "down", "unknown"], "{decision:#}");
    assert!(
        decision["votes"][2]["detail"]
            .as_str()
            .unwrap()
            .starts_with("unreadable"),
        "the dark region's alarm is no vote: {decision:#}"
    );
    assert_eq!(decision["needs_approval"], false);

    let outcome = world
        .follow_in_standby(decision["execution_arn"].as_str().unwrap())
        .await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    assert!(entered(&outcome, "ShiftTraffic"));
    assert_eq!(
        world.answer("us-east-1").await.as_deref(),
        Some(STANDBY_SET)
    );
    assert_eq!(
        world.answer("eu-west-1").await.as_deref(),
        Some(STANDBY_SET)
    );

    // The emergency path made no call to Route53's control plane and none to us-east-1 but
    // the router's one read of the Route53 alarm's vote there (refused, counted).
    let refused = world.stack.stack().refused_calls();
    for ((region, service), count) in &refused {
        assert_ne!(service, "route53", "{refused:?}");
        assert!(
            region == "us-east-1" && service == "monitoring",
            "unexpected refused call {region}/{service} x{count}: {refused:?}"
        );
    }
    let served = world.stack.stack().served_calls();
    assert_eq!(
        route53_calls(&served),
        route53_before,
        "no Route53 control-plane call may have been made after the blackout: {served:?}"
    );
    world
}

/// us-east-1 dark with eu-west-1 a second secondary (the HA document's section 3): us-west-2
/// is 60 s behind, eu-west-1 0.5 s. The alarm-driven run chooses eu-west-1, promotes its
/// member (us-west-2's follows the new leader) and moves the global name there through the
/// data plane (the template's third record check), calling nothing in us-east-1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dark_primary_fails_over_to_the_secondary_that_loses_least() {
    let mut world = RegionalWorld::start_with(WorldOptions {
        third_region: true,
        ..WorldOptions::regional(DatabaseSetup::Patroni, RecordRouting::Weighted)
    })
    .await;
    world
        .deployment
        .offer_third_region_as_candidate(world.stack.stack())
        .unwrap();
    let Databases::Patroni { primary, standby } = &world.deployment.databases else {
        unreachable!()
    };
    standby.set_replay_lag(Duration::from_secs(60));
    assert_eq!(
        world.answer("eu-west-1").await.as_deref(),
        Some(PRIMARY_SET)
    );

    world.stack.stack().black_out("us-east-1");
    world.deployment.primary.set_mode(GatewayMode::Failing);
    let decision = world.decision().await;
    assert_eq!(decision["decision"], "start", "{decision:#}");
    // Both vantage points saw us-east-1 up before the outage: the quorum decides, no human.
    assert_eq!(decision["needs_approval"], false, "{decision:#}");
    let outcome = world
        .follow_in_standby(decision["execution_arn"].as_str().unwrap())
        .await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    let output = outcome.output.clone().unwrap();
    assert_eq!(
        output["choice"]["chosen"]["region"], WITNESS_REGION,
        "{:#}",
        output["choice"]
    );
    assert_eq!(output["plan"]["standby"]["region"], WITNESS_REGION);
    let third = world.deployment.third.as_ref().unwrap();
    assert!(
        third.patroni_member().unwrap().is_primary(),
        "eu-west-1's member leads"
    );
    assert!(
        !standby.is_primary() && !primary.is_primary(),
        "us-west-2's member follows the new leader"
    );
    for client in ["us-east-1", "eu-west-1", "us-west-2"] {
        assert_eq!(
            world.answer(client).await.as_deref(),
            Some(THIRD_SET),
            "{client}"
        );
    }
    let refused = world.stack.stack().refused_calls();
    for ((region, service), count) in &refused {
        assert!(
            region == "us-east-1" && service == "monitoring",
            "unexpected refused call {region}/{service} x{count}: {refused:?}"
        );
    }
}

/// The HA document's two secondaries on real PostgreSQL: us-east-1 goes dark while
/// us-west-2's gateway fails its checks, so eu-west-1's server is promoted, and us-west-2's
/// server (which the run re-points) streams the new primary's writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_us_west_2_degraded_eu_west_1_takes_over_and_us_west_2_streams_from_it() {
    let mut world = RegionalWorld::start_with(WorldOptions {
        third_region: true,
        ..WorldOptions::regional(DatabaseSetup::Postgres, RecordRouting::Weighted)
    })
    .await;
    world
        .deployment
        .offer_third_region_as_candidate(world.stack.stack())
        .unwrap();
    let Databases::Postgres { pair, .. } = &world.deployment.databases else {
        unreachable!()
    };
    let third = pair.third.as_ref().expect("eu-west-1's server");
    let connect = async |dsn: String| {
        hapilot_adapters::database::PostgresDatabase::new(dsn)
            .connect()
            .await
            .unwrap()
    };
    connect(pair.primary.dsn())
        .await
        .batch_execute(
            "CREATE TABLE spend (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())",
        )
        .await
        .unwrap();
    // The application writes until the region dies (a replica that replayed nothing yet has
    // no bounded data at risk and would not be eligible).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, dsn) = (stop.clone(), pair.primary.dsn());
        tokio::spawn(async move {
            let client = hapilot_adapters::database::PostgresDatabase::new(dsn)
                .connect()
                .await
                .unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = client
                    .batch_execute("INSERT INTO spend DEFAULT VALUES")
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Both replicas replay everything before the outage: with writes racing it, us-west-2 could
    // be a few records ahead of eu-west-1 and (rightly) not follow it, which is the product's
    // answer to another race than the one this test measures (seen in a clean-clone CI run).
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    assert!(
        pair.wait_replicas_caught_up().await,
        "both replicas replay the primary's writes"
    );
    world.deployment.standby.set_mode(GatewayMode::Failing);
    world.stack.stack().black_out("us-east-1");
    world.deployment.primary.set_mode(GatewayMode::Failing);
    tokio::task::block_in_place(|| pair.primary.kill()).unwrap();

    let decision = world.decision().await;
    assert_eq!(decision["decision"], "start", "{decision:#}");
    let outcome = world
        .follow_in_standby(decision["execution_arn"].as_str().unwrap())
        .await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    let output = outcome.output.clone().unwrap();
    assert_eq!(
        output["choice"]["chosen"]["region"], WITNESS_REGION,
        "{:#}",
        output["choice"]
    );
    let scores = output["choice"]["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 2, "{scores:#?}");
    assert_eq!(
        output["followers"]["followers"][0]["region"], STANDBY_REGION,
        "{:#}",
        output["followers"]
    );
    assert_eq!(
        output["followers"]["followers"][0]["state"], "following",
        "{:#}",
        output["followers"]
    );
    for client in ["us-east-1", "eu-west-1", "us-west-2"] {
        assert_eq!(
            world.answer(client).await.as_deref(),
            Some(THIRD_SET),
            "{client}"
        );
    }
    // us-west-2 really streams from eu-west-1: a row the new primary commits arrives there.
    let id: i64 = connect(third.dsn())
        .await
        .query_one("INSERT INTO spend DEFAULT VALUES RETURNING id", &[])
        .await
        .unwrap()
        .get(0);
    let replica = connect(pair.replica.dsn()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = replica
            .query_opt("SELECT 1 FROM spend WHERE id = $1", &[&id])
            .await
            .unwrap();
        if seen.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "row {id} written on eu-west-1 never reached us-west-2"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn route53_calls(calls: &std::collections::BTreeMap<(String, String), u64>) -> u64 {
    calls
        .iter()
        .filter(|((_, service), _)| service == "route53")
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dark_primary_region_fails_over_from_the_standby_through_the_data_plane() {
    let world = dark_primary_fails_over(WorldOptions::regional(
        DatabaseSetup::Patroni,
        RecordRouting::Weighted,
    ))
    .await;

    // The on-call's CLI, configured for us-east-1 as it was before the outage.
    let execution = world.decision().await["execution_arn"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = std::env::temp_dir().join(format!("hapilot-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let settings = dir.join("hapilot.toml");
    std::fs::write(
        &settings,
        "[aws]\nregion = \"us-east-1\"\nregions = [\"us-east-1\", \"us-west-2\", \"eu-west-1\"]\n",
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let mut cli = world.stack.cli();
        cli.arg("--config")
            .arg(&settings)
            .args(args)
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION");
        cli
    };
    // Pinned to the dark region: refused, in one line.
    let pinned = cli(&["--region", "us-east-1", "watch", &execution, "--json"])
        .output()
        .await
        .unwrap();
    assert!(
        !pinned.status.success(),
        "{}",
        crate::support::said(&pinned)
    );
    // --region us-west-2 reaches the standby, where the run is.
    let chosen = crate::support::cli_ok(cli(&[
        "--region",
        "us-west-2",
        "watch",
        &execution,
        "--json",
    ]))
    .await;
    let outcome: Value = serde_json::from_str(&chosen).expect(&chosen);
    assert_eq!(outcome["status"], "SUCCEEDED", "{outcome:#}");
    // Without --region, the dark us-east-1 is passed over for the next region that answers.
    let by_itself = cli(&["watch", &execution, "--json"])
        .output()
        .await
        .unwrap();
    let said = crate::support::said(&by_itself);
    assert!(by_itself.status.success(), "{said}");
    assert!(
        said.contains("us-east-1 does not answer (HTTP 503); using us-west-2"),
        "{said}"
    );
    let outcome: Value = serde_json::from_slice(&by_itself.stdout).expect(&said);
    assert_eq!(outcome["execution_arn"], execution.as_str());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dark_primary_region_fails_over_through_arc_routing_controls_on_the_endpoints_that_answer()
 {
    let world = dark_primary_fails_over(WorldOptions {
        switch: SwitchSetup::ArcRoutingControl,
        ..WorldOptions::regional(DatabaseSetup::Patroni, RecordRouting::Latency)
    })
    .await;
    let arc = world.deployment.arc.as_ref().unwrap();
    assert_eq!(
        arc.states(),
        std::collections::BTreeMap::from([
            (routing_control_arn(PRIMARY_SET), false),
            (routing_control_arn(STANDBY_SET), true),
        ]),
        "the primary's control is Off, the standby's On"
    );
    let calls = arc.calls();
    assert!(
        calls
            .get(&("us-east-1".into(), "refused"))
            .copied()
            .unwrap_or(0)
            > 0,
        "the dark region's endpoint was tried first and refused: {calls:?}"
    );
    assert_eq!(
        calls.get(&("us-east-1".into(), "served")),
        None,
        "{calls:?}"
    );
    assert!(
        calls
            .get(&("us-west-2".into(), "served"))
            .copied()
            .unwrap_or(0)
            > 0,
        "{calls:?}"
    );
    // The routing control holds the fence: with us-east-1 and its gateway back, its own
    // clients still get the standby until a planned failback turns the control On again.
    world.stack.stack().revive("us-east-1");
    world.deployment.primary.set_mode(GatewayMode::Healthy);
    tokio::time::sleep(TICK * 6).await;
    assert_eq!(
        world.answer("us-east-1").await.as_deref(),
        Some(STANDBY_SET)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ha_documents_latency_records_fail_over_with_the_primary_dark() {
    dark_primary_fails_over(WorldOptions::regional(
        DatabaseSetup::Patroni,
        RecordRouting::Latency,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_standby_seeing_the_primary_down_is_no_failover() {
    let mut world = RegionalWorld::start(RecordRouting::Weighted).await;
    // A partition: the standby's prober cannot reach the primary; everyone else can.
    world
        .deployment
        .reconfigure_region(world.stack.stack(), STANDBY_REGION, |s| {
            if let Some(primary) = s.regions.get_mut("us-east-1") {
                primary.health_url = "http://127.0.0.1:9/health".into();
            }
        })
        .unwrap();
    let decision = world.decision().await;
    assert_eq!(
        (decision["decision"].as_str(), decision["reason"].as_str()),
        (Some("ignore"), Some("not_confirmed")),
        "{decision:#}"
    );
    assert!(decision["detail"].as_str().unwrap().contains("eu-west-1"));
    assert_eq!(decision["votes"].as_array().unwrap().len(), 3);
    assert_eq!(
        world.answer("us-east-1").await.as_deref(),
        Some(PRIMARY_SET)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_unreadable_vantage_points_ask_a_human_and_change_nothing() {
    let world = RegionalWorld::start(RecordRouting::Weighted).await;
    world.stack.stack().black_out("us-east-1");
    world.stack.stack().black_out("eu-west-1");
    world.deployment.primary.set_mode(GatewayMode::Failing);
    let decision = world.decision().await;
    assert_eq!(decision["decision"], "start", "{decision:#}");
    assert_eq!(decision["needs_approval"], true, "{decision:#}");
    let arn = decision["execution_arn"].as_str().unwrap().to_string();
    let sfn = aws_sdk_sfn::Client::new(&world.stack.stack().sdk_config_in(STANDBY_REGION));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let history = sfn
            .get_execution_history()
            .execution_arn(&arn)
            .send()
            .await
            .unwrap();
        let asked = history.events().iter().any(|e| {
            e.state_entered_event_details()
                .is_some_and(|d| d.name() == "RequestApproval")
        });
        let fenced = history.events().iter().any(|e| {
            e.state_entered_event_details()
                .is_some_and(|d| d.name() == "FencePrimary")
        });
        assert!(!fenced, "nothing may change before a human answers");
        if asked {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run never asked for approval"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The primary is still in the global name (its endpoint check aside, no control moved).
    let controls =
        aws_sdk_cloudwatch::Client::new(&world.stack.stack().observer_config(STANDBY_REGION))
            .describe_alarms()
            .alarm_names("hapilot-control-primary")
            .send()
            .await
            .unwrap();
    assert_ne!(
        controls.metric_alarms()[0]
            .state_value()
            .map(|s| s.as_str()),
        Some("ALARM")
    );
}

/// Starts `machine` in the standby region with `input`; follows it to its end.
async fn run_in_standby(
    world: &RegionalWorld,
    machine: &str,
    input: Value,
) -> hapilot::runs::RunOutcome {
    let sfn = aws_sdk_sfn::Client::new(&world.stack.stack().sdk_config_in(STANDBY_REGION));
    let arn = world.stack.stack().arn_in(STANDBY_REGION, machine);
    let execution = hapilot::runs::start(&sfn, &arn, &format!("{machine}-planned"), &input)
        .await
        .expect("StartExecution");
    world.follow_in_standby(&execution).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_moves_on_the_ha_documents_latency_records() {
    let world = RegionalWorld::start(RecordRouting::Latency).await;
    let records = |w: &RegionalWorld| {
        let r53 = aws_sdk_route53::Client::new(w.stack.stack().sdk_config());
        let zone = w.deployment.zone_id.clone();
        async move {
            r53.list_resource_record_sets()
                .hosted_zone_id(zone)
                .send()
                .await
                .unwrap()
                .resource_record_sets()
                .to_vec()
        }
    };
    let zone_before = records(&world).await;

    // A canary failback moves weights, which latency records cannot carry (Route53 refuses a
    // weight on them): refused at planning, before anything is read or changed.
    let failback = run_in_standby(
        &world,
        "failback",
        serde_json::json!({
            "primary_region": "us-east-1", "standby_region": STANDBY_REGION,
            "steps": [25, 100], "bake_seconds": 1
        }),
    )
    .await;
    assert!(!failback.succeeded());
    assert!(
        !entered(&failback, "SnapshotWeights"),
        "{}",
        failback.history_text()
    );
    let cause = failback.cause.clone().unwrap_or_default();
    assert!(
        cause.contains("latency records (primary, secondary)") && cause.contains("weighted layer"),
        "{}",
        failback.history_text()
    );

    // A graceful switchover moves the whole share at once through the deployment's on/off
    // switch (the control alarms behind the records' checks), which works on any records.
    let mut input = Value::Object(world.deployment.settings.failover_input_defaults.clone());
    input["primary_region"] = "us-east-1".into();
    input["standby_region"] = STANDBY_REGION.into();
    input["mode"] = "graceful".into();
    let switchover = run_in_standby(&world, "failover", input).await;
    assert!(switchover.succeeded(), "{}", switchover.history_text());
    assert!(
        entered(&switchover, "UseDataPlaneFunctions"),
        "{}",
        switchover.history_text()
    );
    assert_eq!(
        world.answer("us-east-1").await.as_deref(),
        Some(STANDBY_SET)
    );
    // Neither run wrote a record: they are the latency records they were.
    assert_eq!(records(&world).await, zone_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_automatic_failover_off_a_dark_primary_pages_once_with_the_command_and_starts_nothing()
{
    let mut world = RegionalWorld::start(RecordRouting::Weighted).await;
    let mut topic = None;
    world
        .deployment
        .reconfigure_region(world.stack.stack(), STANDBY_REGION, |s| {
            s.automatic_failover = false;
            topic = s.topic_arn.clone();
        })
        .unwrap();
    let queue = crate::support::subscribe_queue(
        world.stack.stack(),
        Some(STANDBY_REGION),
        &topic.expect("a topic"),
    )
    .await;
    world.stack.stack().black_out("us-east-1");
    world.deployment.primary.set_mode(GatewayMode::Failing);
    // Every vantage alarm's change reaches the router; each says why nothing starts.
    world
        .wait_for(|w| async move {
            w.data_plane
                .deliveries()
                .into_iter()
                .filter_map(|d| d.decision.ok())
                .filter(|d| d["reason"] == "automatic_failover_off")
                .count()
                >= 2
        })
        .await;
    let decisions: Vec<Value> = world
        .data_plane
        .deliveries()
        .into_iter()
        .filter_map(|d| d.decision.ok())
        .filter(|d| d["reason"] == "automatic_failover_off")
        .collect();
    assert!(
        decisions.iter().all(|d| d["decision"] == "ignore"),
        "{decisions:#?}"
    );
    let mut pages = Vec::new();
    for _ in 0..50 {
        pages.extend(
            crate::support::notifications(world.stack.stack(), Some(STANDBY_REGION), &queue).await,
        );
        if !pages.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            pages.extend(
                crate::support::notifications(world.stack.stack(), Some(STANDBY_REGION), &queue)
                    .await,
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pages: Vec<&(String, String)> = pages
        .iter()
        .filter(|(subject, _)| subject.contains("automatic failover is off"))
        .collect();
    assert_eq!(pages.len(), 1, "one page for the incident: {pages:#?}");
    assert!(
        pages[0].1.contains("hapilot start failover --input - <<<")
            && pages[0].1.contains("\"mode\": \"ungraceful\""),
        "{}",
        pages[0].1
    );
    let sfn = aws_sdk_sfn::Client::new(&world.stack.stack().sdk_config_in(STANDBY_REGION));
    let runs = sfn
        .list_executions()
        .state_machine_arn(world.stack.stack().arn_in(STANDBY_REGION, "failover"))
        .send()
        .await
        .unwrap();
    assert!(runs.executions().is_empty(), "no run was started");

    // `hapilot status` in the standby shows the open page and the command.
    let status = hapilot::status::read_status(
        &world.stack.stack().sdk_config_in(STANDBY_REGION),
        &world.deployment.region_settings[STANDBY_REGION],
        None,
    )
    .await;
    assert_eq!(status.pages.len(), 1, "{:#?}", status.pages);
    let shown = status.render();
    assert!(
        shown.contains("paged, not acted on") && shown.contains(&status.pages[0].command),
        "{shown}"
    );
}
