//! How a command prints: `--json` puts its result on stdout as one JSON document and its
//! progress on stderr; `-v` adds every state a run enters and leaves to the phases.

use hapilot::runs;

/// A command's printing choices.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    /// `--json`.
    pub json: bool,
    /// `-v`.
    pub verbose: bool,
}

impl Output {
    /// A progress line: stdout for people, stderr under `--json`.
    pub(crate) fn line(&self, line: &str) {
        if self.json {
            eprintln!("{line}");
        } else {
            super::say_line(line);
        }
    }

    /// A phase of the drill (always) or a state of one of its runs (only with `-v`).
    pub(crate) fn progress(&self, line: &str) {
        if self.verbose || !runs::is_state_line(line) {
            self.line(line);
        }
    }

    /// A state of a followed run: `start` and `watch` follow one run, its states are the phases.
    pub(crate) fn state(&self, line: &str) {
        self.line(line);
    }

    /// The line that names a run just started.
    pub(crate) fn started(&self, execution: &str) {
        self.line(&format!("started {execution}"));
    }

    /// The result as pretty JSON under `--json`, else as the text `render` gives.
    pub(crate) fn result<T: serde::Serialize>(
        &self,
        value: &T,
        render: impl FnOnce(&T) -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            say!("{}", serde_json::to_string_pretty(value)?);
        } else {
            say!("{}", render(value));
        }
        Ok(())
    }
}
