//! The readable summary of a [`Report`]: one line per aspect, notes and warnings last.

use std::fmt::Write as _;

use crate::report::{Latency, Report};

impl Report {
    /// The readable summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        self.write_connections(&mut s);
        if self.command != "connect" {
            self.write_messages(&mut s);
        }
        let _ = writeln!(s, "connect µs: {}", show_latency(&self.connect_us));
        self.write_failures(&mut s);
        self.write_client(&mut s);
        self.write_notes(&mut s);
        let _ = write!(s, "environment: {}", self.environment.summary());
        s
    }

    fn write_connections(&self, s: &mut String) {
        let _ =
            writeln!(s, "{} against {}{} ({} model)", self.command, self.target, self.resolved(), self.model);
        let _ = writeln!(
            s,
            "connections: {} requested, {} established, peak {} at once, {} closed by the server",
            self.connections_requested, self.established, self.peak_concurrent, self.closed_by_server
        );
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
        let _ = writeln!(
            s,
            "client: {:.2} CPU s ({:.2} user, {:.2} sys), {:.2} CPU µs/msg, peak RSS {} KiB, {} threads, \
             {} processes, context switches {} voluntary / {} involuntary",
            c.cpu_s,
            c.user_s,
            c.sys_s,
            c.cpu_us_per_msg,
            c.peak_rss_kib,
            c.threads,
            c.processes,
            c.voluntary_switches,
            c.involuntary_switches
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
