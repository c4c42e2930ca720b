//! moto, the AWS API emulator: installed once into a project-local venv, started per stack.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::LocalError;

/// The pinned moto. 5.2.1 (on some machine images) answers the second StartExecution with a 500.
pub const MOTO_REQUIREMENT: &str = "moto[server]==5.2.5";
/// The version [`MOTO_REQUIREMENT`] installs.
pub const MOTO_VERSION: &str = "5.2.5";
/// AWS's SAM transform, the version aws-sam-cli 1.170.0 (`infra/requirements-sam.txt`) pins:
/// the local world deploys the templates through the same translation `sam deploy` applies.
pub const SAM_TRANSLATOR_REQUIREMENT: &str = "aws-sam-translator==1.115.0";
/// The version [`SAM_TRANSLATOR_REQUIREMENT`] installs.
pub const SAM_TRANSLATOR_VERSION: &str = "1.115.0";

/// moto's switch that makes its Step Functions backend execute definitions for real. Must be
/// sent before any CreateStateMachine.
const EXECUTE_STATE_MACHINES: &str = r#"{"stepfunctions":{"execute_state_machine":true}}"#;

/// How moto is started: its own server `main` behind a launcher that spends less CPU on Python's
/// collector and on re-checking definitions it already accepted (the file says why and how).
const MOTO_LAUNCHER: &str = include_str!("moto_launcher.py");

/// The project-local venv that holds moto.
#[derive(Debug, Clone)]
pub struct MotoInstall {
    venv: PathBuf,
}

impl MotoInstall {
    /// The venv at `venv` (created on [`MotoInstall::ensure`] when missing).
    pub fn at(venv: impl Into<PathBuf>) -> Self {
        Self { venv: venv.into() }
    }

    /// The `moto_server` entry point inside the venv (its presence says moto is installed;
    /// [`MotoServer::start`] runs the same `main` through the venv's Python).
    pub fn moto_server(&self) -> PathBuf {
        self.venv.join("bin").join("moto_server")
    }

    fn python(&self) -> PathBuf {
        self.venv.join("bin").join("python")
    }

    /// The venv's Python (runs the SAM translation).
    pub fn python_path(&self) -> PathBuf {
        self.python()
    }

    /// Whether the pinned moto and SAM translator are installed. Asked once per venv and
    /// process: the answer is an import of both packages, about a second of CPU, and every
    /// stack a test binary starts would otherwise pay it again.
    pub fn is_installed(&self) -> bool {
        static CONFIRMED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
        let confirmed = || {
            CONFIRMED
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if self.moto_server().exists() && confirmed().contains(&self.venv) {
            return true;
        }
        let installed = self.imports_pinned_versions();
        if installed {
            confirmed().push(self.venv.clone());
        }
        installed
    }

    fn imports_pinned_versions(&self) -> bool {
        let expected = format!("{MOTO_VERSION} {SAM_TRANSLATOR_VERSION}");
        self.moto_server().exists()
            && Command::new(self.python())
                .args([
                    "-c",
                    "import moto, samtranslator; print(moto.__version__, samtranslator.__version__)",
                ])
                .stderr(Stdio::null())
                .output()
                .is_ok_and(|o| {
                    o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == expected
                })
    }

    /// Installs the pinned moto into the venv unless it is there, using `python` to create the
    /// venv. Safe to call from several processes at once: a file lock serialises installs.
    /// `progress` hears one line before a slow install starts.
    pub fn ensure(&self, python: &str, progress: impl Fn(&str)) -> Result<(), LocalError> {
        if self.is_installed() {
            return Ok(());
        }
        let parent = self.venv.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)
            .map_err(LocalError::io(format!("creating {}", parent.display())))?;
        let lock_path = self.venv.with_extension("lock");
        let lock = File::create(&lock_path)
            .map_err(LocalError::io(format!("creating {}", lock_path.display())))?;
        lock.lock()
            .map_err(LocalError::io(format!("locking {}", lock_path.display())))?;
        // Another process may have finished the install while we waited for the lock.
        if self.is_installed() {
            return Ok(());
        }
        progress(&format!(
            "installing {MOTO_REQUIREMENT} and {SAM_TRANSLATOR_REQUIREMENT} into {} (once; about a minute)",
            self.venv.display()
        ));
        if !self.python().exists() {
            let out = Command::new(python)
                .args(["-m", "venv", "--clear"])
                .arg(&self.venv)
                .output()
                .map_err(|e| LocalError::PythonMissing(format!("{python}: {e}")))?;
            if !out.status.success() {
                return Err(LocalError::VenvFailed {
                    path: self.venv.clone(),
                    detail: tail(&String::from_utf8_lossy(&out.stderr), 3),
                });
            }
        }
        let out = Command::new(self.python())
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--quiet",
                MOTO_REQUIREMENT,
                SAM_TRANSLATOR_REQUIREMENT,
            ])
            .output()
            .map_err(LocalError::io("running pip"))?;
        if !out.status.success() || !self.is_installed() {
            return Err(LocalError::MotoInstallFailed {
                package: format!("{MOTO_REQUIREMENT} {SAM_TRANSLATOR_REQUIREMENT}"),
                venv: self.venv.clone(),
                detail: tail(&String::from_utf8_lossy(&out.stderr), 5),
            });
        }
        Ok(())
    }
}

