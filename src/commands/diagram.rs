//! `hapilot diagram`: a state machine drawn as Mermaid, or the docs' diagrams redrawn.

use std::path::PathBuf;

use anyhow::{Context as _, bail};

#[derive(clap::Args)]
pub(crate) struct Args {
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
}

pub(crate) fn exec(args: Args) -> anyhow::Result<()> {
    if let Some(path) = args.definition {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let definition: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        print!("{}", hapilot::diagram::mermaid(&definition)?);
        return Ok(());
    }
    let Some(readme) = args.readme else {
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
    } else if args.check {
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
