//! hapilot-functions: the Lambda handlers that the state machines' tasks invoke.
//!
//! Each module is one task: it parses and validates its JSON input, asks `hapilot-core` for the
//! decision, calls `hapilot-aws` adapters for effects, and returns JSON for the next state.
//! `src/bin/<function>.rs` wraps one handler in `lambda_runtime`; the local stack's Lambda host
//! calls the very same functions through [`registry::FunctionRegistry`].

#![warn(missing_docs)]

pub mod catalog;
pub mod check_health;
pub mod error;
pub mod registry;

pub use error::FunctionError;
