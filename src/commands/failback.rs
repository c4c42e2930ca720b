//! `hapilot failback`: the canary failback, started and followed.

use super::Context;
use super::follow::{Follow, start_with};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The recovered region that gets its traffic back.
    #[arg(long)]
    primary_region: String,
    /// The region carrying the traffic now.
    #[arg(long)]
    standby_region: String,
    /// Further input fields as JSON (statemachines/schemas/failback.input.json), e.g.
    /// '{"steps": [25, 50, 100], "approve_last": true}'.
    #[arg(long)]
    with: Option<String>,
    /// The failback state machine (name as deployed, or ARN).
    #[arg(long, default_value = "failback")]
    machine: String,
    /// Execution name; default: a fresh unique one.
    #[arg(long)]
    name: Option<String>,
    /// Give up following after this many seconds (the run goes on).
    #[arg(long, default_value_t = 7200)]
    timeout: u64,
    /// Start it and return at once (follow it later with `hapilot watch`).
    #[arg(long)]
    detach: bool,
}

pub(crate) async fn exec(args: Args, cx: &Context) -> anyhow::Result<()> {
    let fields = [
        ("primary_region", args.primary_region.into()),
        ("standby_region", args.standby_region.into()),
    ];
    let follow = Follow {
        name: args.name,
        prefix: "failback",
        timeout: if args.detach { 0 } else { args.timeout },
    };
    start_with(&cx.config, &args.machine, args.with, fields, follow, cx.out).await
}
