//! Records the git commit infra is built from (`infra version`), or "unknown" outside a git
//! checkout (a crate tarball), so the build never depends on git being there.

use std::process::Command;

fn git(arguments: &[&str]) -> Option<String> {
    let output = Command::new("git").args(arguments).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.trim().to_string()).filter(|text| !text.is_empty())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=INFRA_COMMIT={commit}");
    // Rebuilt when HEAD moves: HEAD itself (a branch switch) and the branch's ref (a commit).
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    // A missing file would make cargo rerun this on every build, so only existing ones count
    // (a packed ref lives in packed-refs).
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        for path in [reference.as_str(), "packed-refs"] {
            if let Some(path) = git(&["rev-parse", "--git-path", path])
                && std::path::Path::new(&path).exists()
            {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
