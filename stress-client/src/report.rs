//! The report of an `echo`, `connect` or `churn` run: one JSON object (its schema is the README's "JSON
//! reports" section), and the merge of several reports into one. The readable summary is in `summary`.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::environment::Environment;
use crate::error_kind::ErrorCounts;
use crate::loss::{Loss, Losses};
use crate::tally::{self, Tally};
use crate::target_process::TargetServer;
use crate::usage::Usage;

/// Latency percentiles in µs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    /// Percentiles of `h`.
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
        }
    }
}

/// What the run cost the client.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Client {
    /// User plus system CPU seconds.
    pub cpu_s: f64,
    /// User CPU seconds.
    pub user_s: f64,
    /// System CPU seconds.
    pub sys_s: f64,
    /// Peak resident set, KiB (summed over processes).
    pub peak_rss_kib: u64,
    /// Most threads the client had at once (summed over processes).
    pub threads: u64,
    /// Processes.
    pub processes: u64,
    /// Voluntary context switches.
    pub voluntary_switches: u64,
    /// Involuntary context switches.
    pub involuntary_switches: u64,
    /// CPU µs per echoed message (0 when none).
    pub cpu_us_per_msg: f64,
}

impl Client {
    /// From a usage difference, the thread peak and the messages echoed.
    pub fn of(usage: &Usage, threads: u64, messages: u64) -> Client {
        let mut client = Client {
            cpu_s: usage.user_s + usage.sys_s,
            user_s: usage.user_s,
            sys_s: usage.sys_s,
            peak_rss_kib: usage.peak_rss_kib,
            threads,
            processes: 1,
            voluntary_switches: usage.voluntary,
            involuntary_switches: usage.involuntary,
            cpu_us_per_msg: 0.0,
        };
        client.per_message(messages);
        client
    }

    fn per_message(&mut self, messages: u64) {
        self.cpu_us_per_msg =
            if messages == 0 { 0.0 } else { (self.cpu_s * 1e6 / messages as f64 * 100.0).round() / 100.0 };
    }
}

/// The serialized histograms behind the percentiles, so that reports can be merged exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Histograms {
    /// `latency_us`'s histogram (hex of HdrHistogram V2 + deflate).
    pub latency: String,
    /// `connect_us`'s histogram.
    pub connect: String,
}

/// One run's results.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `echo`, `connect` or `churn`.
    pub command: String,
    /// The server, as `--target` gave it.
    pub target: String,
    /// The address connected to: `target` itself, or of the addresses its name resolved to, the first
    /// that accepted a connection. Reports written before it existed have none (empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_addr: String,
    /// `reactor` or `blocking`.
    pub model: String,
    /// The name of the host the client ran on (of a merge: the distinct names, comma-separated).
    /// Reports written before it existed have none (empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// Connections asked for.
    pub connections_requested: u64,
    /// Bytes per message (0 for `connect`, which sends none).
    #[serde(default)]
    pub message_size: u64,
    /// Connections that completed their handshake.
    pub established: u64,
    /// Most connections open at once (summed over processes).
    pub peak_concurrent: u64,
    /// Messages echoed and verified, warm-up excluded.
    pub messages: u64,
    /// Echoes that did not match what was sent (mismatch, loss, reorder).
    pub verify_failures: u64,
    /// Bytes sent over the whole run (warm-up included).
    pub bytes_sent: u64,
    /// Bytes echoed and verified over the whole run (warm-up included).
    pub bytes_received: u64,
    /// Bytes sent on connections still open when the run ended, not echoed by then (after the drain).
    #[serde(default)]
    pub bytes_in_flight_at_end: u64,
    /// Bytes sent on connections that ended before echoing them; `losses` names them.
    #[serde(default)]
    pub bytes_lost: u64,
    /// The first losses: connection, offset, bytes and why.
    #[serde(default)]
    pub losses: Vec<Loss>,
    /// Losses past those listed.
    #[serde(default)]
    pub losses_not_listed: u64,
    /// Seconds measured (warm-up excluded).
    pub duration_s: f64,
    /// Where the measured interval began, in Unix seconds (to the µs); of a merge, the latest start
    /// (the interval common to all its parts). Absent in reports written before it existed or merged
    /// from them; `null` (`Some(None)`) for a merge whose parts have no moment in common.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_start: Option<Option<f64>>,
    /// Where the measured interval ended, like `interval_start`; of a merge, the earliest end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_end: Option<Option<f64>>,
    /// Messages per second (for `--rate`: the rate achieved).
    pub msgs_per_sec: f64,
    /// Megabytes (10^6) per second, each way.
    pub mb_per_sec: f64,
    /// The total rate asked for with `--rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_requested: Option<f64>,
    /// Connect-echo-close cycles per second (`churn`).
    pub conns_per_sec: f64,
    /// Failures by kind, written as the kernel's error name ("EMFILE", "ECONNREFUSED", ...).
    pub errors: ErrorCounts,
    /// The connects among `errors`: connections that could not be made, by why.
    #[serde(default)]
    pub connect_errors: ErrorCounts,
    /// Connections the server closed or reset while the client still used them.
    pub closed_by_server: u64,
    /// Connections the client closed before the run ended (churn: after each cycle's echo).
    #[serde(default)]
    pub closed_by_client: u64,
    /// Connections still open when the run ended (then closed by the client).
    #[serde(default)]
    pub open_at_end: u64,
    /// Message latency (`churn`: connect + echo), µs.
    pub latency_us: Latency,
    /// Connect latency, µs.
    pub connect_us: Latency,
    /// What the run cost the client.
    pub client: Client,
    /// The machine and its limits.
    pub environment: Environment,
    /// The server, when the target runs on this machine: its processes, limits, and memory, threads and
    /// descriptors at the busiest moment of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<TargetServer>,
    /// TCP sockets by state on the target's port when the run ended.
    pub sockets: BTreeMap<String, u64>,
    /// The first verification failure, naming connection and byte offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// What each kind of error means here, and for `--until-failure` which limit stopped the run.
    pub diagnosis: Vec<String>,
    /// `--until-failure`: the limit that stopped the ramp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// Pre-flight warnings: limits below what the run asked for, and what `--until-failure` will meet
    /// first. Printed on stderr before the run.
    #[serde(default)]
    pub preflight: Vec<String>,
    /// What the run found that makes its numbers worth a second look: connections that could not be
    /// made, echoes still in flight at the end, books that do not balance.
    pub warnings: Vec<String>,
    /// The histograms behind `latency_us` and `connect_us`.
    pub histograms: Histograms,
    /// `udp`: every datagram accounted for, the jitter, and where the kernel dropped datagrams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<crate::udp::UdpStats>,
}

