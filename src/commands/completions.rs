//! `hapilot completions`: a shell's completion script.

#[derive(clap::Args)]
pub(crate) struct Args {
    /// bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

pub(crate) fn exec(args: Args) -> anyhow::Result<()> {
    use clap::CommandFactory;
    let mut command = crate::Cli::command();
    clap_complete::generate(args.shell, &mut command, "hapilot", &mut std::io::stdout());
    Ok(())
}
