//! The machine as a whole, from `/proc/sys` and `/proc/cpuinfo`: the sysctls that bound how many
//! connections it can hold (`net.core.somaxconn`, `fs.file-max`, the ephemeral port range) and its CPUs.
//!
//! A sysctl the kernel does not have, or a container hides, reads as `None`, not as an error: the
//! callers report what they could read and carry on.

/// A sysctl's text (`"net.core.somaxconn"` reads `/proc/sys/net/core/somaxconn`), trimmed; `None` where
/// the kernel does not have it or it cannot be read.
pub fn sysctl(name: &str) -> Option<String> {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// A sysctl holding one number.
pub fn sysctl_u64(name: &str) -> Option<u64> {
    sysctl(name)?.split_whitespace().next()?.parse().ok()
}

/// `net.ipv4.ip_local_port_range`: the ephemeral ports the kernel picks from, `(low, high)` inclusive.
pub fn local_port_range() -> Option<(u16, u16)> {
    let text = sysctl("net.ipv4.ip_local_port_range")?;
    let mut parts = text.split_whitespace().map(|p| p.parse().ok());
    Some((parts.next()??, parts.next()??))
}

/// The machine's CPUs, counted in `/proc/cpuinfo`; 1 where it cannot be read. Unlike
/// `std::thread::available_parallelism`, this ignores the calling process's CPU affinity, so a process
/// pinned to one core still learns what the machine has.
pub fn cpus() -> usize {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| s.lines().filter(|l| l.starts_with("processor")).count())
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sysctls() {
        assert!(sysctl_u64("net.core.somaxconn").is_some_and(|n| n > 0));
        let (low, high) = local_port_range().unwrap();
        assert!(low <= high);
        assert_eq!(sysctl("no.such.sysctl"), None);
    }

    #[test]
    fn counts_at_least_one_cpu() {
        assert!(cpus() >= 1);
    }
}
