//! One process as Linux shows it in `/proc/PID`: resident memory, threads, CPU time, open descriptors
//! and children. Tests and benches read a server this way from outside, the way an operator would.
//!
//! A process that is gone, or a field the kernel does not print, reads as `None` (or 0 descriptors):
//! the readers never panic, so a caller decides whether a missing figure fails its run.

use std::fs;

/// `/proc/PID/stat` reports CPU time in USER_HZ ticks, which Linux fixes at 100 per second for
/// everything it exports to user space.
pub const TICKS_PER_SECOND: f64 = 100.0;

/// A numeric line of `/proc/PID/status` (`VmRSS`, `VmHWM`, `Threads`; sizes in KiB), or `None` if the
/// process is gone or has no such line.
pub fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
}

/// Resident memory in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS")
}

/// Threads in the process.
pub fn threads(pid: u32) -> Option<u64> {
    status_field(pid, "Threads")
}

/// User plus system CPU time in clock ticks ([`TICKS_PER_SECOND`]), including threads that have
/// already exited.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name may contain spaces and parentheses; the fields after its last ')' are fixed.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; the slice starts at field 3 (state).
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// User plus system CPU time in seconds, including threads that have already exited.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_ticks(pid).map(|ticks| ticks as f64 / TICKS_PER_SECOND)
}

/// The direct children of a process (its main thread's list, which is where `fork` puts them).
pub fn children(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| s.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// Descriptors the process holds open (0 if it is gone).
pub fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// A process and its children, summed: `(rss_kib, threads, open_fds)`. For a server that forks workers.
pub fn tree_totals(pid: u32) -> (u64, u64, usize) {
    std::iter::once(pid).chain(children(pid)).fold((0, 0, 0), |(rss, thr, fds), p| {
        (rss + rss_kib(p).unwrap_or(0), thr + threads(p).unwrap_or(0), fds + open_fds(p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(rss_kib(pid).is_some_and(|kib| kib > 0));
        assert!(threads(pid).is_some_and(|n| n >= 1));
        assert!(cpu_ticks(pid).is_some());
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert!(open_fds(pid) > 0);
        drop(file);
        let (rss, threads, fds) = tree_totals(pid);
        assert!(rss > 0 && threads >= 1 && fds > 0);
    }

    #[test]
    fn a_process_that_is_gone_reads_as_absent() {
        // Above the kernel's pid_max (at most 2^22), so no process has it.
        let gone = 1 << 23;
        assert_eq!(status_field(gone, "VmRSS"), None);
        assert_eq!(cpu_seconds(gone), None);
        assert_eq!(open_fds(gone), 0);
        assert!(children(gone).is_empty());
        assert_eq!(tree_totals(gone), (0, 0, 0));
    }
}
