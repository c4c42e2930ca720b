//! One file per command: its clap arguments and an `exec` that checks what it was given, calls
//! the library and prints. What several commands share lives beside them: [`output`] (how a
//! command prints) and [`follow`] (starting a run and following it to its end).

use clap::Subcommand;
use hapilot::config::CliConfig;

/// Prints one line; a closed stdout (a pipe whose reader went away) must not kill the stack
/// before it has stopped its children.
pub(crate) fn say_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// `say!("...", ...)`: one formatted line on stdout (see [`say_line`]).
macro_rules! say {
    ($($arg:tt)*) => { $crate::commands::say_line(&format!($($arg)*)) };
}

mod approve;
mod audit;
mod completions;
mod deny;
mod diagram;
mod failback;
mod follow;
mod local;
pub(crate) mod output;
mod readiness;
mod rehearsal;
mod report;
mod reprotect;
mod restore;
mod restore_test;
mod start;
mod status;
mod watch;
mod whoami;

pub(crate) use output::Output;

/// What every command is given besides its own arguments.
pub(crate) struct Context {
    /// The settings file, flags and environment, merged.
    pub config: CliConfig,
    /// How it prints (`--json`, `-v`).
    pub out: Output,
}

/// The commands, in the order `hapilot --help` lists them.
#[derive(Subcommand)]
pub(crate) enum Command {
    /// The local stack (moto + hapilot's Lambda host), no AWS account needed.
    Local {
        #[command(subcommand)]
        command: local::LocalCommand,
    },
    /// The main job (`./scripts/drill`): the local rehearsal of a failover on a fresh local
    /// stack, with a report ("drill" stays an alias; the DR drill is the `dr-drill` state
    /// machine).
    #[command(alias = "drill")]
    Rehearsal(rehearsal::Args),
    /// Start a run of a state machine (name or ARN) and follow it to its end.
    Start(start::Args),
    /// Start a canary failback (traffic back to the recovered primary in gated steps) and follow it.
    Failback(failback::Args),
    /// After a failover, make the old primary's database a streaming replica of the new primary
    /// again (pg_rewind, else a fresh base backup; Patroni: reinitialize). Refuses split brain.
    Reprotect(reprotect::Args),
    /// Restore Vault and PostgreSQL from backups into a (DR) region: `latest` or a point in time.
    /// Runs the dr-restore state machine and prints its report.
    Restore(restore::Args),
    /// Prove the backups by restoring them (the restore-test state machine): PostgreSQL onto
    /// the region's scratch target (`restore_test`), to a random moment inside the restore
    /// window, checked by content, torn down; the report gives the restore time and RPO.
    RestoreTest(restore_test::Args),
    /// Approve what a waiting run (e.g. a failover over its RPO) asks for.
    Approve(approve::Args),
    /// Deny what a waiting run asks for; it stops with nothing more changed.
    Deny(deny::Args),
    /// Audit the backups (every policy of the HA document's table, by listing and by content) and
    /// print the report; exits 2 on critical findings. Talks to AWS_ENDPOINT_URL when set (the
    /// local stack), else to AWS with your profile.
    Audit(audit::Args),
    /// Where the deployment stands: which region serves (DNS data plane and records), each
    /// vantage point's view, replication lag, the last runs, pending approvals, the kill switch
    /// and the cool-down. Against AWS, or the local world (after `hapilot local up`).
    Status,
    /// A run's report as Markdown, from the audit bucket; a run with no report yet is shown
    /// as its journal, one line per step.
    Report(report::Args),
    /// Evaluate readiness now (the readiness state machine: the HA checklist and section 6.1
    /// alerts in every region) and print its report; exits 2 when a check fails.
    Readiness(readiness::Args),
    /// Draw a state machine as a Mermaid flowchart (from its `.asl.json`), or redraw the
    /// diagrams of docs/state-machines.md.
    Diagram(diagram::Args),
    /// Who the CLI acts as, where: the profile and its kind, the account and identity AWS
    /// sees (STS GetCallerIdentity), the region. The first thing to check on call.
    Whoami,
    /// Print a completion script for a shell, e.g. `hapilot completions bash >
    /// ~/.local/share/bash-completion/completions/hapilot`.
    Completions(completions::Args),
    /// Follow a run (execution ARN) to its end, one line per state.
    Watch(watch::Args),
}

/// Where a command's settings come from.
pub(crate) enum Settings {
    /// The settings file the user named or `./hapilot.toml`, refused when bad.
    File,
    /// The local world's tuning: the user's file when there is one, never required.
    UserFile,
    /// None: the command builds its own world.
    Own,
}

impl Command {
    /// The local stack and the drill make their own world; every other command reads the file
    /// first, so a bad one stops it before anything is asked of AWS.
    pub(crate) fn settings(&self) -> Settings {
        match self {
            Command::Local { command } if command.is_world() => Settings::UserFile,
            Command::Local { .. } | Command::Rehearsal(_) => Settings::Own,
            _ => Settings::File,
        }
    }

    /// Runs the command.
    pub(crate) async fn exec(self, cx: Context) -> anyhow::Result<()> {
        match self {
            Command::Local { command } => local::exec(command, &cx).await,
            Command::Rehearsal(args) => rehearsal::exec(args, &cx).await,
            Command::Start(args) => start::exec(args, &cx).await,
            Command::Failback(args) => failback::exec(args, &cx).await,
            Command::Reprotect(args) => reprotect::exec(args, &cx).await,
            Command::Restore(args) => restore::exec(args, &cx).await,
            Command::RestoreTest(args) => restore_test::exec(args, &cx).await,
            Command::Approve(args) => approve::exec(args, &cx).await,
            Command::Deny(args) => deny::exec(args, &cx).await,
            Command::Audit(args) => audit::exec(args, &cx).await,
            Command::Status => status::exec(&cx).await,
            Command::Report(args) => report::exec(args, &cx).await,
            Command::Readiness(args) => readiness::exec(args, &cx).await,
            Command::Diagram(args) => diagram::exec(args),
            Command::Whoami => whoami::exec(&cx).await,
            Command::Completions(args) => completions::exec(args),
            Command::Watch(args) => watch::exec(args, &cx).await,
        }
    }
}
