//! `hapilot deny`: answer no to what a waiting run asks for; it stops with nothing more changed.

use super::Context;
use super::approve::{Question, answer};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Execution name.
    execution: String,
    /// State machine name.
    #[arg(long, default_value = "failover")]
    machine: String,
    /// The audit bucket holding the pending approval (or `audit_bucket` in the settings file).
    #[arg(long, env = "HAPILOT_AUDIT_BUCKET")]
    bucket: Option<String>,
    /// Why (required: the next on-call reads it).
    #[arg(long)]
    comment: String,
    /// Answer without asking for confirmation (needed when stdin is not a terminal).
    #[arg(long)]
    yes: bool,
}

pub(crate) async fn exec(args: Args, cx: &Context) -> anyhow::Result<()> {
    let question = Question {
        execution: &args.execution,
        machine: &args.machine,
        bucket: args.bucket,
        confirmed: args.yes,
    };
    answer(cx, question, false, &args.comment).await
}
