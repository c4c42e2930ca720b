//! `hapilot restore`: the dr-restore state machine, started and followed.

use super::Context;
use super::follow::{Follow, data_check, start_with};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The region restored into.
    #[arg(long)]
    region: String,
    /// `latest` or an RFC 3339 timestamp, e.g. 2026-11-25T09:30:00Z.
    #[arg(long, default_value = "latest")]
    target: String,
    /// The data check's table and column, e.g. `LiteLLM_SpendLogs.startTime` (the RPO; names are case-sensitive).
    #[arg(long)]
    data_check: Option<String>,
    /// Further input fields as JSON (statemachines/schemas/dr-restore.input.json).
    #[arg(long)]
    with: Option<String>,
    /// The dr-restore state machine (name as deployed, or ARN).
    #[arg(long, default_value = "dr-restore")]
    machine: String,
    /// Give up following after this many seconds (the run goes on).
    #[arg(long, default_value_t = 7200)]
    timeout: u64,
}

pub(crate) async fn exec(args: Args, cx: &Context) -> anyhow::Result<()> {
    let mut fields = vec![
        ("region", args.region.into()),
        ("target", args.target.into()),
    ];
    if let Some(check) = &args.data_check {
        fields.push(("data_check", data_check(check)?));
    }
    let follow = Follow {
        name: None,
        prefix: "restore",
        timeout: args.timeout,
    };
    start_with(&cx.config, &args.machine, args.with, fields, follow, cx.out).await
}
