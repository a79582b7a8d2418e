//! The kernel's side of a `udp` run: where datagrams were dropped. The host's UDP counters
//! (`/proc/net/snmp`) are read before and after the run, and so are the drops of the server's socket
//! when the server runs on this host (its port's line of `/proc/net/udp`); each loop reads its own
//! sockets' drops as it ends. Together they turn "lost N" into "dropped by a full receive buffer at
//! the client: a; at the server: b". Linux only: elsewhere the report says these are not available.

use std::net::{SocketAddr, UdpSocket};

use serde::{Deserialize, Serialize};

use super::counts::Counts;

/// What the kernel says about a run's datagrams. Each figure is `None` where it is not known, and
/// `unavailable` says why.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Kernel {
    /// Datagrams dropped at the client's sockets because their receive buffers were full (the whole
    /// run, warm-up included).
    pub client_socket_drops: Option<u64>,
    /// Datagrams dropped at the server's socket (the target's port, when the server runs on this
    /// host) because its receive buffer was full, over the run.
    pub server_socket_drops: Option<u64>,
    /// The host's `Udp NoPorts` rise over the run: datagrams to a port no socket was bound to.
    #[serde(default)]
    pub host_no_ports: Option<u64>,
    /// The host's `Udp InErrors` rise over the run (every process's sockets).
    pub host_in_errors: Option<u64>,
    /// The host's `Udp RcvbufErrors` rise over the run.
    pub host_rcvbuf_errors: Option<u64>,
    /// The host's `Udp SndbufErrors` rise over the run.
    pub host_sndbuf_errors: Option<u64>,
    /// What could not be read, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
}

/// The readings taken before a run, by the process that reports it (not by its children, which would
/// count the host's and the server's drops once each).
#[derive(Debug)]
pub struct Before {
    host: Option<hostinfo::UdpCounters>,
    /// The server's port, and its drops, when it runs on this host.
    server: Option<(u16, u64)>,
    server_unknown: Option<String>,
}

impl Before {
    /// Reads the host's counters, and the server socket's drops if `target` is on this host.
    pub fn read(target: SocketAddr) -> Before {
        let (server, server_unknown) = if !is_local(target) {
            (None, Some(format!("the server's socket drops: {} is not on this host", target.ip())))
        } else {
            match hostinfo::udp_drops(target.port()) {
                Ok(drops) => (Some((target.port(), drops)), None),
                Err(e) => (None, Some(e.to_string())),
            }
        };
        Before { host: hostinfo::udp_counters(), server, server_unknown }
    }

    /// The rises since the readings, with the clients' own drops (`client`, from the loops).
    pub fn after(&self, client: Result<u64, String>) -> Kernel {
        let mut kernel = Kernel::default();
        match client {
            Ok(n) => kernel.client_socket_drops = Some(n),
            Err(e) => kernel.unavailable.push(format!("the client sockets' drops: {e}")),
        }
        if let Some((port, before)) = self.server {
            match hostinfo::udp_drops(port) {
                Ok(after) => kernel.server_socket_drops = Some(after.saturating_sub(before)),
                Err(e) => kernel.unavailable.push(e.to_string()),
            }
        }
        kernel.unavailable.extend(self.server_unknown.clone());
        match (self.host, hostinfo::udp_counters()) {
            (Some(before), Some(after)) => {
                let rise = after.since(&before);
                kernel.host_no_ports = Some(rise.no_ports);
                kernel.host_in_errors = Some(rise.in_errors);
                kernel.host_rcvbuf_errors = Some(rise.rcvbuf_errors);
                kernel.host_sndbuf_errors = Some(rise.sndbuf_errors);
            }
            _ => kernel
                .unavailable
                .push("the host's UDP counters (/proc/net/snmp): not available on this OS".into()),
        }
        kernel
    }
}

/// Whether `addr`'s IP is one of this host's: it can be bound.
fn is_local(addr: SocketAddr) -> bool {
    addr.ip().is_loopback() || UdpSocket::bind(SocketAddr::new(addr.ip(), 0)).is_ok()
}

impl Kernel {
    /// Merges the kernel's figures of several reports: the clients' own drops add up (each counted
    /// its own sockets); the server's and the host's are the same counters read by each client when
    /// they share a host, so the largest reading is kept.
    pub fn merge(parts: &[&Kernel]) -> Kernel {
        let sum = |f: fn(&Kernel) -> Option<u64>| parts.iter().map(|k| f(k)).sum::<Option<u64>>();
        let max = |f: fn(&Kernel) -> Option<u64>| parts.iter().filter_map(|k| f(k)).max();
        let mut unavailable: Vec<String> = Vec::new();
        for line in parts.iter().flat_map(|k| &k.unavailable) {
            if !unavailable.contains(line) {
                unavailable.push(line.clone());
            }
        }
        Kernel {
            client_socket_drops: sum(|k| k.client_socket_drops),
            server_socket_drops: max(|k| k.server_socket_drops),
            host_no_ports: max(|k| k.host_no_ports),
            host_in_errors: max(|k| k.host_in_errors),
            host_rcvbuf_errors: max(|k| k.host_rcvbuf_errors),
            host_sndbuf_errors: max(|k| k.host_sndbuf_errors),
            unavailable,
        }
    }

    /// Says where the lost datagrams went, as far as the kernel's counters tell.
    pub fn explain(&self, c: &Counts) -> Vec<String> {
        let mut lines = Vec::new();
        let show = |v: Option<u64>| v.map_or("unknown".to_owned(), |v| v.to_string());
        if c.lost > 0 {
            let mut line = format!(
                "{} of {} datagrams lost ({:.3}%): dropped by a full receive buffer at the client's sockets: {}; at \
                 the server's socket: {}; the host's RcvbufErrors rose by {}, InErrors by {}, SndbufErrors by {}",
                c.lost,
                c.sent,
                100.0 * c.lost as f64 / c.sent.max(1) as f64,
                show(self.client_socket_drops),
                show(self.server_socket_drops),
                show(self.host_rcvbuf_errors),
                show(self.host_in_errors),
                show(self.host_sndbuf_errors),
            );
            let seen = self.client_socket_drops.unwrap_or(0) + self.server_socket_drops.unwrap_or(0);
            if let (Some(_), Some(_)) = (self.client_socket_drops, self.server_socket_drops)
                && seen < c.lost
            {
                line.push_str(&format!(
                    "; {} not dropped at either socket's buffer: by the server (a reply it could not send), on the \
                     way, or back only corrupted ({})",
                    c.lost - seen,
                    c.corrupted
                ));
            }
            if let Some(n) = self.host_no_ports.filter(|n| *n > 0) {
                line.push_str(&format!(
                    "; the host's NoPorts rose by {n}: datagrams to a port no socket listened on (is the server \
                     serving UDP?)"
                ));
            }
            lines.push(line);
        } else if self.client_socket_drops.unwrap_or(0) + self.server_socket_drops.unwrap_or(0) > 0 {
            lines.push(format!(
                "no measured datagram was lost, but the kernel dropped {} at the client's sockets and {} at the \
                 server's (warm-up datagrams, or copies)",
                show(self.client_socket_drops),
                show(self.server_socket_drops)
            ));
        }
        if c.send_refused > 0 {
            lines.push(format!(
                "the kernel refused {} sends at the client (EAGAIN/ENOBUFS: its send buffer or the device queue \
                 was full); each was tried again",
                c.send_refused
            ));
        }
        lines.extend(self.unavailable.iter().map(|u| format!("not known: {u}")));
        lines
    }
}
