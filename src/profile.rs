//! Telling Linux `perf` where generated code lies, so that samples in it get names.
//!
//! Two formats, both specified in the Linux sources under `tools/perf/Documentation/`:
//!
//! - perf map (`jit-interface.txt`): a text file `/tmp/perf-PID.map` with one line
//!   `START SIZE NAME` per piece of code, START and SIZE in hex without `0x`. `perf report`
//!   reads it directly. It names code but does not hold it, so `perf annotate` cannot show it.
//! - jitdump (`jitdump-specification.txt`): a binary file `/tmp/jit-PID.dump`, a header then one
//!   `JIT_CODE_LOAD` record per piece of code, bytes included, and a `JIT_CODE_CLOSE` record at
//!   the end. Record with `perf record -k mono` (the timestamps are `CLOCK_MONOTONIC`), then
//!   `perf inject --jit` turns each record into a small ELF file that `perf report` and
//!   `perf annotate` can use. perf finds the file because the process maps its first page
//!   executable, which the recording sees.
//!
//! Names are the caller's. The translator's convention: `um_block_<start>_<end>` for a block and
//! `um_region_<start>_<end>` for a region, `<start>` and `<end>` being its UM pc range in decimal,
//! `<end>` one past the last pc (as the block cache records it). [`Profiler::code_loaded`]
//! takes only names of printable ASCII without spaces, which both formats carry unchanged.
//!
//! The file name holds only the process id: one [`Profiler`] per process and directory.

use crate::memory::reserve::page_size;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Which file [`Profiler`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileFormat {
    /// `perf-PID.map`: text, one line of address, size and name per piece of code.
    PerfMap,
    /// `jit-PID.dump`: binary, the code bytes too; for `perf inject --jit`.
    JitDump,
}

/// A name that is neither `perfmap` nor `jitdump` (the error of parsing a [`ProfileFormat`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownProfileFormat(pub String);

impl fmt::Display for UnknownProfileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown profile format `{}`: expected `perfmap` or `jitdump`",
            self.0
        )
    }
}

impl std::error::Error for UnknownProfileFormat {}

impl FromStr for ProfileFormat {
    type Err = UnknownProfileFormat;

    /// `perfmap` or `jitdump`, lower case.
    fn from_str(s: &str) -> Result<ProfileFormat, UnknownProfileFormat> {
        match s {
            "perfmap" => Ok(ProfileFormat::PerfMap),
            "jitdump" => Ok(ProfileFormat::JitDump),
            _ => Err(UnknownProfileFormat(s.to_string())),
        }
    }
}

/// "JiTD", written in host byte order so that a reader can tell the byte order.
const JITDUMP_MAGIC: u32 = 0x4A69_5444;
const JITDUMP_VERSION: u32 = 1;
/// magic, version, total_size, elf_mach, pad1, pid (u32 each), timestamp, flags (u64 each).
const JITDUMP_HEADER_SIZE: u32 = 40;
/// id, total_size (u32 each), timestamp (u64).
const RECORD_HEADER_SIZE: usize = 16;
/// pid, tid (u32 each), vma, code_addr, code_size, code_index (u64 each).
const CODE_LOAD_FIELDS_SIZE: usize = 40;
const JIT_CODE_LOAD: u32 = 0;
const JIT_CODE_CLOSE: u32 = 3;
/// The host's ELF `e_machine`: EM_X86_64 or EM_AARCH64.
const ELF_MACHINE: Option<u32> = if cfg!(target_arch = "x86_64") {
    Some(62)
} else if cfg!(target_arch = "aarch64") {
    Some(183)
} else {
    None
};

/// Writes a perf map or a jitdump file describing generated code as it is placed.
///
/// Writes are buffered: [`Profiler::flush`] and dropping write them out. On drop, a jitdump file
/// also gets its `JIT_CODE_CLOSE` record; errors there are ignored (flush first to see them).
#[derive(Debug)]
pub struct Profiler {
    path: PathBuf,
    out: BufWriter<File>,
    /// Only for jitdump.
    jit: Option<JitDumpState>,
}

