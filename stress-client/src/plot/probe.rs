//! What `backlog` records for its picture: connections completed against the listener's accept queue
//! as the kernel reports it, the machine's ListenOverflows and ListenDrops as they rise, what ended the
//! probe as a mark, and the queue's capacity (backlog + 1) as a labelled line.

use std::time::Instant;

use hostinfo::ListenCounters;

use super::timeline::{Panel, Timeline};

/// Points of the fill a probe records at most, whatever `--max`: each point reads every socket the
/// probe holds.
const POINTS: u64 = 200;

/// Records a backlog probe.
#[derive(Debug)]
pub struct ProbeRecorder {
    started: Instant,
    port: u16,
    before: Option<ListenCounters>,
    /// When the last connection completed, and how many had, if no point was recorded then.
    unrecorded: Option<(f64, u64)>,
    timeline: Timeline,
}

impl ProbeRecorder {
    /// A recorder for a probe of `target`, a listener on `port`.
    pub fn new(target: &str, port: u16) -> ProbeRecorder {
        let mut recorder = ProbeRecorder {
            started: Instant::now(),
            port,
            before: hostinfo::listen_counters(),
            timeline: Timeline {
                title: format!("stress-client backlog --target {target}"),
                panels: vec![Panel::new("connections"), Panel::new("listen drops (machine)")],
            },
            unrecorded: None,
        };
        recorder.record(0.0, 0);
        recorder
    }

    /// Records a point after `completed` connections, or fewer points as the count grows.
    pub fn completed(&mut self, completed: u64, max: u64) {
        let t = self.started.elapsed().as_secs_f64();
        if completed.is_multiple_of((max / POINTS).max(1)) {
            self.record(t, completed);
            self.unrecorded = None;
        } else {
            self.unrecorded = Some((t, completed));
        }
    }

    fn record(&mut self, t: f64, completed: u64) {
        let [connections, drops] = &mut self.timeline.panels[..] else { unreachable!("two panels") };
        connections.line("completed", t, completed as f64);
        if let Ok(states) = hostinfo::tcp_states(self.port) {
            connections.line("accept queue", t, states.accept_queue as f64);
        }
        if let (Some(a), Some(b)) = (self.before, hostinfo::listen_counters()) {
            drops.line("ListenOverflows (rise)", t, b.overflows.saturating_sub(a.overflows) as f64);
            drops.line("ListenDrops (rise)", t, b.drops.saturating_sub(a.drops) as f64);
        }
    }

    /// The probe ended after `completed` connections because of `why` ("timeout", an errno, "max"); the
    /// listener's backlog is `backlog` if known.
    pub fn finish(mut self, completed: u64, why: &str, backlog: Option<u64>) -> Timeline {
        // The queue stood still from the last completion to the end: the figures read now were its
        // figures then, and the picture shows the fill ending when it did.
        if let Some((t, n)) = self.unrecorded.take() {
            self.record(t, n);
        }
        let t = self.started.elapsed().as_secs_f64();
        self.record(t, completed);
        let connections = &mut self.timeline.panels[0];
        connections.mark(&format!("stopped: {why}"), t, completed as f64);
        if let Some(b) = backlog {
            connections.limit(format!("backlog + 1 = {}", b + 1), (b + 1) as f64);
        }
        self.timeline
    }
}