impl Report {
    /// Fills the counts, rates and percentiles from a tally measured over `duration_s`.
    pub fn fill(&mut self, t: &Tally, duration_s: f64) {
        self.established = t.established;
        self.peak_concurrent = t.peak_concurrent;
        self.messages = t.messages;
        self.verify_failures = t.verify_failures;
        self.bytes_sent = t.bytes_sent;
        self.bytes_received = t.bytes_received;
        self.bytes_in_flight_at_end = t.bytes_in_flight_at_end;
        self.bytes_lost = t.bytes_lost;
        self.losses = t.losses.listed.clone();
        self.losses_not_listed = t.losses.not_listed;
        self.duration_s = round3(duration_s);
        let per_sec = |n: f64| if duration_s > 0.0 { n / duration_s } else { 0.0 };
        self.msgs_per_sec = round3(per_sec(t.messages as f64));
        // The messages measured, not the bytes of the whole run, which include the warm-up.
        self.mb_per_sec = round3(per_sec((t.messages * self.message_size) as f64) / 1e6);
        self.conns_per_sec = round3(per_sec(t.cycles as f64));
        self.errors = t.errors.clone();
        self.connect_errors = t.connect_errors.clone();
        self.closed_by_server = t.closed_by_server;
        self.closed_by_client = t.closed_by_client;
        self.open_at_end = t.open_at_end;
        self.failure = t.failure.clone();
        self.set_histograms(&t.latency, &t.connect);
    }

    fn set_histograms(&mut self, latency: &Histogram<u64>, connect: &Histogram<u64>) {
        self.latency_us = Latency::of(latency);
        self.connect_us = Latency::of(connect);
        self.histograms = Histograms { latency: tally::encode(latency), connect: tally::encode(connect) };
    }

