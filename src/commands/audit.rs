//! `hapilot audit`: the backup audit run from the operator's machine; exits 2 on critical
//! findings.

use std::path::PathBuf;

use super::Context;
use super::follow::{check_input, read_input};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The request as JSON (statemachines/schemas/backup-audit.input.json), file or `-`;
    /// flags below override its fields.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Backup bucket.
    #[arg(long, env = "HAPILOT_BACKUP_BUCKET")]
    bucket: Option<String>,
    /// The DR region's copy of the backups.
    #[arg(long, env = "HAPILOT_DR_BACKUP_BUCKET")]
    dr_bucket: Option<String>,
    /// Region of the DR bucket.
    #[arg(long, env = "HAPILOT_DR_REGION")]
    dr_region: Option<String>,
    /// Which backups get content verification: newest, all or none.
    #[arg(long)]
    verify: Option<String>,
    /// Tier whose RPO PostgreSQL is held to (Standard, High, Critical).
    #[arg(long, env = "HAPILOT_TIER")]
    tier: Option<String>,
    /// Also write the report to the audit bucket, put metrics and notify (as the state machine).
    #[arg(long)]
    record: bool,
}

pub(crate) async fn exec(args: Args, cx: &Context) -> anyhow::Result<()> {
    let mut request = read_input(args.input)?;
    for (field, value) in [
        ("bucket", args.bucket),
        ("dr_bucket", args.dr_bucket),
        ("dr_region", args.dr_region),
        ("verify", args.verify.map(|v| v.to_ascii_lowercase())),
        ("tier", args.tier),
    ] {
        if let Some(v) = value {
            request[field] = serde_json::Value::String(v);
        }
    }
    check_input("backup-audit", &request)?;
    let settings = cx.config.settings()?;
    // A missing region or credentials is a setup error (exit 1), never "critical backup
    // findings" (exit 2): said by `aws()` before any bucket is read.
    let sdk = cx.config.aws().await?;
    let run = hapilot::audit::run_audit(&sdk, settings, request, args.record, |l| eprintln!("{l}"))
        .await?;
    cx.out.result(&run.report, |r| r.markdown())?;
    if let Some(recorded) = run.recorded {
        eprintln!(
            "recorded: {} and {}",
            recorded["report_key"].as_str().unwrap_or_default(),
            recorded["markdown_key"].as_str().unwrap_or_default()
        );
    }
    if run.report.critical > 0 {
        eprintln!("hapilot: {}", run.report.summary);
        std::process::exit(2);
    }
    Ok(())
}
