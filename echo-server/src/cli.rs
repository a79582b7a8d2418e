//! The command line.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Echo server: the reactor and the blocking thread-per-connection model, side by side.
///
/// Prints `listening on HOST:PORT` as its first line on stdout once it accepts connections. Logs go to
/// stderr (RUST_LOG=debug for every connection).
#[derive(Clone, Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// Address to listen on; port 0 picks a free port (printed on the first line).
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub addr: SocketAddr,

    /// Length of the kernel's accept queue, passed to listen(2) (capped by net.core.somaxconn).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub backlog: u32,

    /// reactor: one event loop per thread, every socket non-blocking. blocking: one thread per peer.
    #[arg(long, value_enum, default_value_t = Mode::Reactor)]
    pub mode: Mode,

    /// Connections held at once; further peers wait in the accept queue.
    #[arg(long = "max-conns", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_conns: Option<u64>,

    /// Close a connection after this many seconds without traffic.
    #[arg(long = "idle-timeout", value_name = "SECS")]
    pub idle_timeout: Option<f64>,

    /// Event loops in this process, each with its own SO_REUSEPORT listener on the address (reactor).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,

    /// Worker processes, each with its own loops and SO_REUSEPORT listeners (reactor): the way past one
    /// process's descriptor limit.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub workers: u32,

    /// Bind and listen but never accept: peers complete the handshake and wait in the backlog.
    #[arg(long = "pause-accept")]
    pub pause_accept: bool,

    /// Also echo UDP datagrams on the same port number (each reply goes to its datagram's sender).
    #[arg(long)]
    pub udp: bool,

    /// Print counters to stderr every SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub stats: Option<f64>,

    /// Seconds a graceful shutdown may take to flush before connections are closed as they are.
    #[arg(long = "shutdown-timeout", value_name = "SECS", default_value_t = 5.0)]
    pub shutdown_timeout: f64,

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
    /// Rejects combinations that cannot work, with a sentence that says why.
    pub fn validate(&self) -> Result<(), String> {
        if self.mode == Mode::Blocking && self.udp {
            return Err("--udp is served by --mode reactor".into());
        }
        if self.mode == Mode::Blocking && (self.threads > 1 || self.workers > 1) {
            return Err(
                "--threads and --workers apply to --mode reactor; blocking mode uses a thread per peer"
                    .into(),
            );
        }
        for (name, value) in [
            ("--idle-timeout", self.idle_timeout),
            ("--stats", self.stats),
            ("--shutdown-timeout", Some(self.shutdown_timeout)),
        ] {
            if let Some(v) = value
                && !(v.is_finite() && v > 0.0 && v < 1e9)
            {
                return Err(format!("{name} must be a positive number of seconds, not {v}"));
            }
        }
        Ok(())
    }

    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout.map(Duration::from_secs_f64)
    }

    pub fn stats_interval(&self) -> Option<Duration> {
        self.stats.map(Duration::from_secs_f64)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.shutdown_timeout)
    }

    pub fn max_conns(&self) -> Option<usize> {
        self.max_conns.map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }
}
