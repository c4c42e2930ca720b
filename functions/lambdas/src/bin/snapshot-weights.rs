//! Lambda `snapshot-weights`: see [`hapilot_functions::catalog::FUNCTIONS`] and the handler module.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hapilot_functions::lambda_main("snapshot-weights").await
}
