//! The load itself, as a reactor [`Handler`]: opens connections (ramped, bound round-robin to source
//! addresses, each bounded by a connect timeout), drives echo messages closed-loop or at a fixed rate,
//! verifies every echoed byte, and counts every failure by the kernel's name for it.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reactor::{AfterEof, CloseReason, ConnId, ConnectOptions, Context, Handler, Next, Origin, TimerId};

use crate::message::Stream;
use crate::progress::Counters;
use crate::tally::{self, Tally};

/// How often the driver ramps, publishes progress and checks for an early end.
const TICK: Duration = Duration::from_millis(10);
/// How long the end of a run waits for messages still in flight before calling them lost.
const DRAIN: Duration = Duration::from_secs(2);
/// Consecutive failed connects that count as a sustained failure for `--until-failure`.
const SUSTAINED: u64 = 20;

// Timer tags: the kind in the top bits, a slot index below.
const KIND_SHIFT: u32 = 56;
const TAG_TICK: u64 = 1 << KIND_SHIFT;
const TAG_END: u64 = 2 << KIND_SHIFT;
const TAG_DRAINED: u64 = 3 << KIND_SHIFT;
const TAG_CONNECT: u64 = 4 << KIND_SHIFT;
const TAG_SEND: u64 = 5 << KIND_SHIFT;
const TAG_START: u64 = 6 << KIND_SHIFT;
const SLOT_MASK: u64 = (1 << KIND_SHIFT) - 1;

/// What each connection does once open.
#[derive(Clone, Debug)]
pub enum Work {
    /// Echo messages until `duration`.
    Echo {
        /// Bytes per message.
        size: usize,
        /// Messages in flight per connection.
        pipeline: u64,
        /// This loop's share of a fixed total rate (messages per second), or closed loop.
        rate: Option<f64>,
        /// Excluded from the statistics.
        warmup: Duration,
        /// Whole run.
        duration: Duration,
    },
    /// Stay idle for `hold` once every connection is up (or, until failure, once the ramp stopped).
    Hold {
        /// How long.
        hold: Duration,
        /// Keep opening until the first sustained failure.
        until_failure: bool,
    },
    /// Connect, echo one message of `size`, close, again, until `duration`.
    Churn {
        /// Bytes of the message.
        size: usize,
        /// Whole run.
        duration: Duration,
    },
}

/// What one loop must do.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The server.
    pub target: SocketAddr,
    /// Connection id of this loop's first connection (ids are unique across loops and processes).
    pub first_id: u64,
    /// Connections this loop opens.
    pub connections: u64,
    /// This loop's share of the connect rate, or all at once.
    pub ramp: Option<f64>,
    /// Source addresses to bind to, round-robin (empty: the kernel chooses).
    pub sources: Vec<IpAddr>,
    /// A connect not complete after this long is aborted and counted as ETIMEDOUT.
    pub connect_timeout: Duration,
    /// What each connection does.
    pub work: Work,
}

/// What a loop found.
#[derive(Debug)]
pub struct Outcome {
    /// The counts.
    pub tally: Tally,
    /// The interval the statistics cover.
    pub measured: Duration,
    /// For `--until-failure`: the kernel's name for the failure that stopped the ramp.
    pub stopped_by: Option<String>,
}

#[derive(Debug)]
struct Slot {
    conn: Option<ConnId>,
    stream: Stream,
    connect_started: Instant,
    connect_timer: Option<TimerId>,
    opened_at: Option<Instant>,
    timed_out: bool,
    /// Send (or intended send) times of the messages in flight, oldest first.
    sent_at: VecDeque<Instant>,
    send_timer: bool,
    retry: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    Draining,
    Closing,
}

/// The reactor handler that runs a [`Plan`].
#[derive(Debug)]
pub struct Driver {
    plan: Plan,
    counters: Arc<Counters>,
    abort: Arc<std::sync::atomic::AtomicBool>,
    slots: Vec<Slot>,
    by_conn: HashMap<ConnId, usize>,
    tally: Tally,
    phase: Phase,
    open_now: u64,
    started: Instant,
    measure_from: Instant,
    measure_to: Option<Instant>,
    consecutive_failures: u64,
    last_failure: Option<String>,
    stopped_by: Option<String>,
    hold_armed: bool,
    message: Vec<u8>,
    scratch: Vec<u8>,
}

