//! The `umdbt` command line.

use crate::assembler;
use crate::console::Console;
use crate::decoder::{Instr, Op};
use crate::engine::{self, Engine, RunOptions};
use crate::fault::{Reason, Stop};
use crate::jit::{self, JitOptions};
use crate::loader;
use crate::machine::Machine;
use crate::observe::Observers;
use crate::profile::{ProfileFormat, Profiler};
use crate::signals;
use crate::stats::{Counter, Stats};
use crate::trace::{TraceSet, Tracer};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Instant;

/// Exit status of a run that halted, and of `--help`, `--version` and the other commands.
pub const EXIT_OK: u8 = 0;
/// Exit status of a run that faulted.
pub const EXIT_FAULT: u8 = 1;
/// Exit status for a program that cannot be loaded, or a usage error.
pub const EXIT_USAGE: u8 = 2;
/// Exit status of a run stopped by `--max-steps`.
pub const EXIT_STEP_LIMIT: u8 = 3;
/// A run stopped by a signal exits with this plus the signal's number.
pub const EXIT_SIGNAL_BASE: u8 = 128;

/// `umdbt --version`: the version, the commit it was built from, the target and the engines
/// built in.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("UMDBT_COMMIT"),
    ", ",
    env!("UMDBT_TARGET"),
    "; engines: ",
    env!("UMDBT_ENGINES"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "umdbt",
    version = LONG_VERSION,
    about = "A dynamic binary translator for the Universal Machine (UM-32) of ICFP 2006",
    after_help = "Exit status: 0 when the program halts, 1 when it faults (the fault is \
                  reported on stderr as 'umdbt: fault at pc N (OP): REASON'), 2 when the \
                  program cannot be loaded or the command line is wrong, 3 when --max-steps \
                  stopped it, 128 + the signal's number when SIGINT, SIGTERM or SIGHUP did \
                  ('umdbt: interrupted at pc N').\n\
                  Logging: set RUST_LOG (for example RUST_LOG=umdbt=debug)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a UM program; its console is this process's standard input and output.
    Run(RunArgs),
    /// Disassemble a UM program, one instruction per line: pc, raw word, mnemonic, operands.
    Dis(DisArgs),
    /// Assemble a text file (syntax: see src/assembler.rs) into a UM program file.
    Asm(AsmArgs),
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `umdbt man > umdbt.1; man ./umdbt.1`; with DIR,
    /// write umdbt.1 and a page per command (umdbt-run.1, ...) there.
    Man {
        /// Where to write the pages.
        dir: Option<PathBuf>,
    },
}

/// What `--stats` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatsLevel {
    /// The statistics table.
    Table,
    /// Also each operator's count under the translator (generated code counts them, which
    /// slows it down).
    Ops,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The program file (big-endian 32-bit words); `-` reads it from standard input (the
    /// program then reads end of input).
    pub program: PathBuf,
    /// Use the reference interpreter instead of translating to machine code.
    #[arg(long)]
    pub interp: bool,
    /// Translator: never chain blocks; every jump between blocks goes through the dispatch
    /// table (a debugging aid).
    #[arg(long, conflicts_with = "interp")]
    pub no_chain: bool,
    /// Translator: at most N UM operations per block, 1 to 2048 (1 = one operation per
    /// block).
    #[arg(long, value_name = "N", conflicts_with = "interp",
          default_value_t = jit::DEFAULT_MAX_BLOCK,
          value_parser = clap::value_parser!(u32).range(1..=jit::MAX_MAX_BLOCK as i64))]
    pub max_block: u32,
    /// Translator: jumps to a pc before it is compiled again by the optimizing tier, as a
    /// region (0: every block is compiled as a region at once).
    #[arg(long, value_name = "N", conflicts_with_all = ["interp", "no_opt"],
          default_value_t = jit::DEFAULT_OPT_THRESHOLD,
          value_parser = clap::value_parser!(u32).range(0..=jit::MAX_OPT_THRESHOLD as i64))]
    pub opt_threshold: u32,
    /// Translator: no optimizing tier (baseline blocks only).
    #[arg(long, conflicts_with = "interp")]
    pub no_opt: bool,
    /// Translator: interpret code the first N times it is reached, and translate it only
    /// then, 0 to 255 (0: translate everything at first sight). Code that runs once costs
    /// far less to interpret than to translate. A constant jump from translated code is
    /// chained to its target once the target is translated.
    #[arg(long, value_name = "N", conflicts_with = "interp",
          default_value_t = jit::DEFAULT_TRANSLATE_AFTER)]
    pub translate_after: u8,
    /// Print statistics to stderr when the run ends (also after a fault, a step limit or an
    /// interruption); `--stats=ops` also counts each operator under the translator.
    #[arg(long, value_name = "WHAT", num_args = 0..=1, require_equals = true,
          default_missing_value = "table")]
    pub stats: Option<StatsLevel>,
    /// Stop after N UM instructions (`umdbt: step limit N reached at pc P`, exit status 3).
    #[arg(long, value_name = "N")]
    pub max_steps: Option<u64>,
    /// Translator: tell `perf` where generated code is. `perfmap` writes /tmp/perf-PID.map
    /// (read by `perf report`); `jitdump` writes /tmp/jit-PID.dump (record with
    /// `perf record -k mono`, then `perf inject --jit` for `perf report` and `perf
    /// annotate`).
    #[arg(long, value_name = "FORMAT", conflicts_with = "interp")]
    pub profile: Option<ProfileFormat>,
    /// Translator: trace, like QEMU's -d, a comma-separated list of: in_asm (the UM code of
    /// each block translated), out_asm (its host code, disassembled), exec (each block
    /// entry; turns chaining off, slow).
    #[arg(short = 'd', value_name = "ITEMS", conflicts_with = "interp")]
    pub trace: Option<TraceSet>,
    /// Write the traces of -d to FILE instead of standard error.
    #[arg(short = 'D', value_name = "FILE", requires = "trace")]
    pub trace_file: Option<PathBuf>,
    /// Most memory the program's arrays may use, e.g. 512M, 4G (default: 3/4 of RAM).
    /// Going past it is a clean fault at the allocating instruction.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_memory: Option<u64>,
}

