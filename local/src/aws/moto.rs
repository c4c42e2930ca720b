//! moto, the AWS API emulator: installed once into a project-local venv, started per stack.
//!
//! Each stack gets its own moto server, forked by one zygote per venv and process: a Python
//! that imported moto once (`moto_launcher.py --zygote`). A server dies when dropped, when the
//! zygote dies, and the zygote when this process does.

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
/// collector, on re-checking definitions it already accepted, on finding a request's service
/// and on importing moto for every server (the file says why and how).
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
    pid: u32,
    port: u16,
    log: PathBuf,
    stopped: bool,
}

impl MotoServer {
    /// Starts moto's server on 127.0.0.1:`port`, telling its executor that services live at
    /// `localhost:front_door_port`, waits until it answers and switches on state machine
    /// execution. The server is forked by this process's moto zygote for the venv (started on
    /// first use: `moto_launcher.py` says why). On any failure the server is killed
    /// before the error is returned.
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
        let request = ServerRequest {
            port,
            moto_port: front_door_port,
            log: log.clone(),
        };
        let install = install.clone();
        // One zygote per process: its log is named after the process, as a server's after its
        // port (several processes may share a log directory).
        let zygote_log = log_dir.join(format!("moto-zygote-{}.log", std::process::id()));
        let pid = tokio::task::spawn_blocking(move || {
            Zygote::fork_server(&install, &zygote_log, &request, deadline)
        })
        .await
        .map_err(|e| LocalError::io("starting moto")(std::io::Error::other(e)))??;
        let mut server = Self {
            pid,
            port,
            log,
            stopped: false,
        };
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
            if !alive(self.pid) {
                return Err(self.failed("it exited before answering".to_string()));
            }
            if let Ok(r) = client.post(&url).body(EXECUTE_STATE_MACHINES).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > deadline {
                kill(self.pid);
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
        alive(self.pid).then_some(self.pid)
    }

    /// moto's log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Stops moto and waits for it to exit.
    pub async fn stop(mut self) {
        kill(self.pid);
        let started = Instant::now();
        while alive(self.pid) && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stopped = true;
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if !self.stopped {
            kill(self.pid);
        }
    }
}

/// Whether process `pid` exists (the zygote's servers are reaped by the kernel when they exit:
/// an exited server is gone, never a zombie).
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn kill(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: sends SIGKILL to one process we started; nothing else is touched.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// What the zygote is asked for: a server on `port` whose executor calls `moto_port`, logging
/// to `log`.
#[derive(Debug, serde::Serialize)]
struct ServerRequest {
    port: u16,
    moto_port: u16,
    log: PathBuf,
}

/// A Python that has imported moto and built the apps of the services the worlds call, and
/// forks a server per request (one per venv and process).
struct Zygote {
    pid: u32,
    requests: std::process::ChildStdin,
    answers: std::io::BufReader<std::process::ChildStdout>,
    log: PathBuf,
}

impl Zygote {
    /// A server for `request` from the venv's zygote, started first when there is none or the
    /// last one died. A zygote that does not answer within `deadline` is killed (the next
    /// request starts a new one).
    fn fork_server(
        install: &MotoInstall,
        zygote_log: &Path,
        request: &ServerRequest,
        deadline: Duration,
    ) -> Result<u32, LocalError> {
        static ZYGOTES: std::sync::Mutex<Vec<(PathBuf, Zygote)>> =
            std::sync::Mutex::new(Vec::new());
        let mut zygotes = ZYGOTES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = install.python();
        zygotes.retain(|(python, z)| python != &key || alive(z.pid));
        if !zygotes.iter().any(|(python, _)| python == &key) {
            zygotes.push((key.clone(), Zygote::spawn(install, zygote_log)?));
        }
        let at = zygotes
            .iter()
            .position(|(python, _)| python == &key)
            .unwrap_or_default();
        match zygotes[at].1.request(request, deadline) {
            Ok(pid) => Ok(pid),
            Err(detail) => {
                let (_, zygote) = zygotes.remove(at);
                kill(zygote.pid);
                let said = read_tail(&zygote.log, 5);
                Err(LocalError::MotoStartFailed {
                    detail: if said.is_empty() {
                        detail
                    } else {
                        format!("{detail}; the launcher said: {said}")
                    },
                    log: zygote.log,
                })
            }
        }
    }

    /// Starts the zygote from a thread of its own that lives as long as the zygote: the kernel
    /// kills it when the thread that started it ends (`dies_with_parent`), and a test's
    /// runtime threads end with the test.
    fn spawn(install: &MotoInstall, log: &Path) -> Result<Zygote, LocalError> {
        let log_file =
            File::create(log).map_err(LocalError::io(format!("creating {}", log.display())))?;
        let mut command = Command::new(install.python());
        command
            .args(["-c", MOTO_LAUNCHER, "--zygote"])
            .env(
                "HAPILOT_ASL_CHECKED",
                install
                    .venv
                    .join(format!("hapilot-asl-checked-{MOTO_VERSION}")),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file);
        crate::dies_with_parent_std(&mut command);
        let python = install.python();
        let (started, spawned) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("moto-zygote".into())
            .spawn(move || match command.spawn() {
                Ok(mut child) => {
                    let pipes = (child.id(), child.stdin.take(), child.stdout.take());
                    let _ = started.send(Ok(pipes));
                    let _ = child.wait();
                }
                Err(e) => {
                    let _ = started.send(Err(e));
                }
            })
            .map_err(LocalError::io("starting the moto zygote's thread"))?;
        let (pid, requests, answers) = spawned
            .recv()
            .map_err(|e| LocalError::io("starting moto")(std::io::Error::other(e)))?
            .map_err(|e| LocalError::MotoStartFailed {
                detail: format!("could not run {}: {e}", python.display()),
                log: log.to_path_buf(),
            })?;
        let (Some(requests), Some(answers)) = (requests, answers) else {
            return Err(LocalError::MotoStartFailed {
                detail: "the launcher's pipes were not set up".into(),
                log: log.to_path_buf(),
            });
        };
        Ok(Zygote {
            pid,
            requests,
            answers: std::io::BufReader::new(answers),
            log: log.to_path_buf(),
        })
    }

    /// Asks for one server and reads its pid, waiting at most `deadline` for the answer.
    fn request(&mut self, request: &ServerRequest, deadline: Duration) -> Result<u32, String> {
        use std::io::{BufRead, Write};
        use std::os::fd::AsRawFd;
        let line = serde_json::to_string(request).map_err(|e| e.to_string())?;
        writeln!(self.requests, "{line}")
            .and_then(|()| self.requests.flush())
            .map_err(|e| format!("the launcher is gone ({e})"))?;
        if self.answers.buffer().is_empty() {
            let mut ready = libc::pollfd {
                fd: self.answers.get_ref().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let millis = i32::try_from(deadline.as_millis()).unwrap_or(i32::MAX);
            // SAFETY: one pollfd for a pipe this struct owns, for the length given.
            if unsafe { libc::poll(&mut ready, 1, millis) } <= 0 {
                return Err(format!(
                    "the launcher did not answer within {} s",
                    deadline.as_secs()
                ));
            }
        }
        let mut answer = String::new();
        self.answers
            .read_line(&mut answer)
            .map_err(|e| format!("reading the launcher's answer: {e}"))?;
        serde_json::from_str::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| v["pid"].as_u64())
            .and_then(|pid| u32::try_from(pid).ok())
            .ok_or_else(|| format!("the launcher answered {:?}", answer.trim()))
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
