//! The local stack: everything hapilot's state machines need, on one machine, on loopback.
//!
//! moto (in server mode) plays AWS and executes our `statemachines/*.asl.json`; its executor
//! calls every service at `http://localhost:$MOTO_PORT`, so our front door sits on that port,
//! answers Lambda Invoke with the real Rust handlers, and forwards everything else to moto.

pub mod agent;
pub mod barman;
pub mod deploy;
pub mod deployment;
pub mod front_door;
pub mod gateway;
pub mod http;
pub mod kubernetes;
pub mod moto;
pub mod patroni;
pub mod postgres;
pub mod stack;
pub mod traffic;
pub mod vault;

pub use stack::{LocalStack, StackOptions};

/// The region the local stack reports unless told otherwise.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The repository root as built: where `statemachines/` and the project-local `.venv/` live.
pub fn project_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Finds a free TCP port on 127.0.0.1 (bind to port 0, read it, release it).
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
