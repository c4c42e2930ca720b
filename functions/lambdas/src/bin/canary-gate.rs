//! Lambda `canary-gate`: see [`hapilot_functions::catalog::FUNCTIONS`] and the handler module.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hapilot_functions::lambda_main("canary-gate").await
}