/// A running moto server; killed when dropped (and by the kernel if our process dies).
#[derive(Debug)]
pub struct MotoServer {
    child: tokio::process::Child,
    port: u16,
    log: PathBuf,
}

impl MotoServer {
    /// Starts moto's server (the venv's Python running [`MOTO_LAUNCHER`]) on
    /// 127.0.0.1:`port`, telling its executor that services live at `localhost:front_door_port`,
    /// waits until it answers and switches on state machine execution. On any failure the child
    /// is killed before the error is returned.
    pub async fn start(
        install: &MotoInstall,
        port: u16,
        front_door_port: u16,
        log_dir: &Path,
        deadline: Duration,
    ) -> Result<Self, LocalError> {
        std::fs::create_dir_all(log_dir)
            .map_err(LocalError::io(format!("creating {}", log_dir.display())))?;
        let log = log_dir.join(format!("moto-{port}.log"));
        let log_file =
            File::create(&log).map_err(LocalError::io(format!("creating {}", log.display())))?;
        let log_err = log_file
            .try_clone()
            .map_err(LocalError::io("cloning the log handle"))?;
        let python = install.python();
        let mut command = tokio::process::Command::new(&python);
        command
            .args([
                "-c",
                MOTO_LAUNCHER,
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .env("MOTO_PORT", front_door_port.to_string())
            .env(
                "HAPILOT_ASL_CHECKED",
                install
                    .venv
                    .join(format!("hapilot-asl-checked-{MOTO_VERSION}")),
            )
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .kill_on_drop(true);
        crate::dies_with_parent(&mut command);
        let child = command.spawn().map_err(|e| LocalError::MotoStartFailed {
            detail: format!("could not run {}: {e}", python.display()),
            log: log.clone(),
        })?;
        let mut server = Self { child, port, log };
        server.wait_ready(deadline).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, deadline: Duration) -> Result<(), LocalError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| self.failed(format!("HTTP client: {e}")))?;
        let url = format!("http://127.0.0.1:{}/moto-api/config", self.port);
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failed(format!("it exited ({status}) before answering")));
            }
            if let Ok(r) = client.post(&url).body(EXECUTE_STATE_MACHINES).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > deadline {
                let _ = self.child.kill().await;
                return Err(self.failed(format!(
                    "no answer on port {} within {} s",
                    self.port,
                    deadline.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn failed(&self, detail: String) -> LocalError {
        let log_tail = read_tail(&self.log, 5);
        let detail = if log_tail.is_empty() {
            detail
        } else {
            format!("{detail}; moto said: {log_tail}")
        };
        LocalError::MotoStartFailed {
            detail,
            log: self.log.clone(),
        }
    }

    /// The port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// moto's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// moto's log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Stops moto and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn read_tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
        let _ = f.read_to_string(&mut text);
    }
    tail(&text, lines)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}
