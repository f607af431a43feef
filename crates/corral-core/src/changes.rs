//! Which files a session changed, and which of them are exec triggers: files the user's own tools
//! run later, outside the sandbox (git hooks and config, `.envrc`, shell rc files, editor tasks, CI
//! workflows, `package.json` scripts, Makefiles, build scripts, agent settings and hooks). They are
//! listed first in the exit report and the audit log. Pure: paths in, classification out.

use std::path::{Path, PathBuf};

/// Exec-trigger patterns, matched against the workspace-relative path: an exact path, a
/// directory prefix (ending in `/`), or a file name anywhere (starting with `*/`).
const TRIGGERS: &[&str] = &[
    // The `.git` entry itself (a `.git` file redirects git elsewhere; a replaced directory).
    ".git",
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
    // Anywhere, not only at the root: a nested `.envrc` is loaded by direnv in that directory.
    "*/.envrc",
    // Toolchain and package-manager configs that name programs to run.
    ".cargo/config",
    ".cargo/config.toml",
    "*/rust-toolchain",
    "*/rust-toolchain.toml",
    "*/.yarnrc.yml",
    "*/.npmrc",
    "*/.tool-versions",
    "*/.mise.toml",
];

/// True when `rel` is inside a git repository's own directory at any depth, or is a `.git` entry
/// (a nested repository's config, hooks or `gitdir:` file runs programs the next time git or an
/// editor looks there).
fn in_git_dir(rel: &Path) -> bool {
    rel.components().any(|c| c.as_os_str() == ".git")
}

/// True when `rel` (relative to the workspace) is a file the user's tools may execute or obey.
pub fn is_exec_trigger(rel: &Path) -> bool {
    // The workspace's own `.git` is protected inside (read-only config and hooks); what the
    // agent commits there (objects, refs, index) is ordinary data. Any other `.git` — a nested
    // repository the agent made — is a trigger as a whole.
    let nested_git = in_git_dir(rel) && !rel.starts_with(".git");
    let s = rel.to_string_lossy();
    if nested_git {
        return true;
    }
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

#[cfg(test)]
mod nested_tests {
    use super::*;

    #[test]
    fn nested_repositories_and_tool_configs_are_triggers() {
        for p in [
            "sub/.git/config",
            "vendor/x/.git/hooks/pre-commit",
            "vendor/x/.git/HEAD",
            "sub/.git",
            ".git",
            "sub/.envrc",
            ".cargo/config.toml",
            "rust-toolchain.toml",
            "web/.yarnrc.yml",
            ".npmrc",
        ] {
            assert!(is_exec_trigger(Path::new(p)), "{p}");
        }
        for p in [
            ".git/objects/ab/cdef",
            ".git/refs/heads/main",
            ".git/index",
            "src/git.rs",
            "docs/.gitkeep",
        ] {
            assert!(!is_exec_trigger(Path::new(p)), "{p}");
        }
    }
}
