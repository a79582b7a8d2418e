//! `echo`, `connect` and `churn`: split the load over processes, loops or threads, run it, and write
//! the report.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use crate::EXIT_SHORTFALL;
use crate::cli::{ChurnArgs, ConnectArgs, DEFAULT_CONNECTIONS, EchoArgs, LoadArgs};
use crate::diagnose;
use crate::driver::{Plan, Work};
use crate::environment::Environment;
use crate::loops::Combined;
use crate::plot::Recorder;
use crate::preflight::{self, Ask};
use crate::progress::{Progress, Ticker};
use crate::report::{Client, Report};
use crate::shortfall::shortfall;
use crate::target_process::{Sampler, TargetServer};
use crate::usage::Usage;

/// A finished load run.
#[derive(Debug)]
pub struct Finished {
    /// What it found.
    pub report: Report,
    /// The reports it was merged from (`--processes`), whose books are checked too.
    pub parts: Vec<Report>,
    /// Fewer connections were made than asked for, and neither `--allow-errors` nor `--until-failure`
    /// said that was expected: the run exits with [`EXIT_SHORTFALL`].
    pub fell_short: bool,
}

/// `echo`.
pub fn echo(args: &EchoArgs) -> io::Result<Finished> {
    let connections = args.load.connections.unwrap_or(DEFAULT_CONNECTIONS);
    let work = Work::Echo {
        size: args.run.size,
        pipeline: u64::from(args.pipeline),
        rate: args.rate,
        warmup: args.warmup,
        duration: args.run.duration,
    };
    run("echo", &args.load, connections, work, args.rate)
}

/// `connect`.
pub fn connect(args: &ConnectArgs) -> io::Result<Finished> {
    let connections = args.connections();
    let mut load = args.load.clone();
    if args.until_failure && load.ramp.is_none() {
        // Ramping is what lets the first failure be told from the rest.
        load.ramp = Some(2000.0);
    }
    let work = Work::Hold { hold: args.hold, until_failure: args.until_failure, echo_every: args.echo_every };
    run("connect", &load, connections, work, None)
}

/// `churn`.
pub fn churn(args: &ChurnArgs) -> io::Result<Finished> {
    if args.load.blocking {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "churn has no --blocking mode"));
    }
    let connections = args.load.connections.unwrap_or(DEFAULT_CONNECTIONS);
    let work = Work::Churn { size: args.run.size, duration: args.run.duration };
    run("churn", &args.load, connections, work, None)
}

fn run(
    command: &str,
    load: &LoadArgs,
    connections: u64,
    work: Work,
    rate: Option<f64>,
) -> io::Result<Finished> {
    // Of the addresses a name resolved to, every connection (in every process) goes to the one chosen.
    let chosen =
        LoadArgs { target: load.target.choose(Duration::from_millis(load.connect_timeout))?, ..load.clone() };
    let load = &chosen;
    if let Some(path) = &load.plot {
        crate::plot::check_writable(path)?;
    }
    if load.child_index.is_some() {
        // The parent looks at the machine and the server, and judges the merged report, so a child
        // always writes its own report of the load alone, even one whose every connection failed.
        let report = measure(command, load, connections, &work, rate, None, None)?;
        return Ok(Finished { report, parts: Vec::new(), fell_short: false });
    }
    // A Unix socket's server is not found through /proc/net/tcp: nothing to sample then.
    let server = load.target.addr().and_then(TargetServer::find);
    let preflight = announce(load, connections, &work, server.as_ref());
    let mut sampler = server
        .clone()
        .filter(TargetServer::found)
        .zip(load.target.addr())
        .map(|(s, addr)| Sampler::new(s, addr));
    let mut recorder =
        load.plot.as_ref().map(|_| Recorder::new(command, &load.target.to_string(), load.target.port()));
    let (mut report, parts) = if load.processes > 1 && connections > 1 {
        let reports = crate::processes::run(load, connections, rate, sampler.as_mut())?;
        let mut merged = Report::merge(&reports).map_err(io::Error::other)?;
        // The children were given the chosen address, not the name.
        merged.target = load.target.to_string();
        (merged, reports)
    } else {
        let measured = measure(command, load, connections, &work, rate, sampler.as_mut(), recorder.as_mut())?;
        (measured, Vec::new())
    };
    read_sockets(&mut report, load);
    report.preflight = preflight;
    report.server = sampler.map(Sampler::finish).or(server);
    if let Some(server) = &report.server {
        report.diagnosis.extend(diagnose::server_side(&report, server));
        report.limit = report.limit.take().map(|l| diagnose::server_limit(&l, server).unwrap_or(l));
    }
    check_established(&report, load)?;
    note_in_flight(&mut report);
    let fell_short = judge(&mut report, load, &work);
    if let (Some(path), Some(recorder)) = (&load.plot, recorder) {
        crate::plot::svg(&recorder.finish(&report), path)?;
    }
    Ok(Finished { report, parts, fell_short })
}

