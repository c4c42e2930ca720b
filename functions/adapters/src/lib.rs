//! hapilot-adapters: adapters to the outside world (AWS, PostgreSQL and Patroni, Kubernetes,
//! Vault, Redis, Prometheus, HTTP probes, the host agent), one file per system, each behind a
//! small trait with an in-memory fake beside it (feature `fakes`),
//! so handlers can be tested against real servers and swapped per deployment.
//!
//! Start here: [`database`] (the `Database` trait, its PostgreSQL, Patroni and CloudNativePG
//! backends and `MemoryDatabase`); the crate map is docs/architecture.md.
//!
//! Adapters report facts and perform effects; they never decide (that is `hapilot-core`).

#![warn(missing_docs)]

pub mod backups;
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
pub mod traffic;
pub mod traffic_switch;
pub mod vault;

pub use error::{AdapterError, error_chain};
pub use prober::{HttpProber, Prober};
pub use secret_text::SecretText;
