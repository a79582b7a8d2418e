//! The command line.

use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, ValueEnum};

use crate::listen_addr::ListenAddr;

/// Echo server: the reactor and the blocking thread-per-connection model, side by side.
///
/// Prints `listening on HOST:PORT` (or `listening on unix:PATH`) as its first line on stdout once it
/// accepts connections. Logs go to stderr (RUST_LOG=debug for every connection).
#[derive(Clone, Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// Address to listen on, or a name (the first address it resolves to); port 0 picks a free port
    /// (printed on the first line). `unix:PATH` serves a Unix domain socket with one event loop (not
    /// with --threads, --workers, --udp or --mode blocking): a stale socket file at PATH is replaced,
    /// one a server answers on is refused as in use, and the file is removed on exit.
    #[arg(long, value_name = "HOST:PORT|unix:PATH", default_value = "127.0.0.1:7878", value_parser = ListenAddr::parse)]
    pub addr: ListenAddr,

    /// Length of the kernel's accept queue, passed to listen(2) (capped by net.core.somaxconn).
    #[arg(long, default_value_t = 1024, value_parser = whole::<u32, 1, { u32::MAX as u64 }>, allow_negative_numbers = true)]
    pub backlog: u32,

    /// reactor: one event loop per thread, every socket non-blocking. blocking: one thread per peer.
    #[arg(long, value_enum, default_value_t = Mode::Reactor)]
    pub mode: Mode,

    /// Connections held at once; further peers wait in the accept queue.
    #[arg(long = "max-conns", value_parser = whole::<u64, 1, { u64::MAX }>, allow_negative_numbers = true)]
    pub max_conns: Option<u64>,

    /// Close a connection after this many seconds without traffic.
    #[arg(long = "idle-timeout", value_name = "SECS", value_parser = seconds, allow_negative_numbers = true)]
    pub idle_timeout: Option<Duration>,

    /// Event loops in this process, each with its own SO_REUSEPORT listener on the address (reactor).
    #[arg(long, default_value_t = 1, value_parser = whole::<u32, 1, 256>, allow_negative_numbers = true)]
    pub threads: u32,

    /// Worker processes, each with its own loops and SO_REUSEPORT listeners (reactor): the way past one
    /// process's descriptor limit.
    #[arg(long, default_value_t = 1, value_parser = whole::<u32, 1, 256>, allow_negative_numbers = true)]
    pub workers: u32,

    /// Bind and listen but never accept: peers complete the handshake and wait in the backlog.
    #[arg(long = "pause-accept")]
    pub pause_accept: bool,

    /// Also echo UDP datagrams on the same port number (each reply goes to its datagram's sender).
    #[arg(long)]
    pub udp: bool,

    /// Log each connection's lifecycle to stderr, one line per step with its id, descriptor and 4-tuple
    /// (accepted, first byte, back-pressure pause and resume, peer EOF, our FIN, close and its reason,
    /// idle timeout), and each listener's accept pauses and resumptions (reactor; the same as
    /// RUST_LOG=reactor::lifecycle=trace).
    #[arg(long)]
    pub trace: bool,

    /// Print counters to stderr every SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = seconds, allow_negative_numbers = true)]
    pub stats: Option<Duration>,

    /// Seconds a graceful shutdown may take to flush before connections are closed as they are.
    #[arg(
        long = "shutdown-timeout",
        value_name = "SECS",
        default_value = "5",
        value_parser = seconds,
        allow_negative_numbers = true
    )]
    pub shutdown_timeout: Duration,

    /// Run as a worker of the supervisor with this pid (set by `--workers`): join the port's SO_REUSEPORT
    /// group, and end when the supervisor ends.
    #[arg(long = "worker-of", value_name = "PID", hide = true)]
    pub worker_of: Option<u32>,
}

/// How connections are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// One readiness-driven event loop per thread.
    Reactor,
    /// Blocking accept, one thread per connection.
    Blocking,
}

impl Cli {
    /// Parses the command line. Bad input, including combinations of flags that cannot work together,
    /// ends the process with clap's message and exit code 2.
    pub fn parse_valid() -> Cli {
        let cli = Cli::parse();
        if let Some(conflict) = cli.conflict() {
            Cli::command().error(ErrorKind::ArgumentConflict, conflict).exit();
        }
        cli
    }

