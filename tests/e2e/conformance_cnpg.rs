//! Conformance of the local CloudNativePG operator with CloudNativePG's documentation
//! (1.24+), on a real PostgreSQL pair: each case names its page. "Fencing"; "Replica
//! clusters" (distributed topology: demotion with `status.demotionToken`, promotion with
//! `spec.replica.promotionToken`, and "Promoting a Replica to a Primary Cluster": without the
//! token "a failover will be triggered, necessitating a rebuild of the former primary");
//! "Bootstrap" (`bootstrap.pg_basebackup` from an external cluster); the refusals of its
//! admission webhook and of the Kubernetes API.

use std::time::Duration;

use hapilot::local::systems::cnpg::{Applied, CnpgOperator, HEALTHY, ManagedCluster, WAITING};
use hapilot::local::systems::kubernetes::SimulatedKubernetes;
use hapilot::local::systems::postgres::PostgresPair;
use serde_json::{Value, json};

use crate::support::postgres::{connect, in_recovery, rows_arrive};

const TOKEN: &str = "conformance-token";
const NAMESPACE: &str = "ai-gateway";

fn resource(name: &str, peer: &str, primary: &str) -> Value {
    json!({
        "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"instances": 1, "storage": {"size": "1Gi"},
                 "replica": {"self": name, "primary": primary, "source": peer},
                 "externalClusters": [{"name": peer}]},
        "status": {"phase": HEALTHY, "readyInstances": 1}
    })
}

struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    fn path(&self, name: Option<&str>) -> String {
        let base = format!(
            "{}/apis/postgresql.cnpg.io/v1/namespaces/{NAMESPACE}/clusters",
            self.url
        );
        name.map_or(base.clone(), |n| format!("{base}/{n}"))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let r = request.bearer_auth(TOKEN).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or_default())
    }

    async fn patch(&self, name: &str, patch: Value) -> (u16, Value) {
        self.send(
            self.http
                .patch(self.path(Some(name)))
                .header("Content-Type", "application/merge-patch+json")
                .body(patch.to_string()),
        )
        .await
    }

    async fn get(&self, name: &str) -> Value {
        self.send(self.http.get(self.path(Some(name)))).await.1
    }

    /// Waits until `name`'s status satisfies `done`.
    async fn until(&self, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..300 {
            let r = self.get(name).await;
            if done(&r["status"]) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{name}: never {what}: {:#}", self.get(name).await);
    }
}

async fn answers(dsn: &str) -> bool {
    tokio_postgres::connect(dsn, tokio_postgres::NoTls)
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloudnativepg_fences_demotes_refuses_a_rejoin_and_rebuilds_as_documented() {
    let pair = tokio::task::spawn_blocking(PostgresPair::start)
        .await
        .unwrap()
        .unwrap();
    let kube = SimulatedKubernetes::start(TOKEN, NAMESPACE, &[])
        .await
        .unwrap();
    kube.put_cnpg_cluster(resource("pg-east", "pg-west", "pg-east"));
    kube.put_cnpg_cluster(resource("pg-west", "pg-east", "pg-east"));
    let (east, west) = pair.nodes();
    let _operator = CnpgOperator::start(vec![
        ManagedCluster {
            name: "pg-east".into(),
            node: east,
            resources: kube.cnpg_resources(),
            role: Applied::Primary,
        },
        ManagedCluster {
            name: "pg-west".into(),
            node: west,
            resources: kube.cnpg_resources(),
            role: Applied::Replica,
        },
    ]);
    let api = Api {
        http: reqwest::Client::new(),
        url: kube.url(),
    };
    let primary = connect(&pair.primary.dsn()).await;
    primary
        .batch_execute("CREATE TABLE writes (id bigserial PRIMARY KEY); INSERT INTO writes SELECT FROM generate_series(1, 10);")
        .await
        .unwrap();
    drop(primary);

    // Fencing: `cnpg.io/fencedInstances: ["*"]` stops every instance; removing it starts them.
    let fence = |on: bool| json!({"metadata": {"annotations": {"cnpg.io/fencedInstances": if on { json!("[\"*\"]") } else { Value::Null }}}});
    assert_eq!(api.patch("pg-east", fence(true)).await.0, 200);
    api.until("pg-east", "fenced", |s| s["phase"] == "Cluster is fenced")
        .await;
    assert!(
        !answers(&pair.primary.dsn()).await,
        "a fenced instance is down"
    );
    assert_eq!(api.patch("pg-east", fence(false)).await.0, 200);
    api.until("pg-east", "unfenced", |s| s["phase"] == HEALTHY)
        .await;
    assert!(answers(&pair.primary.dsn()).await);

    // The admission webhook refuses a promotion token it cannot decode; nothing changes.
    let (code, body) = api
        .patch(
            "pg-west",
            json!({"spec": {"replica": {"primary": "pg-west", "promotionToken": "not-a-token"}}}),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        api.get("pg-west").await["spec"]["replica"]["primary"],
        "pg-east"
    );

    // "Promoting a Replica to a Primary Cluster" without the token: pg-west is promoted while
    // pg-east is still primary. Told to follow, pg-east cannot (diverged timelines): it stays
    // down, waiting for a rebuild, and is never a primary again by itself.
    assert_eq!(
        api.patch(
            "pg-west",
            json!({"spec": {"replica": {"primary": "pg-west"}}})
        )
        .await
        .0,
        200
    );
    api.until("pg-west", "promoted", |s| s["timelineID"] == 2)
        .await;
    let promoted = connect(&pair.replica.dsn()).await;
    assert!(!in_recovery(&promoted).await);
    promoted
        .batch_execute("INSERT INTO writes SELECT FROM generate_series(1, 5)")
        .await
        .unwrap();
    assert_eq!(
        api.patch(
            "pg-east",
            json!({"spec": {"replica": {"primary": "pg-west"}}})
        )
        .await
        .0,
        200
    );
    let waiting = api
        .until("pg-east", "waiting for a rebuild", |s| {
            s["phase"] == WAITING
        })
        .await;
    assert!(
        waiting["status"]["phaseReason"]
            .as_str()
            .is_some_and(|r| r.contains("Rebuild pg-east")),
        "{waiting:#}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!answers(&pair.primary.dsn()).await, "no rejoin by itself");

    // The Kubernetes API's own refusals: a name taken, a name unknown.
    let (code, _) = api
        .send(
            api.http
                .post(api.path(None))
                .json(&resource("pg-east", "pg-west", "pg-west")),
        )
        .await;
    assert_eq!(code, 409, "AlreadyExists");
    let (code, _) = api.send(api.http.delete(api.path(Some("pg-north")))).await;
    assert_eq!(code, 404);

    // The rebuild: delete the Cluster (its PVCs go with it), create it again bootstrapped
    // with pg_basebackup from pg-west; it streams what pg-west has, and what comes next.
    let (code, _) = api.send(api.http.delete(api.path(Some("pg-east")))).await;
    assert_eq!(code, 200);
    let mut rebuilt = resource("pg-east", "pg-west", "pg-west");
    rebuilt["spec"]["bootstrap"] = json!({"pg_basebackup": {"source": "pg-west"}});
    rebuilt.as_object_mut().unwrap().remove("status");
    let (code, created) = api.send(api.http.post(api.path(None)).json(&rebuilt)).await;
    assert_eq!(code, 201, "{created}");
    api.until("pg-east", "bootstrapped", |s| {
        s["phase"] == HEALTHY && s["bootstrappedFrom"] == "pg-west"
    })
    .await;
    promoted
        .batch_execute("INSERT INTO writes SELECT FROM generate_series(1, 3)")
        .await
        .unwrap();
    let old = connect(&pair.primary.dsn()).await;
    assert!(in_recovery(&old).await, "a replica cluster of pg-west");
    assert_eq!(
        rows_arrive(&promoted, &old).await.len(),
        18,
        "every row of the new primary streams to the rebuilt replica"
    );
}
