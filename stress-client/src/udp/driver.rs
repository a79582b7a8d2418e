//! The load of one loop, as a reactor [`Handler`]: binds its sockets, sends datagrams closed loop
//! (a window per socket) or at a fixed rate, classifies every echo through each socket's
//! [`Sequence`], settles what did not come back in time as lost, and at the end waits for the last
//! datagrams (each up to its loss timeout) so that none is left unaccounted for.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use nix::libc;
use reactor::{Context, Handler, TimerId, UdpId};

use super::counts::Counts;
use super::datagram::{self, Header};
use super::track::{Arrival, Jitter, Sequence, nanos};
use crate::error_kind::{ErrorCounts, ErrorKind};
use crate::pace;
use crate::tally;
use crate::usage::{Usage, Window};

/// How often lost datagrams are settled (freeing their place in a window) and refused sends retried.
const TICK: Duration = Duration::from_millis(10);
/// Most datagrams one socket sends in one go when its schedule is behind: the rest follow on the next
/// loop turn, so that a sender catching up still reads its echoes in between (and does not flood the
/// server with a burst the rate never asked for).
const BURST: u32 = 64;

// Timer tags: the kind in the top bits, a socket index below.
const KIND_SHIFT: u32 = 56;
const TAG_START: u64 = 1 << KIND_SHIFT;
const TAG_TICK: u64 = 2 << KIND_SHIFT;
const TAG_END: u64 = 3 << KIND_SHIFT;
const TAG_SEND: u64 = 4 << KIND_SHIFT;
const INDEX_MASK: u64 = (1 << KIND_SHIFT) - 1;

/// What one loop is asked to do.
#[derive(Clone, Debug)]
pub struct UdpPlan {
    /// The echo server.
    pub target: SocketAddr,
    /// Id of this loop's first socket (ids are unique across loops and processes).
    pub first_id: u64,
    /// Sockets this loop opens.
    pub sockets: u64,
    /// Closed loop: datagrams in flight per socket.
    pub window: u64,
    /// Open loop: this loop's share of the rate, datagrams per second.
    pub rate: Option<f64>,
    /// Bytes per datagram.
    pub size: usize,
    /// Datagrams sent before this long are not counted.
    pub warmup: Duration,
    /// How long to send (warm-up included).
    pub duration: Duration,
    /// Not back within this: lost.
    pub loss_timeout: Duration,
    /// `--start-at`: where the measured interval begins (instead of after the warm-up).
    pub start_at: Option<Instant>,
    /// Datagrams each socket's record holds.
    pub capacity: usize,
    /// Where the loop publishes its counts for the progress line.
    pub progress: Arc<crate::progress::Counters>,
}

/// What one loop found.
#[derive(Debug)]
pub struct UdpOutcome {
    /// The counts.
    pub counts: Counts,
    /// Latency of the datagrams received, µs.
    pub latency: Histogram<u64>,
    /// Each socket's jitter, µs (sockets with fewer than two datagrams received have none).
    pub jitter_us: Vec<f64>,
    /// Send errors other than refusals, by kind.
    pub errors: ErrorCounts,
    /// The first corrupted datagram, described.
    pub failure: Option<String>,
    /// The measured interval.
    pub measured: Duration,
    /// Where it began.
    pub from: Instant,
    /// Usage at its edges.
    pub usage: Window,
    /// Datagrams the kernel dropped at this loop's sockets' full receive buffers (whole run), or why
    /// that is not known.
    pub drops: Result<u64, String>,
}

/// Where the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Starting,
    Sending,
    /// Sending stopped: waiting for the last datagrams, each up to its loss timeout.
    Waiting,
    Done,
}

/// One client socket.
#[derive(Debug)]
struct Socket {
    id: u32,
    udp: UdpId,
    port: u16,
    seq: Sequence,
    jitter: Jitter,
    /// Open loop: the index of the next datagram of its schedule.
    paced: u64,
    /// Open loop: where its schedule starts (staggered across sockets).
    schedule: Instant,
    /// A send timer is armed.
    timer: bool,
    /// The kernel refused a send with `EAGAIN`: wait for the writable edge.
    blocked: bool,
}

