//! A real PostgreSQL streaming-replication pair on loopback, for the drill and the tests:
//! `initdb` a primary, start it, `pg_basebackup -R -X stream` a replica from it, start that.
//!
//! PostgreSQL refuses to run as root; as root (CI) every server command runs as the `postgres`
//! system user in a directory that user owns.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::LocalError;

use crate::free_port;

/// Finds the PostgreSQL server binaries (`initdb`, `pg_ctl`, `pg_basebackup`).
pub fn server_bin_dir() -> Result<PathBuf, LocalError> {
    if let Some(dir) = std::env::var_os("HAPILOT_PG_BIN").map(PathBuf::from) {
        return Ok(dir);
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    candidates.retain(|p| p.join("initdb").exists());
    candidates.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    candidates.pop().ok_or_else(|| LocalError::Io {
        context:
            "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql; \
                  install them (Debian: apt-get install -y postgresql) or set HAPILOT_PG_BIN"
                .into(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The `postgres` system user's uid (PostgreSQL will not run as root).
fn postgres_uid() -> Result<u32, LocalError> {
    Command::new("id")
        .args(["-u", "postgres"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u32>()
                .ok()
        })
        .ok_or_else(|| LocalError::Io {
            context:
                "PostgreSQL will not run as root and there is no `postgres` user to run it as \
                      (Debian: apt-get install -y postgresql creates it)"
                    .into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })
}

/// Runs a PostgreSQL program, as the `postgres` user when we are root.
fn pg_command(bin: &Path, program: &str) -> Command {
    let exe = bin.join(program);
    if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(exe);
        c
    } else {
        Command::new(exe)
    }
}

fn run(mut command: Command, what: &str) -> Result<(), LocalError> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(LocalError::io(format!("running {what}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LocalError::Io {
            context: format!(
                "{what} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            source: std::io::Error::other("PostgreSQL command failed"),
        })
    }
}

/// One PostgreSQL server of the pair.
#[derive(Debug, Clone)]
pub struct PostgresServer {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    /// The port held bound until the server first starts, for a server whose port is handed
    /// out long before that (the DR and scratch hosts: a restore may come minutes later). A
    /// port only checked free when chosen was taken meanwhile by a child of another test
    /// process (CI: "could not create any TCP/IP sockets"); held, every other `free_port`
    /// skips it.
    held: std::sync::Arc<std::sync::Mutex<Option<std::net::TcpListener>>>,
}

impl PostgresServer {
    /// libpq connection string (trust authentication on loopback; no password).
    pub fn dsn(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// A URI DSN that verifies the server fully (`sslmode=verify-full` against the pair's CA,
    /// `localhost` named, 127.0.0.1 dialled): what a production DSN to RDS looks like.
    pub fn verified_dsn(&self, ca: &Path) -> String {
        self.verified_dsn_at(self.port, ca)
    }

    /// [`Self::verified_dsn`] dialling `port` (a front before the server).
    pub fn verified_dsn_at(&self, port: u16, ca: &Path) -> String {
        format!(
            "postgresql://postgres@localhost:{port}/postgres?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
            ca.display()
        )
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn start(&self) -> Result<(), LocalError> {
        // Released just before PostgreSQL binds it (it sets SO_REUSEADDR; the listener never
        // accepted anything).
        drop(
            self.held
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        let mut c = pg_command(&self.bin, "pg_ctl");
        c.arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.data.join("server.log"))
            .args(["-w", "-t", "60", "start"]);
        run(c, "pg_ctl start").map_err(|e| {
            // "Examine the log output" says nothing to whoever reads the failure: bring the
            // server's last words along (a failed recovery names its WAL and target there).
            let log = std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default();
            let said = server_log_summary(&log);
            match e {
                LocalError::Io { context, source } if !said.is_empty() => LocalError::Io {
                    context: format!("{context}; server.log: {said}"),
                    source,
                },
                e => e,
            }
        })
    }

    /// Stops it the way a crash or a lost region does: no shutdown checkpoint, clients cut off.
    pub fn kill(&self) -> Result<(), LocalError> {
        let mut c = pg_command(&self.bin, "pg_ctl");
        c.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        run(c, "pg_ctl stop -m immediate")
    }

    fn stop_quietly(&self) {
        let mut c = pg_command(&self.bin, "pg_ctl");
        c.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = c.status();
    }
}

/// How [`PostgresPair::start_with`] makes the pair.
#[derive(Debug, Clone, Default)]
pub struct PairOptions {
    /// `initdb --wal-segsize` in MiB (default 16).
    pub wal_segment_mib: Option<u32>,
    /// `pg_resetwal -l`: the first WAL file the primary writes (e.g. just before a log-id
    /// boundary, which would otherwise take 4 GiB of WAL to reach).
    pub first_wal_file: Option<String>,
}

/// A primary and its streaming replica; both stopped and their files removed when dropped.
#[derive(Debug)]
pub struct PostgresPair {
    /// WAL segment size in bytes.
    segment_size: u64,
    root: PathBuf,
    /// The primary (region 1).
    pub primary: PostgresServer,
    /// The streaming replica (region 2).
    pub replica: PostgresServer,
    /// A second streaming replica of the primary (region 3), once
    /// [`PostgresPair::start_third_replica`] made it.
    pub third: Option<PostgresServer>,
}

impl PostgresPair {
    /// Creates and starts the pair under a fresh temporary directory. Blocking (a few seconds):
    /// call it from `spawn_blocking` in async code.
    pub fn start() -> Result<Self, LocalError> {
        Self::start_with(PairOptions::default())
    }

    /// [`PostgresPair::start`] with a WAL segment size and a first WAL file of choice.
    pub fn start_with(options: PairOptions) -> Result<Self, LocalError> {
        let bin = server_bin_dir()?;
        let root =
            std::env::temp_dir().join(format!("hapilot-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&root)
            .map_err(LocalError::io(format!("creating {}", root.display())))?;
        if running_as_root() {
            let uid = postgres_uid()?;
            std::os::unix::fs::chown(&root, Some(uid), None).map_err(LocalError::io(format!(
                "giving {} to postgres",
                root.display()
            )))?;
        }
        let primary = PostgresServer {
            bin: bin.clone(),
            data: root.join("primary"),
            port: free_port().map_err(LocalError::io("finding a free port"))?,
            held: Default::default(),
        };
        let mut pair = Self {
            segment_size: u64::from(options.wal_segment_mib.unwrap_or(16)) * 1024 * 1024,
            root: root.clone(),
            replica: PostgresServer {
                bin: bin.clone(),
                data: root.join("replica"),
                port: 0,
                held: Default::default(),
            },
            third: None,
            primary,
        };
        let mut initdb = pg_command(&bin, "initdb");
        initdb.arg("-D").arg(&pair.primary.data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        if let Some(mib) = options.wal_segment_mib {
            initdb.arg(format!("--wal-segsize={mib}"));
        }
        run(initdb, "initdb")?;
        if let Some(file) = &options.first_wal_file {
            let mut reset = pg_command(&bin, "pg_resetwal");
            reset.arg("-l").arg(file).arg("-D").arg(&pair.primary.data);
            run(reset, "pg_resetwal -l")?;
        }
        pair.scratch_dir("archive")?;
        make_tls_files(&root)?;
        append_conf(&pair.primary.data, pair.primary.port, &root)?;
        pair.primary.start()?;
        let mut basebackup = pg_command(&bin, "pg_basebackup");
        basebackup
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &pair.primary.port.to_string(),
                "-U",
                "postgres",
                "-D",
            ])
            .arg(&pair.replica.data)
            .args(["-R", "-X", "stream", "-c", "fast"]);
        run(basebackup, "pg_basebackup")?;
        pair.replica.port = free_port().map_err(LocalError::io("finding a free port"))?;
        append_conf(&pair.replica.data, pair.replica.port, &root)?;
        pair.replica.start()?;
        Ok(pair)
    }
}

impl PostgresPair {
    /// Adds a second streaming replica of the primary (the HA document's second secondary):
    /// a fresh `pg_basebackup -R` of the primary, started. Blocking.
    pub fn start_third_replica(&mut self) -> Result<&PostgresServer, LocalError> {
        let mut third = PostgresServer {
            bin: self.primary.bin.clone(),
            data: self.root.join("third"),
            port: 0,
            held: Default::default(),
        };
        let mut basebackup = pg_command(&self.primary.bin, "pg_basebackup");
        basebackup
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.primary.port.to_string(),
                "-U",
                "postgres",
                "-D",
            ])
            .arg(&third.data)
            .args(["-R", "-X", "stream", "-c", "fast"]);
        run(basebackup, "pg_basebackup (third replica)")?;
        third.port = free_port().map_err(LocalError::io("finding a free port"))?;
        append_conf(&third.data, third.port, &self.root)?;
        third.start()?;
        Ok(self.third.insert(third))
    }

    /// The CA that signed both servers' certificates (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.root.join("tls").join("ca.pem")
    }

    /// A fresh directory under the pair's root that the server user may write (for
    /// `pg_basebackup -D` and the like).
    pub fn scratch_dir(&self, name: &str) -> Result<PathBuf, LocalError> {
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir)
            .map_err(LocalError::io(format!("creating {}", dir.display())))?;
        if running_as_root() {
            let uid = postgres_uid()?;
            std::os::unix::fs::chown(&dir, Some(uid), None).map_err(LocalError::io(format!(
                "giving {} to postgres",
                dir.display()
            )))?;
        }
        Ok(dir)
    }

    /// Where both servers archive their completed WAL segments (`archive_command`), with the
    /// `.backup` history files of base backups.
    pub fn archive_dir(&self) -> PathBuf {
        self.root.join("archive")
    }

    /// Runs a PostgreSQL client program (`pg_basebackup`, `pg_verifybackup`, ...) of the same
    /// installation, as the server user when we are root.
    pub fn tool(&self, program: &str) -> Command {
        pg_command(&self.primary.bin, program)
    }

    /// Re-protects after a failover: throws the old primary's data away and rebuilds it as a
    /// streaming replica of the promoted one (fresh `pg_basebackup -R`), then starts it. The old
    /// primary must be stopped. Blocking.
    pub fn rebuild_primary_from_replica(&self) -> Result<(), LocalError> {
        std::fs::remove_dir_all(&self.primary.data).map_err(LocalError::io(format!(
            "removing {}",
            self.primary.data.display()
        )))?;
        let mut basebackup = pg_command(&self.primary.bin, "pg_basebackup");
        basebackup
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.replica.port.to_string(),
                "-U",
                "postgres",
                "-D",
            ])
            .arg(&self.primary.data)
            .args(["-R", "-X", "stream", "-c", "fast"]);
        run(basebackup, "pg_basebackup (re-protect)")?;
        append_conf(&self.primary.data, self.primary.port, &self.root)?;
        self.primary.start()
    }
}

/// One server of the pair with what it takes to rebuild it in place (the host agent's side of
/// re-protection).
#[derive(Debug, Clone)]
pub struct PostgresNode {
    /// The server.
    pub server: PostgresServer,
    root: PathBuf,
}

/// How a node was rebuilt as a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    /// `pg_rewind` or `pg_basebackup`.
    pub method: &'static str,
    /// Why the fallback was needed, or what the tool said.
    pub detail: String,
}

