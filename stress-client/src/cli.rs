//! The command line: subcommands, their options, and the checks clap makes before anything runs.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};

use crate::target::Target;

/// Largest message: big enough for throughput runs, small enough that a pipeline stays bounded.
pub const MAX_SIZE: usize = 1 << 20;
/// Bytes one connection may have in flight (`--pipeline` × `--size`).
pub const MAX_IN_FLIGHT_BYTES: usize = 4 << 20;
/// Connections when `--connections` is not given.
pub const DEFAULT_CONNECTIONS: u64 = 50;
/// Most connections one run may ask for.
pub const MAX_CONNECTIONS: u64 = 10_000_000;
/// Longest time any option in seconds accepts: one year. Far past any run, and far enough inside what
/// `Instant` and `Duration` can hold that no deadline computed from it can overflow.
pub const MAX_SECONDS: f64 = 31_536_000.0;
/// Shortest run: 1 ms (a shorter one measures nothing).
pub const MIN_RUN_SECONDS: f64 = 0.001;
/// Slowest rate (`--rate`, `--ramp`): one per 1000 s. With at most [`MAX_CONNECTIONS`], one
/// connection's interval between messages stays below 10^10 s, which `Duration` holds exactly enough.
pub const MIN_RATE: f64 = 0.001;
/// Fastest rate: a billion per second, far past what loopback carries.
pub const MAX_RATE: f64 = 1e9;

/// The exit codes, for `--help`.
const EXIT_CODES: &str = "Exit codes: 0 the run completed; 1 it could not run (the line printed says why); \
2 bad usage; 3 an echo did not match what was sent (mismatch, loss or reorder); 4 some connections could \
not be made and neither --allow-errors nor --until-failure said that was expected (a warning in the report \
says how many and why); 5 the report's books do not balance, so its numbers cannot be trusted (its warnings \
say which invariant failed; 5 wins over 3 and 4).";

/// Load, limits and probes for TCP echo servers, built on the reactor.
#[derive(Debug, Parser)]
#[command(name = "stress-client", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// N connections sending messages and checking every echoed byte; latency and throughput.
    #[command(after_help = EXIT_CODES)]
    Echo(EchoArgs),
    /// Open N connections, hold them idle, close them; classify every failure.
    #[command(after_help = EXIT_CODES)]
    Connect(ConnectArgs),
    /// Measure a non-accepting listener's accept queue: connect until the kernel stops completing.
    Backlog(BacklogArgs),
    /// Count TCP sockets by state for a port.
    Sockets(SocketsArgs),
    /// Merge JSON reports of several clients into one.
    #[command(after_help = EXIT_CODES)]
    Merge(MergeArgs),
    /// Connect, echo one message, close, repeat: connections per second.
    #[command(after_help = EXIT_CODES)]
    Churn(ChurnArgs),
    /// Datagrams to a UDP echo server, every one accounted for: received, lost, late, duplicated,
    /// reordered, corrupted; latency, jitter, and where the kernel dropped them.
    #[command(after_help = EXIT_CODES)]
    Udp(crate::udp::UdpArgs),
    /// Watch a port (and the server listening on it) live: sockets by state, accept queue, drops.
    Watch(crate::watch::WatchArgs),
}

impl Command {
    /// For the load commands (`echo`, `connect`, `churn`): their shared options, the connections the
    /// run asks for, and the total `--rate`.
    pub fn load(&self) -> Option<(&LoadArgs, u64, Option<f64>)> {
        match self {
            Command::Echo(a) => Some((&a.load, a.load.connections.unwrap_or(DEFAULT_CONNECTIONS), a.rate)),
            Command::Connect(a) => Some((&a.load, a.connections(), None)),
            Command::Churn(a) => Some((&a.load, a.load.connections.unwrap_or(DEFAULT_CONNECTIONS), None)),
            Command::Backlog(_)
            | Command::Sockets(_)
            | Command::Merge(_)
            | Command::Udp(_)
            | Command::Watch(_) => None,
        }
    }
}