/// Prints the pre-flight warnings of the run on stderr, once, and returns them for the report.
fn announce(load: &LoadArgs, connections: u64, work: &Work, server: Option<&TargetServer>) -> Vec<String> {
    let ask = Ask {
        connections,
        sources: load.source_ips.as_ref().map_or(0, |s| s.0.len() as u64),
        processes: u64::from(load.processes),
        until_failure: match work {
            Work::Hold { until_failure: true, .. } => load.ramp,
            _ => None,
        },
    };
    let mut warnings = preflight::warnings(&Environment::capture(), &ask, server);
    if load.target.is_unix() {
        // Unix connections use no ports and pass no firewall: only the descriptor warnings apply.
        warnings.retain(|w| !w.contains("ephemeral ports") && !w.contains("nf_conntrack"));
    }
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    warnings
}

/// Runs the load in this process and writes its report; `sampler` samples the server meanwhile, and
/// `recorder` records the run's timeline.
fn measure(
    command: &str,
    load: &LoadArgs,
    connections: u64,
    work: &Work,
    rate: Option<f64>,
    sampler: Option<&mut Sampler>,
    recorder: Option<&mut Recorder>,
) -> io::Result<Report> {
    // Before: the machine, its limits, and the counters the run will be compared with.
    let environment = Environment::capture();
    let sources = load.source_ips.clone().map(|s| s.0).unwrap_or_default();
    let listen_before = hostinfo::listen_counters();
    let usage_before = Usage::now();
    // The run itself.
    let combined = run_plans(load, connections, work, &sources, sampler, recorder)?;
    // After: the report, and what its errors mean.
    let usage = combined.usage.usage(&usage_before, &Usage::now());
    let explain = diagnose::Context {
        env: &environment,
        sources: sources.len() as u64,
        listen: (listen_before, hostinfo::listen_counters()),
        server_here: load.target.addr().is_none_or(|a| crate::target_process::is_local(a.ip())),
    };
    let mut report = Report {
        command: command.to_owned(),
        target: load.target.to_string(),
        target_addr: load.target.address().to_string(),
        model: if load.blocking { "blocking" } else { "reactor" }.to_owned(),
        connections_requested: connections,
        message_size: match *work {
            Work::Echo { size, .. } | Work::Churn { size, .. } => size as u64,
            Work::Hold { echo_every, .. } => echo_every.map_or(0, |_| crate::driver::SAMPLE_SIZE as u64),
        },
        rate_requested: rate,
        ..Report::default()
    };
    report.fill(&combined.tally, combined.measured.as_secs_f64());
    if let Some(from) = combined.from {
        let start = crate::start_at::unix_seconds(from);
        report.interval_start = Some(Some(start));
        report.interval_end = Some(Some(crate::start_at::round_us(start + combined.measured.as_secs_f64())));
    }
    report.host = crate::start_at::host_name();
    report.client = Client::of(&usage, combined.threads, combined.tally.messages);
    diagnose_report(&mut report, &explain, &combined);
    report.environment = environment;
    Ok(report)
}

/// The TCP sockets on the target's port as the run ended, by state. Read once, by the parent of
/// `--processes`: the table lists every socket of the machine (hundreds of megabytes at a million
/// connections), and a child reading it as it ends would only slow down the others still running.
fn read_sockets(report: &mut Report, load: &LoadArgs) {
    match load.target.port().map(hostinfo::tcp_states) {
        None => {}
        Some(Ok(states)) => {
            report.sockets = states.iter().filter(|(_, n)| *n > 0).map(|(k, n)| (k.to_owned(), n)).collect()
        }
        // An empty table would read as "no sockets": say instead that this OS does not show them.
        Some(Err(e)) if e.kind() == io::ErrorKind::Unsupported => report.diagnosis.push(e.to_string()),
        Some(Err(_)) => {}
    }
}

