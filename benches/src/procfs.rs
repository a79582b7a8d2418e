//! What the benches read from `/proc` about a server process: memory, threads, CPU time, children.
//! Linux only, like the rest of the measurement (strace, callgrind, taskset).

use std::fs;

/// `/proc/PID/stat` reports CPU time in USER_HZ ticks, which Linux fixes at 100 per second for
/// everything it exports to user space.
pub const TICKS_PER_SECOND: f64 = 100.0;

/// A numeric line of `/proc/PID/status` (`VmRSS`, `Threads`; sizes in KiB), or `None` if the process is
/// gone.
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

/// User plus system CPU time in seconds, including threads that have already exited.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name may contain spaces and parentheses; the fields after its last ')' are fixed.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; the slice starts at field 3 (state).
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / TICKS_PER_SECOND)
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

/// The running kernel's release, as `uname -r` prints it.
pub fn kernel() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The machine's CPUs (from `/proc/cpuinfo`: this process is pinned to one core, so the affinity-aware
/// `available_parallelism` would say 1).
pub fn cpus() -> usize {
    fs::read_to_string("/proc/cpuinfo")
        .map(|s| s.lines().filter(|l| l.starts_with("processor")).count())
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or(1)
}
