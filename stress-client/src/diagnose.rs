//! Turns error counts into what they mean on this machine: which limit, its value, what to do.

use hostinfo::ListenCounters;
use nix::libc::{EADDRNOTAVAIL, EAGAIN, ECONNREFUSED, ECONNRESET, EMFILE, ENFILE, ENOBUFS, ENOMEM, EPIPE};

use crate::environment::Environment;
use crate::error_kind::{ErrorCounts, ErrorKind};

/// What the run knew when it ended, for explaining its errors.
#[derive(Debug)]
pub struct Context<'a> {
    /// The machine.
    pub env: &'a Environment,
    /// Source addresses used (0: the kernel chose one).
    pub sources: u64,
    /// Listen-queue counters at the start and end of the run.
    pub listen: (Option<ListenCounters>, Option<ListenCounters>),
}

impl Context<'_> {
    fn listen_rise(&self) -> Option<(u64, u64)> {
        let (Some(a), Some(b)) = self.listen else { return None };
        Some((b.overflows.saturating_sub(a.overflows), b.drops.saturating_sub(a.drops)))
    }

    /// One sentence per kind of error seen.
    pub fn explain(&self, errors: &ErrorCounts) -> Vec<String> {
        errors.iter().map(|(&kind, count)| format!("{kind} ×{count}: {}", self.meaning(kind))).collect()
    }

    /// What an error of `kind` says about the limits.
    pub fn meaning(&self, kind: ErrorKind) -> String {
        let env = self.env;
        match kind {
            ErrorKind::Errno(EMFILE) => format!(
                "this process ran out of descriptors: RLIMIT_NOFILE soft {} / hard {}; use --processes to \
                 spread connections over more processes",
                env.nofile_soft, env.nofile_hard
            ),
            ErrorKind::Errno(ENFILE) => format!(
                "the system ran out of descriptors: fs.file-max {}",
                env.file_max.map_or("unknown".to_owned(), |v| v.to_string())
            ),
            ErrorKind::Errno(EADDRNOTAVAIL) => format!(
                "ephemeral ports exhausted: ip_local_port_range {} gives {} ports per source address, and \
                 {} source address(es) were used; add more with --source-ips 127.0.0.1-127.0.0.N",
                env.ip_local_port_range.map_or("unknown".to_owned(), |(l, h)| format!("{l}-{h}")),
                env.ephemeral_ports().unwrap_or(0),
                self.sources.max(1)
            ),
            ErrorKind::Errno(ECONNREFUSED) => {
                "nothing listens on the target (or its accept queue is full and tcp_abort_on_overflow \
                 answers with a reset)"
                    .to_owned()
            }
            ErrorKind::TimedOut => match self.listen_rise() {
                Some((overflows, drops)) if overflows + drops > 0 => format!(
                    "SYNs went unanswered while ListenOverflows rose by {overflows} and ListenDrops by \
                     {drops}: the server's accept queue is full (somaxconn {})",
                    env.somaxconn.map_or("unknown".to_owned(), |v| v.to_string())
                ),
                _ => "SYNs went unanswered: the listen backlog is likely full, or the server is slow or \
                      unreachable"
                    .to_owned(),
            },
            ErrorKind::Errno(ECONNRESET | EPIPE) => "the server reset connections it had accepted".to_owned(),
            ErrorKind::ClosedByServer => "the server closed connections it had accepted".to_owned(),
            ErrorKind::Errno(ENOBUFS | ENOMEM) => {
                "the kernel ran out of socket memory (net.ipv4.tcp_mem)".to_owned()
            }
            ErrorKind::Errno(EAGAIN) => {
                "the kernel had no free local port or request slot at that moment".to_owned()
            }
            _ => "see errno(3)".to_owned(),
        }
    }

    /// For `--until-failure`: the limit behind the failure that stopped the ramp.
    pub fn limit(&self, stopped_by: ErrorKind, established: u64) -> String {
        let what = match stopped_by {
            ErrorKind::Errno(EMFILE) => format!("this process's RLIMIT_NOFILE ({})", self.env.nofile_soft),
            ErrorKind::Errno(ENFILE) => {
                format!("the system's fs.file-max ({})", self.env.file_max.unwrap_or(0))
            }
            ErrorKind::Errno(EADDRNOTAVAIL) => format!(
                "ephemeral ports ({} per source address × {} address(es))",
                self.env.ephemeral_ports().unwrap_or(0),
                self.sources.max(1)
            ),
            ErrorKind::TimedOut if self.listen_rise().is_some_and(|(o, d)| o + d > 0) => {
                "the server's accept queue (SYNs dropped, ListenOverflows rising)".to_owned()
            }
            ErrorKind::TimedOut => "connect timeouts (SYNs unanswered)".to_owned(),
            ErrorKind::ClosedByServer | ErrorKind::Errno(ECONNRESET) => {
                "the server closing connections".to_owned()
            }
            other => format!("{other} from the kernel"),
        };
        format!("{what}, after {established} connections: {}", self.meaning(stopped_by))
    }
}