    /// What is wrong with this combination of flags, if anything. These depend on the value of `--mode`,
    /// which clap's `conflicts_with` (by presence of a flag) cannot express.
    fn conflict(&self) -> Option<&'static str> {
        if matches!(self.addr, ListenAddr::Unix(_)) {
            self.unix_conflict()
        } else if self.mode != Mode::Blocking {
            None
        } else if self.udp {
            Some("'--udp' cannot be used with '--mode blocking': datagrams are served by the reactor")
        } else if self.threads > 1 || self.workers > 1 {
            Some(
                "'--threads' and '--workers' cannot be used with '--mode blocking', which runs a thread per peer",
            )
        } else if self.trace {
            Some("'--trace' cannot be used with '--mode blocking': the lifecycle is traced by the reactor")
        } else {
            None
        }
    }

    /// What a Unix socket address cannot be served with: one loop of the reactor serves it.
    fn unix_conflict(&self) -> Option<&'static str> {
        if self.mode == Mode::Blocking {
            Some(
                "'--addr unix:PATH' cannot be used with '--mode blocking': Unix sockets are served by the reactor",
            )
        } else if self.udp {
            Some("'--addr unix:PATH' cannot be used with '--udp': datagrams are served over IP")
        } else if self.threads > 1 || self.workers > 1 {
            Some(
                "'--addr unix:PATH' cannot be used with '--threads' or '--workers': one loop serves a Unix socket",
            )
        } else {
            None
        }
    }

    /// `--max-conns` as a count of connections.
    pub fn max_conns(&self) -> Option<usize> {
        self.max_conns.map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }
}

/// The shortest and longest durations the `SECS` flags take: below a millisecond a timer fires in a
/// busy loop, and beyond a year the value is a typo (and deadlines computed from it could overflow).
const SECONDS_MIN: f64 = 0.001;
const SECONDS_MAX: f64 = 365.0 * 24.0 * 3600.0;

/// Parses a `SECS` value: a finite decimal number of seconds within [`SECONDS_MIN`, `SECONDS_MAX`].
/// Every refusal reads the same, in stress-client's words too: "expected ... from MIN to MAX".
fn seconds(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        // Written so that NaN, which compares false with everything, is refused too.
        Ok(value) if (SECONDS_MIN..=SECONDS_MAX).contains(&value) => Ok(Duration::from_secs_f64(value)),
        _ => Err(format!("expected seconds from {SECONDS_MIN} to {SECONDS_MAX} (one year)")),
    }
}

/// A whole number from `MIN` to `MAX`, refused in the same words as the seconds. With
/// `allow_negative_numbers`, a negative value reaches this check (which names its flag) instead of
/// passing for an unknown flag.
fn whole<T: TryFrom<u64>, const MIN: u64, const MAX: u64>(text: &str) -> Result<T, String> {
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
    fn seconds_within_bounds_are_durations() {
        assert_eq!(seconds("0.2"), Ok(Duration::from_millis(200)));
        assert_eq!(seconds("5"), Ok(Duration::from_secs(5)));
        assert_eq!(seconds("1e3"), Ok(Duration::from_secs(1000)));
        assert!(seconds("0.001").is_ok());
        assert!(seconds("31536000").is_ok());
    }

    #[test]
    fn seconds_out_of_bounds_are_refused() {
        for text in ["0", "-0", "-1", "0.0009", "31536001", "nan", "inf", "-inf", "1e300", "", "5s"] {
            assert!(seconds(text).is_err(), "{text:?} was accepted");
        }
    }

    /// The supervisor hands its values to the workers as text; what it passes must parse to the same.
    #[test]
    fn seconds_survive_the_trip_to_a_worker() {
        for text in ["0.001", "0.2", "1", "2.5", "31536000", "0.123456789"] {
            let duration = seconds(text).unwrap();
            assert_eq!(seconds(&duration.as_secs_f64().to_string()), Ok(duration), "{text}");
        }
    }
}
