//! hapilot-adapters: adapters to the outside world (AWS, PostgreSQL and Patroni, Kubernetes,
//! Vault, Redis, Prometheus, HTTP probes, the host agent), one module per port, each port a
//! small trait with an in-memory fake beside it (feature `fakes`), so handlers can be tested
//! against real servers and swapped per deployment. A port with several backends is a folder:
//! the trait in its `mod.rs`, each backend and the fake a sibling file ([`database`]:
//! `postgres`, `patroni`, `cnpg`, `memory`; [`traffic_switch`]: `weights`, `control_metric`,
//! `arc`, `memory`).
//!
//! Start here: [`database`] (the `Database` trait and its backends); the crate map is
//! docs/architecture.md.
//!
//! Adapters report facts and perform effects; they never decide (that is `hapilot-core`).

#![warn(missing_docs)]

pub mod backups;
pub mod canary_metrics;
pub mod cluster;
pub mod database;
pub mod dns;
pub mod error;
pub mod http_client;
pub mod journal;
pub mod monitoring;
pub mod notifier;
pub mod orchestrator;
pub mod permissions;
pub mod postgres_dsn;
pub mod prober;
pub mod redis;
pub mod restore;
pub mod route53_health;
pub mod scaler;
pub mod schedules;
pub mod sdk;
pub mod secret_text;
pub mod secrets;
pub mod traffic_switch;
pub mod vault;

pub use error::{AdapterError, error_chain};
pub use prober::{HttpProber, Prober};
pub use secret_text::SecretText;
