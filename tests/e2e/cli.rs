//! `hapilot local up` as a user runs it: a real process that serves until SIGTERM, says in one
//! line what is wrong when it cannot start, and never leaves a moto behind.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{process_alive, wait_gone};

fn hapilot() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hapilot"));
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Reads stdout until the ready line; returns (endpoint, moto pid).
async fn wait_ready(child: &mut Child) -> (String, u32) {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("# ready at ") {
                let endpoint = rest.split_whitespace().next().unwrap().to_string();
                let pid = rest
                    .split("moto pid ")
                    .nth(1)
                    .unwrap()
                    .split(',')
                    .next()
                    .unwrap();
                return (endpoint, pid.parse().unwrap());
            }
        }
        panic!("hapilot local up ended without a ready line");
    };
    tokio::time::timeout(Duration::from_secs(180), read)
        .await
        .expect("ready within 180 s")
}

async fn failing_run(command: &mut Command) -> String {
    let out = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("hapilot ends")
        .unwrap();
    assert!(!out.status.success(), "expected a failure");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let errors: Vec<_> = stderr
        .lines()
        .filter(|l| l.starts_with("hapilot: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one clear line expected, got:\n{stderr}");
    errors[0].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_up_serves_until_sigterm_and_leaves_no_moto() {
    let mut child = hapilot().args(["local", "up", "--bare"]).spawn().unwrap();
    let (endpoint, moto_pid) = wait_ready(&mut child).await;
    assert!(process_alive(moto_pid));

    let sfn = aws_sdk_sfn::Client::new(&hapilot_adapters::sdk::local(&endpoint, "us-east-1"));
    sfn.list_state_machines()
        .send()
        .await
        .expect("the printed endpoint serves AWS APIs");

    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(
        wait_gone(moto_pid, Duration::from_secs(10)).await,
        "moto {moto_pid} outlived the CLI"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_cli_takes_moto_with_it() {
    let mut child = hapilot().args(["local", "up", "--bare"]).spawn().unwrap();
    let (_, moto_pid) = wait_ready(&mut child).await;
    child.kill().await.unwrap(); // SIGKILL: no handler runs, only the kernel's parent-death signal.
    assert!(
        wait_gone(moto_pid, Duration::from_secs(10)).await,
        "moto {moto_pid} outlived a killed CLI"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_one_clear_line() {
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let line = failing_run(hapilot().args(["local", "up", "--bare", "--port", &port])).await;
    assert!(
        line.contains("already in use") && line.contains(&port),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_python_is_one_clear_line() {
    let dir = tempdir("no-python");
    let line = failing_run(
        hapilot()
            .args(["local", "up", "--bare"])
            .env("HAPILOT_VENV", dir.join("venv"))
            .env("HAPILOT_PYTHON", dir.join("no-such-python3")),
    )
    .await;
    assert!(
        line.contains("python3 not found") && line.contains("apt-get install"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moto_that_never_answers_is_stopped_and_reported() {
    // A venv whose moto "is installed" but never serves: asked for its versions it gives the
    // pinned ones; started as moto's server it records its pid and sleeps.
    let dir = tempdir("mute-moto");
    let bin = dir.join("venv/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let pid_file = dir.join("moto.pid");
    script(
        &bin.join("python"),
        &format!(
            "case \"$2\" in\n*moto.server*) echo \"pretending to be moto\" >&2; echo $$ > {}; exec sleep 300;;\nesac\necho {} {}",
            pid_file.display(),
            hapilot::local::aws::moto::MOTO_VERSION,
            hapilot::local::aws::moto::SAM_TRANSLATOR_VERSION
        ),
    );
    script(&bin.join("moto_server"), "exit 1");
    let line = failing_run(
        hapilot()
            .args(["local", "up", "--bare", "--moto-start-timeout", "2"])
            .env("HAPILOT_VENV", dir.join("venv")),
    )
    .await;
    assert!(
        line.contains("moto server did not start") && line.contains("pretending to be moto"),
        "{line}"
    );
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_gone(pid, Duration::from_secs(10)).await,
        "the mute moto {pid} was left running"
    );
}

/// A scratch directory, removed when the test ends, passing or not.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

fn tempdir(tag: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!(
        "hapilot-test-{tag}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `hapilot audit` without AWS set up: a setup error (exit 1) saying what to set, never the
/// exit code of critical backup findings (2).
#[tokio::test]
async fn an_audit_without_region_or_credentials_is_a_setup_error_not_a_finding() {
    let dir = std::env::temp_dir().join(format!("hapilot-audit-setup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |region: Option<&str>| {
        let mut c = hapilot();
        c.current_dir(&dir)
            .args(["audit", "--bucket", "gateway-backups"])
            .env("AWS_CONFIG_FILE", dir.join("no-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"))
            // Never ask the instance metadata service (not a loopback address).
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for var in [
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_PROFILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "HAPILOT_CONFIG",
        ] {
            c.env_remove(var);
        }
        if let Some(r) = region {
            c.env("AWS_REGION", r);
        }
        c.output()
    };
    let out = run(None).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no AWS region: use --region, set AWS_REGION"),
        "{stderr}"
    );
    let out = run(Some("us-east-1")).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no AWS credentials"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("FAILED"),
        "no audit report for a setup error"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A bad input file is said before anything is asked of AWS (no region, no credentials here).
#[tokio::test]
async fn a_bad_input_file_is_refused_before_any_aws_call() {
    let dir = std::env::temp_dir().join(format!("hapilot-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bad.json"), "{not json").unwrap();
    std::fs::write(
        dir.join("typo.json"),
        r#"{"primary_region": "us-east-1", "standby_regoin": "us-west-2", "mode": "sideways"}"#,
    )
    .unwrap();
    for (file, says) in [
        ("missing.json", "No such file"),
        ("bad.json", "the input is not valid JSON"),
        (
            "typo.json",
            "the input does not fit statemachines/schemas/failover.input.json: \
             the input: `standby_region` is required; mode: \"sideways\" is not one of",
        ),
        ("typo.json", "standby_regoin: unknown field"),
    ] {
        let out = hapilot()
            .current_dir(&dir)
            .args(["start", "failover", "--input", file])
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_ENDPOINT_URL")
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(!stderr.contains("credentials"), "{stderr}");
        assert!(
            stderr.lines().count() <= 2,
            "one line, not an SDK dump: {stderr}"
        );
    }
    // A valid input and no region: one line saying what to set, before any call.
    std::fs::write(
        dir.join("run.json"),
        r#"{"primary_region": "us-east-1", "standby_region": "us-west-2"}"#,
    )
    .unwrap();
    for args in [
        &["start", "failover", "--input", "run.json"][..],
        &["status"][..],
        &["report", "some-run", "--bucket", "b"][..],
        &["watch", "some-run"][..],
    ] {
        let line = failing_run(
            hapilot()
                .current_dir(&dir)
                .args(args)
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env_remove("AWS_REGION")
                .env_remove("AWS_DEFAULT_REGION")
                .env_remove("AWS_ENDPOINT_URL")
                .env_remove("HAPILOT_CONFIG"),
        )
        .await;
        assert!(
            line.contains("no AWS region: use --region, set AWS_REGION"),
            "{args:?}: {line}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
