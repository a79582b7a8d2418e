//! Turns error counts into what they mean on this machine: which limit, its value, what to do.

use hostinfo::ListenCounters;
use nix::libc::{EADDRNOTAVAIL, EAGAIN, ECONNREFUSED, ECONNRESET, EMFILE, ENFILE, ENOBUFS, ENOMEM, EPIPE};

use crate::environment::Environment;
use crate::error_kind::{ErrorCounts, ErrorKind};
use crate::report::Report;
use crate::target_process::TargetServer;

/// What the run knew when it ended, for explaining its errors.
#[derive(Debug)]
pub struct Context<'a> {
    /// The machine.
    pub env: &'a Environment,
    /// Source addresses used (0: the kernel chose one).
    pub sources: u64,
    /// Listen-queue counters at the start and end of the run.
    pub listen: (Option<ListenCounters>, Option<ListenCounters>),
    /// The target's server runs on this machine, so the listen-queue counters above are its own.
    pub server_here: bool,
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
                // The counters are the server's own and stayed still. A full accept queue and a full SYN
                // queue both raise them, so blaming the backlog would send the reader the wrong way.
                Some(_) if self.server_here => {
                    "SYNs went unanswered, but ListenOverflows and ListenDrops did \
                     not rise on this machine, where the server runs: its accept queue was never full. The \
                     handshakes took longer than --connect-timeout (a machine too busy to answer in time), \
                     or the SYNs were lost on the way (a queue or a route), not at the listener"
                        .to_owned()
                }
                _ => "SYNs went unanswered: the server's accept queue may be full (its host's \
                      ListenOverflows would say), or the server is slow or unreachable"
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

/// When the server runs on this machine and the run met failures a server can cause (connect timeouts
/// and refusals, closes and resets): what its own limits say about them — whether it ran out of
/// descriptors, how long its accept queue grew — or that they could not be read.
pub fn server_side(report: &Report, server: &TargetServer) -> Option<String> {
    let server_kinds = [
        ErrorKind::TimedOut,
        ErrorKind::Errno(ECONNREFUSED),
        ErrorKind::Errno(ECONNRESET),
        ErrorKind::ClosedByServer,
    ];
    if !report.errors.keys().any(|k| server_kinds.contains(k)) && report.closed_by_server == 0 {
        return None;
    }
    if !server.found() {
        return Some(format!(
            "the target runs on this machine, but its server's own limits (RLIMIT_NOFILE, accept queue) are \
             unknown: {}",
            server.unknown.as_deref().unwrap_or("it could not be found")
        ));
    }
    let mut line = format!("the server ({}) runs here", server.who());
    match (server.nofile_soft, server.fds) {
        (Some(soft), Some(fds)) if server.ran_out_of_descriptors() => line.push_str(&format!(
            ": it held {fds} descriptors against its RLIMIT_NOFILE soft {soft}, so it ran out of descriptors \
             (the limit was the server's, not this client's)"
        )),
        (Some(soft), Some(fds)) => line
            .push_str(&format!(": it held at most {fds} descriptors, below its RLIMIT_NOFILE soft {soft}")),
        (Some(soft), None) => line.push_str(&format!(": its RLIMIT_NOFILE soft is {soft}")),
        (None, _) => line.push_str(": its RLIMIT_NOFILE is unknown"),
    }
    if let Some(queued) = server.accept_queue.filter(|&q| q > 0) {
        line.push_str(&format!(
            "; its accept queue held up to {queued} connections it had not accepted (somaxconn {})",
            report.environment.somaxconn.map_or("unknown".to_owned(), |v| v.to_string())
        ));
    }
    Some(line)
}

/// For `--until-failure`, when the server runs here and ran out of descriptors: that limit, the first
/// one met, in front of what the client saw (`limit`, the failure that stopped the ramp).
pub fn server_limit(limit: &str, server: &TargetServer) -> Option<String> {
    server.ran_out_of_descriptors().then(|| {
        format!(
            "the server's RLIMIT_NOFILE (soft {}, {}), which it reached, and then {limit}",
            server.nofile_soft.unwrap_or(0),
            server.who()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(overflows: u64, drops: u64) -> Option<ListenCounters> {
        Some(ListenCounters { overflows, drops })
    }

    #[test]
    fn connect_timeouts_blame_the_accept_queue_only_when_its_counters_rose_or_are_unknown() {
        let env = Environment::capture();
        let context = |listen, server_here| Context { env: &env, sources: 0, listen, server_here };
        let timeouts = |c: &Context<'_>| c.meaning(ErrorKind::TimedOut);
        // Overflows counted: the queue was full.
        let full = context((counters(5, 5), counters(9, 12)), true);
        assert!(
            timeouts(&full).contains("ListenOverflows rose by 4 and ListenDrops by 7"),
            "{}",
            timeouts(&full)
        );
        // The server's own counters stood still: not the queue.
        let still = context((counters(5, 5), counters(5, 5)), true);
        assert!(timeouts(&still).contains("its accept queue was never full"), "{}", timeouts(&still));
        assert!(!timeouts(&still).contains("may be full"), "{}", timeouts(&still));
        // Another host's counters, or none: the queue stays a suspect.
        for unknown in [context((counters(5, 5), counters(5, 5)), false), context((None, None), true)] {
            assert!(timeouts(&unknown).contains("may be full"), "{}", timeouts(&unknown));
        }
    }
}
