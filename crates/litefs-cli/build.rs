//! Records the git commit the binary is built from, for `litefs version`:
//! `LITEFS_GIT_COMMIT` from the environment when set (a Docker build
//! without `.git` can pass it), else `git rev-parse --short HEAD`, else
//! "unknown". Never fails the build: a source tarball or a missing `git`
//! simply gives "unknown".

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=LITEFS_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=GIT_DIR");
    println!("cargo:rerun-if-changed=build.rs");
    let commit = match std::env::var("LITEFS_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into()),
    };
    // Rebuild when HEAD moves: HEAD itself (a checkout), the branch it
    // points at (a commit) and packed-refs (a gc). In a worktree these live
    // in different directories, which `--git-path` resolves.
    for p in ["HEAD", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", p]) {
            rerun_if_exists(PathBuf::from(path));
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(&["rev-parse", "--git-path", &branch]) {
            rerun_if_exists(PathBuf::from(path));
        }
    }
    println!("cargo:rustc-env=LITEFS_GIT_COMMIT={commit}");
}

fn rerun_if_exists(path: PathBuf) {
    // Relative paths from git are relative to the crate directory, where
    // cargo runs build scripts and resolves rerun-if-changed alike.
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
