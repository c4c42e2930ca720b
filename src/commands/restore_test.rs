//! `hapilot restore-test`: the restore-test state machine, started and followed.

use super::Context;
use super::follow::{Follow, data_check, start_with};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The region whose restore_test target the backups are restored onto.
    #[arg(long)]
    region: String,
    /// `random` (a moment drawn inside the restore window), `latest` or an RFC 3339
    /// timestamp.
    #[arg(long, default_value = "random")]
    target: String,
    /// The random target's seed (a report's seed repeats its test exactly).
    #[arg(long)]
    seed: Option<u64>,
    /// The content check's table and column, e.g. `LiteLLM_SpendLogs.startTime`.
    #[arg(long)]
    data_check: Option<String>,
    /// The restore-test state machine (name as deployed, or ARN).
    #[arg(long, default_value = "restore-test")]
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
    if let Some(seed) = args.seed {
        fields.push(("seed", seed.into()));
    }
    if let Some(check) = &args.data_check {
        fields.push(("data_check", data_check(check)?));
    }
    let follow = Follow {
        name: None,
        prefix: "restore-test",
        timeout: args.timeout,
    };
    start_with(&cx.config, &args.machine, None, fields, follow, cx.out).await
}
