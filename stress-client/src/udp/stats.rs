//! The `udp` section of a report: the counts of [`counts`](super::counts), the jitter, the kernel's
//! drops; how reports with one merge, the books they must keep, and their readable summary. The rest
//! of a `udp` report is the common one: `messages` (= `received`), `latency_us`, `bytes_*` (datagrams
//! × size; the lost ones are `bytes_lost`, counted as losses not listed), the client's cost, the
//! environment.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::counts::Counts;
use super::kernel::Kernel;
use crate::report::Report;

/// What a `udp` run adds to a report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UdpStats {
    /// Client sockets (each its own source port).
    pub sockets: u64,
    /// Closed loop: datagrams in flight per socket; open loop (`--rate`): none.
    pub window: Option<u64>,
    /// `--loss-timeout`, seconds.
    pub loss_timeout_s: f64,
    /// Loss, duplication and reordering did not fail the run (`--allow-loss`).
    pub allow_loss: bool,
    /// Every datagram sent in the measured interval, accounted for.
    #[serde(flatten)]
    pub counts: Counts,
    /// RFC 3550 interarrival jitter, µs: the mean over the sockets that received two datagrams or
    /// more of each one's final estimate (as iperf3 reports several streams).
    pub jitter_us: f64,
    /// The sum behind `jitter_us`, so that merged reports average exactly.
    pub jitter_sum_us: f64,
    /// The sockets behind `jitter_us`.
    pub jitter_sockets: u64,
    /// Where the kernel dropped datagrams.
    pub kernel: Kernel,
}

impl UdpStats {
    /// The `udp` sections of `reports` merged: counts and jitter sums add up, the kernel's figures as
    /// [`Kernel::merge`] says; `None` when none of them has one.
    pub fn merge(reports: &[Report]) -> Option<UdpStats> {
        let parts: Vec<&UdpStats> = reports.iter().filter_map(|r| r.udp.as_ref()).collect();
        let first = parts.first()?;
        let mut merged = UdpStats {
            sockets: parts.iter().map(|u| u.sockets).sum(),
            window: first.window,
            loss_timeout_s: first.loss_timeout_s,
            allow_loss: parts.iter().all(|u| u.allow_loss),
            jitter_sum_us: parts.iter().fold(0.0, |sum, u| sum + u.jitter_sum_us),
            jitter_sockets: parts.iter().map(|u| u.jitter_sockets).sum(),
            kernel: Kernel::merge(&parts.iter().map(|u| &u.kernel).collect::<Vec<_>>()),
            ..UdpStats::default()
        };
        for u in &parts {
            merged.counts.add(&u.counts);
        }
        merged.jitter_us = jitter(merged.jitter_sum_us, merged.jitter_sockets);
        Some(merged)
    }

    /// The invariants of a `udp` report (see [`books`](crate::books)), one sentence for each broken.
    pub fn books(&self, report: &Report) -> Vec<String> {
        let c = &self.counts;
        let mut broken = Vec::new();
        if c.sent != c.received + c.lost {
            broken.push(format!(
                "udp: received + lost = {} + {} = {}, but sent = {}",
                c.received,
                c.lost,
                c.received + c.lost,
                c.sent
            ));
        }
        if c.late > c.lost {
            broken.push(format!("udp: late = {} is more than lost = {}", c.late, c.lost));
        }
        if c.reordered > c.received {
            broken.push(format!("udp: reordered = {} is more than received = {}", c.reordered, c.received));
        }
        if report.messages != c.received {
            broken.push(format!("udp: messages = {}, but received = {}", report.messages, c.received));
        }
        broken
    }

