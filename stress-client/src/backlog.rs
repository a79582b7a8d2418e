//! `backlog`: how many connections the kernel completes for a listener nobody accepts from, i.e. the
//! accept queue's real capacity.
//!
//! Connects one at a time and keeps every socket; the first connect that does not complete within the
//! timeout means the kernel dropped the SYN because the queue was full (or reset it, with
//! `tcp_abort_on_overflow`). One blocking connect at a time is the whole job, so this probe uses plain
//! sockets rather than the loop.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hostinfo::{listen_counters, sysctl_u64};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};

use crate::cli::BacklogArgs;
use crate::environment::Environment;
use crate::plot::{self, ProbeRecorder};

/// The result of a backlog probe.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BacklogReport {
    /// The listener, as `--target` gave it.
    pub target: String,
    /// The address probed: `target` itself, or of the addresses its name resolved to, the first that
    /// completed a connection.
    #[serde(default)]
    pub target_addr: String,
    /// Connections the kernel completed while nobody accepted.
    pub completed: u64,
    /// The backlog the listener was given (`--backlog`), if known.
    pub configured_backlog: Option<u32>,
    /// What the kernel will use for that backlog: min(backlog, somaxconn).
    pub effective_backlog: Option<u64>,
    /// The listener's accept-queue length after the probe (sock_diag, or /proc/net/tcp{,6}); `None`
    /// where the OS does not show other processes' queues (every OS but Linux).
    pub accept_queue: Option<u64>,
    /// What ended the probe: "timeout", an error name, or "max".
    pub stopped_by: String,
    /// `net.core.somaxconn` (`kern.ipc.somaxconn` on macOS and FreeBSD).
    pub somaxconn: Option<u64>,
    /// `net.ipv4.tcp_max_syn_backlog`.
    pub tcp_max_syn_backlog: Option<u64>,
    /// `net.ipv4.tcp_syncookies`.
    pub tcp_syncookies: Option<u64>,
    /// `net.ipv4.tcp_abort_on_overflow`.
    pub tcp_abort_on_overflow: Option<u64>,
    /// Rise of TcpExt ListenOverflows during the probe; `None` where the OS has no such counter (every
    /// OS but Linux).
    pub listen_overflows: Option<u64>,
    /// One sentence on what the numbers mean.
    pub explanation: String,
    /// The machine and its limits.
    pub environment: Environment,
}

