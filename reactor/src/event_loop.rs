//! The loop itself: poll, dispatch, and the phases of a turn.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use log::info;
use mio::{Events, Poll};

use crate::core::Core;
use crate::dispatch::Inner;
use crate::handle::{Handle, Requests};
use crate::token::WAKER;
use crate::{Config, Context, Handler, ListenerId, ListenerOptions, Stats};

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
    inner: Inner<H>,
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
        let core = Core::new(registry, config);
        Ok(EventLoop { poll, events, inner: Inner::new(core, handler, requests, messages), handle, stats })
    }

    /// Opens a listener and returns its id and bound address (the real port when asked for port 0).
    pub fn listen(&mut self, options: &ListenerOptions) -> io::Result<(ListenerId, SocketAddr)> {
        let mut ctx = self.context();
        let id = ctx.listen(options)?;
        let addr = ctx.listener_addr(id)?;
        Ok((id, addr))
    }

    /// A context for setting up before (or between) turns: connect, listen, set timers.
    pub fn context(&mut self) -> Context<'_> {
        Context { core: &mut self.inner.core }
    }

    /// A handle for other threads.
    pub fn handle(&self) -> Handle<H::Message> {
        self.handle.clone()
    }

    /// The loop's counters, shared.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The application's handler.
    pub fn handler(&self) -> &H {
        &self.inner.handler
    }

    /// The application's handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.inner.handler
    }

    /// Takes the handler back.
    pub fn into_handler(self) -> H {
        self.inner.handler
    }

    /// Runs turns until the loop is stopped or its graceful shutdown completes.
    pub fn run(&mut self) -> io::Result<()> {
        while self.run_once(None)? == Turn::Running {}
        Ok(())
    }

    /// Runs one turn, waiting at most `timeout` for events (`None`: until an event or the next timer).
    /// For a host program that drives the loop from its own.
    pub fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<Turn> {
        let inner = &mut self.inner;
        if inner.core.is_stopped() {
            return Ok(Turn::Stopped);
        }
        // Release what callbacks outside a turn (setup through `context`) scheduled to close.
        inner.close_scheduled();

        // Poll.
        let timeout = poll_timeout(&mut inner.core, timeout);
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if crate::io_util::interrupted(&e) => {}
            Err(e) => return Err(e),
        }
        inner.core.set_now(std::time::Instant::now());
        inner.core.counters_mut().turns += 1;

        // Dispatch. Entries parked on earlier turns wait until the fresh events are served.
        let parked = inner.core.ready_len();
        let mut woken = false;
        for event in self.events.iter() {
            if event.token() == WAKER {
                woken = true;
            } else {
                inner.dispatch(event);
            }
        }

        // Left over from earlier turns; requests from other threads; timers; shutdown.
        inner.run_ready(parked);
        if woken {
            inner.take_requests();
        }
        inner.fire_timers();
        inner.progress_shutdown();

        self.stats.publish(inner.core.counters());
        Ok(if inner.core.is_stopped() { Turn::Stopped } else { Turn::Running })
    }
}

/// Waits no longer than the earliest timer, and not at all when work is already waiting.
fn poll_timeout(core: &mut Core, asked: Option<Duration>) -> Option<Duration> {
    if core.ready_len() > 0 || core.has_closing() || core.shutdown_requested() {
        return Some(Duration::ZERO);
    }
    let timer = core.next_deadline().map(|at| at.saturating_duration_since(std::time::Instant::now()));
    match (asked, timer) {
        (Some(a), Some(t)) => Some(a.min(t)),
        (a, t) => a.or(t),
    }
}

fn log_capacity(config: &Config) {
    let limit = if config.raise_fd_limit {
        crate::sys::raise_fd_limit().map(|(before, after)| {
            if before.soft != after.soft {
                info!("raised the descriptor limit from {before} to {after}");
            }
            after
        })
    } else {
        crate::sys::fd_limit()
    };
    match limit {
        Ok(limit) => {
            // A few descriptors go to the poller, the waker, stdio and listeners.
            let room = limit.soft.saturating_sub(16);
            info!("descriptor limit {limit}: room for about {room} connections per process");
            if (config.max_connections as u64) > room
                && config.max_connections != Config::default().max_connections
            {
                log::warn!(
                    "max_connections {} is above what the descriptor limit allows (~{room}); \
                     accepts beyond it will fail with EMFILE and back off",
                    config.max_connections
                );
            }
        }
        Err(e) => log::warn!("cannot read the descriptor limit: {e}"),
    }
}

impl<H: Handler> fmt::Debug for EventLoop<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("entries", &self.inner.core.len())
            .field("connections", &self.inner.core.counters().active)
            .field("timers", &self.inner.core.timers_len())
            .finish_non_exhaustive()
    }
}
