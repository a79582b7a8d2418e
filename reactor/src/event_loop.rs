//! The loop and its turn: poll, route each event to its entry, serve the ready list, take requests
//! from other threads, fire timers, advance a shutdown. Each phase is a function of its own, in the
//! order [`EventLoop::run_once`] calls them; what happens to each kind of entry lives in its module
//! ([`connection`], [`listener`], [`datagram`]).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::event::Event;
use mio::{Events, Poll};

use crate::connection;
use crate::core::{Core, Entry};
use crate::handle::{Handle, Requests};
use crate::handler::{CloseKind, CloseReason};
use crate::stats::Stats;
use crate::timer::TimerKind;
use crate::token::{Key, WAKER};
use crate::{Address, Config, Context, Counters, Handler, ListenerId, ListenerOptions, SourceId, TimerId};
use crate::{datagram, listener};

/// A readiness-driven event loop on one thread, driving every socket it owns through a [`Handler`].
///
/// # Contract
/// - One turn ([`run_once`](Self::run_once)) = close what was scheduled to close → poll (no longer than
///   the earliest timer, not at all while work is left over) → dispatch events → work left over from
///   earlier turns → requests from other threads → timers → shutdown progress → publish counters.
/// - Readiness is edge-triggered: the loop drains every source it owns until `WouldBlock` (a read shorter
///   than the buffer counts as drained). Sources the application registers must be drained by the
///   application in [`Handler::on_source_ready`].
/// - Spurious events happen (a readable event with nothing to read, a writable one with nothing queued);
///   the loop tolerates them, and so must `on_source_ready`.
/// - Every entry's token carries a generation: an event for a closed entry never reaches the entry that
///   reuses its slot.
/// - Dropping the loop closes every socket it owns without callbacks; for a clean end, call
///   [`Handle::shutdown`] and let `run` return.
pub struct EventLoop<H: Handler> {
    poll: Poll,
    events: Events,
    core: Core,
    handler: H,
    /// The one buffer every connection and UDP socket reads into.
    read_buffer: Box<[u8]>,
    requests: Arc<Requests>,
    messages: Receiver<H::Message>,
    handle: Handle<H::Message>,
    stats: Arc<Stats>,
}

/// What [`EventLoop::run_once`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// The loop goes on.
    Running,
    /// The loop was stopped, or its graceful shutdown completed.
    Stopped,
}

impl<H: Handler> EventLoop<H> {
    /// Creates a loop. Logs the process's descriptor limit and what it means in connections (after
    /// raising the soft limit to the hard one, if [`Config::raise_fd_limit`] says so).
    pub fn new(config: Config, handler: H) -> io::Result<EventLoop<H>> {
        config.validate()?;
        log_capacity(&config);
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let requests = Arc::new(Requests::new(&registry)?);
        let stats = Arc::new(Stats::default());
        let (handle, messages) = Handle::new(requests.clone(), stats.clone(), config.message_capacity);
        let events = Events::with_capacity(config.events_capacity);
        let read_buffer = vec![0; config.read_buffer].into_boxed_slice();
        let core = Core::new(registry, config);
        Ok(EventLoop { poll, events, core, handler, read_buffer, requests, messages, handle, stats })
    }

