//! `echo-server`: every byte a peer sends comes back, served either by the reactor (one thread, every
//! socket non-blocking) or by the blocking model (one thread per peer), so the two can be compared on
//! the same machine.
//!
//! Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM), 1 when the server cannot start or a worker
//! dies, 2 for bad command-line input.
#![forbid(unsafe_code)]

mod blocking;
mod capacity;
mod cli;
mod echo;
mod lifeline;
mod listen_addr;
mod port;
mod served;
mod signals;
mod supervisor;
mod workers;

use std::process::ExitCode;

use cli::{Cli, Mode};

fn main() -> ExitCode {
    let cli = Cli::parse_valid();
    init_logger(&cli);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("echo-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr at `info` unless RUST_LOG says otherwise; `--trace` adds the reactor's lifecycle
/// lines, whatever RUST_LOG says about the rest.
fn init_logger(cli: &Cli) {
    let mut logger = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if cli.trace {
        logger.filter_module(reactor::LIFECYCLE_TARGET, log::LevelFilter::Trace);
    }
    logger.init();
}

fn run(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    if let Some(supervisor) = cli.worker_of {
        lifeline::follow(supervisor)?;
    }
    match hostinfo::raise_fd_limit() {
        Ok((before, after)) => {
            log::info!("descriptor limit: {before} at start, {after} now");
            capacity::warn_if_short(&cli, after.soft);
        }
        Err(e) => log::warn!("cannot raise the descriptor limit: {e}"),
    }
    if cli.workers > 1 {
        return workers::supervise(&cli);
    }
    match cli.mode {
        Mode::Reactor => echo::serve(&cli),
        Mode::Blocking => blocking::serve(&cli),
    }
}
