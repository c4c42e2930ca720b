//! hapilot-core: the domain of the regional HA autopilot.
//!
//! Start here: [`failover`] (the decisions of a failover) and [`error`] (the names the state
//! machines catch); the crate map is docs/architecture.md.
//!
//! Everything here is a pure decision over plain data: no I/O, no AWS SDK, no clock. Handlers
//! (`hapilot-functions`) parse their input into these types, ask for a decision, and hand the
//! effects to adapters (`hapilot-adapters`). That keeps every rule testable exhaustively.

#![warn(missing_docs)]

pub mod alarm;
pub mod approval;
pub mod backup;
pub mod canary;
pub mod canary_judge;
pub mod capacity;
pub mod cnpg;
pub mod data_at_risk;
pub mod drill;
pub mod endpoint;
pub mod error;
pub mod failback;
pub mod failover;
pub mod follow;
pub mod health;
pub mod paging;
pub mod readiness;
pub mod reprotect;
pub mod restore;
pub mod run_lock;
pub mod run_report;
pub mod standby;
pub mod switch_choice;
pub mod tier;
pub mod time;
pub mod vault;
pub mod weights;

pub use error::{CoreError, ErrorName};