/// The reactor handler of one loop.
#[derive(Debug)]
pub struct UdpDriver {
    plan: UdpPlan,
    sockets: Vec<Socket>,
    /// At `udp.index()`: the socket index.
    by_udp: Vec<Option<(UdpId, usize)>>,
    counts: Counts,
    latency: Histogram<u64>,
    errors: ErrorCounts,
    failure: Option<String>,
    phase: Phase,
    started: Instant,
    measure_from: Instant,
    measure_to: Option<Instant>,
    /// Open loop: the schedule ends here (the end of the run), however late the loop gets to it.
    send_until: Instant,
    usage: Window,
    drops: Result<u64, String>,
    bind_error: Option<io::Error>,
    buffer: Vec<u8>,
}

impl UdpDriver {
    /// A driver for `plan`.
    pub fn new(plan: UdpPlan) -> UdpDriver {
        let now = Instant::now();
        let size = plan.size;
        UdpDriver {
            plan,
            sockets: Vec::new(),
            by_udp: Vec::new(),
            counts: Counts::default(),
            latency: tally::histogram(),
            errors: ErrorCounts::new(),
            failure: None,
            phase: Phase::Starting,
            started: now,
            measure_from: now,
            measure_to: None,
            send_until: now,
            usage: Window::default(),
            drops: Err("the run did not end".to_owned()),
            bind_error: None,
            buffer: vec![0; size],
        }
    }

    /// Arranges for the run to start on the loop's first turn.
    pub fn schedule_start(ctx: &mut Context<'_>) {
        ctx.set_timer(Duration::ZERO, TAG_START);
    }

    /// What the run found; fails if the sockets could not be bound.
    pub fn outcome(self) -> io::Result<UdpOutcome> {
        if let Some(e) = self.bind_error {
            return Err(e);
        }
        let end = self.measure_to.unwrap_or_else(Instant::now);
        Ok(UdpOutcome {
            counts: self.counts,
            latency: self.latency,
            jitter_us: self.sockets.iter().filter_map(|s| s.jitter.us()).collect(),
            errors: self.errors,
            failure: self.failure,
            measured: end.saturating_duration_since(self.measure_from),
            from: self.measure_from,
            usage: self.usage,
            drops: self.drops,
        })
    }

    /// ns since the loop started.
    fn ns(&self, at: Instant) -> u64 {
        nanos(at.saturating_duration_since(self.started))
    }

    fn start(&mut self, ctx: &mut Context<'_>) {
        self.started = ctx.now();
        let start_at = self.plan.start_at.map(|at| at.max(self.started));
        self.measure_from = start_at.unwrap_or(self.started + self.plan.warmup);
        let until_start = start_at.map_or(Duration::ZERO, |at| at - self.started);
        if let Err(e) = self.bind_all(ctx) {
            self.bind_error = Some(e);
            self.phase = Phase::Done;
            ctx.stop();
            return;
        }
        self.phase = Phase::Sending;
        self.send_until = self.started + until_start + self.plan.duration;
        ctx.set_timer(until_start + self.plan.duration, TAG_END);
        ctx.set_timer(TICK, TAG_TICK);
        self.read_usage_edges(ctx.now());
        for i in 0..self.sockets.len() {
            self.send_due(ctx, i);
        }
    }

    /// Binds this loop's sockets, each to its own port, on the unspecified address of the target's
    /// family.
    fn bind_all(&mut self, ctx: &mut Context<'_>) -> io::Result<()> {
        let any = match self.plan.target {
            SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        };
        let interval = self.plan.rate.map(|r| pace::interval(self.plan.sockets, r));
        for i in 0..self.plan.sockets {
            let udp = ctx.bind_udp(any)?;
            let port = ctx.local_addr(udp)?.port();
            let id = u32::try_from(self.plan.first_id + i).map_err(io::Error::other)?;
            // Spread the sockets' schedules over one interval, so that they do not send in bursts.
            let offset =
                interval.map_or(Duration::ZERO, |every| every.mul_f64(i as f64 / self.plan.sockets as f64));
            let index = self.sockets.len();
            if udp.index() >= self.by_udp.len() {
                self.by_udp.resize(udp.index() + 1, None);
            }
            self.by_udp[udp.index()] = Some((udp, index));
            self.sockets.push(Socket {
                id,
                udp,
                port,
                seq: Sequence::new(self.plan.capacity, self.plan.loss_timeout),
                jitter: Jitter::default(),
                paced: 0,
                schedule: self.started + offset,
                timer: false,
                blocked: false,
            });
        }
        Ok(())
    }