/// Options every load command shares.
#[derive(Clone, Debug, Args)]
pub struct LoadArgs {
    /// The server: an address, a name that resolves to one or more (of several, the first that
    /// accepts a connection is used), or `unix:PATH` for a Unix domain socket (not with
    /// --source-ips or --blocking).
    #[arg(long, value_name = "HOST:PORT|unix:PATH", value_parser = Target::parse)]
    pub target: Target,
    /// Concurrent connections [default: 50; for `connect --until-failure`, the most it will try:
    /// 1,000,000].
    #[arg(long, value_parser = whole::<u64, 1, MAX_CONNECTIONS>, allow_negative_numbers = true)]
    pub connections: Option<u64>,
    /// Open at most this many connections per second, 0.001 to 10^9 (default: all at once).
    #[arg(long, value_name = "CONNS_PER_SEC", value_parser = per_second, allow_negative_numbers = true)]
    pub ramp: Option<f64>,
    /// Bind outgoing sockets round-robin to these local addresses (`127.0.0.1-127.0.0.8`, or a
    /// comma-separated list).
    #[arg(long, value_name = "RANGE", value_parser = crate::source_ips::parse_arg)]
    pub source_ips: Option<crate::source_ips::SourceIps>,
    /// Reactor loops (threads) splitting the connections.
    #[arg(long, default_value_t = 1, value_parser = whole::<u32, 1, 256>, allow_negative_numbers = true)]
    pub threads: u32,
    /// Client processes splitting the connections and source addresses; their reports are merged.
    #[arg(long, default_value_t = 1, value_parser = whole::<u32, 1, 256>, allow_negative_numbers = true)]
    pub processes: u32,
    /// Blocking sockets, one thread per connection, instead of the reactor.
    #[arg(long)]
    pub blocking: bool,
    /// A connect not complete after this long counts as ETIMEDOUT.
    #[arg(long, value_name = "MS", default_value_t = 3000, value_parser = whole::<u64, 1, 600_000>, allow_negative_numbers = true)]
    pub connect_timeout: u64,
    /// Exit 0 even if some connections could not be made (the report still names them); without it,
    /// such a run exits 4.
    #[arg(long)]
    pub allow_errors: bool,
    /// Measure from this moment, the same for every client of a run over several hosts: UTC as
    /// YYYY-MM-DDTHH:MM:SS[.frac]Z, or Unix seconds; at most 24 h ahead. Connections are made (and
    /// warmed up) before it; the measured interval is --duration from it (connect: --hold from it).
    #[arg(long, value_name = "TIME", value_parser = crate::start_at::parse_arg)]
    pub start_at: Option<SystemTime>,
    /// Print one JSON object instead of a readable summary.
    #[arg(long)]
    pub json: bool,
    /// Also draw the run over time as an SVG picture (not with --processes).
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// First connection id (set for child processes, so that ids stay unique across them).
    #[arg(long, default_value_t = 0, hide = true, value_parser = whole::<u64, 0, MAX_CONNECTIONS>, allow_negative_numbers = true)]
    pub id_offset: u64,
    /// Which child process this is (for progress lines).
    #[arg(long, hide = true)]
    pub child_index: Option<u32>,
}

/// The size of the messages and the length of the run, which `echo` and `churn` share. The help is
/// `echo`'s; [`ChurnArgs`] words it for its one message per connection.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// Bytes per message.
    #[arg(long, default_value_t = 64, value_parser = size, allow_negative_numbers = true)]
    pub size: usize,
    /// Seconds to run (warm-up included), 0.001 to 31536000 (one year).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = run_seconds, allow_negative_numbers = true)]
    pub duration: Duration,
}

/// `echo`.
#[derive(Clone, Debug, Args)]
pub struct EchoArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub load: LoadArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub run: RunArgs,
    /// Messages in flight per connection (1: ping-pong).
    #[arg(long, default_value_t = 1, value_parser = whole::<u32, 1, 4096>, allow_negative_numbers = true)]
    pub pipeline: u32,
    /// Open loop: send this many messages per second in total, measuring latency from each message's
    /// intended send time; 0.001 to 10^9.
    #[arg(long, value_name = "MSGS_PER_SEC", value_parser = per_second, allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// Seconds at the start excluded from the statistics, 0 to 31536000 (one year); with --start-at,
    /// the time before it is the warm-up.
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = seconds_or_zero, allow_negative_numbers = true, conflicts_with = "start_at")]
    pub warmup: Duration,
}

