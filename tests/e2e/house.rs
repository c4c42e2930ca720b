//! The house rules of CONTRIBUTING.md, kept true: the architecture page's crate table is the
//! workspace, test files share code only through `support/`, the CLI's main stays small, and
//! every task has a unit test and short functions (the ones not there yet are listed here; the
//! lists may only shrink), every Lambda main is declared without a test harness.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    files
}

/// (package name, folder) of every workspace member, from the manifests.
fn workspace() -> BTreeSet<(String, String)> {
    let manifest: toml::Table = toml::from_str(&read(&root().join("Cargo.toml"))).unwrap();
    manifest["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let folder = m.as_str().unwrap().to_string();
            let own: toml::Table =
                toml::from_str(&read(&root().join(&folder).join("Cargo.toml"))).unwrap();
            (own["package"]["name"].as_str().unwrap().to_string(), folder)
        })
        .collect()
}

#[test]
fn the_architecture_page_lists_exactly_the_workspace_crates() {
    let page = read(&root().join("docs/architecture.md"));
    let table = page
        .split("<!-- crates")
        .nth(1)
        .and_then(|rest| rest.split("<!-- /crates -->").next())
        .expect("docs/architecture.md has the <!-- crates --> table");
    let listed: BTreeSet<(String, String)> = table
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let folder = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((name.to_string(), folder.to_string()))
        })
        .collect();
    assert_eq!(
        listed,
        workspace(),
        "docs/architecture.md's crate table and the workspace differ: update the table"
    );
}

#[test]
fn test_files_share_code_only_through_support() {
    let dir = root().join("tests/e2e");
    let modules: Vec<String> = rust_files(&dir)
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|m| m != "main")
        .collect();
    let mut imports = Vec::new();
    for file in rust_files(&dir) {
        let text = read(&file);
        for module in &modules {
            if text.contains(&format!("crate::{module}::"))
                || text.contains(&format!("crate::{module}::{{"))
            {
                imports.push(format!("{} uses crate::{module}", file.display()));
            }
        }
    }
    assert!(
        imports.is_empty(),
        "move what they share into tests/e2e/support/: {imports:#?}"
    );
}

#[test]
fn the_cli_main_only_parses_and_dispatches() {
    let lines = read(&root().join("src/main.rs")).lines().count();
    assert!(
        lines < 100,
        "src/main.rs has {lines} lines: a command belongs in src/commands/<command>.rs"
    );
}

/// Tasks without a unit test yet: the list may only shrink.
const TASKS_WITHOUT_UNIT_TEST: &[&str] = &[];

/// Task functions longer than 80 lines: the list may only shrink.
const LONG_TASK_FUNCTIONS: &[&str] = &[];

/// (task, its source up to its unit tests) of every task.
fn tasks() -> Vec<(String, String, bool)> {
    rust_files(&root().join("functions/lambdas/src/tasks"))
        .iter()
        .filter(|p| !p.ends_with("mod.rs"))
        .map(|p| {
            let text = read(p);
            let tested = text.contains("#[cfg(test)]");
            let code = text.split("#[cfg(test)]").next().unwrap().to_string();
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                code,
                tested,
            )
        })
        .collect()
}

/// Every `fn` of `code` with its length in lines (from its signature to the brace that closes
/// it at the same indentation).
fn function_lengths(code: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let signature = [
            "pub async fn ",
            "pub fn ",
            "async fn ",
            "fn ",
            "pub(crate) fn ",
            "pub(crate) async fn ",
        ]
        .iter()
        .find_map(|p| trimmed.strip_prefix(p));
        if let Some(rest) = signature {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let close = format!("{indent}}}");
            let end = (i + 1..lines.len())
                .find(|&j| lines[j] == close)
                .unwrap_or(i);
            out.push((name, end - i + 1));
            i = end;
        }
        i += 1;
    }
    out
}

#[test]
fn every_task_has_a_unit_test_and_short_functions() {
    let mut untested = Vec::new();
    let mut long = Vec::new();
    for (task, code, tested) in tasks() {
        if !tested {
            untested.push(task.clone());
        }
        for (name, lines) in function_lengths(&code) {
            if lines > 80 {
                long.push(format!("{task}::{name}"));
            }
        }
    }
    let listed = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        untested,
        listed(TASKS_WITHOUT_UNIT_TEST),
        "a new task needs a unit test (over the memory fakes, with RunContext::fixture); a task \
         that got one leaves TASKS_WITHOUT_UNIT_TEST"
    );
    assert_eq!(
        long,
        listed(LONG_TASK_FUNCTIONS),
        "a task function over 80 lines: split it (the decision into core, the steps into \
         functions); one that got shorter leaves LONG_TASK_FUNCTIONS"
    );
}

/// A Lambda's main is an eight-line call into the library, which has the tests: a test harness
/// per main would be one more link in every `cargo test` and CI's build, for nothing.
#[test]
fn every_lambda_main_is_declared_without_a_test_harness() {
    let crate_dir = root().join("functions/lambdas");
    let manifest: toml::Table = toml::from_str(&read(&crate_dir.join("Cargo.toml"))).unwrap();
    let declared: BTreeSet<String> = manifest["bin"]
        .as_array()
        .expect("functions/lambdas/Cargo.toml declares its [[bin]]s")
        .iter()
        .filter(|bin| bin.get("test").and_then(toml::Value::as_bool) == Some(false))
        .map(|bin| bin["name"].as_str().unwrap().to_string())
        .collect();
    let mains: BTreeSet<String> = rust_files(&crate_dir.join("src/bin"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let undeclared: Vec<_> = mains.difference(&declared).collect();
    assert!(
        undeclared.is_empty(),
        "add a [[bin]] with `test = false` to functions/lambdas/Cargo.toml for {undeclared:?}"
    );
}
