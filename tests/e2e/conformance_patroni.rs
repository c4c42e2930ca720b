//! Conformance of the local Patroni member with Patroni's REST API: each case names where it
//! comes from (Patroni documentation, "REST API": `GET /cluster`, `GET /primary`, `POST
//! /switchover`, `POST /failover`, `POST /reinitialize`, `restapi.authentication`; the
//! refusals as `patroni/api.py` writes them in `do_POST_failover`, `is_failover_possible` and
//! `Ha.reinitialize`).

use std::time::Duration;

use hapilot::local::systems::patroni::SimulatedPatroni;
use serde_json::{Value, json};

async fn post(member: &SimulatedPatroni, path: &str, body: Value) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", member.url()))
        .basic_auth("patroni", Some("secret"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn status(member: &SimulatedPatroni, path: &str) -> u16 {
    reqwest::get(format!("{}{path}", member.url()))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_refuses_what_patroni_refuses_and_moves_the_leader_as_it_does() {
    let east = SimulatedPatroni::start("pg-east", true).await.unwrap();
    let west = SimulatedPatroni::start("pg-west", false).await.unwrap();
    east.join(&west);
    for m in [&east, &west] {
        m.require_basic_auth("patroni", "secret");
    }

    // restapi.authentication: unsafe requests need the credentials; reads stay open.
    let r = reqwest::Client::new()
        .post(format!("{}/switchover", east.url()))
        .json(&json!({"leader": "pg-east", "candidate": "pg-west"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // GET /primary: 200 on the leader only.
    assert_eq!(
        (
            status(&east, "/primary").await,
            status(&west, "/primary").await
        ),
        (200, 503)
    );
    let cluster: Value = reqwest::get(format!("{}/cluster", west.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let roles: Vec<(&str, &str)> = cluster["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(roles, [("pg-west", "replica"), ("pg-east", "leader")]);

    // api.py do_POST_failover: the requests it refuses before looking at the cluster (400).
    for (path, body, said) in [
        (
            "/failover",
            json!({}),
            "Failover could be performed only to a specific candidate",
        ),
        (
            "/switchover",
            json!({"candidate": "pg-west"}),
            "Switchover could be performed only from a specific leader",
        ),
        (
            "/switchover",
            json!({"leader": "pg-east", "candidate": "pg-east"}),
            "Switchover target and source are the same",
        ),
    ] {
        assert_eq!(post(&west, path, body).await, (400, said.to_string()));
    }
    // api.py is_failover_possible: what the cluster does not allow (412).
    for (path, body, said) in [
        (
            "/switchover",
            json!({"leader": "pg-west", "candidate": "pg-east"}),
            "leader name does not match",
        ),
        (
            "/failover",
            json!({"candidate": "pg-north"}),
            "candidate does not exists",
        ),
    ] {
        assert_eq!(post(&west, path, body).await, (412, said.to_string()));
    }
    // Tags: a member tagged nofailover is no good candidate.
    west.set_nofailover(true);
    assert_eq!(
        post(&east, "/failover", json!({"candidate": "pg-west"})).await,
        (
            412,
            "failover is not possible: no good candidates have been found".to_string()
        )
    );
    west.set_nofailover(false);
    // Ha.reinitialize: the leader is never wiped.
    assert_eq!(
        post(&east, "/reinitialize", json!({"force": true})).await,
        (503, "I am the leader, can not reinitialize".to_string())
    );
    assert!(east.is_primary(), "nothing was refused into a change");

    // A switchover from the leader: the leader key moves, the old leader demotes.
    assert_eq!(
        post(
            &east,
            "/switchover",
            json!({"leader": "pg-east", "candidate": "pg-west"})
        )
        .await,
        (200, "Successfully switched over to \"pg-west\"".to_string())
    );
    for _ in 0..50 {
        if west.is_primary() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        (
            status(&east, "/primary").await,
            status(&west, "/primary").await
        ),
        (503, 200)
    );
    // Now a replica, the old leader can be reinitialized.
    assert_eq!(
        post(&east, "/reinitialize", json!({"force": true})).await,
        (200, "reinitialize started".to_string())
    );
}
