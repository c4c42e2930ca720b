//! `hapilot reprotect`: the old primary's database made a replica of the new primary again.

use super::Context;
use super::follow::{Follow, start_with};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The old primary's region (its database becomes a replica).
    #[arg(long)]
    region: String,
    /// The region whose database is primary now.
    #[arg(long)]
    primary_region: String,
    /// Further input fields as JSON (statemachines/schemas/reprotect.input.json), e.g.
    /// '{"timeout_seconds": 900}'.
    #[arg(long)]
    with: Option<String>,
    /// The reprotect state machine (name as deployed, or ARN).
    #[arg(long, default_value = "reprotect")]
    machine: String,
    /// Give up following after this many seconds (the run goes on).
    #[arg(long, default_value_t = 7200)]
    timeout: u64,
}

pub(crate) async fn exec(args: Args, cx: &Context) -> anyhow::Result<()> {
    let fields = [
        ("region", args.region.into()),
        ("primary_region", args.primary_region.into()),
    ];
    let follow = Follow {
        name: None,
        prefix: "reprotect",
        timeout: args.timeout,
    };
    start_with(&cx.config, &args.machine, args.with, fields, follow, cx.out).await
}