impl PostgresPair {
    /// Waits (5 s at most) until every replica has replayed the primary's current WAL
    /// position; whether they all did. Asynchronous replicas trail by a few records at any
    /// moment, and one trailing the other decides whether the one ahead can follow the one
    /// behind after a promotion: a drill or test that measures the following (not the race)
    /// stops its writer and waits here before the outage.
    pub async fn wait_replicas_caught_up(&self) -> bool {
        use hapilot_adapters::database::{Database, PostgresDatabase};
        let position = |dsn: String| async move {
            PostgresDatabase::new(dsn)
                .wal_position()
                .await
                .map(|p| p.lsn)
                .unwrap_or(0)
        };
        let target = position(self.primary.dsn()).await;
        let replicas: Vec<String> = std::iter::once(&self.replica)
            .chain(self.third.as_ref())
            .map(|s| s.dsn())
            .collect();
        for _ in 0..50 {
            let mut behind = false;
            for dsn in &replicas {
                behind |= position(dsn.clone()).await < target;
            }
            if !behind {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    }
}

impl PostgresPair {
    /// Its WAL segment size in bytes.
    pub fn segment_size(&self) -> u64 {
        self.segment_size
    }
}

impl PostgresPair {
    /// The two servers as nodes (old primary, old replica), for host agents.
    pub fn nodes(&self) -> (PostgresNode, PostgresNode) {
        let node = |server: &PostgresServer| PostgresNode {
            server: server.clone(),
            root: self.root.clone(),
        };
        (node(&self.primary), node(&self.replica))
    }
}

impl PostgresPair {
    /// A third server's place in the DR region: nothing there until a restore lays it down.
    pub fn dr_node(&self) -> Result<PostgresNode, LocalError> {
        self.empty_node("dr")
    }

    /// The restore test's scratch host: nothing there until a test lays a server down, and
    /// nothing after its teardown.
    pub fn scratch_node(&self) -> Result<PostgresNode, LocalError> {
        self.empty_node("scratch")
    }

    fn empty_node(&self, name: &str) -> Result<PostgresNode, LocalError> {
        let (port, listener) = held_port()?;
        Ok(PostgresNode {
            server: PostgresServer {
                bin: self.primary.bin.clone(),
                data: self.root.join(name),
                port,
                held: std::sync::Arc::new(std::sync::Mutex::new(Some(listener))),
            },
            root: self.root.clone(),
        })
    }
}

/// A free port for a server that starts later, and the listener that holds it until then.
fn held_port() -> Result<(u16, std::net::TcpListener), LocalError> {
    for _ in 0..16 {
        let port = free_port().map_err(LocalError::io("finding a free port"))?;
        // Another process may bind it between free_port's check and this bind: take the next.
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return Ok((port, listener));
        }
    }
    Err(LocalError::io("holding a free port")(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "16 free ports were taken before they could be held",
    )))
}

