//! `watch`'s options.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args};

use crate::target::Target;

/// `watch`.
#[derive(Clone, Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).args(["port", "target"])))]
pub struct WatchArgs {
    /// The port to watch; its server is looked for among the listeners of 127.0.0.1 (and of every
    /// address).
    #[arg(long)]
    pub port: Option<u16>,
    /// The listener to watch, as an address or a name (of several addresses, the first).
    #[arg(long, value_name = "HOST:PORT", value_parser = Target::parse_tcp)]
    pub target: Option<Target>,
    /// The server process to watch [default: the process listening on the port, if one is found].
    #[arg(long)]
    pub pid: Option<u32>,
    /// Seconds between samples, 0.01 to 31536000 (one year).
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = interval, allow_negative_numbers = true)]
    pub interval: Duration,
    /// Stop after this many seconds, 0 to 31536000 (default: at Ctrl-C).
    #[arg(long, value_name = "SECS", value_parser = crate::cli::seconds_or_zero, allow_negative_numbers = true)]
    pub duration: Option<Duration>,
    /// One JSON object per sample, one per line.
    #[arg(long)]
    pub json: bool,
    /// At the end, draw the samples as an SVG picture.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

impl WatchArgs {
    /// The port watched and the address its listener is looked for at.
    pub fn listener(&self) -> SocketAddr {
        match (&self.target, self.port) {
            (Some(target), _) => target.addr().expect("--target is parsed as TCP: it has an address"),
            (None, Some(port)) => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
            (None, None) => unreachable!("clap requires --port or --target"),
        }
    }
}

/// The time between samples: 10 ms (faster would measure the watch itself) to one year.
fn interval(text: &str) -> Result<Duration, String> {
    crate::cli::seconds(text, 0.01)
}
