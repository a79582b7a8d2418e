//! `udp --processes P`: the same command in P child processes, each with its share of the sockets
//! and of the rate, and socket ids of its own; their JSON reports are merged.

use std::io;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use super::UdpArgs;
use crate::processes::{passed_through, share};
use crate::report::Report;

/// Options the parent rewrites for each child.
const SPLIT: [&str; 6] = ["--processes", "--sockets", "--rate", "--id-offset", "--child-index", "--target"];

/// Runs the children and returns their reports; fails if one of them produced no report.
pub fn run(args: &UdpArgs, target: SocketAddr) -> io::Result<Vec<Report>> {
    let parts = u64::from(args.processes).min(args.sockets);
    if let Some(rate) = args.rate {
        // Each child parses its part as it would --rate.
        let least = rate * share(args.sockets, parts, parts - 1) as f64 / args.sockets as f64;
        if least < crate::cli::MIN_RATE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "--rate {rate} over {parts} processes leaves one of them {least} per second: use fewer"
                ),
            ));
        }
    }
    let base = passed_through(std::env::args_os().skip(1), &SPLIT);
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    let mut offset = args.id_offset;
    for i in 0..parts {
        let n = share(args.sockets, parts, i);
        let mut command = Command::new(&exe);
        command.args(&base).arg("--json").stdin(Stdio::null()).stdout(Stdio::piped());
        command.args(["--sockets", &n.to_string(), "--id-offset", &offset.to_string()]);
        command.args(["--child-index", &i.to_string(), "--target", &target.to_string()]);
        if let Some(rate) = args.rate {
            command.args(["--rate", &(rate * n as f64 / args.sockets as f64).to_string()]);
        }
        offset += n;
        children.push(command.spawn()?);
    }
    crate::processes::collect_reports(children, || None)
}
