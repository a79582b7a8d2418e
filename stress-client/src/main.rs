#![forbid(unsafe_code)]
//! `stress-client`: load, limits and probes for TCP echo servers, built on the reactor.
//!
//! Results go to stdout (a readable summary, or one JSON object with `--json`); progress and warnings
//! go to stderr. Exit codes: 0 the run completed; 1 it could not run (one line on stderr says why);
//! 2 bad usage (from clap); 3 an echo did not match what was sent (mismatch, loss or reorder) — the
//! report is still printed, and names the connection and byte offset; 4 (`echo`, `connect`, `churn`)
//! some connections could not be made, and neither `--allow-errors` nor `--until-failure` said that
//! was expected — the report is printed, and a warning in it says how many and why; 5 (`echo`,
//! `connect`, `churn`, `udp`, `merge`) the report's books do not balance (see `books`): its numbers
//! cannot be trusted — the report is printed, and its warnings say which invariant failed. 5 wins
//! over 3 and 4.

mod backlog;
mod blocking;
mod books;
mod cli;
mod diagnose;
mod driver;
mod environment;
mod error_kind;
mod load;
mod loops;
mod loss;
mod message;
mod pace;
mod plot;
mod preflight;
mod processes;
mod progress;
mod report;
mod shortfall;
mod source_ips;
mod start_at;
mod summary;
mod tally;
mod target;
mod target_process;
mod udp;
mod usage;
mod watch;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use cli::{Cli, Command};
use report::Report;

/// Exit code of a run whose echoes did not match what was sent.
const EXIT_VERIFY_FAILED: u8 = 3;
/// Exit code of a run that could not make every connection it was asked for, unexpectedly.
const EXIT_SHORTFALL: u8 = 4;
/// Exit code of a run whose report does not balance its books.
const EXIT_BOOKS: u8 = 5;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    check(&cli);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stress-client: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Checks across options that clap cannot express; exits with clap's usage error (2).
fn check(cli: &Cli) {
    if let Command::Echo(args) = &cli.command
        && args.run.size * args.pipeline as usize > cli::MAX_IN_FLIGHT_BYTES
    {
        usage_error(format!(
            "--pipeline {} × --size {} is more than {} bytes in flight per connection",
            args.pipeline,
            args.run.size,
            cli::MAX_IN_FLIGHT_BYTES
        ));
    }
    // A Unix socket has no source address to bind and no ports; the blocking model connects over TCP.
    if let Some((load, _, _)) = cli.command.load()
        && load.target.is_unix()
    {
        if load.source_ips.is_some() {
            usage_error(format!(
                "--source-ips cannot be used with --target {}: a Unix socket has no source address",
                load.target
            ));
        }
        if load.blocking {
            usage_error(format!(
                "--blocking cannot be used with --target {}: the blocking model connects over TCP",
                load.target
            ));
        }
    }
    // The timeline is recorded by the thread that counts the connections; children count their own.
    if let Some((load, _, _)) = cli.command.load()
        && load.processes > 1
        && load.plot.is_some()
    {
        usage_error(
            "--plot cannot be used with --processes: each child process counts its own connections and \
             the parent sees only their final reports; plot a run of one process, or draw the port of a \
             run of several with `watch --plot`"
                .to_owned(),
        );
    }
    // Each child process is given its part of the rates, and must accept it as its own option.
    if let Some((load, connections, rate)) = cli.command.load()
        && load.processes > 1
        && connections > 1
    {
        for (flag, total) in [("--rate", rate), ("--ramp", load.ramp)] {
            let Some(total) = total else { continue };
            let part = processes::smallest_part(total, connections, load.processes);
            if part < cli::MIN_RATE {
                usage_error(format!(
                    "{flag} {total} over {} processes leaves one of them {part} per second, below the \
                     least accepted ({}): use fewer processes or a higher {flag}",
                    load.processes,
                    cli::MIN_RATE
                ));
            }
        }
    }
}

/// Exits with clap's usage error (2), saying `why`.
fn usage_error(why: String) -> ! {
    Cli::command().error(clap::error::ErrorKind::ValueValidation, why).exit()
}

fn run(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (mut finished, json, part_name): (_, _, Box<dyn Fn(usize) -> String>) = match &cli.command {
        Command::Echo(args) => (load::echo(args)?, args.load.json, Box::new(process_name)),
        Command::Connect(args) => (load::connect(args)?, args.load.json, Box::new(process_name)),
        Command::Churn(args) => (load::churn(args)?, args.load.json, Box::new(process_name)),
        Command::Udp(args) => (udp::run(args)?, args.json, Box::new(process_name)),
        Command::Merge(args) => {
            let reports = args
                .reports
                .iter()
                .map(|path| {
                    let text =
                        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
                    serde_json::from_str(&text).map_err(|e| format!("{}: not a report: {e}", path.display()))
                })
                .collect::<Result<Vec<Report>, String>>()?;
            // Each report already says, in its warnings, whether its run fell short.
            let mut report = Report::merge(&reports)?;
            if let Some(warning) = report::overlap_warning(&reports) {
                eprintln!("warning: {warning}");
                report.warnings.push(warning);
            }
            let paths = args.reports.clone();
            let finished = load::Finished { report, parts: reports, fell_short: false };
            (finished, args.json, Box::new(move |i: usize| paths[i].display().to_string()))
        }
        Command::Backlog(args) => {
            let report = backlog::run(args)?;
            print(&report, args.json, backlog::BacklogReport::summary)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Watch(args) => {
            watch::run(args)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Sockets(args) => {
            let states = hostinfo::tcp_states(args.port)?;
            if args.json {
                let mut map: serde_json::Map<String, serde_json::Value> =
                    states.iter().map(|(k, n)| (k.to_owned(), n.into())).collect();
                map.insert("port".into(), args.port.into());
                map.insert("accept_queue".into(), states.accept_queue.into());
                println!("{}", serde_json::Value::Object(map));
            } else {
                println!("port {}: {states}; accept queue {}", args.port, states.accept_queue);
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    let balanced = books::audit(&mut finished.report, &finished.parts, part_name);
    print(&finished.report, json, Report::summary)?;
    Ok(if !balanced {
        ExitCode::from(EXIT_BOOKS)
    } else if finished.report.verify_failures > 0 {
        ExitCode::from(EXIT_VERIFY_FAILED)
    } else if finished.fell_short {
        ExitCode::from(EXIT_SHORTFALL)
    } else {
        ExitCode::SUCCESS
    })
}

/// How a child process of `--processes` is named where its books do not balance.
fn process_name(i: usize) -> String {
    format!("process {i}")
}

fn print<T: serde::Serialize>(report: &T, json: bool, summary: fn(&T) -> String) -> serde_json::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        println!("{}", summary(report));
    }
    Ok(())
}
