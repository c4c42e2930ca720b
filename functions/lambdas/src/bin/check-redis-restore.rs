//! Lambda `check-redis-restore`: see [`hapilot_functions::catalog::FUNCTIONS`] and the handler module.

use hapilot_functions::registry::entry;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hapilot_functions::lambda_main("check-redis-restore", entry::check_redis_restore).await
}
