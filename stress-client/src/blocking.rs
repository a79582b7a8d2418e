//! The same load the blocking way: one thread per connection, blocking connect, send and recv. It
//! exists to show what that model costs the client (threads, memory, context switches, CPU per
//! message) next to the reactor.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::driver::DRAIN;
use crate::driver::{Plan, Work};
use crate::error_kind::ErrorKind;
use crate::loops::Combined;
use crate::message::Stream;
use crate::pace;
use crate::progress::{Counters, Progress, Ticker};
use crate::tally::{self, Ending, Tally};
use crate::usage::{Usage, Window};

/// Stack of a connection thread: it needs little, and thousands of them must fit.
const STACK: usize = 128 * 1024;
/// How long a read waits before the thread looks again at the clock and the abort flag.
const READ_POLL: Duration = Duration::from_millis(100);

/// Shared by the connection threads of one run.
#[derive(Debug)]
struct Shared {
    plan: Plan,
    tally: Mutex<Tally>,
    counters: Arc<Counters>,
    abort: Arc<std::sync::atomic::AtomicBool>,
    /// Set when held connections may close.
    release: (Mutex<bool>, Condvar),
    /// When echo load may begin: every connection is up first (unless ramped), so that the load runs
    /// on all of them at once, as the reactor's does. The spawning thread is one of N runnable threads
    /// on a busy core, and would otherwise still be starting connections when the run ends.
    gate: (Mutex<Option<Instant>>, Condvar),
    /// The process's usage at the edges of the measured interval, read by the first connection thread
    /// to cross each edge: the watching thread is one of N runnable threads and may wake late.
    usage: Mutex<Window>,
    /// Which edges were read (bit 0: start, bit 1: end), so crossing threads need not lock.
    edges_read: AtomicU8,
    started: Instant,
}

impl Shared {
    /// Opens the gate: echo load counts from now.
    fn open_gate(&self) {
        let mut at = lock(&self.gate.0);
        at.get_or_insert_with(Instant::now);
        self.gate.1.notify_all();
    }

    /// Reads the usage at the measured interval's edges that `now` has crossed and nobody read yet.
    fn read_edges(&self, now: Instant, times: &Times) {
        let read = self.edges_read.load(Ordering::Relaxed);
        if read == 3 || now < times.measure_from {
            return;
        }
        let edge = if now >= times.end { 2 } else { 1 };
        if read & edge != 0 {
            return;
        }
        let mut window = lock(&self.usage);
        if self.edges_read.fetch_or(edge, Ordering::Relaxed) & edge == 0 {
            let reading = Some(Usage::now());
            if edge == 1 { window.from = reading } else { window.to = reading }
        }
    }

    /// The measured interval of echo load released at `released`: with `--start-at`, `duration` from
    /// it (the load before it is the warm-up), or from `released` if that is later; else `warmup` to
    /// `duration` after `released`.
    fn echo_window(&self, released: Instant, warmup: Duration, duration: Duration) -> (Instant, Instant) {
        match self.plan.start_at {
            Some(at) => {
                let from = at.max(released);
                (from, from + duration)
            }
            None => (released + warmup, released + duration),
        }
    }

