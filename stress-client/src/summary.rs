//! The readable summary of a [`Report`]: one line per aspect, notes and warnings last.

use std::fmt::Write as _;

use crate::report::{Latency, Report};
use crate::start_at;

impl Report {
    /// The readable summary.
    pub fn summary(&self) -> String {
        if let Some(udp) = &self.udp {
            return udp.summary(self);
        }
        let mut s = String::new();
        self.write_connections(&mut s);
        if self.command != "connect" {
            self.write_messages(&mut s);
        }
        let _ = writeln!(s, "connect µs: {}", show_latency(&self.connect_us));
        self.write_failures(&mut s);
        self.write_client(&mut s);
        self.write_server(&mut s);
        self.write_notes(&mut s);
        let _ = write!(s, "environment: {}", self.environment.summary());
        s
    }

    fn write_connections(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "{} against {}{}; client model: {}",
            self.command,
            self.target,
            self.resolved(),
            self.model
        );
        let _ = writeln!(
            s,
            "connections: {} requested, {} established, peak {} at once; {} closed by the client, {} by the \
             server, {} open at the end",
            self.connections_requested,
            self.established,
            self.peak_concurrent,
            self.closed_by_client,
            self.closed_by_server,
            self.open_at_end
        );
        self.write_interval(s);
    }

    /// When and where the statistics were measured: the line that says whether reports merged from
    /// several hosts describe one moment.
    fn write_interval(&self, s: &mut String) {
        let hosts = match self.host.split(',').count() {
            _ if self.host.is_empty() => String::new(),
            1 => format!(" on host {}", self.host),
            _ => format!(" on hosts {}", self.host),
        };
        match (self.interval_start, self.interval_end) {
            (Some(Some(start)), Some(Some(end))) => {
                let _ = writeln!(
                    s,
                    "measured: {} to {} ({:.3} s){hosts}",
                    start_at::rfc3339_of(start),
                    start_at::rfc3339_of(end),
                    end - start
                );
            }
            (Some(None), _) | (_, Some(None)) => {
                let _ = writeln!(s, "measured: no moment common to the reports merged{hosts}");
            }
            _ if !hosts.is_empty() => {
                let _ = writeln!(s, "measured{hosts}");
            }
            _ => {}
        }
    }

    /// " at ADDRESS" when the target was a name.
    fn resolved(&self) -> String {
        if self.target_addr.is_empty() || self.target_addr == self.target {
            String::new()
        } else {
            format!(" at {}", self.target_addr)
        }
    }

    fn write_messages(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "messages: {} in {:.2} s = {:.0} msg/s, {:.2} MB/s each way ({} B sent, {} B received)",
            self.messages,
            self.duration_s,
            self.msgs_per_sec,
            self.mb_per_sec,
            self.bytes_sent,
            self.bytes_received
        );
        if self.bytes_in_flight_at_end + self.bytes_lost > 0 {
            let _ = writeln!(
                s,
                "bytes not echoed: {} in flight when the run ended, {} lost",
                self.bytes_in_flight_at_end, self.bytes_lost
            );
        }
        for loss in &self.losses {
            let _ = writeln!(s, "lost: {loss}");
        }
        if self.losses_not_listed > 0 {
            let _ = writeln!(s, "lost: {} more losses not listed", self.losses_not_listed);
        }
        if let Some(rate) = self.rate_requested {
            let _ = writeln!(s, "rate: {rate:.0} msg/s asked, {:.0} achieved", self.msgs_per_sec);
        }
        if self.command == "churn" {
            let _ = writeln!(s, "churn: {:.0} connections/s (connect, echo, close)", self.conns_per_sec);
        }
        let _ = writeln!(s, "latency µs: {}", show_latency(&self.latency_us));
    }

    fn write_failures(&self, s: &mut String) {
        let errors: Vec<String> = self.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ =
            writeln!(s, "errors: {}", if errors.is_empty() { "none".to_owned() } else { errors.join(", ") });
        let _ = writeln!(s, "verify failures: {}", self.verify_failures);
        if let Some(failure) = &self.failure {
            let _ = writeln!(s, "first failure: {failure}");
        }
    }

    fn write_client(&self, s: &mut String) {
        let c = &self.client;
        // `connect` sends no messages: it has no CPU per message to show.
        let per_message = if self.command == "connect" {
            String::new()
        } else {
            format!(", {:.2} CPU µs/msg", c.cpu_us_per_msg)
        };
        let _ = writeln!(
            s,
            "client: {:.2} CPU s ({:.2} user, {:.2} sys){per_message}, peak RSS {} KiB, {} threads, {} \
             processes, context switches {} voluntary / {} involuntary",
            c.cpu_s,
            c.user_s,
            c.sys_s,
            c.peak_rss_kib,
            c.threads,
            c.processes,
            c.voluntary_switches,
            c.involuntary_switches
        );
    }

    fn write_server(&self, s: &mut String) {
        let Some(server) = &self.server else { return };
        if !server.found() {
            let why = server.unknown.as_deref().unwrap_or("not found");
            let _ = writeln!(s, "server: on this machine, but unknown: {why}");
            return;
        }
        let show = |v: Option<u64>| v.map_or("unknown".to_owned(), |v| v.to_string());
        let _ = writeln!(
            s,
            "server: {}: RSS {} KiB, {} threads, {} descriptors at the busiest moment of the run; \
             RLIMIT_NOFILE {}/{}",
            server.who(),
            show(server.rss_kib),
            show(server.threads),
            show(server.fds),
            show(server.nofile_soft),
            show(server.nofile_hard)
        );
    }

    fn write_notes(&self, s: &mut String) {
        let states: Vec<String> = self.sockets.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(s, "sockets on the target port: {}", states.join(", "));
        if let Some(limit) = &self.limit {
            let _ = writeln!(s, "limit reached: {limit}");
        }
        for line in &self.diagnosis {
            let _ = writeln!(s, "note: {line}");
        }
        for line in &self.warnings {
            let _ = writeln!(s, "warning: {line}");
        }
    }
}

fn show_latency(l: &Latency) -> String {
    format!(
        "p50 {} p90 {} p99 {} p99.9 {} max {} mean {:.1} ({} samples)",
        l.p50, l.p90, l.p99, l.p999, l.max, l.mean, l.count
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured_line(report: &Report) -> Option<String> {
        report.summary().lines().find(|l| l.starts_with("measured")).map(str::to_owned)
    }

    #[test]
    fn the_summary_says_when_and_where_it_measured() {
        let mut r = Report {
            command: "echo".into(),
            host: "load-0".into(),
            interval_start: Some(Some(1_796_187_600.0)),
            interval_end: Some(Some(1_796_187_610.25)),
            ..Report::default()
        };
        assert_eq!(
            measured_line(&r).as_deref(),
            Some("measured: 2026-12-02T05:00:00.000Z to 2026-12-02T05:00:10.250Z (10.250 s) on host load-0")
        );
        r.host = "load-0,load-1".into();
        assert!(measured_line(&r).unwrap().ends_with(" on hosts load-0,load-1"));
        // A merge of reports that have no moment in common.
        (r.interval_start, r.interval_end) = (Some(None), Some(None));
        assert_eq!(
            measured_line(&r).as_deref(),
            Some("measured: no moment common to the reports merged on hosts load-0,load-1")
        );
        // A report written before reports had intervals or hosts says nothing of them.
        (r.interval_start, r.interval_end, r.host) = (None, None, String::new());
        assert_eq!(measured_line(&r), None);
    }
}
