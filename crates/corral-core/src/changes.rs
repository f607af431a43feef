//! Which files a session changed, and which of them are exec triggers: files the user's own tools
//! run later, outside the sandbox (git hooks and config, `.envrc`, shell rc files, editor tasks, CI
//! workflows, `package.json` scripts, Makefiles, build scripts, agent settings and hooks). They are
//! listed first in the exit report and the audit log. Pure: paths in, classification out.

use std::path::{Path, PathBuf};

/// Exec-trigger patterns, matched against the workspace-relative path: an exact path, a
/// directory prefix (ending in `/`), or a file name anywhere (starting with `*/`).
const TRIGGERS: &[&str] = &[
    ".git/hooks/",
    ".git/config",
    ".git/config.worktree",
    ".git/commondir",
    ".git/modules/",
    ".git/info/attributes",
    ".gitmodules",
    ".gitattributes",
    ".envrc",
    ".vscode/",
    ".idea/",
    ".devcontainer/",
    ".github/workflows/",
    ".gitlab-ci.yml",
    ".circleci/",
    ".husky/",
    ".pre-commit-config.yaml",
    "lefthook.yml",
    ".lefthook.yml",
    ".claude/",
    ".mcp.json",
    ".cursor/",
    ".gemini/",
    "opencode.json",
    ".corral.toml",
    ".corral.env",
    "*/package.json",
    "*/Makefile",
    "*/makefile",
    "*/GNUmakefile",
    "*/Justfile",
    "*/justfile",
    "*/Taskfile.yml",
    "*/build.rs",
    "*/setup.py",
    "*/pyproject.toml",
    "*/conftest.py",
    "*/.bashrc",
    "*/.bash_profile",
    "*/.profile",
    "*/.zshrc",
    "*/.zprofile",
];

/// True when `rel` (relative to the workspace) is a file the user's tools may execute or obey.
pub fn is_exec_trigger(rel: &Path) -> bool {
    let s = rel.to_string_lossy();
    let name = rel.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    TRIGGERS.iter().any(|t| {
        if let Some(file) = t.strip_prefix("*/") {
            name == file
        } else if let Some(dir) = t.strip_suffix('/') {
            s == dir || s.starts_with(*t)
        } else {
            s == *t
        }
    })
}

/// Splits changed paths into (exec triggers, the rest), each sorted.
pub fn classify(changed: &[PathBuf]) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut t, mut o): (Vec<PathBuf>, Vec<PathBuf>) =
        changed.iter().cloned().partition(|p| is_exec_trigger(p));
    t.sort();
    o.sort();
    (t, o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn triggers_are_recognised_and_ordinary_files_are_not() {
        for t in [
            ".git/hooks/pre-commit",
            ".git/config",
            ".envrc",
            ".vscode/tasks.json",
            ".github/workflows/ci.yml",
            "package.json",
            "web/package.json",
            "Makefile",
            "crates/x/build.rs",
            ".claude/settings.json",
            "tools/.bashrc",
        ] {
            assert!(is_exec_trigger(Path::new(t)), "{t}");
        }
        for o in [
            "src/main.rs",
            "README.md",
            "package-lock.json",
            ".github/ISSUE_TEMPLATE.md",
            ".gitignore",
            "docs/Makefile.md",
        ] {
            assert!(!is_exec_trigger(Path::new(o)), "{o}");
        }
    }

    #[test]
    fn classify_puts_triggers_first() {
        let changed: Vec<PathBuf> = ["src/a.rs", "package.json", ".envrc", "b.txt"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(
            classify(&changed),
            (
                vec![PathBuf::from(".envrc"), PathBuf::from("package.json")],
                vec![PathBuf::from("b.txt"), PathBuf::from("src/a.rs")]
            )
        );
    }
}
