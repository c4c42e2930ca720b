//! `hapilot`: the operator CLI. Parses arguments, calls the library, prints, exits.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use hapilot::config::CliConfig;
use hapilot::local::moto::MotoInstall;
use hapilot::local::{LocalStack, StackOptions};
use hapilot::rehearsal::RehearsalOptions;
use hapilot::runs;

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

#[derive(Subcommand)]
enum Command {
    /// The local stack (moto + hapilot's Lambda host), no AWS account needed.
    Local {
        #[command(subcommand)]
        command: LocalCommand,
    },
    /// The main job (`./scripts/drill`): the local rehearsal of a failover on a fresh local
    /// stack, with a report ("drill" stays an alias; the DR drill is the `dr-drill` state
    /// machine).
    #[command(alias = "drill")]
    Rehearsal {
        /// `ungraceful`: the primary region dies and the alarm fails over (RPO measured);
        /// `graceful`: a planned switchover that must lose no committed row.
        #[arg(long, default_value = "ungraceful", value_parser = ["graceful", "ungraceful"])]
        mode: String,
        /// What dies in an ungraceful drill. `region-dark`: us-east-1 goes dark, its APIs and
        /// Route53's control plane with it (detection by quorum from the standby and the
        /// witness, DNS moved through the data plane). `gateway-down`: only the gateway and
        /// the database die, the region's APIs keep answering (the gentler drill).
        #[arg(long, default_value = "region-dark", value_parser = ["region-dark", "gateway-down"])]
        outage: String,
        /// The database backend over the same real PostgreSQL pair: `postgres` (SQL and host
        /// agents) or `cloudnativepg` (replica clusters behind each region's Kubernetes API,
        /// changed through `Cluster` specs; the operator stand-in acts on the servers).
        #[arg(long, default_value = "postgres", value_parser = ["postgres", "cloudnativepg"])]
        database: String,
        /// `compressed` (default): every AWS timing a tenth as long (Route53's 10 s checks take
        /// 1 s, DNS answers are kept 6 s); `aws`: AWS's own cadences (minutes; the RTO a user
        /// would see), the failover in full, the later parts shortened.
        #[arg(long, default_value = "compressed", value_parser = ["compressed", "aws"])]
        pace: String,
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
    },
    /// Start a run of a state machine (name or ARN) and follow it to its end.
    Start {
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
    },
    /// Start a canary failback (traffic back to the recovered primary in gated steps) and follow it.
    Failback {
        /// The recovered region that gets its traffic back.
        #[arg(long)]
        primary_region: String,
        /// The region carrying the traffic now.
        #[arg(long)]
        standby_region: String,
        /// Further input fields as JSON (statemachines/schemas/failback.input.json), e.g.
        /// '{"steps": [25, 50, 100], "approve_last": true}'.
        #[arg(long)]
        with: Option<String>,
        /// The failback state machine (name as deployed, or ARN).
        #[arg(long, default_value = "failback")]
        machine: String,
        /// Execution name; default: a fresh unique one.
        #[arg(long)]
        name: Option<String>,
        /// Give up following after this many seconds (the run goes on).
        #[arg(long, default_value_t = 7200)]
        timeout: u64,
        /// Start it and return at once (follow it later with `hapilot watch`).
        #[arg(long)]
        detach: bool,
    },
    /// After a failover, make the old primary's database a streaming replica of the new primary
    /// again (pg_rewind, else a fresh base backup; Patroni: reinitialize). Refuses split brain.
    Reprotect {
        /// The old primary's region (its database becomes a replica).
        #[arg(long)]
        region: String,
        /// The region whose database is primary now.
        #[arg(long)]
        primary_region: String,
        /// Further input fields as JSON (statemachines/schemas/reprotect.input.json), e.g.
        /// '{"timeout_seconds": 900}'.
        #[arg(long)]
        with: Option<String>,
        /// The reprotect state machine (name as deployed, or ARN).
        #[arg(long, default_value = "reprotect")]
        machine: String,
        /// Give up following after this many seconds (the run goes on).
        #[arg(long, default_value_t = 7200)]
        timeout: u64,
    },
    /// Restore Vault and PostgreSQL from backups into a (DR) region: `latest` or a point in time.
    /// Runs the dr-restore state machine and prints its report.
    Restore {
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
    },
    /// Prove the backups by restoring them (the restore-test state machine): PostgreSQL onto
    /// the region's scratch target (`restore_test`), to a random moment inside the restore
    /// window, checked by content, torn down; the report gives the restore time and RPO.
    RestoreTest {
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
    },
    /// Approve what a waiting run (e.g. a failover over its RPO) asks for.
    Approve {
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
    },
    /// Deny what a waiting run asks for; it stops with nothing more changed.
    Deny {
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
    },
    /// Audit the backups (every policy of the HA document's table, by listing and by content) and
    /// print the report; exits 2 on critical findings. Talks to AWS_ENDPOINT_URL when set (the
    /// local stack), else to AWS with your profile.
    Audit {
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
    },
    /// Where the deployment stands: which region serves (DNS data plane and records), each
    /// vantage point's view, replication lag, the last runs, pending approvals, the kill switch
    /// and the cool-down. Against AWS, or the local world (after `hapilot local up`).
    Status,
    /// A run's report as Markdown, from the audit bucket; a run with no report yet is shown
    /// as its journal, one line per step.
    Report {
        /// Execution name or ARN.
        execution: String,
        /// The audit bucket (or `audit_bucket` in the settings file).
        #[arg(long, env = "HAPILOT_AUDIT_BUCKET")]
        bucket: Option<String>,
    },
    /// Evaluate readiness now (the readiness state machine: the HA checklist and section 6.1
    /// alerts in every region) and print its report; exits 2 when a check fails.
    Readiness {
        /// The readiness state machine (name as deployed, or ARN).
        #[arg(long, default_value = "readiness")]
        machine: String,
        /// The audit bucket holding the report (or `audit_bucket` in the settings file).
        #[arg(long, env = "HAPILOT_AUDIT_BUCKET")]
        bucket: Option<String>,
        /// Give up following after this many seconds (the run goes on).
        #[arg(long, default_value_t = 900)]
        timeout: u64,
    },
    /// Draw a state machine as a Mermaid flowchart (from its `.asl.json`), or redraw the
    /// diagrams of docs/state-machines.md.
    Diagram {
        /// The definition to draw, e.g. statemachines/failover.asl.json.
        #[arg(required_unless_present = "readme")]
        definition: Option<PathBuf>,
        /// Redraw every `<!-- diagram: <machine> -->` block of this document (e.g.
        /// docs/state-machines.md) from statemachines/<machine>.asl.json of its repository.
        #[arg(long, conflicts_with = "definition")]
        readme: Option<PathBuf>,
        /// With --readme: change nothing, exit 1 when a diagram is stale.
        #[arg(long, requires = "readme")]
        check: bool,
    },
    /// Who the CLI acts as, where: the profile and its kind, the account and identity AWS
    /// sees (STS GetCallerIdentity), the region. The first thing to check on call.
    Whoami,
    /// Print a completion script for a shell, e.g. `hapilot completions bash >
    /// ~/.local/share/bash-completion/completions/hapilot`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Follow a run (execution ARN) to its end, one line per state.
    Watch {
        /// Execution ARN, or its name with --machine.
        execution: String,
        /// The state machine of a run given by name (name as deployed, or ARN).
        #[arg(long, default_value = "failover")]
        machine: String,
        /// Give up following after this many seconds (the run goes on).
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
}

#[derive(Subcommand)]
enum LocalCommand {
    /// Start the local stack, deploy the state machines, print the env to use it; Ctrl-C stops it.
    Up {
        /// Port of the endpoint (AWS_ENDPOINT_URL); default: a free one.
        #[arg(long)]
        port: Option<u16>,
        /// Region the stack plays.
        #[arg(long, default_value = hapilot::local::DEFAULT_REGION)]
        region: String,
        /// Seconds moto may take to start.
        #[arg(long, default_value_t = 60)]
        moto_start_timeout: u64,
        /// Only the stack (moto + the functions, unconfigured): no world.
        #[arg(long)]
        bare: bool,
        /// The kill switch (HAPILOT_AUTOMATIC_FAILOVER): `false` keeps alarms from starting
        /// failovers. Beats `automatic_failover` in hapilot.toml.
        #[arg(long)]
        automatic_failover: Option<bool>,
        /// Anti ping-pong cool-down (HAPILOT_COOLDOWN_SECONDS). Beats hapilot.toml.
        #[arg(long)]
        cooldown_seconds: Option<u64>,
        /// Default tier (HAPILOT_TIER: Standard, High, Critical). Beats hapilot.toml.
        #[arg(long)]
        tier: Option<String>,
    },
    /// Make a region of the running local world go dark: its APIs refuse every call, its
    /// gateway fails, its Kubernetes API is down, its PostgreSQL stops.
    Kill {
        /// us-east-1, us-west-2 or eu-west-1.
        region: String,
    },
    /// Bring a dark region of the running local world back (its database comes back only
    /// through `hapilot reprotect`).
    Revive {
        /// us-east-1, us-west-2 or eu-west-1.
        region: String,
    },
    /// Inject faults into the running local world, as AWS Fault Injection Service would: the
    /// next calls of a region's service fail with a 503, a throttle or a timeout, or are slowed.
    /// Without --kind: lists the armed faults and the calls they hit.
    Fault {
        /// The region whose calls fail.
        #[arg(long, requires = "kind")]
        region: Option<String>,
        /// s3, states, lambda, monitoring, sns, route53 (AWS, by SigV4 name), kubernetes (also
        /// CloudNativePG's API) or patroni.
        #[arg(long, requires = "kind")]
        service: Option<String>,
        /// unavailable, throttle, timeout or latency.
        #[arg(long, requires_all = ["region", "service"], value_parser = ["unavailable", "throttle", "timeout", "latency"])]
        kind: Option<String>,
        /// How many calls.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// The added delay of `latency`, milliseconds.
        #[arg(long, default_value_t = 1000)]
        millis: u64,
        /// Only calls whose method, path or X-Amz-Target contain this text.
        #[arg(long)]
        matching: Option<String>,
        /// Disarm every fault.
        #[arg(long, conflicts_with = "kind")]
        clear: bool,
    },
    /// Only install the pinned moto into the project-local venv.
    Setup,
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

/// Prints one line; a closed stdout (a pipe whose reader went away) must not kill the stack
/// before it has stopped its children.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

macro_rules! say {
    ($($arg:tt)*) => { say(&format!($($arg)*)) };
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli {
        config: config_path,
        verbose,
        profile,
        region,
        json,
        command,
    } = cli;
    // The local stack and the drill make their own world; every other command reads the file
    // first, so a bad one stops it before anything is asked of AWS.
    let config = match &command {
        Command::Local {
            command: LocalCommand::Up { bare: false, .. },
        } => hapilot::config::user_config(config_path.as_deref())?,
        Command::Local { .. } | Command::Rehearsal { .. } => CliConfig::default(),
        _ => CliConfig::load(config_path.as_deref())?,
    }
    .with_flags(region, profile);
    let out = Output { json, verbose };
    match command {
        Command::Local {
            command: LocalCommand::Setup,
        } => {
            let options = StackOptions::default();
            MotoInstall::at(&options.venv).ensure(&options.python, say)?;
            say!(
                "moto {} and aws-sam-translator {} are installed in {}",
                hapilot::local::moto::MOTO_VERSION,
                hapilot::local::moto::SAM_TRANSLATOR_VERSION,
                options.venv.display()
            );
            Ok(())
        }
        Command::Local {
            command:
                LocalCommand::Up {
                    port,
                    region,
                    moto_start_timeout,
                    bare: true,
                    ..
                },
        } => local_up(port, region, moto_start_timeout).await,
        Command::Local {
            command:
                LocalCommand::Up {
                    port,
                    region,
                    moto_start_timeout,
                    bare: false,
                    automatic_failover,
                    cooldown_seconds,
                    tier,
                },
        } => {
            let flags = [
                (
                    "HAPILOT_AUTOMATIC_FAILOVER",
                    automatic_failover.map(|b| b.to_string()),
                ),
                (
                    "HAPILOT_COOLDOWN_SECONDS",
                    cooldown_seconds.map(|n| n.to_string()),
                ),
                ("HAPILOT_TIER", tier),
            ];
            let tuning = move |var: &str| {
                flags
                    .iter()
                    .find(|(k, _)| *k == var)
                    .and_then(|(_, v)| v.clone())
                    .or_else(|| config.setting(var))
            };
            let options = StackOptions {
                port,
                region,
                moto_start_timeout: Duration::from_secs(moto_start_timeout),
                ..StackOptions::default()
            };
            local_world(options, tuning).await
        }
        Command::Local {
            command: LocalCommand::Kill { region },
        } => {
            say!("{}", hapilot::local::world::control(&region, "kill").await?);
            Ok(())
        }
        Command::Local {
            command:
                LocalCommand::Fault {
                    region,
                    service,
                    kind,
                    count,
                    millis,
                    matching,
                    clear,
                },
        } => {
            use hapilot::local::faults::{FaultKind, FaultSpec};
            let spec = match (region, service, kind.as_deref()) {
                (Some(region), Some(service), Some(kind)) => Some(FaultSpec {
                    region,
                    service,
                    kind: match kind {
                        "unavailable" => FaultKind::Unavailable,
                        "throttle" => FaultKind::Throttle,
                        "timeout" => FaultKind::Timeout,
                        _ => FaultKind::Latency { millis },
                    },
                    count,
                    matching,
                }),
                _ => None,
            };
            say!(
                "{}",
                hapilot::local::world::fault(spec.as_ref(), clear).await?
            );
            Ok(())
        }
        Command::Local {
            command: LocalCommand::Revive { region },
        } => {
            say!(
                "{}",
                hapilot::local::world::control(&region, "revive").await?
            );
            Ok(())
        }
        Command::Rehearsal {
            mode,
            outage,
            database,
            pace,
            parameters,
            secondaries,
            degrade,
        } => {
            let pace = if pace == "aws" {
                hapilot::local::pace::Pace::AWS
            } else {
                hapilot::local::pace::Pace::compressed()
            };
            let options = RehearsalOptions {
                pace,
                check_interval: pace.health_check_interval(),
                parameters: parameters
                    .unwrap_or_else(hapilot::local::template::local_parameters_file),
                database: if database == "cloudnativepg" {
                    hapilot::local::deployment::DatabaseSetup::Cloudnativepg
                } else {
                    hapilot::local::deployment::DatabaseSetup::Postgres
                },
                outage: if outage == "gateway-down" {
                    hapilot::rehearsal::Outage::GatewayDown
                } else {
                    hapilot::rehearsal::Outage::RegionDark
                },
                mode: if mode == "graceful" {
                    hapilot_core::failover::FailoverMode::Graceful
                } else {
                    hapilot_core::failover::FailoverMode::Ungraceful
                },
                second_secondary: secondaries == 2,
                degraded: degrade,
                ..RehearsalOptions::default()
            };
            // Ctrl-C or SIGTERM drops the rehearsal, and with it every service it started.
            // One line per phase; the states of each run only with -v.
            let report = until_signal(hapilot::rehearsal::run_rehearsal(
                StackOptions::default(),
                options,
                move |line: &str| out.progress(line),
            ))
            .await??;
            if json {
                say!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                say(&report.render());
            }
            let path = save_report(&report)?;
            say!("report saved to {}", path.display());
            if !report.passed() {
                bail!("the drill did not meet the tier's targets (see the report above)");
            }
            Ok(())
        }
        Command::Start {
            machine,
            input,
            name,
            timeout,
            detach,
        } => {
            let timeout = if detach { 0 } else { timeout };
            // A missing or malformed input file is said before anything is asked of AWS.
            let input = read_input(input)?;
            check_input(&machine, &input)?;
            let sfn = aws_sdk_sfn::Client::new(&config.aws_answering().await?);
            let arn = resolve_machine(&sfn, &machine).await?;
            let name = name.unwrap_or_else(|| format!("cli-{}", uuid::Uuid::new_v4().simple()));
            let execution = runs::start(&sfn, &arn, &name, &input).await?;
            out.started(&execution);
            finish(&sfn, &execution, timeout, out).await
        }
        Command::Failback {
            primary_region,
            standby_region,
            with,
            machine,
            name,
            timeout,
            detach,
        } => {
            let timeout = if detach { 0 } else { timeout };
            let fields = [
                ("primary_region", primary_region.into()),
                ("standby_region", standby_region.into()),
            ];
            start_with(
                &config,
                &machine,
                with,
                fields,
                (name, "failback"),
                timeout,
                out,
            )
            .await
        }
        Command::Restore {
            region,
            target,
            data_check,
            with,
            machine,
            timeout,
        } => {
            let check = match data_check {
                None => serde_json::Value::Null,
                Some(check) => {
                    let Some((table, column)) = check.rsplit_once('.') else {
                        bail!(
                            "--data-check must be table.column, e.g. LiteLLM_SpendLogs.startTime"
                        );
                    };
                    serde_json::json!({"table": table, "column": column})
                }
            };
            let mut fields = vec![("region", region.into()), ("target", target.into())];
            if !check.is_null() {
                fields.push(("data_check", check));
            }
            start_with(
                &config,
                &machine,
                with,
                fields,
                (None, "restore"),
                timeout,
                out,
            )
            .await
        }
        Command::RestoreTest {
            region,
            target,
            seed,
            data_check,
            machine,
            timeout,
        } => {
            let mut fields = vec![("region", region.into()), ("target", target.into())];
            if let Some(seed) = seed {
                fields.push(("seed", seed.into()));
            }
            if let Some(check) = data_check {
                let Some((table, column)) = check.rsplit_once('.') else {
                    bail!("--data-check must be table.column, e.g. LiteLLM_SpendLogs.startTime");
                };
                fields.push((
                    "data_check",
                    serde_json::json!({"table": table, "column": column}),
                ));
            }
            start_with(
                &config,
                &machine,
                None,
                fields,
                (None, "restore-test"),
                timeout,
                out,
            )
            .await
        }
        Command::Reprotect {
            region,
            primary_region,
            with,
            machine,
            timeout,
        } => {
            let fields = [
                ("region", region.into()),
                ("primary_region", primary_region.into()),
            ];
            start_with(
                &config,
                &machine,
                with,
                fields,
                (None, "reprotect"),
                timeout,
                out,
            )
            .await
        }
        Command::Approve {
            execution,
            machine,
            bucket,
            comment,
            yes,
        } => {
            answer(
                &config,
                &execution,
                &machine,
                bucket,
                (true, yes),
                &comment,
                out,
            )
            .await
        }
        Command::Deny {
            execution,
            machine,
            bucket,
            comment,
            yes,
        } => {
            answer(
                &config,
                &execution,
                &machine,
                bucket,
                (false, yes),
                &comment,
                out,
            )
            .await
        }
        Command::Audit {
            input,
            bucket,
            dr_bucket,
            dr_region,
            verify,
            tier,
            record,
        } => {
            let mut request = read_input(input)?;
            for (field, value) in [
                ("bucket", bucket),
                ("dr_bucket", dr_bucket),
                ("dr_region", dr_region),
                ("verify", verify.map(|v| v.to_ascii_lowercase())),
                ("tier", tier),
            ] {
                if let Some(v) = value {
                    request[field] = serde_json::Value::String(v);
                }
            }
            check_input("backup-audit", &request)?;
            let settings = config.settings()?;
            let sdk = config.aws().await?;
            // A missing region or credentials is a setup error (exit 1), never "critical
            // backup findings" (exit 2): said by `aws()` before any bucket is read.
            let run =
                hapilot::audit::run_audit(&sdk, settings, request, record, |l| eprintln!("{l}"))
                    .await?;
            if json {
                say!("{}", serde_json::to_string_pretty(&run.report)?);
            } else {
                say!("{}", run.report.markdown());
            }
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
        Command::Status => {
            let settings = config.settings()?;
            let sdk = config.aws_answering().await?;
            let control = std::env::var("HAPILOT_LOCAL_CONTROL")
                .ok()
                .filter(|u| !u.is_empty());
            let status = hapilot::status::read_status(&sdk, &settings, control.as_deref()).await;
            if json {
                say!("{}", serde_json::to_string_pretty(&status.to_json())?);
            } else {
                say!("{}", status.render());
            }
            Ok(())
        }
        Command::Report { execution, bucket } => {
            let Some(bucket) = bucket.or_else(|| config.setting("HAPILOT_AUDIT_BUCKET")) else {
                bail!(
                    "which audit bucket holds the report? Use --bucket, HAPILOT_AUDIT_BUCKET or audit_bucket in hapilot.toml"
                );
            };
            let sdk = config.aws_answering().await?;
            if json {
                let report = hapilot::report::report_json(&sdk, &bucket, &execution).await?;
                say!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                say!(
                    "{}",
                    hapilot::report::report(&sdk, &bucket, &execution).await?
                );
            }
            Ok(())
        }
        Command::Diagram {
            definition,
            readme,
            check,
        } => draw(definition, readme, check),
        Command::Readiness {
            machine,
            bucket,
            timeout,
        } => {
            let Some(bucket) = bucket.or_else(|| config.setting("HAPILOT_AUDIT_BUCKET")) else {
                bail!(
                    "which audit bucket holds the readiness report? Use --bucket, HAPILOT_AUDIT_BUCKET or audit_bucket in hapilot.toml"
                );
            };
            check_input(&machine, &serde_json::json!({}))?;
            let sdk = config.aws_answering().await?;
            let sfn = aws_sdk_sfn::Client::new(&sdk);
            let arn = resolve_machine(&sfn, &machine).await?;
            let name = format!("readiness-{}", uuid::Uuid::new_v4().simple());
            let execution = runs::start(&sfn, &arn, &name, &serde_json::json!({})).await?;
            eprintln!("started {execution}");
            let outcome = runs::follow_with(
                &sfn,
                &execution,
                Duration::from_secs(timeout),
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
            if json {
                say!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                say!("{}", report.markdown());
            }
            if report.verdict != "ready" {
                eprintln!("hapilot: {}", report.summary);
                std::process::exit(2);
            }
            Ok(())
        }
        Command::Watch {
            execution,
            machine,
            timeout,
        } => {
            let sfn = aws_sdk_sfn::Client::new(&config.aws_answering().await?);
            let execution = if execution.starts_with("arn:") {
                execution
            } else {
                let machine = resolve_machine(&sfn, &machine).await?;
                format!(
                    "{}:{execution}",
                    machine.replacen(":stateMachine:", ":execution:", 1)
                )
            };
            finish(&sfn, &execution, timeout, out).await
        }
        Command::Whoami => {
            let sdk = config.aws().await?;
            let profile = config.profile();
            let kind = hapilot::login::kind_of(&profile);
            let identity = hapilot::approvals::caller_identity(&sdk).await?;
            let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
            let kind_text = kind.as_ref().map(|k| format!("{k:?}"));
            if json {
                say!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "arn": identity,
                        "account": identity.split(':').nth(4),
                        "region": region,
                        "profile": profile,
                        "profile_kind": kind_text,
                        "endpoint_url": sdk.endpoint_url(),
                    }))?
                );
            } else {
                say!("identity  {identity}");
                say!("region    {region}");
                say!(
                    "profile   {profile} ({})",
                    kind_text
                        .as_deref()
                        .unwrap_or("not in the shared files: environment keys or a role")
                );
                if let Some(url) = sdk.endpoint_url() {
                    say!("endpoint  {url}");
                }
            }
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "hapilot", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// How a command prints: `--json` puts its result on stdout as one JSON document and its
/// progress on stderr; `-v` adds every state a run enters and leaves to the phases.
#[derive(Debug, Clone, Copy)]
struct Output {
    json: bool,
    verbose: bool,
}

impl Output {
    /// A progress line: stdout for people, stderr under `--json`.
    fn line(&self, line: &str) {
        if self.json {
            eprintln!("{line}");
        } else {
            say(line);
        }
    }

    /// A phase of the drill (always) or a state of one of its runs (only with `-v`).
    fn progress(&self, line: &str) {
        if self.verbose || !runs::is_state_line(line) {
            self.line(line);
        }
    }

    /// A state of a followed run: `start` and `watch` follow one run, its states are the phases.
    fn state(&self, line: &str) {
        self.line(line);
    }

    fn started(&self, execution: &str) {
        self.line(&format!("started {execution}"));
    }
}

fn draw(definition: Option<PathBuf>, readme: Option<PathBuf>, check: bool) -> anyhow::Result<()> {
    if let Some(path) = definition {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let definition: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        print!("{}", hapilot::diagram::mermaid(&definition)?);
        return Ok(());
    }
    let Some(readme) = readme else {
        bail!("give a definition to draw, or --readme docs/state-machines.md");
    };
    let text = std::fs::read_to_string(&readme)
        .with_context(|| format!("reading {}", readme.display()))?;
    // The statemachines/ folder of the repository the document is in (README.md or docs/...).
    let definitions = readme
        .canonicalize()
        .with_context(|| format!("reading {}", readme.display()))?
        .ancestors()
        .skip(1)
        .map(|dir| dir.join("statemachines"))
        .find(|dir| dir.is_dir())
        .ok_or_else(|| anyhow::anyhow!("no statemachines/ folder above {}", readme.display()))?;
    let drawn = hapilot::diagram::redraw_readme(&text, &definitions)?;
    if drawn == text {
        say!("{}: every diagram is current", readme.display());
    } else if check {
        bail!(
            "{}: a diagram is stale; run `hapilot diagram --readme {}`",
            readme.display(),
            readme.display()
        );
    } else {
        std::fs::write(&readme, drawn).with_context(|| format!("writing {}", readme.display()))?;
        say!("{}: diagrams redrawn", readme.display());
    }
    Ok(())
}

async fn local_world(
    options: StackOptions,
    tuning: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    // Refuse a bad setting before anything starts.
    hapilot::local::world::apply_tuning(
        &mut hapilot_functions::config::Settings::with_defaults(),
        &tuning,
    )?;
    let world =
        hapilot::local::world::LocalWorld::start(options, tuning, Duration::from_secs(1), say)
            .await?;
    say!("# hapilot local world: evaluate these lines to use it (AWS CLI, SDKs, hapilot)");
    for line in world.env_lines() {
        say!("{line}");
    }
    for line in hapilot::local::world::WHAT_TO_TRY.lines() {
        say!("# {line}");
    }
    ready_until_signal(world.stack()).await?;
    say!("# stopping the local world");
    world.shutdown().await;
    Ok(())
}

/// Runs `work` until it ends or Ctrl-C / SIGTERM comes; on a signal `work` is dropped (its
/// worlds stop every process they started) and the run ends with an error saying so.
async fn until_signal<T>(work: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        out = work => Ok(out),
        _ = tokio::signal::ctrl_c() => bail!("interrupted (Ctrl-C): every service the run started was stopped"),
        _ = terminate.recv() => bail!("terminated (SIGTERM): every service the run started was stopped"),
    }
}

/// Says the stack is ready (the line tests and scripts wait for), then waits for Ctrl-C or
/// SIGTERM.
async fn ready_until_signal(stack: &LocalStack) -> anyhow::Result<()> {
    say!(
        "# ready at {} (moto pid {}, log {}); Ctrl-C stops it",
        stack.endpoint_url(),
        stack.moto_pid().unwrap_or_default(),
        stack.moto_log().display()
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}

async fn local_up(
    port: Option<u16>,
    region: String,
    moto_start_timeout: u64,
) -> anyhow::Result<()> {
    let options = StackOptions {
        port,
        region,
        moto_start_timeout: Duration::from_secs(moto_start_timeout),
        ..StackOptions::default()
    };
    let stack = LocalStack::start(options, say).await?;
    say!("# hapilot local stack: evaluate these lines to use it (AWS CLI, SDKs, `hapilot start`)");
    for line in stack.env_lines() {
        say!("{line}");
    }
    for (name, arn) in stack.state_machines() {
        say!("# state machine {name}: {arn}");
    }
    for f in hapilot_functions::catalog::FUNCTIONS {
        say!("# function {}: {}", f.name, f.summary);
    }
    ready_until_signal(&stack).await?;
    say!("# stopping the local stack");
    stack.shutdown().await;
    Ok(())
}

/// Starts `machine` with `--with` JSON plus `fields` (which win) and follows it to its end.
async fn start_with(
    config: &CliConfig,
    machine: &str,
    with: Option<String>,
    fields: impl IntoIterator<Item = (&'static str, serde_json::Value)>,
    (name, prefix): (Option<String>, &str),
    timeout: u64,
    out: Output,
) -> anyhow::Result<()> {
    let mut input = match with {
        Some(text) => serde_json::from_str(&text).context("--with is not a JSON object")?,
        None => serde_json::json!({}),
    };
    let Some(object) = input.as_object_mut() else {
        bail!("--with must be a JSON object");
    };
    for (k, v) in fields {
        object.insert(k.into(), v);
    }
    check_input(machine, &input)?;
    let sfn = aws_sdk_sfn::Client::new(&config.aws_answering().await?);
    let arn = resolve_machine(&sfn, machine).await?;
    let name = name.unwrap_or_else(|| format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    let execution = runs::start(&sfn, &arn, &name, &input).await?;
    out.started(&execution);
    finish(&sfn, &execution, timeout, out).await
}

async fn resolve_machine(sfn: &aws_sdk_sfn::Client, machine: &str) -> anyhow::Result<String> {
    if machine.starts_with("arn:") {
        return Ok(machine.to_string());
    }
    let mut suffixed = Vec::new();
    let mut pages = sfn.list_state_machines().into_paginator().items().send();
    while let Some(item) = pages.next().await {
        let item = item
            .context("ListStateMachines failed (is AWS_ENDPOINT_URL or your AWS profile set?)")?;
        if item.name() == machine {
            return Ok(item.state_machine_arn().to_string());
        }
        // A SAM deployment names it `<stack>-<machine>`.
        if item.name().ends_with(&format!("-{machine}")) {
            suffixed.push(item.state_machine_arn().to_string());
        }
    }
    if let [only] = suffixed.as_slice() {
        return Ok(only.clone());
    }
    bail!("no state machine named {machine:?} in this account and region")
}

/// Refuses an input that does not fit `machine`'s schema (one of hapilot's), before any AWS
/// call, naming every field that is wrong.
fn check_input(machine: &str, input: &serde_json::Value) -> anyhow::Result<()> {
    let Some(schema) = hapilot::schema::schema_of(machine) else {
        return Ok(());
    };
    let problems = hapilot::schema::problems(&schema, input);
    if !problems.is_empty() {
        let name = machine.rsplit(':').next().unwrap_or(machine);
        let short = hapilot::schema::SCHEMAS
            .iter()
            .map(|(m, _)| *m)
            .find(|m| name == *m || name.ends_with(&format!("-{m}")))
            .unwrap_or(name);
        bail!(
            "the input does not fit statemachines/schemas/{short}.input.json: {}",
            problems.join("; ")
        );
    }
    Ok(())
}

fn read_input(input: Option<PathBuf>) -> anyhow::Result<serde_json::Value> {
    let text = match input {
        None => return Ok(serde_json::json!({})),
        Some(p) if p.as_os_str() == "-" => {
            std::io::read_to_string(std::io::stdin()).context("reading stdin")?
        }
        Some(p) => {
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?
        }
    };
    serde_json::from_str(&text).context("the input is not valid JSON")
}

/// Follows `execution` to its end and prints its output; `timeout` 0 means detached: return at
/// once. Under `--json` the result is one document: `{"execution_arn", "status", "output",
/// "error", "cause", "duration_s"}`.
async fn finish(
    sfn: &aws_sdk_sfn::Client,
    execution: &str,
    timeout: u64,
    out: Output,
) -> anyhow::Result<()> {
    if timeout == 0 {
        if out.json {
            say!(
                "{}",
                serde_json::json!({"execution_arn": execution, "status": "RUNNING"})
            );
        } else {
            say!("follow it with: hapilot watch {execution}");
        }
        return Ok(());
    }
    let outcome = runs::follow_with(
        sfn,
        execution,
        Duration::from_secs(timeout),
        runs::Polling::OPERATOR,
        |l| out.state(l),
    )
    .await?;
    if out.json {
        say!("{}", serde_json::to_string_pretty(&outcome.summary())?);
    } else if let Some(output) = &outcome.output {
        say!("{}", serde_json::to_string_pretty(output)?);
    }
    if !outcome.succeeded() {
        bail!(
            "run ended {}: {} {}",
            outcome.status,
            outcome.error.as_deref().unwrap_or(""),
            outcome.cause.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

fn save_report(report: &hapilot::rehearsal::RehearsalReport) -> anyhow::Result<PathBuf> {
    let dir = hapilot::local::project_root()
        .join(".hapilot")
        .join("reports");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("drill-{}.json", report.execution));
    std::fs::write(&path, serde_json::to_vec_pretty(report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

async fn answer(
    config: &CliConfig,
    execution: &str,
    machine: &str,
    bucket: Option<String>,
    (approved, confirmed): (bool, bool),
    comment: &str,
    out: Output,
) -> anyhow::Result<()> {
    let Some(bucket) = bucket.or_else(|| config.setting("HAPILOT_AUDIT_BUCKET")) else {
        bail!(
            "which audit bucket holds the approval? Use --bucket, HAPILOT_AUDIT_BUCKET or audit_bucket in hapilot.toml"
        );
    };
    let sdk = config.aws_answering().await?;
    let pending = hapilot::approvals::pending(&sdk, &bucket, machine, execution).await?;
    let verb = if approved { "approve" } else { "deny" };
    out.line(&format!(
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
    let decision = match config.setting("HAPILOT_APPROVAL_URL") {
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
    if out.json {
        say!("{}", serde_json::to_string_pretty(&decision)?);
    } else {
        say!(
            "{} {machine} run {execution}: {decision}",
            if approved { "approved" } else { "denied" }
        );
    }
    Ok(())
}
