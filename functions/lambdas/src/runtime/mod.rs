//! What every task runs on: the catalog of functions ([`catalog`], start here to add one), the
//! deployment's configuration ([`config`]), the adapters built once per Lambda and the name ->
//! handler table the Lambda mains and the local host share ([`registry`]), the run journal's
//! helpers ([`run`]), metrics and notifications ([`publish`]) and the error contract with the
//! state machines ([`error`]).

pub mod catalog;
pub mod config;
pub mod error;
pub mod publish;
pub mod registry;
pub mod run;