impl PostgresNode {
    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        &self.server.data
    }

    /// A fresh directory for the agent's downloads, writable by the server's user.
    pub fn work_dir(&self, name: &str) -> Result<PathBuf, LocalError> {
        let dir = self.root.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(LocalError::io(format!("creating {}", dir.display())))?;
        give_to_postgres(&dir)?;
        Ok(dir)
    }

    /// Lays down a data directory from a base backup tar (plain or gzip) and recovers it with
    /// WAL from `wal_dir` (`restore_command`), to `target_time` or to the end of the WAL, then
    /// promotes it (`recovery_target_action = promote`). Starts the server and returns once it
    /// accepts connections. Blocking.
    pub fn restore(
        &self,
        base_tar: &Path,
        wal_dir: &Path,
        target_time: Option<&str>,
    ) -> Result<(), LocalError> {
        let s = &self.server;
        let mut stop = pg_command(&s.bin, "pg_ctl");
        stop.arg("-D")
            .arg(&s.data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = stop.status();
        let _ = std::fs::remove_dir_all(&s.data);
        std::fs::create_dir_all(&s.data)
            .map_err(LocalError::io(format!("creating {}", s.data.display())))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&s.data, std::fs::Permissions::from_mode(0o700))
            .map_err(LocalError::io("restricting the data directory"))?;
        give_to_postgres(&s.data)?;
        let mut untar = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "tar"]);
            c
        } else {
            Command::new("tar")
        };
        untar.arg("-xf").arg(base_tar).arg("-C").arg(&s.data);
        run(untar, "tar -x (base backup)")?;
        let pg_wal = s.data.join("pg_wal");
        if !pg_wal.exists() {
            std::fs::create_dir_all(&pg_wal)
                .map_err(LocalError::io(format!("creating {}", pg_wal.display())))?;
            give_to_postgres(&pg_wal)?;
        }
        let signal = s.data.join("recovery.signal");
        std::fs::write(&signal, b"").map_err(LocalError::io("writing recovery.signal"))?;
        give_to_postgres(&signal)?;
        append_conf(&s.data, s.port, &self.root)?;
        use std::io::Write;
        let conf = s.data.join("postgresql.conf");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(LocalError::io(format!("opening {}", conf.display())))?;
        let mut recovery = format!(
            "\n# hapilot DR restore\narchive_mode = off\nrestore_command = 'cp {}/%f %p'\n\
             recovery_target_timeline = 'latest'\nrecovery_target_action = 'promote'\n",
            wal_dir.display()
        );
        if let Some(t) = target_time {
            recovery.push_str(&format!("recovery_target_time = '{t}'\n"));
        }
        f.write_all(recovery.as_bytes())
            .map_err(LocalError::io(format!("writing {}", conf.display())))?;
        drop(f);
        // Since PostgreSQL 13 a target after the archive's last commit is FATAL ("recovery
        // ended before configured recovery target was reached") even when the archive reaches
        // past it (hapilot's plan checked that). Every commit replayed was then at or before
        // the target, so the end of the archived WAL is the state at the target: recover to it.
        match recover(s) {
            Err(_)
                if target_time.is_some()
                    && std::fs::read_to_string(s.data.join("server.log"))
                        .unwrap_or_default()
                        .contains(
                            "recovery ended before configured recovery target was reached",
                        ) =>
            {
                let text = std::fs::read_to_string(&conf)
                    .map_err(LocalError::io(format!("reading {}", conf.display())))?;
                let without: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.starts_with("recovery_target_time"))
                    .collect();
                std::fs::write(&conf, without.join("\n") + "\n")
                    .map_err(LocalError::io(format!("writing {}", conf.display())))?;
                recover(s)
            }
            outcome => outcome,
        }
    }
}

