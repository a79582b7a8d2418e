//! One look at the port and its server, and the series `--plot` draws from the looks taken.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hostinfo::ListenCounters;
use serde::Serialize;

use crate::plot::{Panel, Timeline};
use crate::target_process::TargetServer;

use super::WatchArgs;

/// One sample, as `--json` prints it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sample {
    /// Seconds since the watch began.
    pub t: f64,
    /// The port watched.
    pub port: u16,
    /// TCP sockets whose local or remote port is `port`, by state, every state listed (both ends of
    /// each connection when client and server are on this machine); `null` where the OS does not show
    /// them.
    pub states: Option<BTreeMap<&'static str, u64>>,
    /// Connections completed by the kernel and not yet accepted, over the port's listeners.
    pub accept_queue: Option<u64>,
    /// The backlog those listeners were given (capped at somaxconn): the queue holds one more.
    pub backlog: Option<u64>,
    /// Rise of the machine's TcpExt ListenOverflows since the watch began.
    pub listen_overflows: Option<u64>,
    /// Rise of the machine's TcpExt ListenDrops since the watch began.
    pub listen_drops: Option<u64>,
    /// The server process, when one is watched.
    pub process: Option<ProcessSample>,
    /// What this sample could not show, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
}

/// The server's figures, added up over its processes (several for a server that forks workers).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProcessSample {
    /// The processes.
    pub pids: Vec<u32>,
    /// Open descriptors.
    pub fds: Option<u64>,
    /// Threads.
    pub threads: Option<u64>,
    /// Resident memory, KiB.
    pub rss_kib: Option<u64>,
    /// RLIMIT_NOFILE soft limits, added up.
    pub nofile_soft: Option<u64>,
}

/// The port watched, the process found for it, and the samples' series.
#[derive(Debug)]
pub struct Watched {
    /// The listener's address (where its process is looked for).
    pub listener: SocketAddr,
    /// The server watched: given by `--pid`, or found listening; `None` while none is found.
    pub server: Option<TargetServer>,
    /// Whether `--pid` named it (then it is never looked for again).
    given: bool,
    before: Option<ListenCounters>,
    timeline: Timeline,
}

/// Panels of the picture.
const SOCKETS: usize = 0;
const QUEUE: usize = 1;
const PROCESS: usize = 2;
const MEMORY: usize = 3;

impl Watched {
    /// Starts watching what `args` names.
    pub fn new(args: &WatchArgs) -> io::Result<Watched> {
        let listener = args.listener();
        let server = match args.pid {
            Some(pid) => Some(TargetServer::of_pid(pid)?),
            None => TargetServer::find(listener).filter(TargetServer::found),
        };
        let port = listener.port();
        Ok(Watched {
            listener,
            server,
            given: args.pid.is_some(),
            before: hostinfo::listen_counters(),
            timeline: Timeline {
                title: format!("stress-client watch --port {port}"),
                panels: vec![
                    Panel::new(&format!("sockets on port {port}")),
                    Panel::new("accept queue, listen drops"),
                    Panel::new("server process"),
                    Panel::new("server RSS (MiB)"),
                ],
            },
        })
    }

    /// Takes a sample now, `t` into the watch, and adds it to the series.
    pub fn sample(&mut self, t: Duration) -> Sample {
        let port = self.listener.port();
        let mut sample = Sample { t: crate::start_at::round_us(t.as_secs_f64()), port, ..Sample::default() };
        match port_sockets(port) {
            Ok((states, listeners)) => {
                sample.states = Some(states.iter().collect());
                sample.accept_queue = Some(states.accept_queue);
                sample.backlog =
                    listeners.filter(|l| !l.is_empty()).map(|l| l.iter().map(|q| q.backlog).sum());
            }
            Err(e) => sample.unavailable.push(e.to_string()),
        }
        match (self.before, hostinfo::listen_counters()) {
            (Some(a), Some(b)) => {
                sample.listen_overflows = Some(b.overflows.saturating_sub(a.overflows));
                sample.listen_drops = Some(b.drops.saturating_sub(a.drops));
            }
            _ => sample
                .unavailable
                .push("ListenOverflows and ListenDrops (/proc/net/netstat): not available".into()),
        }
        if self.server.is_none() && !self.given {
            // A server started after the watch is picked up when it listens.
            self.server = TargetServer::find(self.listener).filter(TargetServer::found);
        }
        if let Some(server) = &self.server {
            match super::process::sample(&server.pids) {
                Ok(mut p) => {
                    p.nofile_soft = server.nofile_soft;
                    sample.process = Some(p);
                }
                Err(e) => sample.unavailable.push(e.to_string()),
            }
        }
        self.record(&sample);
        sample
    }

    fn record(&mut self, s: &Sample) {
        let panels = &mut self.timeline.panels;
        let t = s.t;
        for (state, n) in s.states.iter().flatten() {
            panels[SOCKETS].line(state, t, *n as f64);
        }
        let queue = &mut panels[QUEUE];
        s.accept_queue.inspect(|&n| queue.kept_line("accept queue", t, n as f64));
        s.listen_overflows.inspect(|&n| queue.line("ListenOverflows (rise)", t, n as f64));
        s.listen_drops.inspect(|&n| queue.line("ListenDrops (rise)", t, n as f64));
        if let Some(p) = &s.process {
            p.fds.inspect(|&n| panels[PROCESS].line("descriptors", t, n as f64));
            p.threads.inspect(|&n| panels[PROCESS].line("threads", t, n as f64));
            p.rss_kib.inspect(|&n| panels[MEMORY].line("RSS", t, n as f64 / 1024.0));
        }
        if let Some(b) = s.backlog {
            let queue = &mut panels[QUEUE];
            queue.limits.retain(|l| !l.label.starts_with("backlog + 1"));
            queue.limit(format!("backlog + 1 = {}", b + 1), (b + 1) as f64);
        }
    }

    /// The picture of the samples taken, with the server's descriptor limit drawn when its
    /// descriptors came within half of it (further away, the line would only flatten the others).
    pub fn finish(mut self) -> Timeline {
        if let Some(server) = &self.server {
            self.timeline.title = format!("{} — {}", self.timeline.title, server.who());
            let process = &mut self.timeline.panels[PROCESS];
            let most = process.lines.iter().find(|s| s.name == "descriptors").map(|s| s.max());
            if let (Some(limit), Some(most)) = (server.nofile_soft, most)
                && most * 2.0 >= limit as f64
            {
                process.limit(format!("RLIMIT_NOFILE ({limit})"), limit as f64);
            }
        }
        self.timeline
    }
}

/// The sockets of `port` by state, with its listeners' queues and backlogs: from sock_diag, whose cost
/// follows the port; where it is refused, from `/proc/net/tcp`, without the backlogs (`None`).
fn port_sockets(port: u16) -> std::io::Result<(hostinfo::TcpStates, Option<Vec<hostinfo::ListenQueue>>)> {
    hostinfo::port_sockets(port)
        .map(|(states, listeners)| (states, Some(listeners)))
        .or_else(|_| hostinfo::tcp_states(port).map(|states| (states, None)))
}