    /// Opens a TCP listener and returns its id and bound address (the real port when asked for port
    /// 0). A Unix listener has no IP address: it is refused here with `InvalidInput`, before anything
    /// is opened; open it with [`listen_at`](Self::listen_at) or [`Context::listen`].
    pub fn listen(&mut self, options: &ListenerOptions) -> io::Result<(ListenerId, SocketAddr)> {
        if options.addr.is_unix() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is a Unix socket, which has no IP address: open it with listen_at", options.addr),
            ));
        }
        let (id, addr) = self.listen_at(options)?;
        let addr = addr
            .ip()
            .ok_or_else(|| io::Error::other(format!("{id} is bound to {addr}, not an IP address")))?;
        Ok((id, addr))
    }

    /// Opens a listener, TCP or Unix, and returns its id and bound address (the real port when asked
    /// for port 0; a Unix listener's path).
    pub fn listen_at(&mut self, options: &ListenerOptions) -> io::Result<(ListenerId, Address)> {
        let mut ctx = self.context();
        let id = ctx.listen(options)?;
        let addr = ctx.local_address(id)?;
        Ok((id, addr))
    }

    /// A context for setting up before (or between) turns: connect, listen, set timers.
    pub fn context(&mut self) -> Context<'_> {
        Context { core: &mut self.core }
    }

    /// A handle for other threads.
    pub fn handle(&self) -> Handle<H::Message> {
        self.handle.clone()
    }

    /// The loop's counters as of now. Other threads read them through [`Handle::stats`].
    pub fn stats(&self) -> &Counters {
        self.core.counters()
    }

    /// The application's handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The application's handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// Takes the handler back.
    pub fn into_handler(self) -> H {
        self.handler
    }

    /// Runs turns until the loop is stopped or its graceful shutdown completes.
    pub fn run(&mut self) -> io::Result<()> {
        while self.run_once(None)? == Turn::Running {}
        Ok(())
    }

    /// Runs one turn, waiting at most `timeout` for events (`None`: until an event or the next timer).
    /// For a host program that drives the loop from its own.
    pub fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<Turn> {
        if self.core.is_stopped() {
            return Ok(Turn::Stopped);
        }
        // Release what callbacks outside a turn (setup through `context`) scheduled to close.
        connection::close_scheduled(&mut self.core, &mut self.handler);
        // Poll: no longer than the earliest timer, not at all while work is waiting.
        self.poll_events(timeout)?;
        // Dispatch. Entries parked on earlier turns wait until the fresh events are served.
        let parked = self.core.ready_len();
        let woken = self.dispatch();
        // The ready list: work left over from earlier turns.
        self.run_ready(parked);
        // Requests from other threads, if they woke the loop.
        if woken {
            self.take_requests();
        }
        // Timers, then shutdown progress.
        self.fire_timers();
        self.progress_shutdown();
        self.stats.publish(self.core.counters());
        Ok(if self.core.is_stopped() { Turn::Stopped } else { Turn::Running })
    }

    /// Waits for events, and starts the turn's clock.
    fn poll_events(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let timeout = poll_timeout(&mut self.core, timeout);
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if crate::io_util::interrupted(&e) => {}
            Err(e) => return Err(e),
        }
        self.core.set_now(Instant::now());
        self.core.counters_mut().turns += 1;
        Ok(())
    }

    /// Routes every event to its entry; returns whether the waker fired.
    fn dispatch(&mut self) -> bool {
        let mut woken = false;
        for event in self.events.iter() {
            if event.token() == WAKER {
                woken = true;
            } else {
                route(&mut self.core, &mut self.handler, &mut self.read_buffer, event);
            }
        }
        woken
    }

    /// Works through the first `count` entries of the ready list: those left over from earlier turns.
    /// Entries parked during this turn wait for the next, so a flooding peer gets one budget per turn.
    fn run_ready(&mut self, count: usize) {
        let (core, handler, buffer) = (&mut self.core, &mut self.handler, &mut self.read_buffer);
        for _ in 0..count {
            let Some(key) = core.pop_ready() else { break };
            match core.entry(key) {
                Some(Entry::Connection(_)) => {
                    connection::read::read_parked(core, handler, buffer, key);
                    connection::close_scheduled(core, handler);
                }
                Some(Entry::Listener(_)) => listener::accept_queued(core, handler, key),
                Some(Entry::Udp(_)) => datagram::read_queued(core, handler, buffer, key),
                Some(Entry::Source) | None => {}
            }
        }
    }

    /// Takes requests from other threads: stop, shutdown, messages (at most the queue's capacity per
    /// turn, so a flood of messages cannot starve the sockets).
    fn take_requests(&mut self) {
        if self.requests.take_stop() {
            self.core.stop();
        }
        if let Some(timeout) = self.requests.take_shutdown() {
            self.core.request_shutdown(timeout);
        }
        for _ in 0..self.core.config().message_capacity {
            let Ok(message) = self.messages.try_recv() else { break };
            self.handler.on_message(&mut Context { core: &mut self.core }, message);
            connection::close_scheduled(&mut self.core, &mut self.handler);
        }
    }

    /// Fires the timers that were due when the phase began (a timer set meanwhile waits for the next
    /// turn, so a callback that re-arms a zero-length timer cannot trap the loop).
    fn fire_timers(&mut self) {
        let (core, handler) = (&mut self.core, &mut self.handler);
        let now = core.now();
        core.begin_timer_phase();
        for _ in 0..core.timers_len() {
            let Some((timer, kind)) = core.pop_expired_timer(now) else { break };
            match kind {
                TimerKind::User(tag) => handler.on_timer(&mut Context { core }, TimerId(timer), tag),
                TimerKind::Idle(key) => connection::idle_timer_fired(core, key),
                TimerKind::AcceptRetry(key) => listener::retry_timer_fired(core, handler, key),
                TimerKind::Linger(key) => connection::write::linger_expired(core, key),
                TimerKind::ShutdownDeadline => abandon_all(core),
            }
            connection::close_scheduled(core, handler);
        }
    }

    /// Starts a graceful shutdown if one was asked for: close the listeners, ask every connection to
    /// flush and close, arm the deadline. Ends the loop once no connection is left.
    fn progress_shutdown(&mut self) {
        let core = &mut self.core;
        if let Some(timeout) = core.begin_draining() {
            for key in core.keys(|e| matches!(e, Entry::Listener(_))) {
                core.remove(key);
            }
            for key in core.keys(|e| matches!(e, Entry::Connection(_))) {
                let _ = connection::write::close(core, key, CloseKind::Shutdown);
            }
            core.set_timer(timeout, TimerKind::ShutdownDeadline);
            debug!("shutting down: {} connections to flush within {timeout:?}", core.counters().active);
            self.handler.on_shutdown(&mut Context { core });
            connection::close_scheduled(core, &mut self.handler);
        }
        core.stop_if_drained();
    }
}

