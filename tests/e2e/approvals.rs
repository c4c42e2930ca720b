//! Approvals recorded by the service: an answer goes through the approval function's URL with
//! `AWS_IAM` auth, which knows the answerer from the signature and checks it against the
//! deployment's approvers. A caller who is not an approver, one IAM does not let call the URL,
//! and an unsigned request are refused, and the run still waits.

use hapilot::local::systems::gateway::GatewayMode;
use hapilot::local::world::deployment::DatabaseSetup;
use serde_json::{Value, json};

use crate::support::{FailoverWorld, cli_ok};

/// An IAM user with an access key, `policy` attached when given: (ARN, key id, secret).
async fn user(world: &FailoverWorld, name: &str, policy: Option<&str>) -> (String, String, String) {
    let iam = aws_sdk_iam::Client::new(world.stack.stack().sdk_config());
    let created = iam.create_user().user_name(name).send().await.unwrap();
    if let Some(policy) = policy {
        iam.attach_user_policy()
            .user_name(name)
            .policy_arn(policy)
            .send()
            .await
            .unwrap();
    }
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .unwrap();
    let key = key.access_key().unwrap();
    (
        created.user().unwrap().arn().to_string(),
        key.access_key_id().to_string(),
        key.secret_access_key().to_string(),
    )
}

/// `hapilot approve` as the holder of `key`, with the world's approval URL; its output.
async fn approve_as(
    world: &FailoverWorld,
    key: &(String, String, String),
    run: &str,
) -> std::process::Output {
    world
        .cli()
        .env("AWS_ACCESS_KEY_ID", &key.1)
        .env("AWS_SECRET_ACCESS_KEY", &key.2)
        .args([
            "approve",
            run,
            "--machine",
            "failover",
            "--bucket",
            "hapilot-audit",
        ])
        .args(["--comment", "looks fine to me", "--yes"])
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_answerer_is_who_signed_and_only_an_approver_may_answer() {
    let world = FailoverWorld::start(DatabaseSetup::Patroni).await;
    world.deployment.primary.set_mode(GatewayMode::Failing);
    let region = world.stack.stack().region().to_string();
    let url = world
        .deployment
        .approval_url(&region)
        .expect("the stack's ApprovalUrl output");
    let operator_policy = world.deployment.templates.stacks[&region].refs["OperatorPolicy"]
        .as_str()
        .unwrap()
        .to_string();
    let run = "needs-a-human";
    let arn = world
        .start_failover(run, world.console_input(json!({"needs_approval": true})))
        .await;
    world.wait_for_approval(run).await;

    // Allowed to call the URL, but not an approver: refused by the function, naming the caller.
    let intruder = user(&world, "intruder", Some(&operator_policy)).await;
    let out = approve_as(&world, &intruder, run).await;
    let said = crate::support::said(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("403") && said.contains(&intruder.0) && said.contains("approvers"),
        "{said}"
    );
    // Not allowed to call the URL at all: refused by IAM before the function runs.
    let outsider = user(&world, "outsider", None).await;
    let out = approve_as(&world, &outsider, run).await;
    let said = crate::support::said(&out);
    assert!(
        !out.status.success() && said.contains("Forbidden"),
        "{said}"
    );
    // Unsigned: refused.
    let unsigned = reqwest::Client::new()
        .post(&url)
        .json(&json!({"machine": "failover", "execution": run, "approved": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 403);
    assert!(
        world
            .object(&format!("runs/failover/{run}/approval-answer.json"))
            .await
            .is_none(),
        "nothing was answered"
    );

    // The on-call operator (an approver) answers; the record names who signed, whatever the
    // client claims to be.
    let said = cli_ok(
        world
            .cli()
            .env("HAPILOT_OPERATOR", "claims to be the CTO")
            .args([
                "approve",
                run,
                "--machine",
                "failover",
                "--bucket",
                "hapilot-audit",
            ])
            .args(["--comment", "go", "--yes", "--json"]),
    )
    .await;
    let decision: Value = serde_json::from_str(&said).expect(&said);
    assert_eq!(decision["approved"], true, "{decision:#}");
    let outcome = world.follow(&arn).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());

    // Every command that prints a result prints one JSON document under --json.
    let json_of = |args: Vec<&'static str>| {
        let mut cli = world.cli();
        cli.args(&args).env("HAPILOT_AUDIT_BUCKET", "hapilot-audit");
        async move {
            let out = cli.output().await.unwrap();
            let said = crate::support::said(&out);
            serde_json::from_slice::<Value>(&out.stdout)
                .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {said}"))
        }
    };
    let watched = json_of(vec!["watch", run, "--json"]).await;
    assert_eq!(watched["status"], "SUCCEEDED", "{watched:#}");
    let report = json_of(vec!["report", run, "--json"]).await;
    assert_eq!(report["execution"], run, "{report:#}");
    let status = json_of(vec!["status", "--json"]).await;
    assert!(status.is_object(), "{status:#}");
    let me = json_of(vec!["whoami", "--json"]).await;
    assert_eq!(me["arn"], world.deployment.operator.arn.as_str(), "{me:#}");
    let started = json_of(vec!["start", "readiness", "--json", "--timeout", "300"]).await;
    assert!(
        started["execution_arn"].as_str().is_some() && started["status"].is_string(),
        "{started:#}"
    );
    let answer = world
        .object(&format!("runs/failover/{run}/approval-answer.json"))
        .await
        .unwrap();
    assert_eq!(
        answer["by"],
        world.deployment.operator.arn.as_str(),
        "{answer}"
    );
    assert_eq!(answer["verified_by"], "aws_iam");
    assert_eq!(answer["operator"], "claims to be the CTO");
}
