//! Lambda `tear-down-restore`: see [`hapilot_functions::catalog::FUNCTIONS`] and the handler module.

use hapilot_functions::registry::entry;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hapilot_functions::lambda_main("tear-down-restore", entry::tear_down_restore).await
}
