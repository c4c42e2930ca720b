//! `hapilot local ...`: the local stack and the world on it (moto + hapilot's Lambda host, the
//! simulated regions), and the controls of a running world.

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use hapilot::local::aws::faults::{FaultKind, FaultSpec};
use hapilot::local::aws::moto::MotoInstall;
use hapilot::local::{LocalStack, StackOptions};

use super::{Context, say_line};

#[derive(Subcommand)]
pub(crate) enum LocalCommand {
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
        #[arg(long, value_enum, requires_all = ["region", "service"])]
        kind: Option<Kind>,
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

/// `--kind` of `local fault` (the variants' names are the values).
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Kind {
    Unavailable,
    Throttle,
    Timeout,
    Latency,
}

impl LocalCommand {
    /// `local up` without `--bare`: the world, tuned by the user's settings file.
    pub(crate) fn is_world(&self) -> bool {
        matches!(self, LocalCommand::Up { bare: false, .. })
    }
}

pub(crate) async fn exec(command: LocalCommand, cx: &Context) -> anyhow::Result<()> {
    match command {
        LocalCommand::Setup => {
            let options = StackOptions::default();
            MotoInstall::at(&options.venv).ensure(&options.python, say_line)?;
            say!(
                "moto {} and aws-sam-translator {} are installed in {}",
                hapilot::local::aws::moto::MOTO_VERSION,
                hapilot::local::aws::moto::SAM_TRANSLATOR_VERSION,
                options.venv.display()
            );
        }
        LocalCommand::Up {
            port,
            region,
            moto_start_timeout,
            bare,
            automatic_failover,
            cooldown_seconds,
            tier,
        } => {
            let options = StackOptions {
                port,
                region,
                moto_start_timeout: Duration::from_secs(moto_start_timeout),
                ..StackOptions::default()
            };
            if bare {
                return stack_up(options).await;
            }
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
            let config = cx.config.clone();
            let tuning = move |var: &str| {
                flags
                    .iter()
                    .find(|(k, _)| *k == var)
                    .and_then(|(_, v)| v.clone())
                    .or_else(|| config.setting(var))
            };
            return world_up(options, tuning).await;
        }
        LocalCommand::Kill { region } => {
            say!(
                "{}",
                hapilot::local::world::local_up::control(&region, "kill").await?
            );
        }
        LocalCommand::Revive { region } => {
            say!(
                "{}",
                hapilot::local::world::local_up::control(&region, "revive").await?
            );
        }
        LocalCommand::Fault {
            region,
            service,
            kind,
            count,
            millis,
            matching,
            clear,
        } => {
            let spec = match (region, service, kind) {
                (Some(region), Some(service), Some(kind)) => Some(FaultSpec {
                    region,
                    service,
                    kind: match kind {
                        Kind::Unavailable => FaultKind::Unavailable,
                        Kind::Throttle => FaultKind::Throttle,
                        Kind::Timeout => FaultKind::Timeout,
                        Kind::Latency => FaultKind::Latency { millis },
                    },
                    count,
                    matching,
                }),
                _ => None,
            };
            say!(
                "{}",
                hapilot::local::world::local_up::fault(spec.as_ref(), clear).await?
            );
        }
    }
    Ok(())
}

/// `local up`: the world, until Ctrl-C.
async fn world_up(
    options: StackOptions,
    tuning: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    // Refuse a bad setting before anything starts.
    hapilot::local::world::local_up::apply_tuning(
        &mut hapilot_functions::config::Settings::with_defaults(),
        &tuning,
    )?;
    let world = hapilot::local::world::local_up::LocalWorld::start(
        options,
        tuning,
        Duration::from_secs(1),
        say_line,
    )
    .await?;
    say!("# hapilot local world: evaluate these lines to use it (AWS CLI, SDKs, hapilot)");
    for line in world.env_lines() {
        say!("{line}");
    }
    for line in hapilot::local::world::local_up::WHAT_TO_TRY.lines() {
        say!("# {line}");
    }
    ready_until_signal(world.stack()).await?;
    say!("# stopping the local world");
    world.shutdown().await;
    Ok(())
}

/// `local up --bare`: only the stack, until Ctrl-C.
async fn stack_up(options: StackOptions) -> anyhow::Result<()> {
    let stack = LocalStack::start(options, say_line).await?;
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

/// Runs `work` until it ends or Ctrl-C / SIGTERM comes; on a signal `work` is dropped (its
/// worlds stop every process they started) and the run ends with an error saying so.
pub(crate) async fn until_signal<T>(
    work: impl std::future::Future<Output = T>,
) -> anyhow::Result<T> {
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
