//! `udp`: datagrams to a UDP echo server, every one accounted for.
//!
//! Sockets (each its own source port) send numbered, verifiable datagrams ([`datagram`]), closed
//! loop or at a fixed rate, on reactor loops ([`driver`]); each socket keeps a record of what it sent
//! ([`track`]), so that every echo is classified once and every datagram sent ends received or lost
//! ([`counts`] defines each count). The kernel's counters say where the lost ones were dropped
//! ([`kernel`]). The report is the common one with a `udp` section ([`stats`]), so that `merge`
//! and the books apply to it as to the others.

mod args;
mod counts;
mod datagram;
mod driver;
mod kernel;
mod processes;
mod stats;
mod track;

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use reactor::{Config, EventLoop};

pub use args::UdpArgs;
pub use stats::UdpStats;

use counts::Counts;
use driver::{UdpDriver, UdpOutcome, UdpPlan};
use kernel::{Before, Kernel};

use crate::error_kind::ErrorCounts;
use crate::load::Finished;
use crate::loss::Losses;
use crate::progress::{Progress, Ticker};
use crate::report::{Client, Report};
use crate::tally::{self, Tally};
use crate::usage::{Usage, Window};

/// Most datagrams all the sockets of one process remember at once (see [`track`]); each socket gets
/// its share, within [`MIN_RECORD`] and [`MAX_RECORD`].
const RECORD_BUDGET: u64 = 1 << 22;
/// Fewest datagrams one socket remembers.
const MIN_RECORD: u64 = 1024;
/// Most datagrams one socket remembers.
const MAX_RECORD: u64 = 1 << 18;

/// Runs `udp`: in this process or split over `--processes`, and judged.
pub fn run(args: &UdpArgs) -> io::Result<Finished> {
    let target = args.target.addr().ok_or_else(|| io::Error::other("udp needs an IP target"))?;
    // The host's and the server's counters are read by the process that reports the run; children
    // read only their own sockets' drops.
    let before = args.child_index.is_none().then(|| Before::read(target));
    let (mut report, parts) = if args.processes > 1 && args.sockets > 1 {
        let reports = processes::run(args, target)?;
        let mut merged = Report::merge(&reports).map_err(io::Error::other)?;
        merged.target = args.target.to_string();
        (merged, reports)
    } else {
        (measure(args, target)?, Vec::new())
    };
    if let (Some(before), Some(udp)) = (before, report.udp.as_mut()) {
        let mut kernel = before.after(Ok(0));
        kernel.client_socket_drops = udp.kernel.client_socket_drops;
        for line in &udp.kernel.unavailable {
            if !kernel.unavailable.contains(line) {
                kernel.unavailable.insert(0, line.clone());
            }
        }
        udp.kernel = kernel;
        let explained = udp.kernel.explain(&udp.counts);
        report.diagnosis.extend(explained);
    }
    // A child's report is judged as part of the parent's, once.
    if args.child_index.is_none() {
        judge(&mut report);
    }
    Ok(Finished { report, parts, fell_short: false })
}

/// Runs the load in this process and writes its report (the kernel's host-wide figures are added by
/// [`run`]).
fn measure(args: &UdpArgs, target: SocketAddr) -> io::Result<Report> {
    let environment = crate::environment::Environment::capture();
    let usage_before = Usage::now();
    let threads = u64::from(args.threads).min(args.sockets);
    let capacity =
        (RECORD_BUDGET / args.sockets).clamp(MIN_RECORD, MAX_RECORD).max(2 * u64::from(args.window));
    let start_at = args.start_at.map(crate::start_at::instant);
    let progress = Progress::new(threads as usize);
    let plans: Vec<UdpPlan> = (0..threads)
        .scan(args.id_offset, |first_id, i| {
            let n = args.sockets / threads + u64::from(i < args.sockets % threads);
            let plan = UdpPlan {
                target,
                first_id: *first_id,
                sockets: n,
                window: u64::from(args.window),
                rate: args.rate.map(|r| r * n as f64 / args.sockets as f64),
                size: args.size,
                warmup: args.warmup,
                duration: args.duration,
                loss_timeout: args.loss_timeout,
                start_at,
                capacity: capacity as usize,
                progress: progress.counters[i as usize].clone(),
            };
            *first_id += n;
            Some(plan)
        })
        .collect();
    let prefix = args.child_index.map(|i| format!("[process {i}] ")).unwrap_or_default();
    let mut ticker = Ticker::new(prefix, None).datagrams();
    let combined = run_loops(plans, &progress, &mut ticker)?;
    let usage = combined.usage.usage(&usage_before, &Usage::now());
    let c = combined.counts;
    let size = args.size as u64;
    let tally = Tally {
        latency: combined.latency,
        messages: c.received,
        bytes_sent: c.sent * size,
        bytes_received: c.received * size,
        bytes_lost: c.lost * size,
        // A lost datagram is a loss of its own, not named one by one.
        losses: Losses { listed: Vec::new(), not_listed: c.lost },
        errors: combined.errors,
        failure: combined.failure,
        ..Tally::default()
    };
    let mut report = Report {
        command: "udp".to_owned(),
        target: args.target.to_string(),
        target_addr: target.to_string(),
        model: "reactor".to_owned(),
        connections_requested: args.sockets,
        message_size: size,
        rate_requested: args.rate,
        ..Report::default()
    };
    report.fill(&tally, combined.measured.as_secs_f64());
    if let Some(from) = combined.from {
        let start = crate::start_at::unix_seconds(from);
        report.interval_start = Some(Some(start));
        report.interval_end = Some(Some(crate::start_at::round_us(start + combined.measured.as_secs_f64())));
    }
    report.host = crate::start_at::host_name();
    report.client = Client::of(&usage, combined.threads, c.received);
    report.environment = environment;
    let mut kernel = Kernel::default();
    match combined.drops {
        Ok(n) => kernel.client_socket_drops = Some(n),
        Err(e) => kernel.unavailable.push(format!("the client sockets' drops: {e}")),
    }
    let jitter_sum_us = combined.jitter_us.iter().fold(0.0, |sum, j| sum + j);
    let jitter_sockets = combined.jitter_us.len() as u64;
    report.udp = Some(UdpStats {
        sockets: args.sockets,
        window: args.rate.is_none().then_some(u64::from(args.window)),
        loss_timeout_s: args.loss_timeout.as_secs_f64(),
        allow_loss: args.allow_loss,
        counts: c,
        jitter_us: stats::jitter(jitter_sum_us, jitter_sockets),
        jitter_sum_us,
        jitter_sockets,
        kernel,
    });
    Ok(report)
}