#[derive(Args, Debug)]
pub struct DisArgs {
    /// The program file.
    pub program: PathBuf,
    /// First pc to disassemble.
    #[arg(long, default_value_t = 0)]
    pub from: u32,
    /// How many instructions to print (default: to the end of the program).
    #[arg(long)]
    pub count: Option<u32>,
}

#[derive(Args, Debug)]
pub struct AsmArgs {
    /// The assembly source.
    pub source: PathBuf,
    /// Where to write the program (default: SOURCE with the extension .um). Never the
    /// source itself.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Parse `123`, `64K`, `512M`, `4G` (powers of 1024; a trailing `B`/`iB` is allowed).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (digits, shift) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 30),
        Some('T' | 't') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a size (examples: 1048576, 512M, 4G)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// The machine's RAM in bytes, if it can be read: one `sysinfo` call (reading
/// `/proc/meminfo` costs a dozen system calls at every start).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn physical_memory() -> Option<u64> {
    // SAFETY: `sysinfo` only fills in the struct it is given, a plain C struct for which all
    // zeroes is a valid value.
    let info = unsafe {
        let mut info: libc::sysinfo = std::mem::zeroed();
        (libc::sysinfo(&mut info) == 0).then_some(info)
    }?;
    (info.totalram as u64).checked_mul(u64::from(info.mem_unit.max(1)))
}

/// The machine's RAM in bytes: unknown on this system.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn physical_memory() -> Option<u64> {
    None
}

/// Three quarters of the machine's RAM, or 8 GiB when it cannot be read.
pub fn default_memory_limit() -> u64 {
    physical_memory().map_or(8 << 30, |t| t / 4 * 3)
}

/// Entry point of the binary: the process's exit status.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return command_line_error(e),
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp(None)
        .init();
    match cli.command {
        Command::Run(args) => run(&args),
        Command::Dis(args) => dis(&args),
        Command::Asm(args) => asm(&args),
        Command::Completions { shell } => print_generated(|out| {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "umdbt", out);
            Ok(())
        }),
        Command::Man { dir: None } => print_generated(|out| {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(out)
        }),
        Command::Man { dir: Some(dir) } => man_pages(&dir),
    }
}

/// Write umdbt.1 and umdbt-COMMAND.1 for every command into `dir`.
fn man_pages(dir: &std::path::Path) -> u8 {
    use clap::CommandFactory;
    let top = Cli::command();
    let mut pages = vec![("umdbt.1".to_string(), top.clone())];
    for sub in top.get_subcommands() {
        let name = format!("umdbt-{}", sub.get_name());
        pages.push((
            format!("{name}.1"),
            sub.clone().name(name).version(LONG_VERSION),
        ));
    }
    for (file, cmd) in pages {
        let path = dir.join(&file);
        let mut out = Vec::new();
        let written = clap_mangen::Man::new(cmd)
            .render(&mut out)
            .and_then(|()| std::fs::write(&path, out));
        if let Err(e) = written {
            return usage_error(format!("cannot write {}: {e}", path.display()));
        }
    }
    EXIT_OK
}

