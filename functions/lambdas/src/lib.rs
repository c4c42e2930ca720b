//! hapilot-functions: the Lambda handlers that the state machines' tasks invoke.
//!
//! Each module is one task: it parses and validates its JSON input, asks `hapilot-core` for the
//! decision, calls `hapilot-aws` adapters for effects, and returns JSON for the next state.
//! `src/bin/<function>.rs` runs one function under `lambda_runtime` ([`lambda_main`]); the local
//! stack's Lambda host calls the very same [`registry::invoke`].

#![warn(missing_docs)]

pub mod alarm_router;
pub mod canary_gate;
pub mod catalog;
pub mod check_dns_sync;
pub mod check_health;
pub mod config;
pub mod error;
pub mod fence_primary;
pub mod plan_failback;
pub mod plan_failover;
pub mod promote_database;
pub mod read_replication;
pub mod record_run;
pub mod registry;
pub mod request_approval;
pub mod run;
pub mod scale_region;
pub mod shift_traffic;
pub mod snapshot_weights;

pub use error::FunctionError;

/// The whole main of a Lambda binary: read the configuration (a bad or missing variable stops
/// the function at init, naming it), build the adapters once, serve invocations of `function`.
pub async fn lambda_main(function: &'static str) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let spec =
        catalog::find(function).ok_or_else(|| format!("{function} is not in the catalog"))?;
    let settings = config::Settings::from_env()?;
    settings.require(spec.requires)?;
    let adapters = registry::Adapters::new(&hapilot_aws::sdk::from_env().await, settings)?;
    let adapters = &adapters;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            registry::invoke(adapters, function, event.payload)
        },
    ))
    .await
}
