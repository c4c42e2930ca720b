//! hapilot: the operator CLI and the local stack.
//!
//! Start here: `src/main.rs` and `src/commands/` (one file per command), then [`runs`]
//! (starting and following a run) and [`rehearsal`] (the drill).
//!
//! The library half holds everything the `hapilot` binary and the end-to-end tests share:
//! starting and following runs, approvals, the audit, status and reports, the local rehearsal. The
//! local stack and its simulated world are the `hapilot-local` crate, re-exported as
//! [`local`].

#![warn(missing_docs)]

pub mod approvals;
pub mod audit;
pub mod config;
pub mod diagram;
pub mod error;
pub mod login;
pub mod rehearsal;
pub mod report;
pub mod runs;
pub mod schema;
pub mod status;

pub use error::HapilotError;
/// The local stack and the simulated world (the `hapilot-local` crate).
pub use hapilot_local as local;