    /// Merges reports of clients that ran at the same time against the same target: counts and rates
    /// add up, percentiles come from the merged histograms, the duration is the longest. Reports of
    /// different commands or message sizes do not add up, and are refused.
    pub fn merge(reports: &[Report]) -> Result<Report, String> {
        let first = reports.first().ok_or("nothing to merge")?;
        if let Some(other) =
            reports.iter().find(|r| (&r.command, r.message_size) != (&first.command, first.message_size))
        {
            return Err(format!(
                "a report of `{}` with {} B messages does not add up with one of `{}` with {} B messages",
                other.command, other.message_size, first.command, first.message_size
            ));
        }
        let mut merged =
            Report { diagnosis: Vec::new(), warnings: Vec::new(), preflight: Vec::new(), ..first.clone() };
        let (mut latency, mut connect) = (tally::histogram(), tally::histogram());
        let mut client = Client::default();
        let sum = |f: fn(&Report) -> u64| reports.iter().map(f).sum::<u64>();
        let sum_f = |f: fn(&Report) -> f64| round3(reports.iter().map(f).sum::<f64>());
        merged.connections_requested = sum(|r| r.connections_requested);
        merged.established = sum(|r| r.established);
        merged.peak_concurrent = sum(|r| r.peak_concurrent);
        merged.messages = sum(|r| r.messages);
        merged.verify_failures = sum(|r| r.verify_failures);
        merged.bytes_sent = sum(|r| r.bytes_sent);
        merged.bytes_received = sum(|r| r.bytes_received);
        merged.bytes_in_flight_at_end = sum(|r| r.bytes_in_flight_at_end);
        merged.bytes_lost = sum(|r| r.bytes_lost);
        merged.closed_by_server = sum(|r| r.closed_by_server);
        merged.closed_by_client = sum(|r| r.closed_by_client);
        merged.open_at_end = sum(|r| r.open_at_end);
        merged.duration_s = reports.iter().map(|r| r.duration_s).fold(0.0, f64::max);
        (merged.interval_start, merged.interval_end) = match common_interval(reports) {
            Common::Unknown => (None, None),
            Common::Disjoint => (Some(None), Some(None)),
            Common::Overlap { start, end, .. } => (Some(Some(start)), Some(Some(end))),
        };
        let mut hosts: Vec<&str> = Vec::new();
        for host in reports.iter().map(|r| r.host.as_str()).filter(|h| !h.is_empty()) {
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        merged.host = hosts.join(",");
        merged.msgs_per_sec = sum_f(|r| r.msgs_per_sec);
        merged.mb_per_sec = sum_f(|r| r.mb_per_sec);
        merged.conns_per_sec = sum_f(|r| r.conns_per_sec);
        merged.rate_requested = reports.iter().map(|r| r.rate_requested).sum();
        merged.errors = ErrorCounts::new();
        merged.connect_errors = ErrorCounts::new();
        let mut losses = Losses::default();
        for r in reports {
            losses.add(&r.losses, r.losses_not_listed);
            for line in &r.preflight {
                if !merged.preflight.contains(line) {
                    merged.preflight.push(line.clone());
                }
            }
            latency.add(tally::decode(&r.histograms.latency)?).map_err(|e| format!("{e:?}"))?;
            connect.add(tally::decode(&r.histograms.connect)?).map_err(|e| format!("{e:?}"))?;
            tally::add_counts(&mut merged.errors, &r.errors);
            tally::add_counts(&mut merged.connect_errors, &r.connect_errors);
            client.cpu_s += r.client.cpu_s;
            client.user_s += r.client.user_s;
            client.sys_s += r.client.sys_s;
            client.peak_rss_kib += r.client.peak_rss_kib;
            client.threads += r.client.threads;
            client.processes += r.client.processes;
            client.voluntary_switches += r.client.voluntary_switches;
            client.involuntary_switches += r.client.involuntary_switches;
            merged.failure = merged.failure.take().or_else(|| r.failure.clone());
            merged.limit = merged.limit.take().or_else(|| r.limit.clone());
            for line in r.diagnosis.iter().chain(&r.warnings) {
                let list =
                    if r.diagnosis.contains(line) { &mut merged.diagnosis } else { &mut merged.warnings };
                if !list.contains(line) {
                    list.push(line.clone());
                }
            }
        }
        (merged.losses, merged.losses_not_listed) = (losses.listed, losses.not_listed);
        client.cpu_s = round3(client.cpu_s);
        client.per_message(merged.messages);
        merged.client = client;
        merged.sockets = reports.last().map(|r| r.sockets.clone()).unwrap_or_default();
        merged.set_histograms(&latency, &connect);
        merged.udp = crate::udp::UdpStats::merge(reports);
        Ok(merged)
    }
}

/// Least share of the longest measured interval that the intervals of merged reports must have in
/// common for the merge to describe one moment.
pub const MIN_OVERLAP: f64 = 0.9;

/// What the measured intervals of several reports have in common.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Common {
    /// A report has no interval (it was written before reports had one): nothing can be said.
    Unknown,
    /// No moment is in all of them.
    Disjoint,
    /// From the latest start to the earliest end; `share` is its length over the longest interval's
    /// (1 when every interval is empty and they meet).
    Overlap {
        /// Unix seconds.
        start: f64,
        /// Unix seconds.
        end: f64,
        /// 0 to 1.
        share: f64,
    },
}

