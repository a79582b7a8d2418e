//! What a run cost this process: CPU time, peak memory, context switches (getrusage), threads.

use nix::sys::resource::{UsageWho, getrusage};

/// One getrusage reading of this process.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// User CPU seconds.
    pub user_s: f64,
    /// System CPU seconds.
    pub sys_s: f64,
    /// Peak resident set, KiB.
    pub peak_rss_kib: u64,
    /// Voluntary context switches (the process waited: blocking calls).
    pub voluntary: u64,
    /// Involuntary context switches (the scheduler took the CPU away).
    pub involuntary: u64,
}

impl Usage {
    /// Reads this process's usage now (zeros if the kernel refuses).
    pub fn now() -> Usage {
        let Ok(u) = getrusage(UsageWho::RUSAGE_SELF) else { return Usage::default() };
        let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        Usage {
            user_s: secs(u.user_time()),
            sys_s: secs(u.system_time()),
            // Linux reports ru_maxrss in KiB.
            peak_rss_kib: u.max_rss() as u64,
            voluntary: u.voluntary_context_switches() as u64,
            involuntary: u.involuntary_context_switches() as u64,
        }
    }

    /// What happened between `start` and `self` (peak RSS is the peak so far, not a difference).
    pub fn since(&self, start: &Usage) -> Usage {
        Usage {
            user_s: self.user_s - start.user_s,
            sys_s: self.sys_s - start.sys_s,
            peak_rss_kib: self.peak_rss_kib,
            voluntary: self.voluntary - start.voluntary,
            involuntary: self.involuntary - start.involuntary,
        }
    }
}

/// Threads this process has now, from `/proc/self/status`.
pub fn threads() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok()))
        .unwrap_or(1)
}
