//! hapilot-local: the local stack and the simulated world, everything hapilot's state machines
//! need on one machine, on loopback, with no AWS account.
//!
//! Start here: [`world::deployment`] (a world built from the templates) and [`aws::stack`] (moto
//! and the front door); the crate map is docs/architecture.md. Three folders: [`aws`] (AWS on
//! one machine), [`systems`] (what hapilot drives), [`world`] (worlds made of both).
//!
//! moto (in server mode) plays AWS and executes our `statemachines/*.asl.json`; its executor
//! calls every service at `http://localhost:$MOTO_PORT`, so our front door sits on that port,
//! answers Lambda Invoke with the real Rust handlers, and forwards everything else to moto.
//! Around it, the simulated outside world: regional gateways, Route53's data plane, a real
//! PostgreSQL pair (with its host agents, Patroni or CloudNativePG stand-ins), Kubernetes,
//! Vault, a real Prometheus and Redis, the backup job. The operator CLI (`hapilot`) uses it for
//! `local up` and the drill; the end-to-end tests build every world from it.

#![warn(missing_docs)]

pub mod aws;
pub mod error;
pub mod http;
pub mod systems;
pub mod world;

pub use aws::stack::{LocalStack, REGIONS, StackHandle, StackOptions};
pub use error::LocalError;

/// The region the local stack reports unless told otherwise.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The repository root as built: where `statemachines/` and the project-local `.venv/` live.
pub fn project_root() -> std::path::PathBuf {
    // This crate lives in `local/` of the repository.
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Asks the kernel to kill the child `command` starts (SIGKILL) when the thread that started it
/// dies: no moto, Prometheus or Redis outlives a crashed or killed hapilot.
///
/// Linux only (`PR_SET_PDEATHSIG`). Elsewhere (macOS) nothing is asked of the kernel: the
/// services are still stopped when hapilot ends normally, on Ctrl-C and on SIGTERM (every
/// handle kills its process when dropped); only a hapilot killed with SIGKILL leaves them.
pub fn dies_with_parent(command: &mut tokio::process::Command) {
    dies_with_parent_std(command.as_std_mut());
}

/// [`dies_with_parent`] for a `std::process::Command`.
pub fn dies_with_parent_std(command: &mut std::process::Command) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe and touches nothing but the calling (child) process.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

/// Ports handed to child processes (moto, PostgreSQL, Redis) that must bind them themselves.
///
/// Below the kernel's ephemeral range (32768-60999 on Linux) on purpose: a port taken from
/// that range with `bind(0)` and released can be reused as the *source* port of any outgoing
/// connection before the child binds it, and then the child fails to start or a client
/// connects to itself. Tests open thousands of connections, so that race did happen in CI.
const CHILD_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// Finds a free TCP port on 127.0.0.1 for a child process to bind.
///
/// Each call in a process returns a different port (a process-wide cursor that starts at a
/// per-process random offset, so parallel test binaries rarely meet) and checks it binds now.
pub fn free_port() -> std::io::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CURSOR: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(CHILD_PORTS.end - CHILD_PORTS.start);
    if CURSOR.load(Ordering::Relaxed) == u32::MAX {
        let seed = std::process::id()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
        let _ =
            CURSOR.compare_exchange(u32::MAX, seed % span, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in 0..span {
        let offset = CURSOR.fetch_add(1, Ordering::Relaxed) % span;
        let port = CHILD_PORTS.start + offset as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no free port in {CHILD_PORTS:?} on 127.0.0.1"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let ports: Vec<u16> = (0..200).map(|_| free_port().unwrap()).collect();
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len());
        assert!(ports.iter().all(|p| CHILD_PORTS.contains(p)), "{ports:?}");
    }
}