    /// The readable summary of a `udp` report.
    pub fn summary(&self, r: &Report) -> String {
        let c = &self.counts;
        let mut s = String::new();
        let mode = match (self.window, r.rate_requested) {
            (_, Some(rate)) => format!("open loop at {rate:.0} datagrams/s"),
            (Some(w), None) => format!("closed loop, {w} in flight per socket"),
            (None, None) => "closed loop".to_owned(),
        };
        let _ = writeln!(
            s,
            "udp against {}{}: {} sockets, {mode}, {} B datagrams, loss timeout {} s",
            r.target,
            if r.target_addr.is_empty() || r.target_addr == r.target {
                String::new()
            } else {
                format!(" at {}", r.target_addr)
            },
            self.sockets,
            r.message_size,
            self.loss_timeout_s
        );
        let _ = writeln!(
            s,
            "datagrams: {} sent in {:.2} s, {} received ({:.0}/s), {} lost ({} of them late); {} duplicated, {} \
             reordered, {} corrupted, {} too old to tell",
            c.sent,
            r.duration_s,
            c.received,
            r.msgs_per_sec,
            c.lost,
            c.late,
            c.duplicated,
            c.reordered,
            c.corrupted,
            c.too_old
        );
        let l = &r.latency_us;
        let _ = writeln!(
            s,
            "latency µs: p50 {} p90 {} p99 {} p99.9 {} max {} mean {:.1} ({} samples); jitter {:.1} µs",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean, l.count, self.jitter_us
        );
        let k = &self.kernel;
        let show = |v: Option<u64>| v.map_or("unknown".to_owned(), |v| v.to_string());
        let _ = writeln!(
            s,
            "kernel: drops at the client's sockets {}, at the server's socket {}; host RcvbufErrors +{}, InErrors \
             +{}, SndbufErrors +{}; sends refused {}",
            show(k.client_socket_drops),
            show(k.server_socket_drops),
            show(k.host_rcvbuf_errors),
            show(k.host_in_errors),
            show(k.host_sndbuf_errors),
            c.send_refused
        );
        if !r.errors.is_empty() {
            let errors: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(s, "send errors: {}", errors.join(", "));
        }
        if let Some(failure) = &r.failure {
            let _ = writeln!(s, "first corrupted: {failure}");
        }
        let cl = &r.client;
        let _ = writeln!(
            s,
            "client: {:.2} CPU s ({:.2} user, {:.2} sys), {:.2} CPU µs/datagram, {} threads, {} processes",
            cl.cpu_s, cl.user_s, cl.sys_s, cl.cpu_us_per_msg, cl.threads, cl.processes
        );
        for line in &r.diagnosis {
            let _ = writeln!(s, "note: {line}");
        }
        for line in &r.warnings {
            let _ = writeln!(s, "warning: {line}");
        }
        let _ = write!(s, "environment: {}", r.environment.summary());
        s
    }
}

/// The mean of `sockets` jitters summing to `sum`, to 0.1 µs (0 for none).
pub fn jitter(sum: f64, sockets: u64) -> f64 {
    if sockets == 0 { 0.0 } else { (sum / sockets as f64 * 10.0).round() / 10.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(counts: Counts, jitter_sum_us: f64, client_drops: u64, server_drops: u64) -> Report {
        Report {
            command: "udp".into(),
            messages: counts.received,
            udp: Some(UdpStats {
                counts,
                jitter_sum_us,
                jitter_sockets: 1,
                kernel: Kernel {
                    client_socket_drops: Some(client_drops),
                    server_socket_drops: Some(server_drops),
                    ..Kernel::default()
                },
                ..UdpStats::default()
            }),
            ..Report::default()
        }
    }

    #[test]
    fn the_books_name_each_broken_invariant() {
        let good = Counts { sent: 10, received: 7, lost: 3, late: 1, reordered: 2, ..Counts::default() };
        let r = report(good, 0.0, 0, 0);
        assert_eq!(r.udp.as_ref().unwrap().books(&r), Vec::<String>::new());
        let cases: [(Counts, &str); 3] = [
            (Counts { received: 8, ..good }, "received + lost = 8 + 3 = 11, but sent = 10"),
            (Counts { late: 4, ..good }, "late = 4 is more than lost = 3"),
            (Counts { reordered: 8, ..good }, "reordered = 8 is more than received = 7"),
        ];
        for (counts, says) in cases {
            let mut r = report(counts, 0.0, 0, 0);
            r.messages = good.received;
            let broken = r.udp.as_ref().unwrap().books(&r);
            assert!(broken.iter().any(|b| b.contains(says)), "{says:?} not in {broken:?}");
        }
    }

    #[test]
    fn a_merge_adds_counts_and_client_drops_and_keeps_the_largest_server_reading() {
        let a = Counts { sent: 10, received: 9, lost: 1, duplicated: 2, ..Counts::default() };
        let b = Counts { sent: 5, received: 5, reordered: 1, ..Counts::default() };
        let merged = UdpStats::merge(&[report(a, 3.0, 1, 4), report(b, 5.0, 2, 6)]).unwrap();
        assert_eq!(
            merged.counts,
            Counts { sent: 15, received: 14, lost: 1, duplicated: 2, reordered: 1, ..a }
        );
        assert_eq!((merged.jitter_sum_us, merged.jitter_sockets, merged.jitter_us), (8.0, 2, 4.0));
        assert_eq!(merged.kernel.client_socket_drops, Some(3));
        assert_eq!(merged.kernel.server_socket_drops, Some(6));
        assert_eq!(UdpStats::merge(&[Report::default()]), None);
    }
}
