//! The machine a run happened on, and the limits it sets: carried in every report, and checked before a
//! run so that a limit below what was asked for is named in plain words up front.

use hostinfo::{local_port_range, sysctl_u64};
use serde::{Deserialize, Serialize};

/// Descriptors a client process holds besides its connections: stdio, and each loop's poller and
/// waker. An allowance for the warning before a run, not a count: a run whose connections per process
/// come closer than this to RLIMIT_NOFILE is told to expect EMFILE.
pub const DESCRIPTOR_RESERVE: u64 = 16;

/// Kernel, CPUs and the limits that decide how many connections fit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// `uname -r` (empty where it cannot be read).
    pub kernel: String,
    /// CPUs this process may run on.
    pub cpus: u64,
    /// RLIMIT_NOFILE soft limit at start, before raising it.
    pub nofile_soft_before: u64,
    /// RLIMIT_NOFILE hard limit at start.
    pub nofile_hard_before: u64,
    /// RLIMIT_NOFILE soft limit the run used.
    pub nofile_soft: u64,
    /// RLIMIT_NOFILE hard limit the run used.
    pub nofile_hard: u64,
    /// `fs.file-max` (`kern.maxfiles` on macOS and FreeBSD): descriptors the whole system may have open.
    pub file_max: Option<u64>,
    /// `fs.nr_open`: the ceiling for any process's hard RLIMIT_NOFILE.
    pub nr_open: Option<u64>,
    /// `net.core.somaxconn` (`kern.ipc.somaxconn` on macOS and FreeBSD): the cap on any listen backlog.
    pub somaxconn: Option<u64>,
    /// `net.ipv4.tcp_max_syn_backlog`: half-open connections a listener may hold.
    pub tcp_max_syn_backlog: Option<u64>,
    /// `net.ipv4.ip_local_port_range` (`net.inet.ip.portrange.first`/`last` on macOS and FreeBSD),
    /// inclusive.
    pub ip_local_port_range: Option<(u16, u16)>,
    /// `net.ipv4.tcp_tw_reuse`.
    pub tcp_tw_reuse: Option<u64>,
    /// `net.netfilter.nf_conntrack_max`, where connection tracking is loaded.
    pub nf_conntrack_max: Option<u64>,
}

impl Environment {
    /// Raises the soft descriptor limit to the hard one (and the hard one towards `fs.nr_open` where
    /// the process is allowed to), then reads everything.
    pub fn capture() -> Environment {
        let before = hostinfo::fd_limit().ok();
        let nr_open = sysctl_u64("fs.nr_open");
        if let Some(nr_open) = nr_open {
            // Needs CAP_SYS_RESOURCE and is often refused (containers): then the hard limit stands.
            let _ = hostinfo::raise_hard_fd_limit(nr_open);
        }
        let _ = hostinfo::raise_fd_limit();
        let after = hostinfo::fd_limit().ok();
        Environment {
            kernel: hostinfo::kernel_release().unwrap_or_default(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            nofile_soft_before: before.map_or(0, |l| l.soft),
            nofile_hard_before: before.map_or(0, |l| l.hard),
            nofile_soft: after.map_or(0, |l| l.soft),
            nofile_hard: after.map_or(0, |l| l.hard),
            file_max: hostinfo::file_max(),
            nr_open,
            somaxconn: hostinfo::somaxconn(),
            tcp_max_syn_backlog: sysctl_u64("net.ipv4.tcp_max_syn_backlog"),
            ip_local_port_range: local_port_range(),
            tcp_tw_reuse: sysctl_u64("net.ipv4.tcp_tw_reuse"),
            nf_conntrack_max: sysctl_u64("net.netfilter.nf_conntrack_max"),
        }
    }

    /// Ephemeral ports per source address (and destination).
    pub fn ephemeral_ports(&self) -> Option<u64> {
        self.ip_local_port_range.map(|(low, high)| u64::from(high.saturating_sub(low)) + 1)
    }

    /// Limits below what a run of `connections` from `sources` source addresses in `processes`
    /// processes needs, in plain words.
    pub fn warnings(&self, connections: u64, sources: u64, processes: u64) -> Vec<String> {
        let mut warnings = Vec::new();
        let per_process = connections.div_ceil(processes.max(1));
        if per_process + DESCRIPTOR_RESERVE > self.nofile_soft {
            warnings.push(format!(
                "{per_process} connections per process need more descriptors than RLIMIT_NOFILE allows \
                 (soft {}, hard {}): expect EMFILE; use --processes {} or more",
                self.nofile_soft,
                self.nofile_hard,
                (connections + DESCRIPTOR_RESERVE)
                    .div_ceil(self.nofile_hard.saturating_sub(DESCRIPTOR_RESERVE).max(1))
            ));
        }
        if let Some(ports) = self.ephemeral_ports()
            && connections > ports * sources.max(1)
        {
            warnings.push(format!(
                "{connections} connections from {} source address(es) exceed the {ports} ephemeral ports \
                 each has ({:?}): expect EADDRNOTAVAIL; use --source-ips with {} or more addresses",
                sources.max(1),
                self.ip_local_port_range.unwrap_or_default(),
                connections.div_ceil(ports)
            ));
        }
        // Both ends of a loopback connection are descriptors on this machine.
        if let Some(file_max) = self.file_max
            && connections * 2 > file_max
        {
            warnings.push(format!(
                "{connections} loopback connections need about {} descriptors system-wide, above \
                 fs.file-max {file_max}: expect ENFILE",
                connections * 2
            ));
        }
        if let Some(max) = self.nf_conntrack_max
            && connections > max
        {
            warnings.push(format!(
                "{connections} connections exceed nf_conntrack_max {max}: the firewall will drop new ones"
            ));
        }
        warnings
    }

    /// A few lines for the readable summary.
    pub fn summary(&self) -> String {
        let show = |v: Option<u64>| v.map_or("n/a".to_owned(), |v| v.to_string());
        format!(
            "kernel {}, {} CPUs, RLIMIT_NOFILE {}/{} (was {}/{}), fs.file-max {}, fs.nr_open {}\n\
             somaxconn {}, tcp_max_syn_backlog {}, ip_local_port_range {}, tcp_tw_reuse {}, nf_conntrack_max {}",
            self.kernel,
            self.cpus,
            self.nofile_soft,
            self.nofile_hard,
            self.nofile_soft_before,
            self.nofile_hard_before,
            show(self.file_max),
            show(self.nr_open),
            show(self.somaxconn),
            show(self.tcp_max_syn_backlog),
            self.ip_local_port_range.map_or("n/a".to_owned(), |(l, h)| format!("{l}-{h}")),
            show(self.tcp_tw_reuse),
            show(self.nf_conntrack_max),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_about_ports_and_descriptors() {
        let env = Environment {
            nofile_soft: 1024,
            nofile_hard: 20_000,
            ip_local_port_range: Some((32768, 60999)),
            ..Environment::default()
        };
        let w = env.warnings(50_000, 1, 1);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("EMFILE") && w[1].contains("EADDRNOTAVAIL"));
        assert!(env.warnings(500, 1, 1).is_empty());
    }
}
