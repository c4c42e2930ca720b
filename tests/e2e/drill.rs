//! The README's main job, run as a user runs it: `hapilot drill`.

use std::time::Duration;

/// Runs `hapilot drill <args>` as a user does, asserts it succeeded, and returns its output and
/// the report it saved.
async fn drill(args: &[&str]) -> (String, serde_json::Value) {
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hapilot"))
            .arg("drill")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("the drill ends")
    .unwrap();
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
async fn the_drill_fails_over_a_real_database_and_reports_against_the_tier() {
    let (stdout, report) = drill(&[]).await;
    for line in [
        "  -> PromoteStandby",
        "  <- ShiftTraffic",
        "run SUCCEEDED",
        "DNS after      {\"primary\":0,\"secondary\":100}",
        "failback       drill-failback-",
        "step 100 %  gate pass",
        "DR restore     drill-restore-",
        "(SUCCEEDED) in ",
        "failback asks for approval before its first step: approving",
        "  DNS after    {\"primary\":100,\"secondary\":0}",
        "result         PASSED (tier Critical)",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    let committed = report["rows_committed"].as_u64().unwrap();
    assert!(
        committed > 10,
        "the writer committed rows before the kill: {report:#}"
    );
    assert!(report["rows_lost"].as_u64().unwrap() <= committed);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graceful_drill_loses_no_row_and_reprotects_with_pg_rewind() {
    let (stdout, report) = drill(&["--mode", "graceful"]).await;
    for line in [
        "graceful (planned switchover)",
        "  -> CheckCatchup",
        "rows lost             0    target     0    PASSED",
        "re-protect     old primary rebuilt as a replica with pg_rewind",
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
