//! `hapilot report`: a run's report (or its journal) from the audit bucket.

use super::Context;
use super::follow::audit_bucket;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Execution name or ARN.
    execution: String,
    /// The audit bucket (or `audit_bucket` in the settings file).
    #[arg(long, env = "HAPILOT_AUDIT_BUCKET")]
    bucket: Option<String>,
}

pub(crate) async fn exec(args: Args, cx: &Context) -> anyhow::Result<()> {
    let bucket = audit_bucket(&cx.config, args.bucket, "report")?;
    let sdk = cx.config.aws_answering().await?;
    if cx.out.json {
        let report = hapilot::report::report_json(&sdk, &bucket, &args.execution).await?;
        say!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        say!(
            "{}",
            hapilot::report::report(&sdk, &bucket, &args.execution).await?
        );
    }
    Ok(())
}