/// Splits the load over loops (or one blocking plan) and runs it, printing progress (sampling the
/// server, recording the timeline) meanwhile.
fn run_plans(
    load: &LoadArgs,
    connections: u64,
    work: &Work,
    sources: &[IpAddr],
    sampler: Option<&mut Sampler>,
    recorder: Option<&mut Recorder>,
) -> io::Result<Combined> {
    let prefix = load.child_index.map(|i| format!("[process {i}] ")).unwrap_or_default();
    let mut ticker = Ticker::new(prefix, sampler).recording(recorder);
    let threads = if load.blocking { 1 } else { u64::from(load.threads).min(connections) };
    let progress = Progress::new(threads as usize);
    let plans = split(load, connections, threads, work, sources);
    if load.blocking {
        crate::blocking::run(plans.into_iter().next().expect("one plan"), &progress, &mut ticker)
    } else {
        crate::loops::run(plans, &progress, &mut ticker)
    }
}

/// One plan per loop: connections, ramp and rate shared out as evenly as whole connections allow,
/// with consecutive connection ids.
fn split(load: &LoadArgs, connections: u64, threads: u64, work: &Work, sources: &[IpAddr]) -> Vec<Plan> {
    (0..threads)
        .scan(load.id_offset, |first_id, i| {
            let n = connections / threads + u64::from(i < connections % threads);
            let fraction = n as f64 / connections as f64;
            let mut work = work.clone();
            if let Work::Echo { rate: Some(r), .. } = &mut work {
                *r *= fraction;
            }
            let plan = Plan {
                target: load.target.address(),
                first_id: *first_id,
                connections: n,
                ramp: load.ramp.map(|r| r * fraction),
                sources: sources.to_vec(),
                connect_timeout: Duration::from_millis(load.connect_timeout),
                work,
                start_at: load.start_at.map(crate::start_at::instant),
            };
            *first_id += n;
            Some(plan)
        })
        .collect()
}

/// What the errors mean, whether the server closed connections, and which limit stopped the ramp.
fn diagnose_report(report: &mut Report, explain: &diagnose::Context<'_>, combined: &Combined) {
    report.diagnosis = explain.explain(&report.errors);
    if report.closed_by_server > 0 {
        report.diagnosis.push(format!(
            "the server closed or reset {} connections during the run",
            report.closed_by_server
        ));
    }
    report.limit = combined.stopped_by.map(|kind| explain.limit(kind, report.established));
}

/// Says in the warnings how many bytes were still in flight when the run ended, if any: the run stopped
/// waiting for them (after the drain), so they are neither received nor lost.
fn note_in_flight(report: &mut Report) {
    if report.bytes_in_flight_at_end > 0 {
        // A connect's only messages are its --echo-every sample, which is waited for longer.
        let drain =
            if report.command == "connect" { crate::driver::SAMPLE_DRAIN } else { crate::driver::DRAIN };
        report.warnings.push(format!(
            "{} bytes sent were still in flight when the run ended: not echoed within {} s after its end",
            report.bytes_in_flight_at_end,
            drain.as_secs_f64()
        ));
    }
}

/// Says in the warnings how the run fell short of the connections asked for, if it did; returns whether
/// that fails the run.
fn judge(report: &mut Report, load: &LoadArgs, work: &Work) -> bool {
    // Ramping until connections fail is the point of --until-failure; `limit` says what stopped it.
    if matches!(work, Work::Hold { until_failure: true, .. }) {
        return false;
    }
    let Some(line) = shortfall(report) else { return false };
    let (line, fails) = if load.allow_errors {
        (format!("{line}; allowed by --allow-errors"), false)
    } else if report.verify_failures > 0 {
        // The verification failure decides the exit code (3), and may be why the run ended early.
        (line, true)
    } else {
        (format!("{line}: exit code {EXIT_SHORTFALL}"), true)
    };
    report.warnings.push(line);
    fails
}

/// A run in which no connection was established has nothing to report: that is an error.
fn check_established(report: &Report, load: &LoadArgs) -> io::Result<()> {
    if report.established == 0 {
        let why: Vec<String> = report.errors.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
        return Err(io::Error::other(format!(
            "no connection to {} could be established ({})",
            load.target,
            if why.is_empty() { "no error reported".to_owned() } else { why.join(", ") }
        )));
    }
    Ok(())
}
