//! Lambda `follow-new-primary`: see [`hapilot_functions::catalog::FUNCTIONS`] and the handler module.

use hapilot_functions::registry::entry;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hapilot_functions::lambda_main("follow-new-primary", entry::follow_new_primary).await
}
