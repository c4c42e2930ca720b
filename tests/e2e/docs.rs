//! The docs a newcomer reads: README.md is a front page (at most ~250 lines), every relative
//! link in it and in docs/ resolves inside the repository (files and headings), and the
//! troubleshooting page names every error a run can end with.

use std::path::{Path, PathBuf};

use hapilot::local::project_root;

fn documents() -> Vec<PathBuf> {
    let root = project_root();
    let mut docs = vec![root.join("README.md"), root.join("infra/README.md")];
    let mut in_docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    in_docs.sort();
    docs.extend(in_docs);
    docs
}

/// GitHub's anchor of a heading: lower case, spaces to dashes, punctuation but `-` and `_` gone.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.push(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

/// The `](target)` links of a Markdown text, outside code blocks.
fn links(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        for part in line.split("](").skip(1) {
            if let Some(end) = part.find(')') {
                out.push(part[..end].to_string());
            }
        }
    }
    out
}

fn check_link(doc: &Path, target: &str) -> Result<(), String> {
    if target.starts_with("http://")
        || target.starts_with("https://")
        || target.starts_with("mailto:")
    {
        return Err("points outside the repository".into());
    }
    let (file, fragment) = target.split_once('#').unwrap_or((target, ""));
    let path = if file.is_empty() {
        doc.to_path_buf()
    } else {
        doc.parent().unwrap().join(file)
    };
    let path = path
        .canonicalize()
        .map_err(|_| format!("{} does not exist", path.display()))?;
    if !path.starts_with(project_root().canonicalize().unwrap()) {
        return Err("leaves the repository".into());
    }
    if !fragment.is_empty() {
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        if !anchors(&text).iter().any(|a| a == fragment) {
            return Err(format!("{} has no heading #{fragment}", path.display()));
        }
    }
    Ok(())
}

#[test]
fn every_relative_link_in_the_docs_resolves_inside_the_repository() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for target in links(&text) {
            checked += 1;
            if let Err(why) = check_link(&doc, &target) {
                broken.push(format!("{}: ({target}) {why}", doc.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(
        checked >= 15,
        "only {checked} links found: is the parser right?"
    );
}

#[test]
fn the_readme_is_a_front_page_with_its_contents_and_the_two_commands() {
    let readme = std::fs::read_to_string(project_root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines; the rest belongs in docs/"
    );
    assert!(readme.contains("## Contents"));
    assert!(readme.contains("./scripts/drill") && readme.contains("./scripts/test"));
    // Every document in docs/ is reachable from the front page.
    for doc in documents()
        .into_iter()
        .filter(|d| d.parent().unwrap().ends_with("docs"))
    {
        let name = format!("docs/{}", doc.file_name().unwrap().to_string_lossy());
        assert!(
            readme.contains(&format!("]({name})")),
            "README.md does not link {name}"
        );
    }
}

#[test]
fn the_link_checker_finds_what_is_broken() {
    let readme = project_root().join("README.md");
    assert!(check_link(&readme, "docs/operations.md#canary-failback").is_ok());
    assert!(check_link(&readme, "docs/nothing.md").is_err());
    assert!(check_link(&readme, "docs/operations.md#no-such-heading").is_err());
    assert!(check_link(&readme, "../shared/DESIGN.md").is_err());
    assert!(check_link(&readme, "https://example.com").is_err());
    assert_eq!(
        anchor("The CLI's logins and regions"),
        "the-clis-logins-and-regions"
    );
}

#[test]
fn troubleshooting_names_every_error_a_run_can_end_with() {
    let page = std::fs::read_to_string(project_root().join("docs/troubleshooting.md")).unwrap();
    for name in hapilot_core::ErrorName::ALL {
        assert!(
            page.contains(&format!("`{}`", name.as_str())),
            "docs/troubleshooting.md does not say what to do about {}",
            name.as_str()
        );
    }
}
