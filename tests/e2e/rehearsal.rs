//! The README's main job, run as a user runs it: `hapilot rehearsal` (what `./scripts/drill`
//! runs), the local rehearsal of a failover.

use std::time::Duration;

use crate::support::{PROCESS_TAG, TaggedProcesses, tagged_processes_left};

/// Runs `hapilot rehearsal <args>` as a user does, asserts it succeeded and left no process
/// behind, and returns its output and the report it saved.
async fn drill(args: &[&str]) -> (String, serde_json::Value) {
    let processes = TaggedProcesses::new();
    let tag = processes.tag.clone();
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hapilot"))
            .arg("rehearsal")
            .args(args)
            .env(PROCESS_TAG, &tag)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the drill ends")
    .unwrap();
    let left = tagged_processes_left(&tag, Duration::from_secs(10)).await;
    assert!(
        left.is_empty(),
        "the drill left processes running: {left:#?}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = stdout
        .lines()
        .find_map(|l| l.strip_prefix("report saved to "))
        .expect("the report is saved");
    let report = serde_json::from_slice(&std::fs::read(saved).unwrap()).unwrap();
    (stdout, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drill_blacks_out_us_east_1_and_fails_over_without_it() {
    let (stdout, report) = drill(&[]).await;
    for line in [
        "us-east-1 goes dark",
        "us-east-1 dark -> quorum alarm",
        "us-east-1 dark -> global name answers us-west-2",
        "votes          us-west-2/hapilot-watch-us-east-1: down (ALARM); eu-west-1/hapilot-watch-us-east-1: down (ALARM); us-east-1/hapilot-primary-health: unknown (unreadable: DescribeAlarms failed: HTTP 503",
        "run SUCCEEDED",
        "DNS before     {\"eu-west-1\":\"primary\",\"us-east-1\":\"primary\",\"us-west-2\":\"primary\"}",
        "DNS after      {\"eu-west-1\":\"secondary\",\"us-east-1\":\"secondary\",\"us-west-2\":\"secondary\"}",
        "emergency path calls to us-east-1: 0 answered",
        "emergency path calls to Route53's control plane: 0  PASSED",
        "us-east-1 comes back",
        "failback       drill-failback-",
        "step 100 %  gate pass",
        "DR restore     drill-restore-",
        "(SUCCEEDED) in ",
        "rows of LiteLLM_SpendLogs.startTime",
        "pace           compressed: every AWS timing x 0.1",
        "failback asks for approval: ",
        "-- approving (the drill plays the operator)",
        "  DNS after    {\"primary\":100,\"secondary\":0}",
        "result         PASSED (tier Critical)",
        "standby        standby us-west-2 pinned: the run has no other candidate",
        // Vault went with the database, the dark cluster re-joined once back.
        "vault          Vault: promote the new primary; the old primary's Vault does not answer",
        "[calls: promote_new]; primary serves secret/data/gateway/litellm (1 key(s))",
        "  vault        Vault: demote the old primary, then re-join the old cluster as a secondary",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    // One line per phase by default: the states each run enters are shown with -v only.
    let states: Vec<&str> = stdout
        .lines()
        .filter(|l| hapilot::runs::is_state_line(l))
        .collect();
    assert!(states.is_empty(), "state lines without -v: {states:?}");
    assert_eq!(report["outage"], "region-dark");
    assert_eq!(
        report["emergency_calls"]["primary_region_served"], 0,
        "{report:#}"
    );
    assert_eq!(
        report["emergency_calls"]["route53_control_plane"], 0,
        "{report:#}"
    );
    // The dark region was asked only for the Route53 alarm's vote (refused): nothing else.
    let refused = report["emergency_calls"]["primary_region_refused"]
        .as_object()
        .unwrap();
    assert!(
        refused.keys().all(|service| service == "monitoring"),
        "{report:#}"
    );
    assert!(
        report["global_name_secs"].as_f64().unwrap() > 0.0,
        "{report:#}"
    );
    assert_eq!(report["decision"]["decision"], "start", "{report:#}");
    let committed = report["rows_committed"].as_u64().unwrap();
    assert!(
        committed > 10,
        "the writer committed rows before the kill: {report:#}"
    );
    assert!(report["rows_lost"].as_u64().unwrap() <= committed);
    // The bound the guard computed before the promotion, from the lag publisher's position,
    // holds the loss the drill measured.
    let bound = &report["data_at_risk"];
    assert!(
        bound["sources"]
            .to_string()
            .contains("journal wal-positions/us-east-1.json"),
        "{report:#}"
    );
    let bound_secs = bound["secs"].as_f64().unwrap();
    assert!(
        report["rpo_secs"].as_f64().unwrap() <= bound_secs + 1.0,
        "{report:#}"
    );
    assert!(
        stdout.contains("data at risk   bound before the promotion: "),
        "{stdout}"
    );
    assert!(report["rto_secs"].as_f64().unwrap() >= report["detection_secs"].as_f64().unwrap());
    assert_eq!(report["run_status"], "SUCCEEDED");
    assert_eq!(report["failback"]["status"], "SUCCEEDED");
    assert_eq!(report["restore"]["status"], "SUCCEEDED", "{report:#}");
    let restored = report["restore"]["rows"].as_i64().unwrap();
    assert!(
        restored > 0 && restored as u64 <= committed,
        "the restore holds what was archived: {report:#}"
    );
}

/// The HA document's three regions: eu-west-1 is a second secondary, us-west-2 is degraded
/// before us-east-1 goes dark; the failover chooses eu-west-1, re-points us-west-2 at it, and
/// the report lists both candidates with their numbers, the capacity wait, Vault and Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_secondaries_and_us_west_2_degraded_the_drill_fails_over_to_eu_west_1() {
    let (stdout, report) = drill(&["--secondaries", "2", "--degrade", "us-west-2"]).await;
    for line in [
        "eu-west-1 is a second secondary",
        "us-west-2 degraded: its gateway fails its health checks",
        "degraded       us-west-2",
        "standby        standby eu-west-1 chosen of 2: healthy, ",
        "  candidate    eu-west-1  healthy, ",
        "  candidate    us-west-2  not healthy (",
        "followers      us-west-2 follows the new primary (timeline 2)  PASSED",
        "capacity       standby capacity ready: ",
        // Vault and Redis of the chosen region: promoted, the other secondary re-joined it;
        // the Redis there usable, what the gateway loses said.
        "[calls: promote_new]; primary serves secret/data/gateway/litellm (1 key(s)); us-west-2 re-joined it",
        "redis          Redis usable",
        "DNS after      {\"eu-west-1\":\"tertiary\",\"us-east-1\":\"tertiary\",\"us-west-2\":\"tertiary\"}",
        "emergency path calls to Route53's control plane: 0  PASSED",
        "result         PASSED (tier Critical)",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    assert_eq!(report["took_over"], "eu-west-1", "{report:#}");
    assert_eq!(report["choice"]["scores"].as_array().unwrap().len(), 2);
    assert_eq!(report["followers"]["attention"], false, "{report:#}");
    assert!(
        report["capacity"]["waited_secs"].as_f64().is_some(),
        "{report:#}"
    );
    assert_eq!(report["failback"]["status"], "SUCCEEDED", "{report:#}");
}

/// What the drill cannot build is refused before anything starts, with what to run instead.
#[tokio::test]
async fn a_drill_the_world_cannot_build_is_refused_up_front() {
    for args in [
        &["--degrade", "us-west-2"][..],
        &["--secondaries", "2", "--database", "cloudnativepg"][..],
        &["--secondaries", "2", "--mode", "graceful"][..],
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hapilot"))
            .arg("rehearsal")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr.contains("run without --secondaries 2 / --degrade"),
            "{args:?}: {stderr}"
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("starting the local stack"),
            "{args:?}: nothing may start"
        );
    }
}

/// A copy of `infra/` in a temporary directory, removed when dropped (whether the test passes
/// or not).
struct InfraCopy {
    dir: std::path::PathBuf,
    /// Its parameters file, which names the copied templates.
    parameters: std::path::PathBuf,
}

impl Drop for InfraCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A copy of `infra/` (templates and parameters file) beside the repository's state machines,
/// with `change` applied to `template.yaml`'s text.
fn infra_copy(change: impl Fn(&str) -> String) -> InfraCopy {
    let root = hapilot::local::project_root();
    let dir = std::env::temp_dir().join(format!(
        "hapilot-infra-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(dir.join("infra/parameters")).unwrap();
    let template = std::fs::read_to_string(root.join("infra/template.yaml")).unwrap();
    std::fs::write(dir.join("infra/template.yaml"), change(&template)).unwrap();
    for file in ["infra/witness.yaml", "infra/parameters/local.json"] {
        std::fs::copy(root.join(file), dir.join(file)).unwrap();
    }
    std::os::unix::fs::symlink(root.join("statemachines"), dir.join("statemachines")).unwrap();
    InfraCopy {
        parameters: dir.join("infra/parameters/local.json"),
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gentle_drill_fails_over_a_dead_gateway_by_weights() {
    // A template whose drill defaults name another table: the rehearsal deploys the template,
    // so its application writes and its restore check reads that table.
    let copy = infra_copy(|text| {
        let changed = text
            .replace("Default: LiteLLM_SpendLogs", "Default: Gateway_Requests")
            .replace("Default: startTime", "Default: requestTime");
        assert_ne!(changed, text, "the template's drill defaults moved");
        changed
    });
    let (stdout, report) = drill(&[
        "-v",
        "--outage",
        "gateway-down",
        "--parameters",
        copy.parameters.to_str().unwrap(),
    ])
    .await;
    assert!(
        stdout.contains("rows of Gateway_Requests.requestTime"),
        "the restore check reads the template's table: {stdout}"
    );
    for line in [
        "killing the primary region: gateway down",
        "primary killed -> alarm",
        "  <- ShiftTraffic",
        "DNS after      {\"primary\":0,\"secondary\":100}",
        "step 100 %  gate pass",
        "result         PASSED (tier Critical)",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    assert_eq!(report["outage"], "gateway-down");
    assert!(report["emergency_calls"].is_null(), "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graceful_drill_loses_no_row_and_reprotects_with_pg_rewind() {
    let (stdout, report) = drill(&["-v", "--mode", "graceful"]).await;
    for line in [
        "graceful (planned switchover)",
        "  -> CheckCatchup",
        "rows lost             0    target     0    PASSED",
        "re-protect     old primary made a replica by pg_rewind",
        "result         PASSED (tier Critical)",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    assert_eq!(report["rows_lost"], 0, "{report:#}");
    assert!(
        report["rows_committed"].as_u64().unwrap() > 10,
        "{report:#}"
    );
    assert!(report["fence_secs"].as_f64().unwrap() > 0.0, "{report:#}");
    assert_eq!(report["failback"]["reprotect_method"], "pg_rewind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drill_fails_over_cloudnativepg_replica_clusters_with_the_region_dark() {
    let (stdout, report) = drill(&["--database", "cloudnativepg"]).await;
    for line in [
        "database backend cloudnativepg",
        "emergency path calls to Route53's control plane: 0  PASSED",
        "reprotect asks for approval: Re-protect us-east-1: its database must be rebuilt from us-west-2.",
        "re-protect     old primary made a replica by cnpg_rebuild",
        "result         PASSED (tier Critical)",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    assert_eq!(report["database"], "cloudnativepg");
    assert_eq!(report["failback"]["status"], "SUCCEEDED", "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graceful_cloudnativepg_drill_switches_over_with_the_token_and_loses_nothing() {
    let (stdout, report) =
        drill(&["-v", "--database", "cloudnativepg", "--mode", "graceful"]).await;
    for line in [
        "database backend cloudnativepg",
        "  -> CheckCatchup",
        "rows lost             0    target     0    PASSED",
        "re-protect     old primary made a replica by nothing (already streaming",
        "result         PASSED (tier Critical)",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    assert_eq!(report["rows_lost"], 0, "{report:#}");
    assert_eq!(report["database"], "cloudnativepg");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_every_process_the_cloudnativepg_drill_started() {
    use tokio::io::AsyncBufReadExt;
    let processes = TaggedProcesses::new();
    let tag = processes.tag.clone();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hapilot"))
        .args(["rehearsal", "--database", "cloudnativepg"])
        .env(PROCESS_TAG, &tag)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // In the middle of the outage: every service is up, the failover is under way.
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let seen = tokio::time::timeout(Duration::from_secs(240), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("goes dark") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(seen, "the drill never reached its outage");
    let running = crate::support::tagged_processes(&tag);
    for program in ["postgres", "moto"] {
        assert!(
            running.iter().any(|(_, cmdline)| cmdline.contains(program)),
            "the tag reaches the drill's {program} processes: {running:#?}"
        );
    }
    let pid = child.id().unwrap() as i32;
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the drill stops on Ctrl-C")
        .unwrap();
    assert!(!status.success());
    let left = tagged_processes_left(&tag, Duration::from_secs(10)).await;
    assert!(left.is_empty(), "Ctrl-C left processes running: {left:#?}");
}
