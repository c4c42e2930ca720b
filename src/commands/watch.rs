//! `hapilot watch`: follow a run someone else started.

use super::Context;
use super::follow::{finish, resolve_machine};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Execution ARN, or its name with --machine.
    execution: String,
    /// The state machine of a run given by name (name as deployed, or ARN).
    #[arg(long, default_value = "failover")]
    machine: String,
    /// Give up following after this many seconds (the run goes on).
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
}

pub(crate) async fn exec(args: Args, cx: &Context) -> anyhow::Result<()> {
    let sfn = aws_sdk_sfn::Client::new(&cx.config.aws_answering().await?);
    let execution = if args.execution.starts_with("arn:") {
        args.execution
    } else {
        let machine = resolve_machine(&sfn, &args.machine).await?;
        format!(
            "{}:{}",
            machine.replacen(":stateMachine:", ":execution:", 1),
            args.execution
        )
    };
    finish(&sfn, &execution, args.timeout, cx.out).await
}
