//! Build facts for `umdbt --version`: the commit (when built from a git checkout), the
//! target, and the engines this target has (whether it translates is also the
//! `umdbt_translator` cfg, which `arch::TRANSLATOR_AVAILABLE` reads). On GNU/Linux, also
//! the static unwinder (see [`link_unwinder_statically`]).

use std::path::Path;
use std::process::Command;

fn main() {
    let commit = stdout_of(Command::new("git").args(["rev-parse", "--short=12", "HEAD"]))
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    // Which builds translate, decided here once: `--version` names the engines, and the
    // `umdbt_translator` cfg is `arch::TRANSLATOR_AVAILABLE`. The AArch64 backend keeps the
    // heap's slot base in x18 (see `arch/aarch64/regs.rs`), which only Linux leaves to
    // programs (Darwin and Windows reserve it, Android keeps its shadow call stack there).
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let translator = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => Some("x86-64"),
        Ok("aarch64") if linux => Some("AArch64"),
        _ => None,
    };
    let engines = match translator {
        Some(isa) => format!("interpreter, translator to {isa}"),
        None => "interpreter".to_string(),
    };
    println!("cargo:rustc-check-cfg=cfg(umdbt_translator)");
    if translator.is_some() {
        println!("cargo:rustc-cfg=umdbt_translator");
    }
    println!("cargo:rustc-env=UMDBT_COMMIT={commit}");
    println!("cargo:rustc-env=UMDBT_TARGET={target}");
    println!("cargo:rustc-env=UMDBT_ENGINES={engines}");
    println!("cargo:rerun-if-changed=build.rs");
    link_unwinder_statically();
    // Build again when the checked-out commit changes (only paths that exist: a missing
    // one would make every build run this script again).
    let git = Path::new(".git");
    for p in ["HEAD", "refs/heads", "packed-refs"] {
        if git.join(p).exists() {
            println!("cargo:rerun-if-changed=.git/{p}");
        }
    }
}

/// What `cmd` printed, trimmed, when it ran and succeeded.
fn stdout_of(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Rust's standard library links GCC's unwinder on GNU/Linux as the shared library
/// libgcc_s. Loading it, and the CPU probe its constructor runs (`cpuid`, which traps to
/// the hypervisor on a virtual machine), took 0.09 ms of umdbt's 1.13 ms start-up on the
/// machine where this was measured (AMD EPYC under KVM). The same unwinder comes as the
/// static archive libgcc_eh with the C compiler that links Rust programs: here a
/// `libgcc_s.a` that names it, found by the linker before the shared library, links it
/// into umdbt instead. Where the linker has no libgcc_eh (another C library, another
/// compiler), nothing changes.
fn link_unwinder_statically() {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" {
        return;
    }
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    // The linker cargo uses for this target: the configured one, or the default `cc`.
    let linker = std::env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".to_string());
    let archive =
        stdout_of(Command::new(&linker).arg("-print-file-name=libgcc_eh.a")).unwrap_or_default();
    // The compiler prints the bare name when it has no such file.
    let usable = Path::new(&archive).is_absolute()
        && Path::new(&archive).is_file()
        && !archive.contains(|c: char| c.is_whitespace() || c == '"');
    if !usable {
        println!("cargo:warning=no libgcc_eh.a from {linker}: libgcc_s stays a shared library");
        return;
    }
    let dir = Path::new(&var("OUT_DIR")).join("static-unwinder");
    std::fs::create_dir_all(&dir).expect("OUT_DIR is writable");
    // A linker script: `-lgcc_s` finds this file first and reads the archive it names.
    std::fs::write(dir.join("libgcc_s.a"), format!("INPUT({archive})\n"))
        .expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search=native={}", dir.display());
}