impl Driver {
    /// A driver for `plan`, publishing progress to `counters`, winding down when `abort` is set.
    pub fn new(plan: Plan, counters: Arc<Counters>, abort: Arc<std::sync::atomic::AtomicBool>) -> Driver {
        let now = Instant::now();
        let size = match plan.work {
            Work::Echo { size, .. } | Work::Churn { size, .. } => size,
            Work::Hold { .. } => 0,
        };
        Driver {
            plan,
            counters,
            abort,
            slots: Vec::new(),
            by_conn: HashMap::new(),
            tally: Tally::default(),
            phase: Phase::Running,
            open_now: 0,
            started: now,
            measure_from: now,
            measure_to: None,
            consecutive_failures: 0,
            last_failure: None,
            stopped_by: None,
            hold_armed: false,
            message: vec![0; size],
            scratch: Vec::with_capacity(64 * 1024),
        }
    }

    /// Arranges for the run to start on the loop's first turn.
    pub fn schedule_start(ctx: &mut Context<'_>) {
        ctx.set_timer(Duration::ZERO, TAG_START);
    }

    /// Starts the run: the first connections, the tick, the end of the run.
    fn start(&mut self, ctx: &mut Context<'_>) {
        self.started = ctx.now();
        self.measure_from = self.started;
        match self.plan.work {
            Work::Echo { duration, warmup, .. } => {
                self.measure_from = self.started + warmup;
                ctx.set_timer(duration, TAG_END);
            }
            Work::Churn { duration, .. } => {
                ctx.set_timer(duration, TAG_END);
            }
            Work::Hold { .. } => {}
        }
        ctx.set_timer(TICK, TAG_TICK);
        self.ramp(ctx);
    }

    /// What the run found.
    pub fn outcome(self) -> Outcome {
        let end = self.measure_to.unwrap_or_else(Instant::now);
        Outcome {
            measured: end.saturating_duration_since(self.measure_from),
            tally: self.tally,
            stopped_by: self.stopped_by,
        }
    }

    /// Opens as many new connections as the ramp allows by now.
    fn ramp(&mut self, ctx: &mut Context<'_>) {
        if self.phase != Phase::Running || self.stopped_by.is_some() {
            return;
        }
        let due = match self.plan.ramp {
            Some(rate) => (ctx.now().duration_since(self.started).as_secs_f64() * rate) as u64 + 1,
            None => u64::MAX,
        };
        let target = due.min(self.plan.connections);
        while (self.slots.len() as u64) < target && self.stopped_by.is_none() {
            let index = self.slots.len();
            let id = self.plan.first_id + index as u64;
            self.slots.push(Slot {
                conn: None,
                stream: Stream::new(id, self.message.len()),
                connect_started: ctx.now(),
                connect_timer: None,
                opened_at: None,
                timed_out: false,
                sent_at: VecDeque::new(),
                send_timer: false,
                retry: false,
            });
            self.open(ctx, index);
            self.check_sustained_failure();
        }
    }

    fn open(&mut self, ctx: &mut Context<'_>, index: usize) {
        let bind = match self.plan.sources.len() {
            0 => None,
            n => Some(SocketAddr::new(self.plan.sources[(self.plan.first_id as usize + index) % n], 0)),
        };
        let options = ConnectOptions { addr: self.plan.target, bind, nodelay: true };
        let slot = &mut self.slots[index];
        slot.connect_started = Instant::now();
        slot.timed_out = false;
        slot.retry = false;
        match ctx.connect_with(&options) {
            Ok(conn) => {
                slot.conn = Some(conn);
                slot.connect_timer =
                    Some(ctx.set_timer(self.plan.connect_timeout, TAG_CONNECT | index as u64));
                self.by_conn.insert(conn, index);
            }
            Err(e) => {
                // Churn tries the slot again on the next tick rather than spinning on an error.
                slot.retry = matches!(self.plan.work, Work::Churn { .. });
                self.failed(reactor::errno_name(&e));
            }
        }
    }

    fn failed(&mut self, name: &str) {
        self.tally.error(name);
        self.consecutive_failures += 1;
        self.last_failure = Some(name.to_owned());
    }

    fn check_sustained_failure(&mut self) {
        if let Work::Hold { until_failure: true, .. } = self.plan.work
            && self.stopped_by.is_none()
        {
            if self.consecutive_failures >= SUSTAINED {
                self.stopped_by = self.last_failure.clone();
            } else if self.tally.closed_by_server >= SUSTAINED {
                self.stopped_by = Some("closed_by_server".to_owned());
            }
        }
    }

