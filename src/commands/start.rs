//! `hapilot start`: any state machine, any input, followed to its end.

use std::path::PathBuf;

use super::Context;
use super::follow::{Follow, read_input, start_and_follow};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// State machine name (as deployed) or ARN.
    machine: String,
    /// JSON input file (`-` for stdin); default `{}`.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Execution name; default: a fresh unique one.
    #[arg(long)]
    name: Option<String>,
    /// Give up following after this many seconds (the run goes on).
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// Start it and return at once (follow it later with `hapilot watch`).
    #[arg(long)]
    detach: bool,
}

pub(crate) async fn exec(args: Args, cx: &Context) -> anyhow::Result<()> {
    // A missing or malformed input file is said before anything is asked of AWS.
    let input = read_input(args.input)?;
    let follow = Follow {
        name: args.name,
        prefix: "cli",
        timeout: if args.detach { 0 } else { args.timeout },
    };
    start_and_follow(&cx.config, &args.machine, &input, follow, cx.out).await
}
