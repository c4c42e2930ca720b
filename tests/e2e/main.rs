//! End-to-end tests: the real state machines executed by moto, invoking the real handlers
//! through the local stack's front door, against simulated regional gateways. Every test starts
//! its own stack on free loopback ports and tears it down, even when it panics.

mod support;

mod approvals;
mod backup_audit;
mod backup_formats;
mod blackout;
mod blips;
mod cli;
mod cloudnativepg;
mod conformance_cnpg;
mod conformance_patroni;
mod conformance_route53;
mod conformance_step_functions;
mod docs;
mod dr_drill;
mod dr_restore;
mod failback;
mod failover;
mod first_error;
mod front_door;
mod health_proof;
mod house;
mod https_targets;
mod infra;
mod local_world;
mod logins;
mod pace;
mod postgres_tls;
mod readiness;
mod rehearsal;
mod run_lock;
mod switchover;