/// Starts a server laid down for recovery and waits for the recovery's end: promoted and
/// accepting connections, or gone. `pg_ctl -w` alone returns as soon as a hot standby takes
/// read-only connections, long before a recovery that fails at its end; a recovery still
/// going after ten minutes is left to the caller's polling.
fn recover(s: &PostgresServer) -> Result<(), LocalError> {
    let log_path = s.data.join("server.log");
    let from = std::fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
    s.start()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while std::time::Instant::now() < deadline {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let this_start = log.get(from..).unwrap_or_default();
        if this_start.contains("database system is ready to accept connections") {
            return Ok(());
        }
        if this_start.contains("shutting down due to startup process failure")
            || this_start.contains("database system is shut down")
        {
            return Err(LocalError::Io {
                context: format!(
                    "recovery failed after the server started; server.log: {}",
                    server_log_summary(this_start)
                ),
                source: std::io::Error::other("PostgreSQL recovery failed"),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(())
}

/// What a server that would not start said that matters: the last WAL file it restored from
/// the archive (the one a failed recovery was replaying) and its FATAL and PANIC lines; the
/// log's last lines when it said neither.
fn server_log_summary(log: &str) -> String {
    let restored = log.lines().rev().find(|l| l.contains("restored log file"));
    // FATAL and PANIC lines say why a recovery failed; a clean shutdown in the middle of one
    // says only who asked for it ("received fast shutdown request").
    let fatal: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("FATAL:") || l.contains("PANIC:") || l.contains("shutdown request"))
        .take(3)
        .collect();
    let mut said: Vec<&str> = restored.into_iter().chain(fatal).collect();
    if said.is_empty() {
        said = log.lines().rev().take(4).collect();
        said.reverse();
    }
    said.iter()
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn give_to_postgres(path: &Path) -> Result<(), LocalError> {
    if running_as_root() {
        let uid = postgres_uid()?;
        std::os::unix::fs::chown(path, Some(uid), None).map_err(LocalError::io(format!(
            "giving {} to postgres",
            path.display()
        )))?;
    }
    Ok(())
}

impl PostgresNode {
    /// Turns this server into a streaming replica of `source_dsn`: stops it, `pg_rewind -R`
    /// from the source; when rewinding is impossible, a fresh `pg_basebackup -R`; then starts
    /// it. Blocking (seconds).
    pub fn rebuild_from(&self, source_dsn: &str) -> Result<Rebuilt, LocalError> {
        let s = &self.server;
        // Not running is fine: a crashed primary is the usual case.
        self.stop_cleanly();
        // pg_rewind reads the source's timeline from its control file, which a just-promoted
        // server updates only at its next checkpoint: without one, it sees "same timeline" and
        // rewinds nothing (PostgreSQL's documentation says to run CHECKPOINT first).
        let mut checkpoint = pg_command(&s.bin, "psql");
        checkpoint
            .arg("-d")
            .arg(source_dsn)
            .args(["-qAt", "-c", "CHECKPOINT"]);
        run(checkpoint, "CHECKPOINT on the new primary")?;
        let mut rewind = pg_command(&s.bin, "pg_rewind");
        rewind
            .arg("-D")
            .arg(&s.data)
            .arg(format!("--source-server={source_dsn}"))
            .arg("--write-recovery-conf")
            // WAL the target recycled since the divergence comes back from the archive.
            .arg("--restore-target-wal");
        let rewound = rewind
            .stdin(Stdio::null())
            .output()
            .map_err(LocalError::io("running pg_rewind"))?;
        let said = |out: &std::process::Output| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            // pg_rewind's own lines; the single-user server's log is noise here.
            text.lines()
                .filter(|l| {
                    l.starts_with("pg_rewind:") || l.contains("FATAL") || l.contains("ERROR")
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let rebuilt = match rewound.status.success() {
            true => Rebuilt {
                method: "pg_rewind",
                detail: said(&rewound),
            },
            false => {
                let rewind_error = said(&rewound);
                self.wipe()?;
                self.base_backup_from(source_dsn)?;
                Rebuilt {
                    method: "pg_basebackup",
                    detail: format!("pg_rewind was not possible: {rewind_error}"),
                }
            }
        };
        // pg_rewind copies the source's configuration files: put this server's own back.
        append_conf(&s.data, s.port, &self.root)?;
        s.start()?;
        Ok(rebuilt)
    }
}

impl PostgresNode {
    /// Stops the server and deletes its data directory: what deleting a CloudNativePG
    /// `Cluster` does to its instances and their PVCs. Blocking.
    pub fn wipe(&self) -> Result<(), LocalError> {
        let s = &self.server;
        self.stop_cleanly();
        match std::fs::remove_dir_all(&s.data) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LocalError::io(format!("removing {}", s.data.display()))(e)),
        }
    }

    /// Fills the (wiped) data directory with `pg_basebackup -R` from `source_dsn`.
    fn base_backup_from(&self, source_dsn: &str) -> Result<(), LocalError> {
        let s = &self.server;
        let mut basebackup = pg_command(&s.bin, "pg_basebackup");
        basebackup
            .arg("-d")
            .arg(source_dsn)
            .arg("-D")
            .arg(&s.data)
            .args(["-R", "-X", "stream", "-c", "fast"]);
        run(basebackup, "pg_basebackup")
    }

    /// Creates this server anew as a streaming replica of `source_dsn` (a fresh base
    /// backup, this server's own configuration, started): a replica cluster bootstrapped with
    /// `bootstrap.pg_basebackup`. The data directory must be gone ([`PostgresNode::wipe`]).
    /// Blocking (seconds).
    pub fn bootstrap_from(&self, source_dsn: &str) -> Result<(), LocalError> {
        let s = &self.server;
        self.base_backup_from(source_dsn)?;
        append_conf(&s.data, s.port, &self.root)?;
        s.start()
    }
}

fn append_conf(data: &Path, port: u16, socket_dir: &Path) -> Result<(), LocalError> {
    use std::io::Write;
    let path = data.join("postgresql.conf");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(LocalError::io(format!("opening {}", path.display())))?;
    // Both servers archive into one directory, like a shared WAL bucket: the primary now, the
    // replica once promoted (archive_mode = on does not archive during recovery). Copy, then
    // rename: a reader never sees half a segment.
    let archive = socket_dir.join("archive");
    let tls = socket_dir.join("tls");
    writeln!(
        f,
        "\n# hapilot local pair\nssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
         hot_standby = on\nwal_level = replica\nmax_wal_senders = 10\nfsync = off\nwal_receiver_status_interval = 1s\n\
         timezone = 'UTC'\nlog_timezone = 'UTC'\nwal_log_hints = on\narchive_mode = on\n\
         archive_command = 'test ! -f {archive}/%f && cp %p {archive}/%f.tmp && mv {archive}/%f.tmp {archive}/%f'\n\
         restore_command = 'cp {archive}/%f %p'\n",
        socket_dir.display(),
        archive = archive.display(),
        cert = tls.join("server.pem").display(),
        key = tls.join("server.key").display(),
    )
    .map_err(LocalError::io(format!("writing {}", path.display())))
}

/// A CA and a server certificate for `localhost` / 127.0.0.1 under `<root>/tls` (openssl),
/// so the pair serves TLS and clients can verify it fully, as against RDS or CloudNativePG.
pub fn make_tls_files(root: &Path) -> Result<(), LocalError> {
    let dir = root.join("tls");
    std::fs::create_dir_all(&dir).map_err(LocalError::io(format!("creating {}", dir.display())))?;
    let openssl = |args: &[&str]| {
        let mut c = Command::new("openssl");
        c.current_dir(&dir).args(args);
        run(c, "openssl")
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=hapilot local CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    )?;
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    )?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(LocalError::io("writing server.ext"))?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ])?;
    // PostgreSQL refuses a key others can read; it runs as `postgres` when we are root.
    let key = dir.join("server.key");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
        .map_err(LocalError::io(format!("chmod {}", key.display())))?;
    if running_as_root() {
        let uid = postgres_uid()?;
        std::os::unix::fs::chown(&key, Some(uid), None).map_err(LocalError::io(format!(
            "giving {} to postgres",
            key.display()
        )))?;
    }
    Ok(())
}

impl Drop for PostgresPair {
    fn drop(&mut self) {
        if let Some(third) = &self.third {
            third.stop_quietly();
        }
        self.replica.stop_quietly();
        self.primary.stop_quietly();
        // The DR region's server (a restore's target) and the restore test's scratch server
        // live under the same root: stop them before their data directories go, or they run
        // on with nothing under them.
        for name in ["dr", "scratch"] {
            if self.root.join(name).join("postmaster.pid").exists() {
                PostgresServer {
                    bin: self.primary.bin.clone(),
                    data: self.root.join(name),
                    port: 0,
                    held: Default::default(),
                }
                .stop_quietly();
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// What the CloudNativePG stand-in does to a server (`local::systems::cnpg`): the operator's own
/// instance manager acts on its instances the same ways.
impl PostgresNode {
    /// Starts it (already running is an error from pg_ctl: callers track the state).
    pub fn start_server(&self) -> Result<(), LocalError> {
        self.server.start()
    }

    /// A clean shutdown (`-m fast`): the shutdown checkpoint is written and, on a primary,
    /// sent to its standbys before it exits. Not running is fine.
    pub fn stop_cleanly(&self) {
        let s = &self.server;
        let mut c = pg_command(&s.bin, "pg_ctl");
        c.arg("-D")
            .arg(&s.data)
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = c.status();
    }

    /// `pg_controldata` of its data directory.
    pub fn controldata(&self) -> Result<String, LocalError> {
        let s = &self.server;
        let mut c = pg_command(&s.bin, "pg_controldata");
        c.arg("-D").arg(&s.data).env("LC_ALL", "C");
        let out = c
            .stdin(Stdio::null())
            .output()
            .map_err(LocalError::io("running pg_controldata"))?;
        if !out.status.success() {
            return Err(LocalError::Io {
                context: format!(
                    "pg_controldata failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                source: std::io::Error::other("pg_controldata"),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Restarts a cleanly stopped server as a standby streaming from `source` (following
    /// its timeline switches): what a demoted primary becomes.
    pub fn start_as_standby_of(&self, source: &PostgresServer) -> Result<(), LocalError> {
        use std::io::Write;
        let s = &self.server;
        std::fs::write(s.data.join("standby.signal"), b"")
            .map_err(LocalError::io("writing standby.signal"))?;
        let path = s.data.join("postgresql.auto.conf");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(LocalError::io(format!("opening {}", path.display())))?;
        writeln!(
            f,
            "primary_conninfo = 'host=127.0.0.1 port={} user=postgres'\nrecovery_target_timeline = 'latest'",
            source.port
        )
        .map_err(LocalError::io(format!("writing {}", path.display())))?;
        s.start()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_recovery_is_summarized_by_its_last_wal_and_why_it_stopped() {
        let log = "LOG:  starting point-in-time recovery\n\
                   LOG:  restored log file \"000000010000000000000005\" from archive\n\
                   LOG:  restored log file \"000000010000000000000006\" from archive\n\
                   LOG:  received fast shutdown request\n\
                   LOG:  database system is shut down\n";
        assert_eq!(
            server_log_summary(log),
            "LOG:  restored log file \"000000010000000000000006\" from archive | \
             LOG:  received fast shutdown request"
        );
        let fatal = "LOG:  restored log file \"000000010000000000000006\" from archive\n\
                     FATAL:  recovery ended before configured recovery target was reached\n";
        assert!(server_log_summary(fatal).ends_with("reached"));
        let quiet = "LOG:  a\nLOG:  b\n";
        assert_eq!(server_log_summary(quiet), "LOG:  a | LOG:  b");
    }

    #[test]
    fn a_held_port_is_refused_to_everyone_else_until_the_server_starts() {
        let (port, listener) = held_port().unwrap();
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_err(),
            "another process binding it now would take the server's port"
        );
        let server = PostgresServer {
            bin: PathBuf::from("/nonexistent"),
            data: PathBuf::from("/nonexistent"),
            port,
            held: std::sync::Arc::new(std::sync::Mutex::new(Some(listener))),
        };
        // pg_ctl is not there: the start fails, after letting the port go.
        assert!(server.start().is_err());
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
    }
}
