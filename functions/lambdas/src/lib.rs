//! hapilot-functions: the Lambda handlers that the state machines' tasks invoke.
//!
//! Start here: [`tasks::plan_failover`] (the task to imitate) and [`runtime::catalog`] (every
//! function, what it may call); adding one is a recipe in CONTRIBUTING.md.
//!
//! Each module is one task: it parses and validates its JSON input, asks `hapilot-core` for the
//! decision, calls `hapilot-adapters` adapters for effects, and returns JSON for the next state.
//! `src/bin/<function>.rs` runs one function under `lambda_runtime` ([`lambda_main`]); the local
//! stack's Lambda host calls the very same [`registry::invoke`].

#![warn(missing_docs)]

pub mod runtime;
pub mod tasks;

pub use error::FunctionError;
pub use runtime::{catalog, config, error, publish, registry, run};
pub use tasks::*;

/// The whole main of a Lambda binary: read the configuration (a bad or missing variable stops
/// the function at init, naming it; the regions from their secret when that is how they are
/// given), build the adapters once, serve invocations with `handler`
/// (one of [`registry::entry`], the same code the local Lambda host runs).
///
/// When a system refuses the credentials read at start (a secret rotated since), the secrets
/// are read again and the adapters rebuilt; a step that may run twice
/// (not in [`catalog::NOT_RETRIED_ON_BLIPS`]) is tried once more with them.
pub async fn lambda_main<F, Fut>(
    function: &'static str,
    handler: F,
) -> Result<(), lambda_runtime::Error>
where
    F: Fn(&'static registry::Adapters, serde_json::Value) -> Fut + Copy + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<serde_json::Value, FunctionError>> + Send + 'static,
{
    lambda_runtime::tracing::init_default_subscriber();
    let spec: &'static catalog::FunctionSpec =
        catalog::find(function).ok_or_else(|| format!("{function} is not in the catalog"))?;
    let sdk: &'static aws_config::SdkConfig =
        Box::leak(Box::new(hapilot_adapters::sdk::from_env().await));
    // Boxed futures keep the types the compiler must lay out small: nested generic futures of
    // every handler overflow its query depth in some (clean, non-incremental) builds.
    let build = move || -> BoxedAdapters { Box::pin(build_adapters(spec, sdk)) };
    let current: &'static tokio::sync::RwLock<&'static registry::Adapters> =
        Box::leak(Box::new(tokio::sync::RwLock::new(build().await?)));
    let may_run_twice = !catalog::NOT_RETRIED_ON_BLIPS.contains(&function);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| -> BoxedInvocation {
            Box::pin(with_fresh_credentials(
                current,
                build,
                may_run_twice,
                move |a, payload| -> BoxedInvocation { Box::pin(handler(a, payload)) },
                event.payload,
            ))
        },
    ))
    .await
}

/// A handler's answer, type-erased.
type BoxedInvocation = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<serde_json::Value, FunctionError>> + Send>,
>;

/// Fresh adapters, type-erased.
type BoxedAdapters = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<&'static registry::Adapters, FunctionError>> + Send,
    >,
>;

/// Reads the configuration and `spec`'s secrets, and builds the adapters; they live as long as
/// the process, like a Lambda's init phase (a rotation adds one set).
async fn build_adapters(
    spec: &'static catalog::FunctionSpec,
    sdk: &'static aws_config::SdkConfig,
) -> Result<&'static registry::Adapters, FunctionError> {
    let mut settings = config::Settings::from_env()?;
    if spec.reads_regions() || !spec.credentials.is_empty() {
        let secrets = hapilot_adapters::secrets::SecretsManager::from_sdk(sdk);
        settings.read_secrets(&secrets, spec.credentials).await?;
    }
    settings.require(spec.requires)?;
    Ok(Box::leak(Box::new(registry::Adapters::new(sdk, settings)?)))
}

