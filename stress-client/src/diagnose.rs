//! Turns error counts into what they mean on this machine: which limit, its value, what to do.

use std::collections::BTreeMap;

use hostinfo::ListenCounters;

use crate::environment::Environment;

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
    pub fn explain(&self, errors: &BTreeMap<String, u64>) -> Vec<String> {
        errors.iter().map(|(name, count)| format!("{name} ×{count}: {}", self.meaning(name))).collect()
    }

    /// What the error named `name` says about the limits.
    pub fn meaning(&self, name: &str) -> String {
        let env = self.env;
        match name {
            "EMFILE" => format!(
                "this process ran out of descriptors: RLIMIT_NOFILE soft {} / hard {}; use --processes to \
                 spread connections over more processes",
                env.nofile_soft, env.nofile_hard
            ),
            "ENFILE" => format!(
                "the system ran out of descriptors: fs.file-max {}",
                env.file_max.map_or("unknown".to_owned(), |v| v.to_string())
            ),
            "EADDRNOTAVAIL" => format!(
                "ephemeral ports exhausted: ip_local_port_range {} gives {} ports per source address, and \
                 {} source address(es) were used; add more with --source-ips 127.0.0.1-127.0.0.N",
                env.ip_local_port_range.map_or("unknown".to_owned(), |(l, h)| format!("{l}-{h}")),
                env.ephemeral_ports().unwrap_or(0),
                self.sources.max(1)
            ),
            "ECONNREFUSED" => "nothing listens on the target (or its accept queue is full and \
                               tcp_abort_on_overflow answers with a reset)"
                .to_owned(),
            "ETIMEDOUT" => match self.listen_rise() {
                Some((overflows, drops)) if overflows + drops > 0 => format!(
                    "SYNs went unanswered while ListenOverflows rose by {overflows} and ListenDrops by \
                     {drops}: the server's accept queue is full (somaxconn {})",
                    env.somaxconn.map_or("unknown".to_owned(), |v| v.to_string())
                ),
                _ => "SYNs went unanswered: the listen backlog is likely full, or the server is slow or \
                      unreachable"
                    .to_owned(),
            },
            "ECONNRESET" | "EPIPE" => "the server reset connections it had accepted".to_owned(),
            "closed_by_server" => "the server closed connections it had accepted".to_owned(),
            "ENOBUFS" | "ENOMEM" => "the kernel ran out of socket memory (net.ipv4.tcp_mem)".to_owned(),
            "EAGAIN" => "the kernel had no free local port or request slot at that moment".to_owned(),
            _ => "see errno(3)".to_owned(),
        }
    }

    /// For `--until-failure`: the limit behind the failure that stopped the ramp.
    pub fn limit(&self, stopped_by: &str, established: u64) -> String {
        let what = match stopped_by {
            "EMFILE" => format!("this process's RLIMIT_NOFILE ({})", self.env.nofile_soft),
            "ENFILE" => format!("the system's fs.file-max ({})", self.env.file_max.unwrap_or(0)),
            "EADDRNOTAVAIL" => format!(
                "ephemeral ports ({} per source address × {} address(es))",
                self.env.ephemeral_ports().unwrap_or(0),
                self.sources.max(1)
            ),
            "ETIMEDOUT" if self.listen_rise().is_some_and(|(o, d)| o + d > 0) => {
                "the server's accept queue (SYNs dropped, ListenOverflows rising)".to_owned()
            }
            "ETIMEDOUT" => "connect timeouts (SYNs unanswered)".to_owned(),
            "closed_by_server" | "ECONNRESET" => "the server closing connections".to_owned(),
            other => format!("{other} from the kernel"),
        };
        format!("{what}, after {established} connections: {}", self.meaning(stopped_by))
    }
}