/// Runs the probe.
pub fn run(args: &BacklogArgs) -> io::Result<BacklogReport> {
    if let Some(path) = &args.plot {
        plot::check_writable(path)?;
    }
    let environment = Environment::capture();
    let before = listen_counters();
    let timeout = Duration::from_millis(args.connect_timeout);
    let connect = |addr: SocketAddr| {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.connect_timeout(&addr.into(), timeout).map(|()| socket)
    };
    let mut held = Vec::new();
    let mut stopped_by = "max".to_owned();
    let mut recorder = args
        .plot
        .as_ref()
        .zip(args.target.port())
        .map(|(_, port)| ProbeRecorder::new(&args.target.to_string(), port));
    // The first connection tries the target's addresses in order; the rest go where it went.
    // `--target` was parsed as TCP only: there is always an address.
    let Some(mut addr) = args.target.addr() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a TCP address", args.target),
        ));
    };
    while held.len() < args.max as usize {
        let attempt = if held.is_empty() {
            args.target.connect_in_order(connect).map_err(|tried| {
                // Every address failed: what the last one said ends the probe, as with one address.
                tried
                    .into_iter()
                    .last()
                    .map_or_else(|| io::Error::other("no address to connect to"), |(_, e)| e)
            })
        } else {
            connect(addr).map(|socket| (socket, addr))
        };
        match attempt {
            Ok((socket, used)) => {
                addr = used;
                held.push(socket);
                if let Some(recorder) = recorder.as_mut() {
                    recorder.completed(held.len() as u64, u64::from(args.max));
                }
            }
            Err(e) => {
                stopped_by = if e.kind() == io::ErrorKind::TimedOut {
                    "timeout".to_owned()
                } else {
                    hostinfo::errno_name(&e).to_owned()
                };
                if held.is_empty() && stopped_by != "timeout" {
                    return Err(io::Error::new(e.kind(), format!("cannot connect to {}: {e}", args.target)));
                }
                break;
            }
        }
    }
    let accept_queue = hostinfo::tcp_states(addr.port()).map(|s| s.accept_queue).ok();
    let overflows = match (before, listen_counters()) {
        (Some(a), Some(b)) => Some(b.overflows.saturating_sub(a.overflows)),
        _ => None,
    };
    let somaxconn = hostinfo::somaxconn();
    let effective = args.backlog.map(|b| somaxconn.map_or(u64::from(b), |m| m.min(u64::from(b))));
    let completed = held.len() as u64;
    let explanation = explain(completed, &stopped_by, effective, timeout);
    if let (Some(path), Some(recorder)) = (&args.plot, recorder) {
        // Without --backlog, the kernel's own figure for the listener (Linux).
        let told = || hostinfo::listen_queues(addr.port()).ok()?.iter().map(|q| q.backlog).max();
        plot::svg(&recorder.finish(completed, &stopped_by, effective.or_else(told)), path)?;
    }
    Ok(BacklogReport {
        target: args.target.to_string(),
        target_addr: addr.to_string(),
        completed,
        configured_backlog: args.backlog,
        effective_backlog: effective,
        accept_queue,
        stopped_by,
        somaxconn,
        tcp_max_syn_backlog: sysctl_u64("net.ipv4.tcp_max_syn_backlog"),
        tcp_syncookies: sysctl_u64("net.ipv4.tcp_syncookies"),
        tcp_abort_on_overflow: sysctl_u64("net.ipv4.tcp_abort_on_overflow"),
        listen_overflows: overflows,
        explanation,
        environment,
    })
}

fn explain(completed: u64, stopped_by: &str, effective: Option<u64>, timeout: Duration) -> String {
    let why = match stopped_by {
        "timeout" => format!(
            "then a connect got no answer within {timeout:?} because Linux drops the SYN once the accept \
             queue is full"
        ),
        "ECONNREFUSED" | "ECONNRESET" => {
            "then the kernel answered with a reset because the queue was full (tcp_abort_on_overflow)"
                .to_owned()
        }
        "max" => "and it was still completing when the probe reached --max".to_owned(),
        other => format!("then connect failed with {other}"),
    };
    let expected = match effective {
        Some(b) if completed == b + 1 => {
            format!(": that is the backlog of {b} plus one, since Linux lets the queue hold backlog + 1")
        }
        Some(b) => format!(" (a backlog of {b} would let Linux complete {})", b + 1),
        None => String::new(),
    };
    format!("The kernel completed {completed} connections that nobody accepted, {why}{expected}.")
}

impl BacklogReport {
    /// The readable summary.
    pub fn summary(&self) -> String {
        let show = |v: Option<u64>| v.map_or("n/a".to_owned(), |v| v.to_string());
        format!(
            "backlog probe of {}{}\ncompleted {} (stopped by {}), accept queue now {}, configured backlog {}\n\
             somaxconn {}, tcp_max_syn_backlog {}, tcp_syncookies {}, tcp_abort_on_overflow {}, \
             ListenOverflows {}\n{}",
            self.target,
            if self.target_addr.is_empty() || self.target_addr == self.target {
                String::new()
            } else {
                format!(" at {}", self.target_addr)
            },
            self.completed,
            self.stopped_by,
            show(self.accept_queue),
            self.configured_backlog.map_or("unknown".to_owned(), |b| b.to_string()),
            show(self.somaxconn),
            show(self.tcp_max_syn_backlog),
            show(self.tcp_syncookies),
            show(self.tcp_abort_on_overflow),
            self.listen_overflows.map_or("n/a".to_owned(), |n| format!("+{n}")),
            self.explanation
        )
    }
}