/// `connect`.
#[derive(Clone, Debug, Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub load: LoadArgs,
    /// Seconds to hold the connections once all are up, 0 to 31536000 (one year).
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = seconds_or_zero, allow_negative_numbers = true)]
    pub hold: Duration,
    /// Keep ramping until the first sustained failure, and name the limit that stopped it (the
    /// connections that failed are then expected: exit 0).
    #[arg(long)]
    pub until_failure: bool,
    /// As the hold ends, every Kth connection (by id, spread over loops and processes) sends one
    /// 32-byte message and verifies its echo before all close: the held connections still work. The
    /// report's `messages` counts the sample.
    #[arg(long, value_name = "K", value_parser = whole::<u64, 1, MAX_CONNECTIONS>, allow_negative_numbers = true, conflicts_with = "blocking")]
    pub echo_every: Option<u64>,
}

impl ConnectArgs {
    /// Connections the run asks for: `--connections`, or the default of its mode.
    pub fn connections(&self) -> u64 {
        let default = if self.until_failure { 1_000_000 } else { DEFAULT_CONNECTIONS };
        self.load.connections.unwrap_or(default)
    }
}

/// `churn`: the shared flags, with help worded for its one message per connection.
#[derive(Clone, Debug, Args)]
#[command(mut_arg("size", |a| a.help("Bytes of the one message each connection echoes")))]
#[command(mut_arg("duration", |a| a.help("Seconds to run, 0.001 to 31536000 (one year)")))]
pub struct ChurnArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub load: LoadArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub run: RunArgs,
}

/// `backlog`.
#[derive(Clone, Debug, Args)]
pub struct BacklogArgs {
    /// A listener that is not accepting: an address, or a name (of several addresses, the first that
    /// completes the first connection is probed).
    #[arg(long, value_name = "HOST:PORT", value_parser = Target::parse_tcp)]
    pub target: Target,
    /// Stop after this many completed connections even if the kernel keeps completing.
    #[arg(long, default_value_t = 10_000, value_parser = whole::<u32, 1, 100_000>, allow_negative_numbers = true)]
    pub max: u32,
    /// A connect not complete after this long means the accept queue is full.
    #[arg(long, value_name = "MS", default_value_t = 500, value_parser = whole::<u64, 1, 60_000>, allow_negative_numbers = true)]
    pub connect_timeout: u64,
    /// The backlog the listener was given, if known (reported next to what was measured).
    #[arg(long, value_parser = whole::<u32, 0, { u32::MAX as u64 }>, allow_negative_numbers = true)]
    pub backlog: Option<u32>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Also draw the accept queue filling as an SVG picture.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

/// `sockets`.
#[derive(Clone, Debug, Args)]
pub struct SocketsArgs {
    /// Count sockets whose local or remote port is this.
    #[arg(long, value_parser = whole::<u16, 0, { u16::MAX as u64 }>, allow_negative_numbers = true)]
    pub port: u16,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `merge`.
#[derive(Clone, Debug, Args)]
pub struct MergeArgs {
    /// JSON reports written by `echo`, `connect`, `churn` or `udp` with `--json`.
    #[arg(required = true, value_name = "REPORT.json")]
    pub reports: Vec<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The length of a run: [`MIN_RUN_SECONDS`] to [`MAX_SECONDS`].
pub(crate) fn run_seconds(text: &str) -> Result<Duration, String> {
    seconds(text, MIN_RUN_SECONDS)
}

/// A wait that may be nothing (`--warmup`, `--hold`): 0 to [`MAX_SECONDS`].
pub(crate) fn seconds_or_zero(text: &str) -> Result<Duration, String> {
    seconds(text, 0.0)
}

/// Seconds from `min` to [`MAX_SECONDS`] as a `Duration`; the one parser behind every option in seconds,
/// so that no value it accepts can overflow the arithmetic on instants that follows.
pub(crate) fn seconds(text: &str, min: f64) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if (min..=MAX_SECONDS).contains(&v) => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("expected seconds from {min} to {MAX_SECONDS} (one year)")),
    }
}