/// Write what `generate` makes to standard output (see [`write_stdout`]).
fn print_generated(generate: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> u8 {
    let mut out = Vec::new();
    if let Err(e) = generate(&mut out) {
        return usage_error(e);
    }
    write_stdout(&out)
}

/// Write `bytes` to standard output: the exit status (a closed pipe is not an error).
fn write_stdout(bytes: &[u8]) -> u8 {
    use std::io::Write;
    match std::io::stdout().write_all(bytes) {
        Ok(()) => EXIT_OK,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(e) => usage_error(format!("cannot write output: {e}")),
    }
}

/// `--help` and `--version` print as clap prints them; a mistake on the command line is
/// one `umdbt:` line (clap's first line, and where to look), status 2.
fn command_line_error(e: clap::Error) -> u8 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            EXIT_OK
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => usage_error(
            "a command is needed: run, dis, asm, completions or man (umdbt --help says more)",
        ),
        _ => {
            // clap's first paragraph, on one line.
            let text = e.to_string();
            let first: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.is_empty())
                .collect();
            let first = first.join(" ");
            let first = first.strip_prefix("error: ").unwrap_or(&first);
            usage_error(format!("{first} (umdbt --help says more)"))
        }
    }
}

fn usage_error(message: impl std::fmt::Display) -> u8 {
    eprintln!("umdbt: {message}");
    EXIT_USAGE
}

fn run(args: &RunArgs) -> u8 {
    let start = Instant::now();
    if let Err(e) = Console::check_stdout() {
        return usage_error(e);
    }
    let program = match loader::load(&args.program) {
        Ok(p) => p,
        Err(e) => return usage_error(e),
    };
    log::info!(
        "loaded {} ({} words)",
        args.program.display(),
        program.len()
    );
    let limit = args.max_memory.unwrap_or_else(default_memory_limit);
    if let Some(asked) = args.max_memory
        && let Some(ram) = physical_memory()
        && asked > ram
    {
        eprintln!(
            "umdbt: warning: --max-memory {asked} is more than this machine's memory ({:.1} GiB)",
            ram as f64 / (1u64 << 30) as f64
        );
    }
    let words = program.len();
    let mut m = match Machine::from_words(program, Console::stdio(), limit) {
        Ok(m) => m,
        Err(reason) => {
            return usage_error(format!(
                "{} ({words} words) does not fit in the memory limit of {limit} bytes: {reason}",
                args.program.display(),
            ));
        }
    };
    if let Err(e) = signals::install() {
        log::warn!("cannot catch SIGINT, SIGTERM and SIGHUP: {e}");
    }
    let engine = if args.interp || !crate::arch::TRANSLATOR_AVAILABLE {
        if !args.interp {
            log::warn!("no translator for this host; using the interpreter");
        }
        Engine::Interpreter
    } else {
        Engine::Translator(JitOptions {
            chain: !args.no_chain,
            max_block: args.max_block,
            opt_threshold: (!args.no_opt).then_some(args.opt_threshold),
            translate_after: args.translate_after,
        })
    };
    let opts = RunOptions {
        count: args.stats.is_some(),
        count_ops: args.stats == Some(StatsLevel::Ops),
        max_steps: args.max_steps,
    };
    let mut observers = match observers(args) {
        Ok(o) => o,
        Err(e) => return usage_error(e),
    };
    let (result, mut stats) = engine::run_observed(&mut m, &engine, opts, &mut observers);
    drop(observers);
    if args.stats.is_some() {
        stats.add_time(Counter::WallTime, start.elapsed());
        // The table starts on a fresh line where it would follow the program's output.
        let fresh = !m.console.ends_line() && stdout_and_stderr_are_one_stream();
        eprint!(
            "{}{}",
            if fresh { "\n" } else { "" },
            stats_table(&engine, &stats, opts.count_ops)
        );
    }
    // The process ends next and the system takes the arrays back at once: freeing them
    // one by one (half a million buffers after a UMIX session) is left undone. The
    // console, which flushes when dropped, is not part of this.
    std::mem::forget(m.heap);
    match result {
        Ok(()) => EXIT_OK,
        // The reader of the output left (`umdbt run prog | head`): the program stops
        // quietly with the status of a process killed by SIGPIPE, as `cat` would.
        Err(Stop::Fault(f)) if f.reason == Reason::OutputClosed => {
            EXIT_SIGNAL_BASE + libc::SIGPIPE as u8
        }
        Err(stop) => {
            eprintln!("umdbt: {stop}");
            match stop {
                Stop::Fault(_) => EXIT_FAULT,
                Stop::StepLimit { .. } => EXIT_STEP_LIMIT,
                Stop::Interrupted { signal, .. } => EXIT_SIGNAL_BASE + signal as u8,
            }
        }
    }
}