/// The interval the measured intervals of `reports` have in common.
pub fn common_interval(reports: &[Report]) -> Common {
    let mut intervals = Vec::new();
    for r in reports {
        match (r.interval_start, r.interval_end) {
            (Some(Some(start)), Some(Some(end))) => intervals.push((start, end)),
            (Some(None), _) | (_, Some(None)) => return Common::Disjoint,
            _ => return Common::Unknown,
        }
    }
    let start = intervals.iter().map(|i| i.0).fold(f64::NEG_INFINITY, f64::max);
    let end = intervals.iter().map(|i| i.1).fold(f64::INFINITY, f64::min);
    if intervals.is_empty() {
        return Common::Unknown;
    }
    if end < start {
        return Common::Disjoint;
    }
    let longest = intervals.iter().map(|i| i.1 - i.0).fold(0.0, f64::max);
    let share = if longest > 0.0 { (end - start) / longest } else { 1.0 };
    Common::Overlap { start, end, share }
}

/// The warning a merge of `reports` gives when their measured intervals overlap by less than
/// [`MIN_OVERLAP`]: its rates and percentiles then describe no one moment.
pub fn overlap_warning(reports: &[Report]) -> Option<String> {
    const FIX: &str = "their sum describes no one moment: start the clients with one --start-at";
    match common_interval(reports) {
        Common::Unknown => None,
        Common::Disjoint => {
            Some(format!("the measured intervals of the {} reports do not overlap: {FIX}", reports.len()))
        }
        Common::Overlap { share, .. } if share >= MIN_OVERLAP => None,
        Common::Overlap { start, end, share } => Some(format!(
            "the measured intervals of the {} reports overlap by {:.0}% of the longest (common: {start:.6} to \
             {end:.6}, {:.3} s), less than {:.0}%: {FIX}",
            reports.len(),
            share * 100.0,
            end - start,
            MIN_OVERLAP * 100.0
        )),
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_kind::ErrorKind;

    fn report_over(samples: &[u64], seconds: f64) -> Report {
        let mut t = Tally::default();
        for &v in samples {
            t.latency.record(v).unwrap();
            t.connect.record(v / 2 + 1).unwrap();
            t.messages += 1;
            t.bytes_received += 64;
            t.bytes_sent += 64;
            t.established += 1;
            t.error(ErrorKind::Errno(nix::libc::ECONNREFUSED));
        }
        let mut r = Report {
            command: "echo".into(),
            connections_requested: samples.len() as u64,
            ..Report::default()
        };
        r.fill(&t, seconds);
        r
    }

    #[test]
    fn merging_two_halves_equals_one_report_over_all() {
        let all: Vec<u64> = (0..2000u64).map(|i| 1 + (i * 7919) % 50_000).collect();
        let (a, b) = all.split_at(700);
        let merged = Report::merge(&[report_over(a, 5.0), report_over(b, 5.0)]).unwrap();
        let whole = report_over(&all, 5.0);
        assert_eq!(merged.latency_us, whole.latency_us);
        assert_eq!(merged.connect_us, whole.connect_us);
        assert_eq!(merged.messages, whole.messages);
        assert_eq!(merged.errors, whole.errors);
        assert_eq!(merged.msgs_per_sec, whole.msgs_per_sec);
        assert_eq!(merged.mb_per_sec, whole.mb_per_sec);
        assert_eq!(merged.histograms, whole.histograms);
    }

    fn measured(start: f64, end: f64) -> Report {
        Report { interval_start: Some(Some(start)), interval_end: Some(Some(end)), ..Report::default() }
    }

    #[test]
    fn a_merge_keeps_the_common_interval_and_warns_below_ninety_percent() {
        let (a, b) = (measured(100.0, 110.0), measured(100.5, 110.2));
        assert_eq!(
            common_interval(&[a.clone(), b.clone()]),
            Common::Overlap { start: 100.5, end: 110.0, share: 9.5 / 10.0 }
        );
        assert_eq!(overlap_warning(&[a.clone(), b.clone()]), None);
        let merged = Report::merge(&[a.clone(), b]).unwrap();
        assert_eq!((merged.interval_start, merged.interval_end), (Some(Some(100.5)), Some(Some(110.0))));
        let late = measured(102.0, 112.0);
        let warning = overlap_warning(&[a.clone(), late]).unwrap();
        assert!(warning.contains("overlap by 80%"), "{warning}");
        let apart = measured(111.0, 121.0);
        assert_eq!(common_interval(&[a.clone(), apart.clone()]), Common::Disjoint);
        assert!(overlap_warning(&[a.clone(), apart.clone()]).unwrap().contains("do not overlap"));
        let merged = Report::merge(&[a.clone(), apart]).unwrap();
        assert_eq!((merged.interval_start, merged.interval_end), (Some(None), Some(None)));
        // A report written before reports had intervals: nothing to say.
        assert_eq!(common_interval(&[a, Report::default()]), Common::Unknown);
    }

    #[test]
    fn a_report_survives_json() {
        let r = report_over(&[5, 10, 15], 1.0);
        let back: Report = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