#[derive(Debug)]
struct JitDumpState {
    pid: u32,
    next_index: u64,
    /// The file's first page mapped executable: the mapping is how perf finds the file.
    _marker: ExecMapping,
}

/// A private, read-only and executable mapping of a file's first page, never read through;
/// unmapped on drop.
///
/// Made with `mmap` directly: memmap2's `map_exec` maps `MAP_SHARED`, and perf's own jitdump
/// writer (the JVMTI agent) maps the marker `MAP_PRIVATE`.
#[derive(Debug)]
struct ExecMapping {
    addr: usize,
    len: usize,
}

impl ExecMapping {
    fn first_page(file: &File) -> io::Result<ExecMapping> {
        let len = page_size();
        // SAFETY: a new mapping with no address hint takes only addresses no other mapping
        // holds, so it cannot alias memory Rust owns; `file` is an open descriptor for the call's
        // duration, and the result is checked for MAP_FAILED below.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_EXEC,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(ExecMapping {
            addr: addr as usize,
            len,
        })
    }
}

impl Drop for ExecMapping {
    fn drop(&mut self) {
        // SAFETY: `addr` and `len` are the mapping this value made, which nothing else unmaps,
        // and no reference into it exists (it is never read).
        unsafe {
            libc::munmap(self.addr as *mut libc::c_void, self.len);
        }
    }
}

impl Profiler {
    /// Start a `perf-PID.map` or `jit-PID.dump` file in `/tmp`, where perf looks.
    pub fn new(format: ProfileFormat) -> io::Result<Profiler> {
        Profiler::with_dir(format, Path::new("/tmp"))
    }

    /// Start the file in `dir` instead (for tests). A file of that name already there is
    /// replaced.
    pub fn with_dir(format: ProfileFormat, dir: &Path) -> io::Result<Profiler> {
        let pid = std::process::id();
        let path = match format {
            ProfileFormat::PerfMap => dir.join(format!("perf-{pid}.map")),
            ProfileFormat::JitDump => dir.join(format!("jit-{pid}.dump")),
        };
        let machine = match format {
            ProfileFormat::PerfMap => 0,
            ProfileFormat::JitDump => ELF_MACHINE.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    "jitdump: no ELF machine number known for this architecture",
                )
            })?,
        };
        let mut out = BufWriter::new(create_fresh(&path)?);
        let jit = match format {
            ProfileFormat::PerfMap => None,
            ProfileFormat::JitDump => {
                let mut header = Vec::with_capacity(JITDUMP_HEADER_SIZE as usize);
                for field in [
                    JITDUMP_MAGIC,
                    JITDUMP_VERSION,
                    JITDUMP_HEADER_SIZE,
                    machine,
                    0, // pad1
                    pid,
                ] {
                    header.extend_from_slice(&field.to_ne_bytes());
                }
                header.extend_from_slice(&monotonic_ns()?.to_ne_bytes());
                header.extend_from_slice(&0u64.to_ne_bytes()); // flags
                out.write_all(&header)?;
                // In the file before it is mapped, so the mapped page is backed.
                out.flush()?;
                let marker = ExecMapping::first_page(out.get_ref())?;
                Some(JitDumpState {
                    pid,
                    next_index: 0,
                    _marker: marker,
                })
            }
        };
        Ok(Profiler { path, out, jit })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record that `code` now lies at `addr` under `name` (printable ASCII, no spaces; see the
    /// module documentation for the convention). A perf map gets a line, a jitdump a
    /// `JIT_CODE_LOAD` record with the next code index, the calling thread's id and the bytes.
    pub fn code_loaded(&mut self, addr: usize, code: &[u8], name: &str) -> io::Result<()> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("profile: code name {name:?} is not printable ASCII without spaces"),
            ));
        }
        let Some(jit) = &mut self.jit else {
            return writeln!(self.out, "{addr:x} {:x} {name}", code.len());
        };
        let total_size = RECORD_HEADER_SIZE + CODE_LOAD_FIELDS_SIZE + name.len() + 1 + code.len();
        let total_size = u32::try_from(total_size).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "jitdump: a code load record is limited to 4 GiB",
            )
        })?;
        let mut fixed = Vec::with_capacity(RECORD_HEADER_SIZE + CODE_LOAD_FIELDS_SIZE);
        fixed.extend_from_slice(&JIT_CODE_LOAD.to_ne_bytes());
        fixed.extend_from_slice(&total_size.to_ne_bytes());
        fixed.extend_from_slice(&monotonic_ns()?.to_ne_bytes());
        fixed.extend_from_slice(&jit.pid.to_ne_bytes());
        fixed.extend_from_slice(&thread_id().to_ne_bytes());
        fixed.extend_from_slice(&(addr as u64).to_ne_bytes()); // vma
        fixed.extend_from_slice(&(addr as u64).to_ne_bytes()); // code_addr
        fixed.extend_from_slice(&(code.len() as u64).to_ne_bytes());
        fixed.extend_from_slice(&jit.next_index.to_ne_bytes());
        self.out.write_all(&fixed)?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.out.write_all(code)?;
        jit.next_index += 1;
        Ok(())
    }

    /// Write out everything buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn write_close_record(&mut self) -> io::Result<()> {
        let mut record = Vec::with_capacity(RECORD_HEADER_SIZE);
        record.extend_from_slice(&JIT_CODE_CLOSE.to_ne_bytes());
        record.extend_from_slice(&(RECORD_HEADER_SIZE as u32).to_ne_bytes());
        record.extend_from_slice(&monotonic_ns()?.to_ne_bytes());
        self.out.write_all(&record)
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        if self.jit.is_some() {
            let _ = self.write_close_record();
        }
        let _ = self.out.flush();
    }
}