/// Sets `verify_failures` from the counts (what fails the run: corruption always; loss, duplication
/// and reordering unless `--allow-loss`), and says so in the warnings.
fn judge(report: &mut Report) {
    let Some(udp) = &report.udp else { return };
    let c = udp.counts;
    let anomalies = c.anomalies();
    report.verify_failures = c.corrupted + if udp.allow_loss { 0 } else { anomalies };
    if anomalies > 0 {
        let what = format!(
            "{} datagrams lost ({} of them late), {} duplicated, {} reordered, {} too old to tell",
            c.lost, c.late, c.duplicated, c.reordered, c.too_old
        );
        report.warnings.push(if udp.allow_loss {
            format!("{what}; allowed by --allow-loss")
        } else {
            format!(
                "{what}: exit code {} (UDP allows them: --allow-loss accepts them)",
                crate::EXIT_VERIFY_FAILED
            )
        });
    }
    if c.corrupted > 0 {
        report.warnings.push(format!(
            "{} datagrams came back corrupted: exit code {}",
            c.corrupted,
            crate::EXIT_VERIFY_FAILED
        ));
    }
}

/// What all loops of this process found.
#[derive(Debug)]
struct Combined {
    counts: Counts,
    latency: Histogram<u64>,
    jitter_us: Vec<f64>,
    errors: ErrorCounts,
    failure: Option<String>,
    measured: Duration,
    from: Option<Instant>,
    usage: Window,
    drops: Result<u64, String>,
    threads: u64,
}

impl Combined {
    fn add(&mut self, o: UdpOutcome) -> io::Result<()> {
        self.counts.add(&o.counts);
        self.latency.add(&o.latency).map_err(|e| io::Error::other(format!("{e:?}")))?;
        self.jitter_us.extend(o.jitter_us);
        tally::add_counts(&mut self.errors, &o.errors);
        self.failure = self.failure.take().or(o.failure);
        if self.from.is_none() || o.measured > self.measured {
            (self.measured, self.from) = (o.measured, Some(o.from));
        }
        self.usage.cover(o.usage);
        self.drops = match (self.drops.clone(), o.drops) {
            (Ok(a), Ok(b)) => Ok(a + b),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        Ok(())
    }
}

/// Runs each plan on its own loop and thread, printing progress; returns once every loop has finished.
fn run_loops(plans: Vec<UdpPlan>, progress: &Progress, ticker: &mut Ticker<'_>) -> io::Result<Combined> {
    let (done, finished) = mpsc::channel();
    let mut handles = Vec::new();
    for (i, plan) in plans.into_iter().enumerate() {
        let done = done.clone();
        handles.push(thread::Builder::new().name(format!("udp-{i}")).spawn(move || {
            let result = (|| {
                let config = Config { raise_fd_limit: false, ..Config::default() };
                let mut event_loop = EventLoop::new(config, UdpDriver::new(plan))?;
                UdpDriver::schedule_start(&mut event_loop.context());
                event_loop.run()?;
                event_loop.into_handler().outcome()
            })();
            let _ = done.send(());
            result
        })?);
    }
    drop(done);
    let threads = crate::progress::wait_for_workers(&finished, handles.len(), progress, ticker);
    let mut combined = Combined {
        counts: Counts::default(),
        latency: tally::histogram(),
        jitter_us: Vec::new(),
        errors: ErrorCounts::new(),
        failure: None,
        measured: Duration::ZERO,
        from: None,
        usage: Window::default(),
        drops: Ok(0),
        threads,
    };
    for handle in handles {
        let outcome = handle.join().map_err(|_| io::Error::other("a loop thread panicked"))??;
        combined.add(outcome)?;
    }
    Ok(combined)
}