    /// Sends what socket `i` may send now: up to its window (closed loop), or what its schedule says
    /// is due (open loop, arming a timer for the next one).
    fn send_due(&mut self, ctx: &mut Context<'_>, i: usize) {
        if self.phase != Phase::Sending || self.sockets[i].blocked {
            return;
        }
        let now = ctx.now();
        let now_ns = self.ns(now);
        match self.plan.rate {
            None => {
                while (self.sockets[i].seq.outstanding() as u64) < self.plan.window
                    && self.sockets[i].seq.has_room(now_ns)
                    && self.send_one(ctx, i, now, now)
                {}
            }
            Some(rate) => {
                let every = pace::interval(self.plan.sockets, rate);
                for sent in 0.. {
                    let s = &mut self.sockets[i];
                    let Some(due) = pace::due(s.schedule, every, s.paced) else { break };
                    if due >= self.send_until {
                        break;
                    }
                    if due > now || sent == BURST {
                        if !s.timer {
                            s.timer = true;
                            ctx.set_timer(due.saturating_duration_since(now), TAG_SEND | i as u64);
                        }
                        break;
                    }
                    // A full record waits for the tick; the schedule does not skip: the latency of
                    // what is sent late counts from when it was due.
                    if !s.seq.has_room(now_ns) || !self.send_one(ctx, i, now, due) {
                        break;
                    }
                    self.sockets[i].paced += 1;
                }
            }
        }
    }

    /// Sends the next datagram of socket `i`, due at `due`; returns whether the kernel took it.
    fn send_one(&mut self, ctx: &mut Context<'_>, i: usize, now: Instant, due: Instant) -> bool {
        let (now_ns, stamp) = (self.ns(now), self.ns(due));
        let counted = due >= self.measure_from;
        let s = &mut self.sockets[i];
        datagram::write(&mut self.buffer, Header { socket: s.id, seq: s.seq.next(), stamp });
        match ctx.send_to(s.udp, &self.buffer, self.plan.target) {
            Ok(()) => {
                s.seq.sent(now_ns, stamp, counted, &mut self.counts);
                true
            }
            Err(e) => {
                let would_block = e.kind() == io::ErrorKind::WouldBlock;
                if would_block || e.raw_os_error() == Some(libc::ENOBUFS) {
                    // The datagram was not sent; the same one is tried again (on the writable edge
                    // after EAGAIN, on the next tick after ENOBUFS).
                    s.blocked = would_block;
                    self.counts.send_refused += u64::from(now >= self.measure_from);
                } else {
                    *self.errors.entry(ErrorKind::of(&e)).or_default() += 1;
                }
                false
            }
        }
    }

    /// Classifies a datagram that came back on socket `i`.
    fn arrived(&mut self, now: Instant, i: usize, data: &[u8]) {
        let now_ns = self.ns(now);
        let in_measure = u64::from(now >= self.measure_from);
        let s = &mut self.sockets[i];
        let Some(h) = datagram::header(data).filter(|h| h.socket == s.id) else {
            self.counts.corrupted += in_measure;
            describe(&mut self.failure, || {
                format!("socket {}: a datagram of {} B that names none sent", s.id, data.len())
            });
            return;
        };
        let bad = if data.len() != self.plan.size {
            Some(format!("{} B, but {} B were sent", data.len(), self.plan.size))
        } else {
            datagram::first_bad_byte(data, h.socket, h.seq)
                .map(|(at, found, expected)| format!("byte {at} is 0x{found:02x}, expected 0x{expected:02x}"))
        };
        match s.seq.arrive(h.seq, h.stamp, bad.is_none(), now_ns, &mut self.counts) {
            Arrival::Known(Some(times)) => {
                tally::record(&mut self.latency, Duration::from_nanos(times.latency_ns));
                s.jitter.add(times.transit_ns);
            }
            Arrival::Known(None) => {}
            Arrival::Unknown => self.counts.corrupted += in_measure,
            Arrival::Recycled => self.counts.too_old += in_measure,
        }
        if let Some(bad) = bad {
            describe(&mut self.failure, || format!("socket {}, datagram {}: {bad}", s.id, h.seq));
        }
    }