/// Create `path` afresh, readable (for the mapping) and writable. A file left by an earlier
/// process with the same id is removed first; `create_new` then refuses to follow a symbolic
/// link someone else placed there.
fn create_fresh(path: &Path) -> io::Result<File> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
}

/// `CLOCK_MONOTONIC` in nanoseconds, the clock `perf record -k mono` uses.
fn monotonic_ns() -> io::Result<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec, writable for the duration of the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// The calling thread's id (as the kernel counts them, which is what perf records).
fn thread_id() -> u32 {
    // SAFETY: gettid takes no arguments, touches no memory and cannot fail.
    unsafe { libc::gettid() as u32 }
}

/// Strict readers of both formats, to check what [`Profiler`] writes (the tests use them).
pub mod parse {
    use super::{
        JIT_CODE_CLOSE, JIT_CODE_LOAD, JITDUMP_HEADER_SIZE, JITDUMP_MAGIC, RECORD_HEADER_SIZE,
    };

    /// One perf map line.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct MapLine {
        /// Address of the first byte.
        pub start: u64,
        /// Length in bytes.
        pub size: u64,
        /// The rest of the line.
        pub name: String,
    }

    /// Every line of a perf map, each `START SIZE NAME` with hex numbers (no `0x`), a non-empty
    /// name and a newline at the end.
    pub fn perf_map(text: &str) -> Result<Vec<MapLine>, String> {
        if !text.is_empty() && !text.ends_with('\n') {
            return Err("perf map: the last line has no newline".to_string());
        }
        let hex = |s: &str| -> Option<u64> {
            let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
            digits.then(|| u64::from_str_radix(s, 16).ok()).flatten()
        };
        let mut lines = Vec::new();
        for (i, line) in text.split_terminator('\n').enumerate() {
            let mut fields = line.splitn(3, ' ');
            let (start, size, name) = (fields.next(), fields.next(), fields.next());
            match (start.and_then(hex), size.and_then(hex), name) {
                (Some(start), Some(size), Some(name)) if !name.is_empty() => lines.push(MapLine {
                    start,
                    size,
                    name: name.to_string(),
                }),
                _ => return Err(format!("perf map line {}: {line:?}", i + 1)),
            }
        }
        Ok(lines)
    }

    /// The jitdump file header.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct JitHeader {
        /// 0x4A695444 ("JiTD") in host byte order.
        pub magic: u32,
        /// Format version.
        pub version: u32,
        /// Header size in bytes; records start there.
        pub total_size: u32,
        /// ELF `e_machine` of the code.
        pub elf_mach: u32,
        /// Reserved.
        pub pad1: u32,
        /// Process id of the writer.
        pub pid: u32,
        /// When the file was started.
        pub timestamp: u64,
        /// Flags (bit 0: architecture-specific timestamps).
        pub flags: u64,
    }

    /// One jitdump record. Its `total_size` is checked to end exactly where its contents do.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct JitRecord {
        /// Record type: 0 (`JIT_CODE_LOAD`) or 3 (`JIT_CODE_CLOSE`), the only ones accepted.
        pub id: u32,
        /// Size in bytes, header included.
        pub total_size: u32,
        /// When the record was written.
        pub timestamp: u64,
        /// The contents of a `JIT_CODE_LOAD`.
        pub load: Option<CodeLoad>,
    }

    /// The contents of a `JIT_CODE_LOAD` record.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct CodeLoad {
        /// Process id.
        pub pid: u32,
        /// Thread id.
        pub tid: u32,
        /// Virtual address of the code.
        pub vma: u64,
        /// Address of the code's start.
        pub code_addr: u64,
        /// Length of the code in bytes.
        pub code_size: u64,
        /// Identifier of this piece of code.
        pub code_index: u64,
        /// The name, without its terminating NUL.
        pub name: String,
        /// The code bytes.
        pub code: Vec<u8>,
    }

    /// A whole jitdump file.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct JitDump {
        /// The file header.
        pub header: JitHeader,
        /// Every record, in file order; the file ends exactly after the last.
        pub records: Vec<JitRecord>,
    }

    struct Reader<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
            let end = self
                .at
                .checked_add(n)
                .filter(|&end| end <= self.bytes.len());
            let end = end.ok_or_else(|| format!("jitdump: {n} bytes wanted at {}", self.at))?;
            let taken = &self.bytes[self.at..end];
            self.at = end;
            Ok(taken)
        }

        fn u32(&mut self) -> Result<u32, String> {
            Ok(u32::from_ne_bytes(self.take(4)?.try_into().unwrap()))
        }

        fn u64(&mut self) -> Result<u64, String> {
            Ok(u64::from_ne_bytes(self.take(8)?.try_into().unwrap()))
        }
    }

    /// A jitdump file in host byte order holding only code load and close records.
    pub fn jitdump(bytes: &[u8]) -> Result<JitDump, String> {
        let mut r = Reader { bytes, at: 0 };
        let header = JitHeader {
            magic: r.u32()?,
            version: r.u32()?,
            total_size: r.u32()?,
            elf_mach: r.u32()?,
            pad1: r.u32()?,
            pid: r.u32()?,
            timestamp: r.u64()?,
            flags: r.u64()?,
        };
        if header.magic != JITDUMP_MAGIC {
            return Err(format!("jitdump: magic {:#x}", header.magic));
        }
        if header.total_size < JITDUMP_HEADER_SIZE {
            return Err(format!("jitdump: header size {}", header.total_size));
        }
        r.take(header.total_size as usize - JITDUMP_HEADER_SIZE as usize)?;
        let mut records = Vec::new();
        while r.at < bytes.len() {
            let start = r.at;
            let (id, total_size, timestamp) = (r.u32()?, r.u32()?, r.u64()?);
            let Some(end) = start.checked_add(total_size as usize) else {
                return Err(format!("jitdump: record at {start}: size {total_size}"));
            };
            if (total_size as usize) < RECORD_HEADER_SIZE || end > bytes.len() {
                return Err(format!(
                    "jitdump: record at {start}: size {total_size} in a file of {}",
                    bytes.len()
                ));
            }
            let load = match id {
                JIT_CODE_LOAD => {
                    let (pid, tid) = (r.u32()?, r.u32()?);
                    let (vma, code_addr, code_size, code_index) =
                        (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
                    let rest = &bytes[r.at.min(end)..end];
                    let nul = rest.iter().position(|&b| b == 0).ok_or_else(|| {
                        format!("jitdump: record at {start}: no NUL ends the name")
                    })?;
                    let name = String::from_utf8(r.take(nul)?.to_vec())
                        .map_err(|_| format!("jitdump: record at {start}: name not UTF-8"))?;
                    r.take(1)?;
                    let code = r.take(code_size as usize)?.to_vec();
                    Some(CodeLoad {
                        pid,
                        tid,
                        vma,
                        code_addr,
                        code_size,
                        code_index,
                        name,
                        code,
                    })
                }
                JIT_CODE_CLOSE => None,
                _ => return Err(format!("jitdump: record at {start}: id {id}")),
            };
            if r.at != end {
                return Err(format!(
                    "jitdump: record at {start}: size {total_size}, contents end at {}",
                    r.at - start
                ));
            }
            records.push(JitRecord {
                id,
                total_size,
                timestamp,
                load,
            });
        }
        Ok(JitDump { header, records })
    }
}

