//! What a run cost this process: CPU time, peak memory, context switches (getrusage), threads.

use nix::sys::resource::{UsageWho, getrusage};

/// `ru_maxrss` is in KiB on Linux and the BSDs, in bytes on Apple's systems.
const MAX_RSS_UNITS_PER_KIB: u64 = if cfg!(target_vendor = "apple") { 1024 } else { 1 };

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
            peak_rss_kib: u.max_rss() as u64 / MAX_RSS_UNITS_PER_KIB,
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

/// Readings at the edges of the measured interval, so that CPU per message divides the CPU spent on
/// the messages it counts, not on the ramp, the warm-up or the drain.
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    /// Taken when measuring began.
    pub from: Option<Usage>,
    /// Taken when measuring ended.
    pub to: Option<Usage>,
}

impl Window {
    /// Widens this window to cover `other` too (several loops of one process measure one interval;
    /// readings only grow, so the earliest is the smallest).
    pub fn cover(&mut self, other: Window) {
        let cpu = |u: &Usage| u.user_s + u.sys_s;
        if let Some(from) = other.from
            && self.from.is_none_or(|f| cpu(&from) < cpu(&f))
        {
            self.from = Some(from);
        }
        if let Some(to) = other.to
            && self.to.is_none_or(|t| cpu(&to) > cpu(&t))
        {
            self.to = Some(to);
        }
    }

    /// The usage over the window; an edge never read falls back to the run's own start or end.
    pub fn usage(&self, run_start: &Usage, run_end: &Usage) -> Usage {
        self.to.as_ref().unwrap_or(run_end).since(self.from.as_ref().unwrap_or(run_start))
    }
}

/// Threads this process has now, from `/proc/self/status`.
pub fn threads() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok()))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(cpu: f64) -> Usage {
        Usage { user_s: cpu, sys_s: cpu, voluntary: cpu as u64, ..Usage::default() }
    }

    /// Several loops' windows combine into the widest, and CPU is counted only inside it.
    #[test]
    fn a_window_counts_only_what_lies_inside_it() {
        let mut window = Window::default();
        window.cover(Window { from: Some(at(3.0)), to: Some(at(7.0)) });
        window.cover(Window { from: Some(at(2.0)), to: Some(at(6.0)) });
        window.cover(Window { from: None, to: Some(at(8.0)) });
        let inside = window.usage(&at(0.0), &at(10.0));
        assert_eq!((inside.user_s, inside.sys_s, inside.voluntary), (6.0, 6.0, 6));
        // Edges never read fall back to the run's own.
        let whole = Window::default().usage(&at(1.0), &at(10.0));
        assert_eq!(whole.user_s, 9.0);
    }
}