    /// Settles lost datagrams, refills windows, retries refused sends, and ends the wait at the end.
    fn tick(&mut self, ctx: &mut Context<'_>) {
        if self.phase == Phase::Done {
            return;
        }
        ctx.set_timer(TICK, TAG_TICK);
        self.read_usage_edges(ctx.now());
        let now_ns = self.ns(ctx.now());
        for i in 0..self.sockets.len() {
            self.sockets[i].seq.expire(now_ns, &mut self.counts);
            self.send_due(ctx, i);
        }
        self.publish();
        self.check_done(ctx);
    }

    /// Publishes the counts for the progress line (absolute values; a plain store each).
    fn publish(&self) {
        let p = &self.plan.progress;
        p.open.store(self.sockets.len() as u64, Ordering::Relaxed);
        p.messages.store(self.counts.received, Ordering::Relaxed);
        p.lost.store(self.counts.lost, Ordering::Relaxed);
        p.errors.store(self.errors.values().sum(), Ordering::Relaxed);
    }

    /// Stops sending.
    fn end(&mut self, ctx: &mut Context<'_>) {
        if self.phase != Phase::Sending {
            return;
        }
        self.measure_to = Some(ctx.now());
        self.read_usage_edges(ctx.now());
        self.phase = Phase::Waiting;
        self.check_done(ctx);
    }

    /// Once sending stopped and no datagram is outstanding: reads the sockets' drop counters (before
    /// they close and their lines leave `/proc/net/udp`) and stops the loop.
    fn check_done(&mut self, ctx: &mut Context<'_>) {
        if self.phase != Phase::Waiting || self.sockets.iter().any(|s| s.seq.outstanding() > 0) {
            return;
        }
        self.phase = Phase::Done;
        let ports: Vec<u16> = self.sockets.iter().map(|s| s.port).collect();
        self.drops = hostinfo::udp_drops_on(&ports).map_err(|e| e.to_string());
        for s in &self.sockets {
            let _ = ctx.close_udp(s.udp);
        }
        ctx.stop();
    }

    /// Reads the process's usage as measuring begins (within a tick) and ends.
    fn read_usage_edges(&mut self, now: Instant) {
        if self.usage.from.is_none() && now >= self.measure_from {
            self.usage.from = Some(Usage::now());
        }
        if self.usage.to.is_none() && self.measure_to.is_some() {
            self.usage.to = Some(Usage::now());
        }
    }

    fn socket_of(&self, udp: UdpId) -> Option<usize> {
        match self.by_udp.get(udp.index()) {
            Some(&Some((known, i))) if known == udp => Some(i),
            _ => None,
        }
    }
}

/// Keeps the first description of a failure.
fn describe(failure: &mut Option<String>, what: impl FnOnce() -> String) {
    if failure.is_none() {
        *failure = Some(what());
    }
}

impl Handler for UdpDriver {
    type Message = ();

    fn on_data(&mut self, _: &mut Context<'_>, _: reactor::ConnId, _: &[u8]) -> reactor::Next {
        reactor::Next::Close
    }

    fn on_datagram(&mut self, ctx: &mut Context<'_>, socket: UdpId, data: &[u8], _: SocketAddr) {
        let Some(i) = self.socket_of(socket) else { return };
        self.arrived(ctx.now(), i, data);
        if self.plan.rate.is_none() {
            self.send_due(ctx, i);
        }
        self.check_done(ctx);
    }

    fn on_udp_writable(&mut self, ctx: &mut Context<'_>, socket: UdpId) {
        let Some(i) = self.socket_of(socket) else { return };
        self.sockets[i].blocked = false;
        self.send_due(ctx, i);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _: TimerId, tag: u64) {
        let i = (tag & INDEX_MASK) as usize;
        match tag & !INDEX_MASK {
            TAG_START => self.start(ctx),
            TAG_TICK => self.tick(ctx),
            TAG_END => self.end(ctx),
            TAG_SEND if i < self.sockets.len() => {
                self.sockets[i].timer = false;
                self.send_due(ctx, i);
            }
            _ => {}
        }
    }
}