#[cfg(test)]
mod tests {
    use super::parse::{self, MapLine};
    use super::*;
    use std::io::Read;

    /// A fresh directory under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(test: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("umdbt-profile-{}-{test}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// (address, code, name) for each code load the tests make: odd sizes, an empty piece of
    /// code, one larger than the write buffer.
    fn loads() -> Vec<(usize, Vec<u8>, &'static str)> {
        vec![
            (0x7f12_3456_0000, vec![0x90, 0xc3], "um_block_0_7"),
            (0x7f12_3456_0040, (0..=255).collect(), "um_block_7_100"),
            (0x7f12_3456_0140, vec![], "um_block_100_101"),
            (
                0x7f12_3456_1000,
                (0..20_001u32).map(|i| (i * 7) as u8).collect(),
                "um_region_101_4000",
            ),
            (usize::MAX - 2, vec![0xcc; 3], "x"),
        ]
    }

    #[test]
    fn format_parses_perfmap_and_jitdump_only() {
        assert_eq!("perfmap".parse(), Ok(ProfileFormat::PerfMap));
        assert_eq!("jitdump".parse(), Ok(ProfileFormat::JitDump));
        for bad in ["", "PerfMap", "perf-map", "jitdump ", "perf"] {
            let err = bad.parse::<ProfileFormat>().unwrap_err();
            assert_eq!(err, UnknownProfileFormat(bad.to_string()));
            let message = err.to_string();
            assert!(message.contains("`perfmap`") && message.contains("`jitdump`"));
        }
    }

