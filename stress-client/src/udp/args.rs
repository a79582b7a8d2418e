//! `udp`'s options.

use std::time::{Duration, SystemTime};

use clap::Args;

use super::datagram;
use crate::cli::{MAX_SECONDS, per_second, run_seconds, seconds, seconds_or_zero, whole};
use crate::target::Target;

/// Most sockets one run may open.
pub const MAX_SOCKETS: u64 = 100_000;

/// `udp`.
#[derive(Clone, Debug, Args)]
pub struct UdpArgs {
    /// The UDP echo server: an address, or a name (its first address is used).
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_target)]
    pub target: Target,
    /// Client sockets, each with its own source port.
    #[arg(long, default_value_t = 1, value_parser = whole::<u64, 1, MAX_SOCKETS>, allow_negative_numbers = true)]
    pub sockets: u64,
    /// Closed loop: datagrams in flight per socket (one more is sent as each comes back or is lost).
    #[arg(long, default_value_t = 16, value_parser = whole::<u32, 1, 65_536>, allow_negative_numbers = true)]
    pub window: u32,
    /// Open loop instead: send this many datagrams per second in total, measuring latency from each
    /// datagram's intended send time; 0.001 to 10^9.
    #[arg(long, value_name = "DGRAMS_PER_SEC", value_parser = per_second, allow_negative_numbers = true, conflicts_with = "window")]
    pub rate: Option<f64>,
    /// Bytes per datagram, 24 (the header) to 65507.
    #[arg(long, default_value_t = 64, value_parser = size, allow_negative_numbers = true)]
    pub size: usize,
    /// Seconds to send (warm-up included), 0.001 to 31536000 (one year).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = run_seconds, allow_negative_numbers = true)]
    pub duration: Duration,
    /// Seconds at the start whose datagrams are left out of every count, 0 to 31536000; with
    /// --start-at, the time before it is the warm-up.
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = seconds_or_zero, allow_negative_numbers = true, conflicts_with = "start_at")]
    pub warmup: Duration,
    /// A datagram not back this long after its send is lost (one back later is also counted late);
    /// the run waits this long at the end for the last ones. 0.001 to 3600.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = loss_timeout, allow_negative_numbers = true)]
    pub loss_timeout: Duration,
    /// Exit 0 even if datagrams were lost, duplicated or reordered, which UDP allows (the report still
    /// counts them); without it such a run exits 3. Corruption always exits 3.
    #[arg(long)]
    pub allow_loss: bool,
    /// Reactor loops (threads) splitting the sockets.
    #[arg(long, default_value_t = 1, value_parser = whole::<u32, 1, 256>, allow_negative_numbers = true)]
    pub threads: u32,
    /// Client processes splitting the sockets and the rate; their reports are merged.
    #[arg(long, default_value_t = 1, value_parser = whole::<u32, 1, 256>, allow_negative_numbers = true)]
    pub processes: u32,
    /// Measure from this moment, the same for every client of a run over several hosts: UTC as
    /// YYYY-MM-DDTHH:MM:SS[.frac]Z, or Unix seconds; at most 24 h ahead. Datagrams sent before it are
    /// the warm-up; the measured interval is --duration from it.
    #[arg(long, value_name = "TIME", value_parser = crate::start_at::parse_arg)]
    pub start_at: Option<SystemTime>,
    /// Print one JSON object instead of a readable summary.
    #[arg(long)]
    pub json: bool,
    /// First socket id (set for child processes, so that ids stay unique across them).
    #[arg(long, default_value_t = 0, hide = true, value_parser = whole::<u64, 0, MAX_SOCKETS>, allow_negative_numbers = true)]
    pub id_offset: u64,
    /// Which child process this is.
    #[arg(long, hide = true)]
    pub child_index: Option<u32>,
}

/// `--target`: an IP address and port, or a name; not a Unix socket.
fn parse_target(text: &str) -> Result<Target, String> {
    if text.starts_with("unix:") {
        return Err(format!("{text:?}: udp sends datagrams over IP, not to a Unix socket"));
    }
    Target::parse_tcp(text)
}

/// `--size`: from the header's 24 bytes to the largest UDP/IPv4 datagram.
fn size(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(v) if (datagram::HEADER..=datagram::MAX_SIZE).contains(&v) => Ok(v),
        _ => Err(format!("expected a size in bytes from {} to {}", datagram::HEADER, datagram::MAX_SIZE)),
    }
}

/// `--loss-timeout`: 1 ms to one hour (a datagram later than that is not coming back).
fn loss_timeout(text: &str) -> Result<Duration, String> {
    let d = seconds(text, 0.001)?;
    if d.as_secs_f64() > 3600.0_f64.min(MAX_SECONDS) {
        return Err("expected seconds from 0.001 to 3600".to_owned());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::Cli;

    #[test]
    fn bad_input_is_refused_by_clap() {
        let parse = |line: &str| Cli::try_parse_from(line.split_whitespace());
        let udp = "stress-client udp --target 127.0.0.1:1";
        assert!(parse(udp).is_ok());
        assert!(parse(&format!("{udp} --rate 1000 --sockets 4 --size 24 --loss-timeout 0.5")).is_ok());
        assert!(parse(&format!("{udp} --size 23")).is_err());
        assert!(parse(&format!("{udp} --size 65508")).is_err());
        assert!(parse(&format!("{udp} --rate 10 --window 4")).is_err());
        assert!(parse(&format!("{udp} --loss-timeout 3601")).is_err());
        assert!(parse(&format!("{udp} --sockets 0")).is_err());
        assert!(parse("stress-client udp --target unix:/tmp/x").is_err());
    }
}
