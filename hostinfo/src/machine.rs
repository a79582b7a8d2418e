//! The machine as a whole: the sysctls that bound how many connections it can hold (the listen backlog
//! cap, the system's descriptors, the ephemeral port range), its kernel and its CPUs.
//!
//! Linux keeps its sysctls under `/proc/sys`; macOS and the BSDs answer through sysctl(3), which this
//! crate reaches through the `sysctl` command rather than unsafe FFI. The same fact often has another
//! name on each (`net.core.somaxconn` is `kern.ipc.somaxconn`), so the named readers below
//! ([`somaxconn`], [`local_port_range`], ...) know each platform's name; [`sysctl`] takes the
//! platform's own.
//!
//! A sysctl the kernel does not have, or a container hides, reads as `None`, not as an error: the
//! callers report what they could read, and say "n/a" for the rest.

/// A sysctl's text by the running platform's own name (`"net.core.somaxconn"` on Linux, read from
/// `/proc/sys/net/core/somaxconn`; `"kern.ipc.somaxconn"` on macOS), trimmed; `None` where the kernel
/// does not have it or it cannot be read.
pub fn sysctl(name: &str) -> Option<String> {
    #[cfg(target_os = "linux")]
    return proc_sys(name);
    #[cfg(not(target_os = "linux"))]
    return sysctl_command(name);
}

/// A sysctl holding one number.
pub fn sysctl_u64(name: &str) -> Option<u64> {
    sysctl(name)?.split_whitespace().next()?.parse().ok()
}

#[cfg(target_os = "linux")]
fn proc_sys(name: &str) -> Option<String> {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// `sysctl -n NAME`, where `/proc/sys` does not exist. The command lives in `/usr/sbin` on macOS and
/// `/sbin` on FreeBSD, which a user's PATH may leave out.
#[cfg(any(not(target_os = "linux"), test))]
fn sysctl_command(name: &str) -> Option<String> {
    // A name starting with '-' would be read as an option.
    if name.is_empty() || name.starts_with('-') {
        return None;
    }
    ["/usr/sbin/sysctl", "/sbin/sysctl", "sysctl"].into_iter().find_map(|command| {
        let output = std::process::Command::new(command).args(["-n", name]).output().ok()?;
        let text = String::from_utf8(output.stdout).ok()?;
        (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
    })
}

/// The cap the kernel puts on every listen backlog: `net.core.somaxconn` on Linux,
/// `kern.ipc.soacceptqueue` on FreeBSD (`kern.ipc.somaxconn` on older releases), `kern.ipc.somaxconn`
/// on macOS.
pub fn somaxconn() -> Option<u64> {
    #[cfg(target_os = "linux")]
    return sysctl_u64("net.core.somaxconn");
    #[cfg(target_os = "freebsd")]
    return sysctl_u64("kern.ipc.soacceptqueue").or_else(|| sysctl_u64("kern.ipc.somaxconn"));
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    return sysctl_u64("kern.ipc.somaxconn");
}

/// Descriptors the whole system may have open: `fs.file-max` on Linux, `kern.maxfiles` on macOS and
/// the BSDs.
pub fn file_max() -> Option<u64> {
    #[cfg(target_os = "linux")]
    return sysctl_u64("fs.file-max");
    #[cfg(not(target_os = "linux"))]
    return sysctl_u64("kern.maxfiles");
}

/// The kernel's release (`uname -r`): `kernel.osrelease` on Linux, `kern.osrelease` elsewhere.
pub fn kernel_release() -> Option<String> {
    #[cfg(target_os = "linux")]
    return sysctl("kernel.osrelease");
    #[cfg(not(target_os = "linux"))]
    return sysctl("kern.osrelease");
}

/// The ephemeral ports the kernel picks from, `(low, high)` inclusive: `net.ipv4.ip_local_port_range`
/// on Linux, `net.inet.ip.portrange.first` and `.last` on macOS and the BSDs.
pub fn local_port_range() -> Option<(u16, u16)> {
    #[cfg(target_os = "linux")]
    {
        let text = sysctl("net.ipv4.ip_local_port_range")?;
        let mut parts = text.split_whitespace().map(|p| p.parse().ok());
        Some((parts.next()??, parts.next()??))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let port = |name| sysctl(name)?.parse::<u16>().ok();
        let (first, last) = (port("net.inet.ip.portrange.first")?, port("net.inet.ip.portrange.last")?);
        // The BSDs allow the bounds either way round and use the range between them.
        Some((first.min(last), first.max(last)))
    }
}

/// The machine's CPUs; 1 where they cannot be counted. Unlike `std::thread::available_parallelism`,
/// this ignores the calling process's CPU affinity, so a process pinned to one core still learns what
/// the machine has: Linux counts `/proc/cpuinfo`, macOS and the BSDs read `hw.ncpu`.
pub fn cpus() -> usize {
    #[cfg(target_os = "linux")]
    let counted = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .map(|s| s.lines().filter(|l| l.starts_with("processor")).count());
    #[cfg(not(target_os = "linux"))]
    let counted = sysctl_u64("hw.ncpu").and_then(|n| usize::try_from(n).ok());
    counted.filter(|&n| n > 0).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sysctls() {
        assert!(somaxconn().is_some_and(|n| n > 0));
        assert!(file_max().is_some_and(|n| n > 0));
        assert!(kernel_release().is_some_and(|r| !r.is_empty()));
        let (low, high) = local_port_range().unwrap();
        assert!(low <= high);
        assert_eq!(sysctl("no.such.sysctl"), None);
    }

    /// The reader macOS and the BSDs use, tried against `/proc/sys` where both exist.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_sysctl_command_agrees_with_proc_sys() {
        let Some(text) = sysctl_command("net.core.somaxconn") else {
            eprintln!("skipped: no sysctl command on this machine");
            return;
        };
        assert_eq!(Some(text), sysctl("net.core.somaxconn"));
        assert_eq!(sysctl_command("no.such.sysctl"), None);
        assert_eq!(sysctl_command("-a"), None, "an option is not a name");
    }

    #[test]
    fn counts_at_least_one_cpu() {
        assert!(cpus() >= 1);
    }
}