    #[test]
    fn perf_map_lines_parse_back() {
        let dir = TempDir::new("perf-map");
        let mut p = Profiler::with_dir(ProfileFormat::PerfMap, &dir.0).unwrap();
        let path = p.path().to_path_buf();
        assert_eq!(path, dir.0.join(format!("perf-{}.map", std::process::id())));
        let expected: Vec<MapLine> = loads()
            .into_iter()
            .map(|(addr, code, name)| MapLine {
                start: addr as u64,
                size: code.len() as u64,
                name: name.to_string(),
            })
            .collect();
        let loads = loads();
        p.code_loaded(loads[0].0, &loads[0].1, loads[0].2).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"", "written before any flush");
        p.flush().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, "7f1234560000 2 um_block_0_7\n");
        assert_eq!(parse::perf_map(&text).unwrap(), expected[..1]);
        for (addr, code, name) in &loads[1..] {
            p.code_loaded(*addr, code, name).unwrap();
        }
        drop(p);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(parse::perf_map(&text).unwrap(), expected);
    }

    #[test]
    fn perf_map_parser_rejects_malformed_lines() {
        assert_eq!(parse::perf_map(""), Ok(vec![]));
        for bad in [
            "10 20 a",
            "0x10 20 a\n",
            "10 0x20 a\n",
            "10 20\n",
            "10 20 \n",
            "10 zz a\n",
            "+10 20 a\n",
            "10  20 a\n",
            "10 20 a\n\n",
        ] {
            assert!(parse::perf_map(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// The host's ELF machine, read from the running executable's own header.
    fn own_elf_machine() -> u32 {
        let mut header = [0u8; 20];
        File::open("/proc/self/exe")
            .unwrap()
            .read_exact(&mut header)
            .unwrap();
        assert_eq!(&header[..4], b"\x7fELF");
        u16::from_ne_bytes([header[18], header[19]]) as u32
    }

    /// `CLOCK_MONOTONIC` in nanoseconds, read independently of `monotonic_ns`.
    fn clock_monotonic() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec, writable for the duration of the call.
        let status = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        assert_eq!(status, 0);
        u64::try_from(ts.tv_sec).unwrap() * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap()
    }

    /// Write `loads()` to a jitdump file in `dir` and return its bytes, with the monotonic
    /// clock read before the file was started and after it was closed.
    fn write_jitdump(dir: &Path) -> (Vec<u8>, u64, u64) {
        let before = clock_monotonic();
        let mut p = Profiler::with_dir(ProfileFormat::JitDump, dir).unwrap();
        let path = p.path().to_path_buf();
        assert_eq!(path, dir.join(format!("jit-{}.dump", std::process::id())));
        for (addr, code, name) in &loads() {
            p.code_loaded(*addr, code, name).unwrap();
        }
        drop(p);
        let after = clock_monotonic();
        (fs::read(&path).unwrap(), before, after)
    }

    #[test]
    fn jitdump_header_code_loads_and_close_parse_back() {
        let dir = TempDir::new("jitdump");
        let (bytes, before, after) = write_jitdump(&dir.0);
        assert_eq!(bytes[..4], 0x4A69_5444u32.to_ne_bytes());
        let dump = parse::jitdump(&bytes).unwrap();

        let h = &dump.header;
        assert_eq!((h.magic, h.version, h.total_size), (0x4A69_5444, 1, 40));
        assert_eq!(h.elf_mach, own_elf_machine());
        assert!(h.elf_mach == 62 || h.elf_mach == 183);
        assert_eq!((h.pad1, h.pid, h.flags), (0, std::process::id(), 0));
        assert!(before <= h.timestamp && h.timestamp <= after);

        let loads = loads();
        assert_eq!(dump.records.len(), loads.len() + 1);
        let mut at = h.total_size as usize;
        let mut last_timestamp = h.timestamp;
        for (i, record) in dump.records.iter().enumerate() {
            at += record.total_size as usize;
            assert!(
                record.timestamp >= last_timestamp,
                "record {i} goes back in time"
            );
            last_timestamp = record.timestamp;
            let Some((addr, code, name)) = loads.get(i) else {
                assert_eq!((record.id, record.total_size, &record.load), (3, 16, &None));
                continue;
            };
            assert_eq!(record.id, 0);
            assert_eq!(
                record.total_size as usize,
                16 + 40 + name.len() + 1 + code.len()
            );
            let load = record.load.as_ref().unwrap();
            assert_eq!((load.pid, load.tid), (std::process::id(), thread_id()));
            assert_eq!((load.vma, load.code_addr), (*addr as u64, *addr as u64));
            assert_eq!(load.code_size, code.len() as u64);
            assert_eq!(load.code_index, i as u64);
            assert_eq!(load.name, *name);
            assert_eq!(load.code, *code);
        }
        assert!(last_timestamp <= after);
        assert_eq!(
            at,
            bytes.len(),
            "the records' sizes do not add up to the file"
        );
    }

    #[test]
    fn jitdump_parser_rejects_damaged_files() {
        let dir = TempDir::new("jitdump-damaged");
        let (bytes, _, _) = write_jitdump(&dir.0);
        assert!(parse::jitdump(&bytes).is_ok());
        let patched = |at: usize, with: &[u8]| {
            let mut b = bytes.clone();
            b[at..at + with.len()].copy_from_slice(with);
            b
        };
        let size_at = 40 + 4; // the first record's total_size
        let size = u32::from_ne_bytes(bytes[size_at..size_at + 4].try_into().unwrap());
        let damaged = [
            ("last byte cut", bytes[..bytes.len() - 1].to_vec()),
            ("a byte after the close record", [&bytes[..], &[0]].concat()),
            (
                "half a close record",
                [&bytes[..bytes.len() - 16], &[0; 8]].concat(),
            ),
            (
                "first record a byte longer",
                patched(size_at, &(size + 1).to_ne_bytes()),
            ),
            (
                "first record a byte shorter",
                patched(size_at, &(size - 1).to_ne_bytes()),
            ),
            (
                "magic byte-swapped",
                patched(0, &JITDUMP_MAGIC.swap_bytes().to_ne_bytes()),
            ),
            ("record id 1", patched(40, &1u32.to_ne_bytes())),
            (
                "first name without its NUL",
                patched(40 + 16 + 40, &[b'a'; 13]),
            ),
        ];
        for (what, b) in &damaged {
            assert!(parse::jitdump(b).is_err(), "accepted: {what}");
        }
    }

    #[test]
    fn jitdump_first_page_is_mapped_readable_and_executable() {
        let dir = TempDir::new("jitdump-mapping");
        let p = Profiler::with_dir(ProfileFormat::JitDump, &dir.0).unwrap();
        let path = fs::canonicalize(p.path()).unwrap();
        // Reading /proc/self/maps is not atomic: while other tests' threads map and unmap
        // memory, a read may miss a line (seen under qemu-user). A mapping that is there
        // shows up in one of a few reads.
        let line = (0..5)
            .find_map(|_| {
                let maps = fs::read_to_string("/proc/self/maps").unwrap();
                maps.lines()
                    .find(|line| line.ends_with(path.to_str().unwrap()))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| panic!("{} is not mapped", path.display()));
        // "start-end perms offset dev inode path"
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (start, end) = fields[0].split_once('-').unwrap();
        let len =
            usize::from_str_radix(end, 16).unwrap() - usize::from_str_radix(start, 16).unwrap();
        assert_eq!(
            (fields[1], fields[2], len),
            ("r-xp", "00000000", page_size())
        );
        drop(p);
        let maps = fs::read_to_string("/proc/self/maps").unwrap();
        assert!(
            !maps.contains(path.to_str().unwrap()),
            "still mapped after drop"
        );
    }

    #[test]
    fn names_must_be_printable_ascii_without_spaces() {
        for format in [ProfileFormat::PerfMap, ProfileFormat::JitDump] {
            let dir = TempDir::new(&format!("names-{format:?}"));
            let mut p = Profiler::with_dir(format, &dir.0).unwrap();
            let path = p.path().to_path_buf();
            for bad in [
                "",
                "um block",
                "um_block\n",
                "um\0block",
                "um_blöck",
                "um\tblock",
            ] {
                let err = p.code_loaded(0x1000, &[0xc3], bad).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            }
            drop(p);
            let bytes = fs::read(&path).unwrap();
            match format {
                ProfileFormat::PerfMap => assert_eq!(bytes, b""),
                ProfileFormat::JitDump => {
                    let ids: Vec<u32> = parse::jitdump(&bytes)
                        .unwrap()
                        .records
                        .iter()
                        .map(|r| r.id)
                        .collect();
                    assert_eq!(ids, [3]);
                }
            }
        }
    }

    #[test]
    fn a_stale_file_is_replaced() {
        let dir = TempDir::new("stale");
        let stale = dir.0.join(format!("perf-{}.map", std::process::id()));
        fs::write(&stale, "1 1 stale\n").unwrap();
        let mut p = Profiler::with_dir(ProfileFormat::PerfMap, &dir.0).unwrap();
        p.code_loaded(0x20, &[1, 2], "fresh").unwrap();
        drop(p);
        assert_eq!(fs::read_to_string(&stale).unwrap(), "20 2 fresh\n");
    }
}