/// Runs `handler` with the current adapters; when a system refuses their credentials, builds
/// fresh ones (`rebuild` reads the secrets again), keeps them for the next invocations, and,
/// when `may_run_twice`, runs `handler` once more with them. A failed rebuild leaves the old
/// adapters and returns the first refusal.
pub async fn with_fresh_credentials<A, F, Fut, B, BFut>(
    current: &tokio::sync::RwLock<&'static A>,
    rebuild: B,
    may_run_twice: bool,
    handler: F,
    payload: serde_json::Value,
) -> Result<serde_json::Value, FunctionError>
where
    A: Sync + 'static,
    F: Fn(&'static A, serde_json::Value) -> Fut,
    Fut: std::future::Future<Output = Result<serde_json::Value, FunctionError>>,
    B: Fn() -> BFut,
    BFut: std::future::Future<Output = Result<&'static A, FunctionError>>,
{
    let adapters = *current.read().await;
    let refused = match handler(adapters, payload.clone()).await {
        Err(e) if e.is_credentials_refused() => e,
        done => return done,
    };
    tracing::warn!(error = %refused, "credentials refused: reading the secrets again");
    let fresh = match rebuild().await {
        Ok(fresh) => fresh,
        Err(e) => {
            tracing::warn!(error = %e, "the secrets could not be read again");
            return Err(refused);
        }
    };
    *current.write().await = fresh;
    if may_run_twice {
        handler(fresh, payload).await
    } else {
        Err(refused)
    }
}

#[cfg(test)]
mod rotation_tests {
    use super::*;
    use hapilot_core::ErrorName;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Credentials that a system accepts only when they are `"new"`.
    fn login(password: &'static &'static str) -> Result<serde_json::Value, FunctionError> {
        if *password == "new" {
            Ok(serde_json::json!({"done": true}))
        } else {
            Err(FunctionError::CredentialsRefused {
                name: ErrorName::DatabaseUnreachable,
                message: "28P01: password authentication failed".into(),
            })
        }
    }

    static OLD: &str = "old";
    static NEW: &str = "new";

    #[tokio::test]
    async fn a_rotated_secret_is_read_again_and_the_step_tried_once_more() {
        let current = tokio::sync::RwLock::new(&OLD);
        let reads = AtomicUsize::new(0);
        let rebuild = || async {
            reads.fetch_add(1, Ordering::SeqCst);
            Ok(&NEW)
        };
        let out = with_fresh_credentials(
            &current,
            rebuild,
            true,
            |p, _| async move { login(p) },
            serde_json::json!({}),
        )
        .await
        .unwrap();
        assert_eq!(out["done"], true);
        assert_eq!(reads.load(Ordering::SeqCst), 1, "one fresh read");
        assert_eq!(
            **current.read().await,
            "new",
            "kept for the next invocations"
        );
    }

    #[tokio::test]
    async fn a_step_that_must_not_run_twice_fails_but_the_next_one_has_the_new_secret() {
        let current = tokio::sync::RwLock::new(&OLD);
        let calls = AtomicUsize::new(0);
        let e = with_fresh_credentials(
            &current,
            || async { Ok(&NEW) },
            false,
            |p, _| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move { login(p) }
            },
            serde_json::json!({}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.error_type(), "hapilot.DatabaseUnreachable");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "not run twice");
        assert_eq!(**current.read().await, "new");
    }

    #[tokio::test]
    async fn other_failures_and_failed_rereads_change_nothing() {
        let current = tokio::sync::RwLock::new(&OLD);
        let e = with_fresh_credentials(
            &current,
            || async { Err(FunctionError::Setup("GetSecretValue refused".into())) },
            true,
            |p, _| async move { login(p) },
            serde_json::json!({}),
        )
        .await
        .unwrap_err();
        assert!(
            e.is_credentials_refused(),
            "the first refusal is what the run sees"
        );
        assert_eq!(**current.read().await, "old");
        let other = with_fresh_credentials(
            &current,
            || async { panic!("no re-read for other failures") },
            true,
            |_, _| async { Err(FunctionError::Setup("x".into())) },
            serde_json::json!({}),
        )
        .await
        .unwrap_err();
        assert!(!other.is_credentials_refused());
    }
}
