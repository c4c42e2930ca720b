//! `hapilot rehearsal` (`drill`, the main job): the local rehearsal of a failover, its report
//! printed and saved.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use hapilot::local::StackOptions;
use hapilot::local::world::deployment::DatabaseSetup;
use hapilot::local::world::pace::Pace;
use hapilot::rehearsal::{Outage, RehearsalOptions, RehearsalReport};
use hapilot_core::failover::FailoverMode;

use super::Context;
use super::local::until_signal;

/// `--mode` (the variants' names are the values; help text stays on the flag).
#[derive(Clone, Copy, clap::ValueEnum)]
enum Mode {
    Graceful,
    Ungraceful,
}

/// `--outage`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum OutageArg {
    RegionDark,
    GatewayDown,
}

/// `--database`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum DatabaseArg {
    Postgres,
    Cloudnativepg,
}

/// `--pace`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum PaceArg {
    Compressed,
    Aws,
}

#[derive(clap::Args)]
pub(crate) struct Args {
    /// `ungraceful`: the primary region dies and the alarm fails over (RPO measured);
    /// `graceful`: a planned switchover that must lose no committed row.
    #[arg(long, value_enum, default_value = "ungraceful")]
    mode: Mode,
    /// What dies in an ungraceful drill. `region-dark`: us-east-1 goes dark, its APIs and
    /// Route53's control plane with it (detection by quorum from the standby and the
    /// witness, DNS moved through the data plane). `gateway-down`: only the gateway and
    /// the database die, the region's APIs keep answering (the gentler drill).
    #[arg(long, value_enum, default_value = "region-dark")]
    outage: OutageArg,
    /// The database backend over the same real PostgreSQL pair: `postgres` (SQL and host
    /// agents) or `cloudnativepg` (replica clusters behind each region's Kubernetes API,
    /// changed through `Cluster` specs; the operator stand-in acts on the servers).
    #[arg(long, value_enum, default_value = "postgres")]
    database: DatabaseArg,
    /// `compressed` (default): every AWS timing a tenth as long (Route53's 10 s checks take
    /// 1 s, DNS answers are kept 6 s); `aws`: AWS's own cadences (minutes; the RTO a user
    /// would see), the failover in full, the later parts shortened.
    #[arg(long, value_enum, default_value = "compressed")]
    pace: PaceArg,
    /// The stacks to deploy and their parameters (templates relative to the file's infra/
    /// directory); default infra/parameters/local.json.
    #[arg(long)]
    parameters: Option<PathBuf>,
    /// The secondaries the failover chooses from: `1` (us-west-2) or `2` (eu-west-1 too,
    /// with a PostgreSQL replica of its own, as in the HA document's section 3; the
    /// region-dark postgres drill).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    secondaries: u8,
    /// A secondary whose gateway fails its health checks from before the outage (with
    /// `--secondaries 2`): the failover must choose the other.
    #[arg(long, value_parser = ["us-west-2", "eu-west-1"])]
    degrade: Option<String>,
}

impl Args {
    fn options(self) -> RehearsalOptions {
        let pace = match self.pace {
            PaceArg::Aws => Pace::AWS,
            PaceArg::Compressed => Pace::compressed(),
        };
        RehearsalOptions {
            pace,
            check_interval: pace.health_check_interval(),
            parameters: self
                .parameters
                .unwrap_or_else(hapilot::local::aws::template::local_parameters_file),
            database: match self.database {
                DatabaseArg::Cloudnativepg => DatabaseSetup::Cloudnativepg,
                DatabaseArg::Postgres => DatabaseSetup::Postgres,
            },
            outage: match self.outage {
                OutageArg::GatewayDown => Outage::GatewayDown,
                OutageArg::RegionDark => Outage::RegionDark,
            },
            mode: match self.mode {
                Mode::Graceful => FailoverMode::Graceful,
                Mode::Ungraceful => FailoverMode::Ungraceful,
            },
            second_secondary: self.secondaries == 2,
            degraded: self.degrade,
            ..RehearsalOptions::default()
        }
    }
}

pub(crate) async fn exec(args: Args, cx: &Context) -> anyhow::Result<()> {
    let out = cx.out;
    // Ctrl-C or SIGTERM drops the rehearsal, and with it every service it started.
    // One line per phase; the states of each run only with -v.
    let report = until_signal(hapilot::rehearsal::run_rehearsal(
        StackOptions::default(),
        args.options(),
        move |line: &str| out.progress(line),
    ))
    .await??;
    out.result(&report, RehearsalReport::render)?;
    let path = save_report(&report)?;
    say!("report saved to {}", path.display());
    if !report.passed() {
        bail!("the drill did not meet the tier's targets (see the report above)");
    }
    Ok(())
}

/// Keeps the report under `.hapilot/reports/drill-<execution>.json`.
fn save_report(report: &RehearsalReport) -> anyhow::Result<PathBuf> {
    let dir = hapilot::local::project_root()
        .join(".hapilot")
        .join("reports");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("drill-{}.json", report.execution));
    std::fs::write(&path, serde_json::to_vec_pretty(report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
