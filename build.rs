//! Build facts for `umdbt --version`: the commit (when built from a git checkout), the
//! target, and the engines this target has.

use std::path::Path;
use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    let engines = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "interpreter, translator to x86-64",
        Ok("aarch64") => "interpreter, translator to AArch64",
        _ => "interpreter",
    };
    println!("cargo:rustc-env=UMDBT_COMMIT={commit}");
    println!("cargo:rustc-env=UMDBT_TARGET={target}");
    println!("cargo:rustc-env=UMDBT_ENGINES={engines}");
    println!("cargo:rerun-if-changed=build.rs");
    // Build again when the checked-out commit changes (only paths that exist: a missing
    // one would make every build run this script again).
    let git = Path::new(".git");
    for p in ["HEAD", "refs/heads", "packed-refs"] {
        if git.join(p).exists() {
            println!("cargo:rerun-if-changed=.git/{p}");
        }
    }
}
