//! Lambda `check-health`: see [`hapilot_functions::check_health`].

use hapilot_aws::HttpProber;
use hapilot_functions::check_health::check_health;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let prober = HttpProber::new()?;
    let prober = &prober;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        check_health(prober, event.payload)
    }))
    .await
}
