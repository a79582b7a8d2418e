//! What a load run (`echo`, `connect`, `churn`) records for its picture, from the thread that already
//! ticks the progress line: the connections the workers count, the errors by kind as they rise, the
//! sockets of the target's port by state (the kernel's view, both ends when the server is local), and
//! messages per second. After the run, the limit the report names becomes a labelled line.

use std::time::{Duration, Instant};

use crate::error_kind::ErrorCounts;
use crate::progress::Progress;
use crate::report::Report;

use super::timeline::{Panel, Timeline};

/// How often a run records a point.
const EVERY: Duration = Duration::from_millis(250);

/// Reading the port's sockets may cost more than the rest (from `/proc/net/tcp`, where sock_diag is
/// refused, it is a pass over every socket of the machine; sock_diag too walks them all, in the
/// kernel): they are read at most once per this many times what the last read took, so that recording
/// never takes more than a quarter of the thread.
const SOCKETS_COST_SHARE: u32 = 4;

/// Panels of a load run's picture, top to bottom.
const CONNECTIONS: usize = 0;
const SOCKETS: usize = 1;
const MESSAGES: usize = 2;

/// Records a load run's timeline while it runs.
#[derive(Debug)]
pub struct Recorder {
    started: Instant,
    last: Option<Instant>,
    port: Option<u16>,
    /// When the port's sockets may be read next.
    sockets_due: Instant,
    /// The last point's time and messages, for the rate.
    previous: (f64, u64),
    kinds: ErrorCounts,
    timeline: Timeline,
}

impl Recorder {
    /// A recorder for `command` against `target`; `port` is the target's TCP port, whose sockets it
    /// counts by state (none for a Unix socket).
    pub fn new(command: &str, target: &str, port: Option<u16>) -> Recorder {
        let sockets = port.map_or_else(|| "sockets".to_owned(), |p| format!("sockets on port {p}"));
        Recorder {
            started: Instant::now(),
            last: None,
            port,
            sockets_due: Instant::now(),
            previous: (0.0, 0),
            kinds: ErrorCounts::new(),
            timeline: Timeline {
                title: format!("stress-client {command} --target {target}"),
                panels: vec![Panel::new("connections"), Panel::new(&sockets), Panel::new("msgs/s")],
            },
        }
    }

    /// How long until the next point is due.
    pub fn due_in(&self) -> Duration {
        self.last.map_or(Duration::ZERO, |at| EVERY.saturating_sub(at.elapsed()))
    }

    /// Records a point if one is due.
    pub fn poll(&mut self, progress: &Progress) {
        if self.last.is_none_or(|at| at.elapsed() >= EVERY) {
            self.last = Some(Instant::now());
            self.record(progress);
        }
    }

    /// Records a point now, due or not, sockets included: the end of the run.
    pub fn last_point(&mut self, progress: &Progress) {
        self.last = Some(Instant::now());
        self.sockets_due = Instant::now();
        self.record(progress);
    }

    fn record(&mut self, progress: &Progress) {
        let t = self.started.elapsed().as_secs_f64();
        let [open, established, messages, errors] = progress.totals();
        let panels = &mut self.timeline.panels;
        panels[CONNECTIONS].line("open", t, open as f64);
        panels[CONNECTIONS].line("established (total)", t, established as f64);
        if errors > self.kinds.values().sum() {
            for (kind, n) in progress.kinds() {
                if self.kinds.get(&kind).is_none_or(|&before| n > before) {
                    panels[CONNECTIONS].mark(&format!("errors: {kind}"), t, n as f64);
                    self.kinds.insert(kind, n);
                }
            }
        }
        let read_at = Instant::now();
        if read_at >= self.sockets_due
            && let Some(Ok(states)) = self.port.map(hostinfo::tcp_states)
        {
            for (state, n) in states.iter() {
                panels[SOCKETS].line(state, t, n as f64);
            }
            self.sockets_due = read_at + read_at.elapsed() * SOCKETS_COST_SHARE;
        }
        let (t0, m0) = self.previous;
        if t > t0 {
            panels[MESSAGES].line("msgs/s", t, messages.saturating_sub(m0) as f64 / (t - t0));
        }
        self.previous = (t, messages);
    }

    /// The timeline, with the limits the report names drawn as lines: the one that stopped the ramp at
    /// the connections it allowed, and for churn the ephemeral ports TIME_WAIT holds on to.
    pub fn finish(mut self, report: &Report) -> Timeline {
        let panels = &mut self.timeline.panels;
        if let Some(limit) = &report.limit {
            // "what, after N connections: what it means" — the line carries the first part.
            let label = limit.split(':').next().unwrap_or(limit);
            panels[CONNECTIONS].limit(format!("limit: {label}"), report.established as f64);
        }
        let time_wait = panels[SOCKETS].lines.iter().find(|s| s.name == "TIME_WAIT").map(|s| s.max());
        if report.command == "churn"
            && time_wait.is_some_and(|n| n > 0.0)
            && let Some(ports) = report.environment.ephemeral_ports()
        {
            panels[SOCKETS].limit(format!("ephemeral ports ({ports})"), ports as f64);
        }
        self.timeline
    }
}