    /// Sends what this connection may send now: up to the pipeline, and at a fixed rate only what is
    /// due (arming a timer for the next one).
    fn send_due(&mut self, ctx: &mut Context<'_>, index: usize) {
        let Work::Echo { pipeline, rate, .. } = self.plan.work else { return };
        let interval = rate.map(|r| Duration::from_secs_f64(self.plan.connections as f64 / r));
        let slot = &mut self.slots[index];
        let (Some(conn), Some(opened_at)) = (slot.conn, slot.opened_at) else { return };
        while self.phase == Phase::Running && slot.stream.in_flight() < pipeline {
            let stamp = match interval {
                Some(interval) => {
                    let due = opened_at + interval.mul_f64(slot.stream.next_send as f64);
                    if due > ctx.now() {
                        if !slot.send_timer {
                            slot.send_timer = true;
                            ctx.set_timer(due - ctx.now(), TAG_SEND | index as u64);
                        }
                        break;
                    }
                    // Latency counts from when the message should have gone, not when it could.
                    due
                }
                None => Instant::now(),
            };
            slot.stream.next_message(&mut self.message);
            if ctx.send(conn, &self.message).is_err() {
                // The connection is closing; on_close will say why.
                break;
            }
            slot.sent_at.push_back(stamp);
            if stamp >= self.measure_from {
                self.tally.bytes_sent += self.message.len() as u64;
            }
        }
    }

    fn in_flight(&self) -> bool {
        self.slots.iter().any(|s| s.conn.is_some() && s.opened_at.is_some() && s.stream.in_flight() > 0)
    }

    /// Stops sending; closes everything once the echoes in flight are back (or [`DRAIN`] passed).
    fn end(&mut self, ctx: &mut Context<'_>) {
        if self.phase != Phase::Running {
            return;
        }
        self.measure_to.get_or_insert(ctx.now());
        self.phase = Phase::Draining;
        if matches!(self.plan.work, Work::Echo { .. }) && self.in_flight() {
            ctx.set_timer(DRAIN, TAG_DRAINED);
        } else {
            self.close_all(ctx);
        }
    }

    fn close_all(&mut self, ctx: &mut Context<'_>) {
        self.phase = Phase::Closing;
        self.publish();
        ctx.shutdown(Duration::from_secs(2));
    }

    fn lost(&mut self, index: usize, why: &str) {
        let stream = &self.slots[index].stream;
        let what = format!(
            "connection {}: byte offset {}: {} bytes sent were never echoed ({why})",
            stream.conn,
            stream.received(),
            stream.outstanding()
        );
        self.tally.verify_failed(what);
        self.abort.store(true, Ordering::Relaxed);
    }

    fn publish(&self) {
        let c = &self.counters;
        c.open.store(self.open_now, Ordering::Relaxed);
        c.established.store(self.tally.established, Ordering::Relaxed);
        c.messages.store(self.tally.messages + self.tally.cycles, Ordering::Relaxed);
        c.errors.store(self.tally.errors.values().sum(), Ordering::Relaxed);
    }

    fn on_tick(&mut self, ctx: &mut Context<'_>) {
        self.publish();
        if self.phase == Phase::Closing {
            return;
        }
        ctx.set_timer(TICK, TAG_TICK);
        if self.abort.load(Ordering::Relaxed) {
            self.end(ctx);
            return;
        }
        self.ramp(ctx);
        if matches!(self.plan.work, Work::Churn { .. }) && self.phase == Phase::Running {
            for index in 0..self.slots.len() {
                if self.slots[index].retry {
                    self.open(ctx, index);
                }
            }
        }
        let attempted = self.slots.len() as u64 == self.plan.connections || self.stopped_by.is_some();
        let settled = self.slots.iter().all(|s| s.conn.is_none() || s.opened_at.is_some());
        match self.plan.work {
            Work::Hold { hold, .. } if attempted && settled && !self.hold_armed => {
                self.hold_armed = true;
                ctx.set_timer(hold, TAG_END);
            }
            // Nothing left to wait for: every connection failed or was closed.
            Work::Echo { .. } if attempted && ctx.connections() == 0 => self.end(ctx),
            _ => {}
        }
    }

    fn complete_churn(&mut self, ctx: &mut Context<'_>, index: usize, conn: ConnId) {
        let slot = &mut self.slots[index];
        // Our close: an EOF or reset that follows is the end we asked for, not the server's doing.
        slot.conn = None;
        if ctx.now() >= self.measure_from {
            tally::record(&mut self.tally.latency, ctx.now().saturating_duration_since(slot.connect_started));
            self.tally.cycles += 1;
            self.tally.messages += 1;
        }
        let _ = ctx.close(conn);
    }
}