/// A rate per second: [`MIN_RATE`] to [`MAX_RATE`], so that its inverse is an interval `Duration` holds.
pub(crate) fn per_second(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if (MIN_RATE..=MAX_RATE).contains(&v) => Ok(v),
        _ => Err(format!("expected a rate per second from {MIN_RATE} to {MAX_RATE}")),
    }
}

/// A message size in bytes: 1 to [`MAX_SIZE`].
fn size(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(v) if (1..=MAX_SIZE).contains(&v) => Ok(v),
        _ => Err(format!("expected a size in bytes from 1 to {MAX_SIZE}")),
    }
}

/// A whole number from `MIN` to `MAX`: every count and limit is parsed here, so that every value out
/// of range is refused in the same words as the seconds, rates and sizes ("expected ... from MIN to
/// MAX"), naming its flag (clap adds the flag; `allow_negative_numbers` lets `-1` reach this parser
/// rather than be taken for a flag).
pub(crate) fn whole<T: TryFrom<u64>, const MIN: u64, const MAX: u64>(text: &str) -> Result<T, String> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|v| (MIN..=MAX).contains(v))
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| format!("expected a whole number from {MIN} to {MAX}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_refused_by_clap() {
        let parse = |line: &str| Cli::try_parse_from(line.split_whitespace());
        assert!(parse("stress-client echo --target 127.0.0.1:1").is_ok());
        assert!(parse("stress-client echo --target 127.0.0.1:1 --connections 0").is_err());
        assert!(parse("stress-client echo --target 127.0.0.1:1 --size 99999999").is_err());
        assert!(parse("stress-client connect --target 127.0.0.1:1 --source-ips 1.2.3.4-1.2.3").is_err());
        assert!(parse("stress-client merge").is_err());
    }

    /// `echo` and `churn` share one group of flags; each still explains them in its own words.
    #[test]
    fn the_shared_flags_keep_each_command_s_help() {
        use clap::CommandFactory;
        let cli = Cli::command();
        cli.clone().debug_assert();
        let help = |command: &str, flag: &str| {
            let command = cli.find_subcommand(command).expect("a subcommand");
            let arg = command.get_arguments().find(|a| a.get_id() == flag).expect("a flag");
            arg.get_help().expect("help").to_string()
        };
        assert_eq!(help("echo", "size"), "Bytes per message");
        assert_eq!(help("churn", "size"), "Bytes of the one message each connection echoes");
        assert_eq!(
            help("echo", "duration"),
            "Seconds to run (warm-up included), 0.001 to 31536000 (one year)"
        );
        assert_eq!(help("churn", "duration"), "Seconds to run, 0.001 to 31536000 (one year)");
    }

    #[test]
    fn the_longest_times_and_the_extreme_rates_are_accepted() {
        let parse = |line: &str| Cli::try_parse_from(line.split_whitespace());
        let echo = "stress-client echo --target 127.0.0.1:1";
        assert!(
            parse(&format!("{echo} --duration 31536000 --warmup 31536000 --rate 1e9 --ramp 0.001")).is_ok()
        );
        assert!(parse(&format!("{echo} --duration 0.001 --warmup 0 --rate 0.001 --ramp 1e9")).is_ok());
        assert!(parse(&format!("{echo} --duration 31536000.001")).is_err());
        assert!(parse("stress-client connect --target 127.0.0.1:1 --hold 31536000").is_ok());
        assert!(parse("stress-client connect --target 127.0.0.1:1 --hold 0").is_ok());
        assert!(parse("stress-client churn --target 127.0.0.1:1 --duration 31536000").is_ok());
    }
}
