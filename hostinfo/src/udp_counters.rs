//! The kernel's UDP counters for the whole host (or network namespace), from `/proc/net/snmp` (`Udp:`)
//! and `/proc/net/snmp6` (`Udp6…`), IPv4 and IPv6 added: how many datagrams it refused to deliver
//! because a receive buffer was full, and how many it could not send because a send buffer was.
//!
//! A rise of these over a run says where datagrams went: `RcvbufErrors` rising by as many as a run
//! lost means a receive buffer overflowed (at the client or at the server, if both are on this host;
//! the per-socket `drops` of [`udp_drops`](crate::udp_drops) tells which). Linux only: elsewhere
//! `None`.

/// Host-wide UDP counters, IPv4 and IPv6 summed (each only as far as its file exists).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpCounters {
    /// Datagrams to a port no socket was bound to (answered with ICMP port unreachable).
    pub no_ports: u64,
    /// Datagrams that could not be delivered to a socket, for any reason (`RcvbufErrors` included).
    pub in_errors: u64,
    /// Datagrams dropped because the receiving socket's buffer was full.
    pub rcvbuf_errors: u64,
    /// Datagrams not sent because the sending socket's buffer (or the device queue) was full.
    pub sndbuf_errors: u64,
}

impl UdpCounters {
    /// How much each counter rose from `before` to `self` (0 where it went down: the counters of a
    /// namespace that was recreated).
    pub fn since(&self, before: &UdpCounters) -> UdpCounters {
        UdpCounters {
            no_ports: self.no_ports.saturating_sub(before.no_ports),
            in_errors: self.in_errors.saturating_sub(before.in_errors),
            rcvbuf_errors: self.rcvbuf_errors.saturating_sub(before.rcvbuf_errors),
            sndbuf_errors: self.sndbuf_errors.saturating_sub(before.sndbuf_errors),
        }
    }
}

/// Reads [`UdpCounters`]; `None` where `/proc/net/snmp` or its `Udp:` fields are missing, and on every
/// OS but Linux.
pub fn udp_counters() -> Option<UdpCounters> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let mut counters = parse_snmp(&std::fs::read_to_string("/proc/net/snmp").ok()?)?;
    if let Ok(text) = std::fs::read_to_string("/proc/net/snmp6") {
        let six = parse_snmp6(&text);
        counters.no_ports += six.no_ports;
        counters.in_errors += six.in_errors;
        counters.rcvbuf_errors += six.rcvbuf_errors;
        counters.sndbuf_errors += six.sndbuf_errors;
    }
    Some(counters)
}

/// The `Udp:` pair of lines of `/proc/net/snmp` (names, then values); not `UdpLite:`.
fn parse_snmp(text: &str) -> Option<UdpCounters> {
    let mut lines = text.lines().filter(|l| l.starts_with("Udp: "));
    let (names, values) = (lines.next()?, lines.next()?);
    let pairs: Vec<(&str, u64)> = names
        .split_whitespace()
        .zip(values.split_whitespace())
        .filter_map(|(n, v)| Some((n, v.parse().ok()?)))
        .collect();
    let find = |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    Some(UdpCounters {
        no_ports: find("NoPorts")?,
        in_errors: find("InErrors")?,
        rcvbuf_errors: find("RcvbufErrors")?,
        sndbuf_errors: find("SndbufErrors")?,
    })
}

/// The `Udp6…` lines of `/proc/net/snmp6` (one `NAME VALUE` per line); a missing one reads as 0.
fn parse_snmp6(text: &str) -> UdpCounters {
    let find = |name: &str| {
        text.lines()
            .filter_map(|l| l.split_once(char::is_whitespace))
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0)
    };
    UdpCounters {
        no_ports: find("Udp6NoPorts"),
        in_errors: find("Udp6InErrors"),
        rcvbuf_errors: find("Udp6RcvbufErrors"),
        sndbuf_errors: find("Udp6SndbufErrors"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_udp_lines_and_not_udplite() {
        let text = "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors\n\
                    Udp: 4674 0 9816 14647 9815 3 0\n\
                    UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
                    UdpLite: 1 1 1 1 1 1\n";
        assert_eq!(
            parse_snmp(text),
            Some(UdpCounters { no_ports: 0, in_errors: 9816, rcvbuf_errors: 9815, sndbuf_errors: 3 })
        );
        assert_eq!(parse_snmp("Udp: InErrors\nUdp: x\n"), None);
        let six =
            "Udp6InDatagrams                 \t5\nUdp6NoPorts\t2\nUdp6InErrors \t7\nUdp6RcvbufErrors\t6\n";
        assert_eq!(
            parse_snmp6(six),
            UdpCounters { no_ports: 2, in_errors: 7, rcvbuf_errors: 6, sndbuf_errors: 0 }
        );
        let later = UdpCounters { no_ports: 3, in_errors: 10, rcvbuf_errors: 9, sndbuf_errors: 0 };
        let earlier = UdpCounters { no_ports: 1, in_errors: 4, rcvbuf_errors: 9, sndbuf_errors: 1 };
        assert_eq!(
            later.since(&earlier),
            UdpCounters { no_ports: 2, in_errors: 6, rcvbuf_errors: 0, sndbuf_errors: 0 }
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_host() {
        assert!(udp_counters().is_some());
    }
}
