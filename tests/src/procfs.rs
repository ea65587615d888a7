//! Figures of a running process from `/proc` (Linux): resident memory, open descriptors and the
//! open-file limit it runs under. Benchmarks print them; the open-files test bounds them.

use std::fs;
use std::path::Path;

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resident memory in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// The soft `Max open files` limit of the process.
pub fn open_file_limit(pid: u32) -> Option<u64> {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// The open descriptors of a process, by what they point at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fds {
    pub total: usize,
    pub sockets: usize,
    /// Files under the directory asked about (a node's log directory).
    pub under_dir: usize,
    /// Of those, segment files (`.log`): the others are short-lived (checkpoints being
    /// written, a directory being fsynced).
    pub segments: usize,
}

/// Counts the descriptors of `pid` (`ls /proc/PID/fd`); a descriptor closed while it is being
/// looked at is left out.
pub fn fds(pid: u32, dir: &Path) -> std::io::Result<Fds> {
    let mut out = Fds::default();
    for entry in fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Ok(target) = entry.and_then(|e| fs::read_link(e.path())) else {
            continue;
        };
        out.total += 1;
        if target.to_string_lossy().starts_with("socket:") {
            out.sockets += 1;
        } else if target.starts_with(dir) {
            out.under_dir += 1;
            if target.extension().is_some_and(|e| e == "log") {
                out.segments += 1;
            }
        }
    }
    Ok(out)
}
