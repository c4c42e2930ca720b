//! `hapilot`: the operator CLI. Parses arguments, reads the settings, hands the command to its
//! file under `src/commands/` (start here), exits with the code the help text promises.

use std::path::PathBuf;

use clap::Parser;
use hapilot::config::CliConfig;

mod commands;

use commands::{Command, Context, Output, Settings};

/// hapilot: the regional HA autopilot's operator tool and local stack.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "Exit codes:\n  0  done (a followed run SUCCEEDED)\n  1  the command failed, or the run it followed did not succeed; one line says why\n     (-v or HAPILOT_LOG=debug shows the SDK's detail)\n  2  a usage error, `audit` found critical backup findings, or `readiness` found a failed check"
)]
struct Cli {
    /// Settings file (default: ./hapilot.toml when present): `[aws]` region, profile,
    /// endpoint_url and `[settings]`, the Lambdas' HAPILOT_* variables. Flags and environment
    /// variables override it.
    #[arg(long, global = true, env = "HAPILOT_CONFIG")]
    config: Option<PathBuf>,
    /// Also print every state a run enters and leaves, and the AWS SDK's own warnings and
    /// retries (HAPILOT_LOG sets any filter).
    #[arg(short, long, global = true)]
    verbose: bool,
    /// The AWS profile (as `aws --profile`: keys, IAM Identity Center `sso_session`,
    /// `credential_process`, `aws login`, assumed roles); beats AWS_PROFILE and the file.
    #[arg(long, global = true)]
    profile: Option<String>,
    /// The AWS region to talk to; beats AWS_REGION and the file. Without it, a dark configured
    /// region is passed over for the next region of the deployment that answers.
    #[arg(long, global = true)]
    region: Option<String>,
    /// Print the command's result as one JSON document on stdout (progress goes to stderr).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[tokio::main]
async fn main() {
    use std::io::IsTerminal;
    // The SDK's own warnings (region and credential probing, retries) are kilobytes of context
    // an operator cannot act on; the error hapilot returns says what happened in one line.
    // -v or HAPILOT_LOG=debug brings them back. Colour only on a terminal, never into a file.
    let cli = Cli::parse();
    let quiet = "warn,aws_config=error,aws_runtime=error,aws_smithy_runtime=error,aws_smithy_runtime_api=error";
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HAPILOT_LOG")
                .unwrap_or_else(|_| if cli.verbose { "info" } else { quiet }.into()),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(cli).await {
        eprintln!("hapilot: error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let path = cli.config.as_deref();
    let config = match cli.command.settings() {
        Settings::File => CliConfig::load(path)?,
        Settings::UserFile => hapilot::config::user_config(path)?,
        Settings::Own => CliConfig::default(),
    }
    .with_flags(cli.region, cli.profile);
    let out = Output {
        json: cli.json,
        verbose: cli.verbose,
    };
    cli.command.exec(Context { config, out }).await
}