impl Handler for Driver {
    type Message = ();

    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: Origin) {
        let Some(&index) = self.by_conn.get(&conn) else { return };
        let slot = &mut self.slots[index];
        if let Some(timer) = slot.connect_timer.take() {
            ctx.cancel_timer(timer);
        }
        slot.opened_at = Some(ctx.now());
        tally::record(&mut self.tally.connect, ctx.now().saturating_duration_since(slot.connect_started));
        self.tally.established += 1;
        self.open_now += 1;
        self.tally.peak_concurrent = self.tally.peak_concurrent.max(self.open_now);
        self.consecutive_failures = 0;
        match self.plan.work {
            Work::Echo { .. } => self.send_due(ctx, index),
            Work::Churn { .. } => {
                let slot = &mut self.slots[index];
                slot.stream.next_message(&mut self.message);
                if ctx.send(conn, &self.message).is_ok() {
                    self.tally.bytes_sent += self.message.len() as u64;
                }
            }
            Work::Hold { .. } => {}
        }
    }

    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        let Some(&index) = self.by_conn.get(&conn) else { return Next::Close };
        let now = ctx.now();
        if now >= self.measure_from {
            self.tally.bytes_received += data.len() as u64;
        }
        let slot = &mut self.slots[index];
        let (tally, measure_from) = (&mut self.tally, self.measure_from);
        let mut completed = 0u64;
        let result = slot.stream.receive(data, &mut self.scratch, |_| {
            completed += 1;
            let sent = slot.sent_at.pop_front().unwrap_or(now);
            if now >= measure_from {
                tally.messages += 1;
                tally::record(&mut tally.latency, now.saturating_duration_since(sent));
            }
        });
        if let Err(mismatch) = result {
            self.tally.verify_failed(mismatch.to_string());
            self.abort.store(true, Ordering::Relaxed);
            self.end(ctx);
            return Next::Close;
        }
        match self.plan.work {
            Work::Echo { .. } if completed > 0 => {
                self.send_due(ctx, index);
                if self.phase == Phase::Draining && !self.in_flight() {
                    self.close_all(ctx);
                }
            }
            Work::Churn { .. } if completed > 0 => self.complete_churn(ctx, index, conn),
            _ => {}
        }
        Next::Continue
    }

    fn on_eof(&mut self, _: &mut Context<'_>, conn: ConnId) -> AfterEof {
        if let Some(&index) = self.by_conn.get(&conn)
            && self.slots[index].conn == Some(conn)
            && self.phase != Phase::Closing
        {
            self.tally.closed_by_server += 1;
            if self.slots[index].stream.outstanding() > 0 {
                self.lost(index, "the server closed the connection");
            }
            self.slots[index].conn = None;
        }
        AfterEof::Close
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, reason: &CloseReason) {
        let Some(index) = self.by_conn.remove(&conn) else { return };
        let slot = &mut self.slots[index];
        let was_open = slot.opened_at.take().is_some();
        let ours = slot.conn.take().is_some();
        if let Some(timer) = slot.connect_timer.take() {
            ctx.cancel_timer(timer);
        }
        if was_open {
            self.open_now -= 1;
        }
        let timed_out = slot.timed_out;
        let failed = matches!(reason, CloseReason::ConnectFailed(_)) || timed_out;
        match reason {
            CloseReason::ConnectFailed(e) => self.failed(reactor::errno_name(e)),
            CloseReason::Aborted if timed_out => self.failed("ETIMEDOUT"),
            CloseReason::Reset | CloseReason::Error(_) if ours && self.phase != Phase::Closing => {
                let name = match reason {
                    CloseReason::Error(e) => reactor::errno_name(e),
                    _ => "ECONNRESET",
                };
                self.tally.error(name);
                self.tally.closed_by_server += 1;
                if self.slots[index].stream.outstanding() > 0 {
                    self.lost(index, "the server reset the connection");
                }
            }
            _ => {}
        }
        self.check_sustained_failure();
        if matches!(self.plan.work, Work::Churn { .. }) && self.phase == Phase::Running {
            // Start the slot's next cycle on a fresh connection; after a failure, on the next tick
            // rather than at once, so that a refusing server does not make the loop spin.
            self.slots[index].sent_at.clear();
            if failed {
                self.slots[index].retry = true;
            } else {
                self.open(ctx, index);
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _: TimerId, tag: u64) {
        let index = (tag & SLOT_MASK) as usize;
        match tag & !SLOT_MASK {
            TAG_START => self.start(ctx),
            TAG_TICK => self.on_tick(ctx),
            TAG_END => self.end(ctx),
            TAG_DRAINED if self.phase == Phase::Draining => {
                for index in 0..self.slots.len() {
                    let s = &self.slots[index];
                    if s.conn.is_some() && s.opened_at.is_some() && s.stream.outstanding() > 0 {
                        self.lost(index, &format!("not back within {DRAIN:?} after the run ended"));
                    }
                }
                self.close_all(ctx);
            }
            TAG_CONNECT => {
                let slot = &mut self.slots[index];
                slot.connect_timer = None;
                if let (Some(conn), None) = (slot.conn, slot.opened_at) {
                    slot.timed_out = true;
                    let _ = ctx.abort(conn);
                }
            }
            TAG_SEND => {
                self.slots[index].send_timer = false;
                self.send_due(ctx, index);
            }
            _ => {}
        }
    }
}