    /// Waits for the gate and returns when it opened.
    fn wait_for_gate(&self) -> Instant {
        let mut at = lock(&self.gate.0);
        loop {
            if let Some(at) = *at {
                return at;
            }
            at = self.gate.1.wait(at).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Runs `plan` with one thread per connection (ramped like the reactor's), while the calling thread
/// prints progress.
pub fn run(plan: Plan, progress: &Progress, ticker: &mut Ticker<'_>) -> io::Result<Combined> {
    let shared = Arc::new(Shared {
        plan: plan.clone(),
        tally: Mutex::new(Tally::default()),
        counters: progress.counters[0].clone(),
        abort: progress.abort.clone(),
        release: (Mutex::new(false), Condvar::new()),
        gate: (Mutex::new(None), Condvar::new()),
        usage: Mutex::new(Window::default()),
        edges_read: AtomicU8::new(0),
        started: Instant::now(),
    });
    if plan.ramp.is_some() {
        // Ramped: the load grows with the connections, as in the reactor.
        shared.open_gate();
    }
    let mut combined = Combined::default();
    let mut threads = Vec::new();
    for index in 0..plan.connections {
        if let Some(rate) = plan.ramp {
            // A connection due too far away to represent is never started.
            let Some(at) = pace::after(shared.started, index as f64 / rate) else { break };
            thread::sleep(at.saturating_duration_since(Instant::now()));
        }
        let mine = shared.clone();
        match thread::Builder::new().stack_size(STACK).spawn(move || connection(&mine, index)) {
            Ok(t) => threads.push(t),
            Err(e) => lock(&shared.tally).connect_failed(ErrorKind::of(&e)),
        }
        combined.threads = combined.threads.max(crate::usage::threads());
        ticker.tick(progress);
    }
    // Hold, or start the load, once every connect has finished one way or the other.
    let c = &shared.counters;
    let settled = |c: &Counters| {
        c.established.load(Ordering::Relaxed) + c.errors.load(Ordering::Relaxed) >= threads.len() as u64
    };
    let deadline = Instant::now() + plan.connect_timeout + Duration::from_secs(1);
    while !settled(c) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    combined.threads = combined.threads.max(crate::usage::threads());
    shared.open_gate();
    let released = shared.wait_for_gate();
    let mut window = match plan.work {
        Work::Echo { duration, warmup, .. } => Some(shared.echo_window(released, warmup, duration)),
        _ => None,
    };
    if let Work::Hold { hold, .. } = plan.work {
        // Held from --start-at, if the connections were up before it; in slices, ticking: the server
        // is sampled while it holds the connections.
        let from = plan.start_at.map_or(shared.started, |at| at.max(Instant::now()));
        let until = from.max(Instant::now()) + hold;
        while Instant::now() < until {
            thread::sleep(ticker.interval().min(until.saturating_duration_since(Instant::now())));
            ticker.tick(progress);
        }
        window = Some((from, Instant::now()));
        *lock(&shared.release.0) = true;
        shared.release.1.notify_all();
    }
    while threads.iter().any(|t| !t.is_finished()) {
        thread::sleep(ticker.interval().min(Duration::from_millis(50)));
        combined.threads = combined.threads.max(crate::usage::threads());
        ticker.tick(progress);
    }
    ticker.finish(progress);
    for t in threads {
        let _ = t.join();
    }
    let tally = std::mem::take(&mut *lock(&shared.tally));
    let (from, to) = window.unwrap_or((shared.started, Instant::now()));
    (combined.measured, combined.from) = (to.saturating_duration_since(from), Some(from));
    combined.tally = tally;
    combined.usage = *lock(&shared.usage);
    Ok(combined)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn connect(plan: &Plan, index: u64) -> io::Result<std::net::TcpStream> {
    // The command line refuses --blocking with a Unix target.
    let reactor::Address::Ip(target) = plan.target else {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "the blocking model connects over TCP only"));
    };
    let socket = Socket::new(Domain::for_address(target), Type::STREAM, Some(Protocol::TCP))?;
    if !plan.sources.is_empty() {
        let ip = plan.sources[((plan.first_id + index) % plan.sources.len() as u64) as usize];
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    socket.connect_timeout(&target.into(), plan.connect_timeout)?;
    socket.set_tcp_nodelay(true)?;
    Ok(socket.into())
}

fn connection(shared: &Shared, index: u64) {
    let started = Instant::now();
    let mut stream = match connect(&shared.plan, index) {
        Ok(s) => s,
        Err(e) => {
            let kind = ErrorKind::of(&e);
            lock(&shared.tally).connect_failed(kind);
            shared.counters.failed(kind);
            return;
        }
    };
    let mut local = Tally::counts_only();
    tally::record(&mut lock(&shared.tally).connect, started.elapsed());
    local.established = 1;
    local.peak_concurrent = 1;
    shared.counters.established.fetch_add(1, Ordering::Relaxed);
    shared.counters.open.fetch_add(1, Ordering::Relaxed);
    let id = shared.plan.first_id + index;
    match shared.plan.work {
        Work::Echo { size, pipeline, rate, warmup, duration } => {
            let interval = rate.map(|r| pace::interval(shared.plan.connections, r));
            let released = shared.wait_for_gate();
            let (measure_from, end) = shared.echo_window(released, warmup, duration);
            let times = Times { measure_from, end, interval };
            let mut messages = Stream::new(id, size);
            let ended = echo(shared, &mut stream, &mut messages, pipeline, &times, &mut local);
            settle(shared, &mut local, &mut messages, &ended);
        }
        Work::Hold { .. } => {
            let (released, wake) = &shared.release;
            let mut released = lock(released);
            while !*released {
                released = wake.wait(released).unwrap_or_else(|p| p.into_inner());
            }
            local.settle(&mut Stream::new(id, 0), Ending::RunEnd);
        }
        // Churn has no blocking mode (it is refused before the run): the connection just ends.
        Work::Churn { .. } => {
            local.settle(&mut Stream::new(id, 0), Ending::RunEnd);
        }
    }
    shared.counters.open.fetch_sub(1, Ordering::Relaxed);
    lock(&shared.tally).add(&local);
}

/// How a blocking connection's echo loop ended.
#[derive(Debug)]
enum Ended {
    /// The run ended (with the drain, if echoes were owed).
    RunEnd,
    /// The server closed or reset the connection, or it failed; why, in words.
    Server(String),
    /// An echo did not match what was sent.
    Mismatch,
}

/// Settles the connection's books (see [`Tally::settle`]); bytes the server made us lose fail the run.
fn settle(shared: &Shared, tally: &mut Tally, messages: &mut Stream, ended: &Ended) {
    let ending = match ended {
        Ended::RunEnd => Ending::RunEnd,
        Ended::Server(why) => Ending::Server(why),
        Ended::Mismatch => {
            Ending::Client("the echo did not match what was sent; the client closed the connection")
        }
    };
    if let Some(loss) = tally.settle(messages, ending)
        && matches!(ended, Ended::Server(_))
    {
        tally.verify_failed(loss.to_string());
        shared.abort.store(true, Ordering::Relaxed);
    }
}

struct Times {
    measure_from: Instant,
    end: Instant,
    interval: Option<Duration>,
}

/// Latencies of one connection, handed to the shared histogram in batches (a histogram per thread
/// would cost more memory than the thread itself).
struct Latencies<'a> {
    shared: &'a Shared,
    pending: Vec<Duration>,
}

impl Latencies<'_> {
    fn record(&mut self, d: Duration) {
        self.pending.push(d);
        if self.pending.len() == self.pending.capacity() {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let mut tally = lock(&self.shared.tally);
        for d in self.pending.drain(..) {
            tally::record(&mut tally.latency, d);
        }
    }
}

impl Drop for Latencies<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Echo messages on one blocking connection until the end, then waits up to [`DRAIN`] for the echoes
/// still owed, as the reactor's loops do.
fn echo(
    shared: &Shared,
    stream: &mut std::net::TcpStream,
    messages: &mut Stream,
    pipeline: u64,
    times: &Times,
    tally: &mut Tally,
) -> Ended {
    let _ = stream.set_read_timeout(Some(READ_POLL));
    let opened = Instant::now();
    let mut message = vec![0; messages.size()];
    let mut buffer = vec![0; 64 * 1024];
    let mut sent_at = std::collections::VecDeque::new();
    let mut latencies = Latencies { shared, pending: Vec::with_capacity(1024) };
    let mut stopped = None;
    loop {
        // Send what is due.
        let now = Instant::now();
        shared.read_edges(now, times);
        let running = now < times.end && !shared.abort.load(Ordering::Relaxed);
        if !running {
            stopped.get_or_insert(now);
        }
        while running && messages.in_flight() < pipeline {
            let Some(stamp) = send_stamp(opened, times.interval, messages) else { break };
            messages.next_message(&mut message);
            if let Err(e) = stream.write_all(&message) {
                messages.unsend();
                tally.error(ErrorKind::of(&e));
                return Ended::Server(format!("a write failed: {e}"));
            }
            sent_at.push_back(stamp);
            tally.bytes_sent += message.len() as u64;
        }
        // Nothing in flight: at a fixed rate, wait for the next message's time; else the run is over.
        if messages.in_flight() == 0 {
            match (running, times.interval) {
                (true, Some(interval)) => {
                    sleep_until_due(opened, interval, messages);
                    continue;
                }
                (true, None) => continue,
                (false, _) => return Ended::RunEnd,
            }
        }
        if stopped.is_some_and(|at| now >= at + DRAIN) {
            return Ended::RunEnd;
        }
        // Read and verify what came back.
        let n = match stream.read(&mut buffer) {
            Ok(0) => return Ended::Server("the server closed the connection".to_owned()),
            Ok(n) => n,
            Err(e) if is_poll_timeout(&e) => continue,
            Err(e) => {
                tally.error(ErrorKind::of(&e));
                return Ended::Server(format!("the connection failed: {e}"));
            }
        };
        let now = Instant::now();
        let measuring = now >= times.measure_from;
        let before = messages.received();
        let mut completed = 0;
        let result = messages.receive(&buffer[..n], |_| {
            completed += 1;
            let sent = sent_at.pop_front().unwrap_or(now);
            if measuring {
                tally.messages += 1;
                latencies.record(now.saturating_duration_since(sent));
            }
        });
        tally.bytes_received += messages.received() - before;
        shared.counters.messages.fetch_add(completed, Ordering::Relaxed);
        if let Err(mismatch) = result {
            tally.verify_failed(mismatch.to_string());
            shared.abort.store(true, Ordering::Relaxed);
            return Ended::Mismatch;
        }
    }
}

/// A read that returned only because [`READ_POLL`] passed, or a signal arrived: look again.
fn is_poll_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}

/// The time the next message counts from: now in a closed loop; at a fixed rate its due time, or
/// `None` while it is not due yet.
fn send_stamp(opened: Instant, interval: Option<Duration>, messages: &Stream) -> Option<Instant> {
    let Some(interval) = interval else { return Some(Instant::now()) };
    let due = pace::due(opened, interval, messages.next_send)?;
    if due > Instant::now() { None } else { Some(due) }
}

/// Sleeps until the next message is due at a fixed rate, but no longer than 100 ms, so that the end
/// of the run and an abort are seen in time.
fn sleep_until_due(opened: Instant, interval: Duration, messages: &Stream) {
    let wait = pace::due(opened, interval, messages.next_send)
        .map(|due| due.saturating_duration_since(Instant::now()));
    thread::sleep(wait.unwrap_or(Duration::MAX).min(Duration::from_millis(100)));
}
