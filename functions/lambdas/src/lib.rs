//! hapilot-functions: the Lambda handlers that the state machines' tasks invoke.
//!
//! Each module is one task: it parses and validates its JSON input, asks `hapilot-core` for the
//! decision, calls `hapilot-adapters` adapters for effects, and returns JSON for the next state.
//! `src/bin/<function>.rs` runs one function under `lambda_runtime` ([`lambda_main`]); the local
//! stack's Lambda host calls the very same [`registry::invoke`].

#![warn(missing_docs)]

pub mod alarm_router;
pub mod answer_approval;
pub mod audit_backup_policy;
pub mod backup_catalog;
pub mod canary_gate;
pub mod catalog;
pub mod check_catchup;
pub mod check_data;
pub mod check_dns_sync;
pub mod check_health;
pub mod check_restore;
pub mod config;
pub mod describe_run;
pub mod error;
pub mod evaluate_readiness;
pub mod fence_primary;
pub mod plan_backup_audit;
pub mod plan_drill;
pub mod plan_failback;
pub mod plan_failover;
pub mod plan_restore;
pub mod promote_database;
pub mod publish;
pub mod publish_replication_lag;
pub mod read_replication;
pub mod record_run;
pub mod registry;
pub mod report_backup_audit;
pub mod report_drill;
pub mod reprotect_database;
pub mod request_approval;
pub mod restore_database;
pub mod restore_vault;
pub mod run;
pub mod scale_region;
pub mod shift_traffic;
pub mod snapshot_weights;
pub mod start_run;
pub mod unfence_primary;
pub mod verify_restore_point;
pub mod watch_region;

pub use error::FunctionError;

/// The whole main of a Lambda binary: read the configuration (a bad or missing variable stops
/// the function at init, naming it; the regions from their secret when that is how they are
/// given), build the adapters once, serve invocations with `handler`
/// (one of [`registry::entry`], the same code the local Lambda host runs).
pub async fn lambda_main<F, Fut>(
    function: &'static str,
    handler: F,
) -> Result<(), lambda_runtime::Error>
where
    F: Fn(&'static registry::Adapters, serde_json::Value) -> Fut,
    Fut: std::future::Future<Output = Result<serde_json::Value, FunctionError>> + Send,
{
    lambda_runtime::tracing::init_default_subscriber();
    let spec =
        catalog::find(function).ok_or_else(|| format!("{function} is not in the catalog"))?;
    let mut settings = config::Settings::from_env()?;
    let sdk = hapilot_adapters::sdk::from_env().await;
    if spec.reads_regions() || !spec.credentials.is_empty() {
        let secrets = hapilot_adapters::secrets::SecretsManager::from_sdk(&sdk);
        settings.read_secrets(&secrets, spec.credentials).await?;
    }
    settings.require(spec.requires)?;
    // Lives as long as the process, like a Lambda's init phase.
    let adapters: &'static registry::Adapters =
        Box::leak(Box::new(registry::Adapters::new(&sdk, settings)?));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            handler(adapters, event.payload)
        },
    ))
    .await
}
