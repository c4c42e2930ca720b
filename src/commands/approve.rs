//! `hapilot approve`: answer yes to what a waiting run asks for (`deny` answers no through
//! [`answer`]).

use anyhow::bail;

use super::Context;
use super::follow::audit_bucket;

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
    /// Why (kept in the journal and the report).
    #[arg(long, default_value = "")]
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
    answer(cx, question, true, &args.comment).await
}

/// The waiting run an answer is for.
pub(crate) struct Question<'a> {
    /// Its execution name.
    pub execution: &'a str,
    /// Its state machine.
    pub machine: &'a str,
    /// `--bucket`.
    pub bucket: Option<String>,
    /// `--yes`: no confirmation asked.
    pub confirmed: bool,
}

/// Shows the pending request, asks for confirmation on a terminal (unless `--yes`), then
/// answers it through the approval URL when the deployment has one, else through the bucket.
pub(crate) async fn answer(
    cx: &Context,
    question: Question<'_>,
    approved: bool,
    comment: &str,
) -> anyhow::Result<()> {
    let Question {
        execution,
        machine,
        bucket,
        confirmed,
    } = question;
    let bucket = audit_bucket(&cx.config, bucket, "approval")?;
    let sdk = cx.config.aws_answering().await?;
    let pending = hapilot::approvals::pending(&sdk, &bucket, machine, execution).await?;
    let verb = if approved { "approve" } else { "deny" };
    cx.out.line(&format!(
        "you are about to {verb}:\n{}",
        hapilot::approvals::describe(&pending)
    ));
    if !confirmed {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            bail!(
                "not answered: stdin is not a terminal to confirm on; pass --yes to {verb} without confirmation"
            );
        }
        eprint!("{verb} {machine} run {execution}? [y/N] ");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            bail!("not answered: {verb} was not confirmed; the run still waits");
        }
    }
    let decision = match cx.config.setting("HAPILOT_APPROVAL_URL") {
        Some(url) => {
            hapilot::approvals::answer_through_url(
                &sdk,
                &url,
                (machine, execution),
                approved,
                comment,
            )
            .await?
        }
        None => {
            hapilot::approvals::answer(&sdk, &bucket, machine, execution, approved, comment).await?
        }
    };
    let done = if approved { "approved" } else { "denied" };
    cx.out.result(&decision, |d| {
        format!("{done} {machine} run {execution}: {d}")
    })
}