/// The profiler and tracer `args` ask for.
fn observers(args: &RunArgs) -> Result<Observers, String> {
    let profiler = match args.profile {
        Some(format) => Some(
            Profiler::new(format)
                .map_err(|e| format!("cannot write the {format:?} profile: {e}"))?,
        ),
        None => None,
    };
    let tracer = match (args.trace, &args.trace_file) {
        (Some(set), Some(file)) => {
            let f = std::fs::File::create(file)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            Some(Tracer::new(set, Box::new(std::io::BufWriter::new(f))))
        }
        (Some(set), None) => Some(Tracer::new(
            set,
            Box::new(std::io::BufWriter::new(std::io::stderr())),
        )),
        (None, _) => None,
    };
    Ok(Observers { profiler, tracer })
}

/// Whether standard output and standard error reach the same place (one terminal, one
/// pipe or one file), so that output on one shows up next to the other.
fn stdout_and_stderr_are_one_stream() -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata("/proc/self/fd/1"),
        std::fs::metadata("/proc/self/fd/2"),
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => {
            use std::io::IsTerminal;
            std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
        }
    }
}

/// The `--stats` table: a title naming the engine, the per-operator counts (always for
/// the interpreter, with `ops` for the translator), then the rows of
/// [`crate::stats::TABLE`] that the engine keeps.
pub fn stats_table(engine: &Engine, stats: &Stats, ops: bool) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "umdbt statistics ({})", engine.describe());
    let translator = matches!(engine, Engine::Translator(_));
    if !translator || ops {
        op_rows(&mut s, stats);
    }
    s.push_str(&stats.table(translator));
    s
}

/// The per-operator rows.
fn op_rows(s: &mut String, stats: &Stats) {
    use std::fmt::Write;
    let total = stats[Counter::Instructions];
    let _ = writeln!(s, "  {:<12} {:>16} {:>8}", "operator", "executed", "share");
    for op in Op::ALL {
        let n = stats[Counter::op(op)];
        if n == 0 {
            continue;
        }
        let _ = writeln!(
            s,
            "  {:<12} {:>16} {:>7.2}%",
            format!("{:>2} {}", op as u8, op.name()),
            n,
            100.0 * n as f64 / total.max(1) as f64
        );
    }
    let _ = writeln!(s, "  {:<12} {:>16}", "total", total);
}

fn dis(args: &DisArgs) -> u8 {
    let program = match loader::load(&args.program) {
        Ok(p) => p,
        Err(e) => return usage_error(e),
    };
    let from = (args.from as usize).min(program.len());
    let count = args.count.map_or(usize::MAX, |c| c as usize);
    let mut out = String::new();
    for (i, &w) in program[from..].iter().take(count).enumerate() {
        use std::fmt::Write;
        let _ = writeln!(out, "{:>8}: {w:08x}  {}", from + i, Instr::disassemble(w));
    }
    write_stdout(out.as_bytes())
}

fn asm(args: &AsmArgs) -> u8 {
    /// Whether `a` and `b` name the same existing file: the same path once symbolic links and
    /// `..` are resolved, or (Unix) the same device and inode, as hard links are.
    fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
        if let (Ok(ca), Ok(cb)) = (a.canonicalize(), b.canonicalize())
            && ca == cb
        {
            return true;
        }
        #[cfg(unix)]
        if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            use std::os::unix::fs::MetadataExt;
            return ma.dev() == mb.dev() && ma.ino() == mb.ino();
        }
        false
    }

    let source = match std::fs::read_to_string(&args.source) {
        Ok(s) => s,
        Err(e) => return usage_error(format!("cannot read {}: {e}", args.source.display())),
    };
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| args.source.with_extension("um"));
    if same_file(&args.source, &out) {
        let hint = if args.output.is_some() {
            "name another output with -o"
        } else {
            "name the output with -o"
        };
        return usage_error(format!(
            "refusing to overwrite the source {}; {hint}",
            args.source.display()
        ));
    }
    let words = match assembler::assemble(&source) {
        Ok(w) => w,
        Err(e) => return usage_error(format!("{}: {e}", args.source.display())),
    };
    if words.is_empty() {
        return usage_error(format!("{}: no instructions", args.source.display()));
    }
    match std::fs::write(&out, assembler::to_bytes(&words)) {
        Ok(()) => EXIT_OK,
        Err(e) => usage_error(format!("cannot write {}: {e}", out.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn physical_memory_is_memtotal() {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap();
        assert_eq!(physical_memory(), Some(kib * 1024));
        assert_eq!(default_memory_limit(), kib * 1024 / 4 * 3);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
