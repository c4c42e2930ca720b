//! hapilot: the operator CLI and the local stack.
//!
//! The library half holds everything the `hapilot` binary and the end-to-end tests share: the
//! local stack (moto + our Lambda host), simulated regional gateways, and following runs.

#![warn(missing_docs)]

pub mod approvals;
pub mod audit;
pub mod config;
pub mod diagram;
pub mod drill;
pub mod error;
pub mod local;
pub mod report;
pub mod runs;
pub mod schema;
pub mod status;

pub use error::HapilotError;