/// Routes one event to its entry; events for entries that no longer exist are counted and dropped.
fn route<H: Handler>(core: &mut Core, handler: &mut H, buffer: &mut [u8], event: &Event) {
    let key = Key::from_token(event.token());
    match core.entry(key) {
        Some(Entry::Connection(_)) => {
            connection::read::on_event(core, handler, buffer, key, event);
            connection::close_scheduled(core, handler);
        }
        // Both release what their callbacks close after each callback.
        Some(Entry::Listener(_)) => listener::accept(core, handler, key),
        Some(Entry::Udp(_)) => datagram::on_event(core, handler, buffer, key, event),
        Some(Entry::Source) => {
            handler.on_source_ready(&mut Context { core }, SourceId(key), event);
            connection::close_scheduled(core, handler);
        }
        None => core.counters_mut().stale_events += 1,
    }
}

/// The shutdown deadline passed: close what is left as it is.
fn abandon_all(core: &mut Core) {
    let keys = core.keys(|e| matches!(e, Entry::Connection(_)));
    if !keys.is_empty() {
        warn!("shutdown deadline passed: closing {} connections with output still queued", keys.len());
    }
    for key in keys {
        core.schedule_close(key, CloseReason::of(CloseKind::Shutdown));
    }
}

/// Waits no longer than the earliest timer, and not at all when work is already waiting.
fn poll_timeout(core: &mut Core, asked: Option<Duration>) -> Option<Duration> {
    if core.ready_len() > 0 || core.has_closing() || core.shutdown_requested() {
        return Some(Duration::ZERO);
    }
    let timer = core.next_deadline().map(|at| at.saturating_duration_since(Instant::now()));
    match (asked, timer) {
        (Some(a), Some(t)) => Some(a.min(t)),
        (a, t) => a.or(t),
    }
}

fn log_capacity(config: &Config) {
    let limit = if config.raise_fd_limit {
        hostinfo::raise_fd_limit().map(|(before, after)| {
            if before.soft != after.soft {
                info!("raised the descriptor limit from {before} to {after}");
            }
            after
        })
    } else {
        hostinfo::fd_limit()
    };
    match limit {
        Ok(limit) => {
            // A few descriptors go to the poller, the waker, stdio and listeners.
            let room = limit.soft.saturating_sub(16);
            // Information, not a warning: whether a max_connections above the room is a mistake
            // depends on what the application runs around the loop (several loops, several
            // processes), which it knows and the loop does not; it warns, once, where it knows.
            let beyond = if config.max_connections as u64 > room
                && config.max_connections != Config::default().max_connections
            {
                format!(
                    "; max_connections {} is above it, accepts past it fail with EMFILE and back off",
                    config.max_connections
                )
            } else {
                String::new()
            };
            info!("descriptor limit {limit}: room for about {room} connections per process{beyond}");
        }
        Err(e) => log::warn!("cannot read the descriptor limit: {e}"),
    }
}

impl<H: Handler> fmt::Debug for EventLoop<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("entries", &self.core.len())
            .field("connections", &self.core.counters().active)
            .field("timers", &self.core.timers_len())
            .finish_non_exhaustive()
    }
}
