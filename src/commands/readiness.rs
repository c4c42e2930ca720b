//! `hapilot readiness`: the readiness state machine run now, its report printed; exits 2 when a
//! check fails.

use std::time::Duration;

use hapilot::runs;

use super::Context;
use super::follow::{audit_bucket, check_input, resolve_machine};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The readiness state machine (name as deployed, or ARN).
    #[arg(long, default_value = "readiness")]
    machine: String,
    /// The audit bucket holding the report (or `audit_bucket` in the settings file).
    #[arg(long, env = "HAPILOT_AUDIT_BUCKET")]
    bucket: Option<String>,
    /// Give up following after this many seconds (the run goes on).
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

pub(crate) async fn exec(args: Args, cx: &Context) -> anyhow::Result<()> {
    let bucket = audit_bucket(&cx.config, args.bucket, "readiness report")?;
    check_input(&args.machine, &serde_json::json!({}))?;
    let sdk = cx.config.aws_answering().await?;
    let sfn = aws_sdk_sfn::Client::new(&sdk);
    let arn = resolve_machine(&sfn, &args.machine).await?;
    let name = format!("readiness-{}", uuid::Uuid::new_v4().simple());
    let execution = runs::start(&sfn, &arn, &name, &serde_json::json!({})).await?;
    eprintln!("started {execution}");
    let outcome = runs::follow_with(
        &sfn,
        &execution,
        Duration::from_secs(args.timeout),
        runs::Polling::OPERATOR,
        // The report is the result: the run's progress goes to stderr.
        |l| eprintln!("{l}"),
    )
    .await?;
    let report = hapilot::status::latest_readiness(&sdk, &bucket)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the run ended {} without a readiness report in s3://{bucket}: {} {}",
                outcome.status,
                outcome.error.as_deref().unwrap_or(""),
                outcome.cause.as_deref().unwrap_or("")
            )
        })?;
    cx.out.result(&report, |r| r.markdown())?;
    if report.verdict != "ready" {
        eprintln!("hapilot: {}", report.summary);
        std::process::exit(2);
    }
    Ok(())
}
