//! `hapilot local up` builds a world people can play with: docs/local-world.md's "Play with the local
//! world" block runs as written against it, line by line, through the real CLI, and
//! `hapilot status` shows a failover in progress, a finished one and a pending approval.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The console lines of docs/local-world.md's local-world block.
fn readme_console() -> Vec<String> {
    let readme =
        std::fs::read_to_string(hapilot::local::project_root().join("docs/local-world.md"))
            .unwrap();
    let block = readme
        .split("<!-- console: local-world -->")
        .nth(1)
        .expect("docs/local-world.md has its local-world console block");
    let body = block
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a ```sh block after the marker");
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

struct World {
    child: tokio::process::Child,
    env: Vec<(String, String)>,
    dir: PathBuf,
}

impl World {
    /// Runs one console line with the world's environment; returns (exit code, stdout + stderr).
    async fn run(&self, line: &str) -> (i32, String) {
        let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_hapilot"))
            .parent()
            .unwrap()
            .to_path_buf();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = tokio::time::timeout(
            Duration::from_secs(240),
            tokio::process::Command::new("bash")
                .arg("-c")
                .arg(line)
                .current_dir(&self.dir)
                .env("PATH", path)
                .envs(self.env.iter().cloned())
                .stdin(Stdio::null())
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("`{line}` did not end in 240 s"))
        .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("$ {line}\n{text}");
        (out.status.code().unwrap_or(-1), text)
    }

    async fn status(&self) -> Value {
        let (code, text) = self.run("hapilot status --json").await;
        assert_eq!(code, 0, "{text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("status --json: {e}\n{text}"))
    }

    /// Polls `hapilot status --json` until `ok` holds (up to 60 s).
    async fn status_until(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self.status().await;
            if ok(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "status never showed {what}: {status:#}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn run_of<'a>(status: &'a Value, machine: &str) -> Option<&'a Value> {
    status["runs"]
        .as_array()?
        .iter()
        .find(|r| r["machine"] == machine && r["region"] == "us-west-2")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_up_builds_a_world_where_the_readme_console_runs_as_written() {
    let dir = std::env::temp_dir().join(format!("hapilot-world-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    // The operator's hapilot.toml tunes the world: a slower confirmation, so the failover is
    // seen in progress, and a short cool-down.
    std::fs::write(
        dir.join("hapilot.toml"),
        "[settings]\nfailover_input_defaults = { probe_samples = 4, probe_interval_ms = 1000 }\ncooldown_seconds = 120\n",
    )
    .unwrap();
    let processes = crate::support::TaggedProcesses::new();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hapilot"))
        .args(["local", "up"])
        .env(crate::support::PROCESS_TAG, &processes.tag)
        .current_dir(&dir)
        .env_remove("HAPILOT_CONFIG")
        .env_remove("AWS_ENDPOINT_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut env = Vec::new();
    let mut said = String::new();
    let ready = tokio::time::timeout(Duration::from_secs(180), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            said.push_str(&line);
            said.push('\n');
            if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
                env.push((k.to_string(), v.to_string()));
            }
            if line.starts_with("# ready at") {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(ready, Ok(true)),
        "local up never got ready:\n{said}"
    );
    assert!(
        said.contains(
            "settings applied: HAPILOT_COOLDOWN_SECONDS, HAPILOT_FAILOVER_INPUT_DEFAULTS"
        ),
        "{said}"
    );
    assert!(
        said.contains("hapilot local kill us-east-1"),
        "it says what to try:\n{said}"
    );
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let world = World { child, env, dir };

    let console = readme_console();
    assert!(console.len() >= 10, "{console:?}");
    let mut saw_running_failover = false;
    for line in &console {
        let (code, text) = world.run(line).await;
        assert_eq!(code, 0, "`{line}` failed:\n{text}");
        let command = line.split("  #").next().unwrap().trim();
        match command {
            "hapilot status" if run_of(&world.status().await, "failover").is_none() => {
                // Before anything happened: us-east-1 serves, everyone sees it up.
                assert!(text.contains("us-east-1  primary    SERVING"), "{text}");
                assert!(text.contains("sees us-east-1  up"), "{text}");
                assert!(text.contains("automatic failover  on"), "{text}");
            }
            "hapilot audit" => assert!(text.contains("Backup audit: PASSED"), "{text}"),
            "hapilot local kill us-east-1" => {
                // The alarms start the failover by themselves: seen running, then finished.
                let running = world
                    .status_until("a failover in progress", |s| {
                        run_of(s, "failover").is_some_and(|r| r["status"] != "RUNNING")
                            || run_of(s, "failover").is_some_and(|r| r["status"] == "RUNNING")
                    })
                    .await;
                saw_running_failover = run_of(&running, "failover").unwrap()["status"] == "RUNNING";
                let done = world
                    .status_until("the failover finished", |s| {
                        run_of(s, "failover").is_some_and(|r| r["status"] != "RUNNING")
                    })
                    .await;
                let failover = run_of(&done, "failover").unwrap();
                assert_eq!(failover["status"], "SUCCEEDED", "{done:#}");
                assert!(failover["ended_at"].is_string());
                let west = done["regions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["region"] == "us-west-2")
                    .unwrap();
                assert_eq!(west["serving"], true, "{done:#}");
                assert!(done["cooldown_left_secs"].as_i64().unwrap() > 0, "{done:#}");
                assert!(
                    done["unreadable"].to_string().contains("HTTP 503"),
                    "the dark region's APIs are said unreadable: {done:#}"
                );
            }
            c if c.starts_with("hapilot failback") => {
                world
                    .status_until("the failback's pending approval", |s| {
                        s["approvals"]
                            .as_array()
                            .is_some_and(|a| a.iter().any(|p| p["execution"] == "failback-1"))
                    })
                    .await;
            }
            "hapilot status" if text.contains("failback failback-1 waits") => {
                assert!(
                    text.contains("answer: hapilot approve failback-1 --machine failback"),
                    "{text}"
                );
            }
            "hapilot report failback-1" => {
                assert!(
                    text.starts_with("# failback run failback-1: succeeded"),
                    "{text}"
                );
            }
            _ => {}
        }
    }
    assert!(
        saw_running_failover,
        "hapilot status never showed the failover in progress (4 confirmation probes 1 s apart)"
    );
    // The world is back where it started: us-east-1 serves and us-west-2 streams from it.
    let end = world
        .status_until("us-west-2 replicating again", |s| {
            s["replication"].as_array().is_some_and(|l| {
                l.iter().any(|l| {
                    l["region"] == "us-west-2" && l["lag_secs"].as_f64().is_some_and(|x| x < 5.0)
                })
            })
        })
        .await;
    let approvals = end["approvals"].as_array().unwrap();
    assert!(approvals.is_empty(), "{end:#}");

    // Faults on demand through the control endpoint: armed, listed, hit, cleared.
    let (code, text) = world
        .run("hapilot local fault --region us-west-2 --service s3 --kind throttle --count 2 --matching no-such-key")
        .await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("armed: the next 2 call(s) of s3 in us-west-2"),
        "{text}"
    );
    let (_, text) = world.run("hapilot local fault").await;
    let listed: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(listed["armed"][0]["count"], 2, "{listed:#}");
    let (code, text) = world
        .run("hapilot local fault --region us-west-2 --service s3 --kind explode")
        .await;
    assert_ne!(code, 0, "an unknown kind is refused: {text}");
    let (code, text) = world.run("hapilot local fault --clear").await;
    assert_eq!(code, 0, "{text}");
    let (_, text) = world.run("hapilot local fault").await;
    assert!(text.contains("\"armed\":[]"), "{text}");

    let World { mut child, dir, .. } = world;
    let pid = child.id().unwrap() as i32;
    // SAFETY: a plain signal to the child we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("local up stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(dir);
}
