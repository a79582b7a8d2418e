//! One stream connection's whole life (TCP or Unix), accepted or outbound: opening, reading ([`read`]), writing
//! ([`write`](mod@write)), closing; its state is one typed value ([`State`]).
//!
//! # Life
//! ```text
//!                  accept ──────────┐
//!                                   ▼
//! connect ──► Opening ─connected─► Open ─shutdown_write─► ShuttingWrite ─flushed, FIN─► WriteShut
//!                │                  │                          │                          │
//!                │                close                      close                      close
//!                │                  ▼                          │                          │
//!                │               Closing ◄─────────────────────┘                          │
//!                │                  │ flushed, FIN                                        │
//!                │                  ▼                                                     │
//!                │              Lingering ◄───────────────────────────────────────────────┘
//!                │                  │ the peer's FIN, or the linger timer
//!                ▼                  ▼
//!              Closed ◄──── and from any phase: an error, a reset, abort, the idle timeout,
//!                │                              the shutdown deadline
//!                │ the current callback returns
//!                ▼
//!      removed: socket closed, on_close
//! ```
//! - *close* is [`Context::close`], [`Next::Close`](crate::Next::Close), the peer's EOF answered with
//!   [`AfterEof::Close`](crate::AfterEof::Close) (the default), or a graceful shutdown. `Closing`
//!   reads nothing (the application hears no more data); `Lingering` reads only to discard, so that
//!   unread input does not turn the close into a reset.
//! - The peer's EOF alone does not change the phase: the application may keep writing (half-closed
//!   by the peer). Once both directions are shut the connection closes: from `WriteShut` at the
//!   peer's EOF, from `Closing` straight after our FIN, without lingering.
//! - A half-close or close asked while `Opening` waits for the connect (a close with nothing queued
//!   ends it at once).
//!
//! Beside the phase, [`State`] keeps what varies on its own: readable since the last drain, the
//! application's pause and back-pressure's, a place on the ready list, WRITABLE interest.

pub(crate) mod read;
mod state;
pub(crate) mod write;

use std::io;
use std::time::Instant;

use log::debug;
use mio::Interest;
use mio::net::{TcpStream, UnixStream};

use crate::core::{Core, Entry};
use crate::handler::{CloseKind, CloseReason, ConnectOptions, Origin};
use crate::output::OutputQueue;
use crate::stream::Stream;
use crate::timer::TimerKind;
use crate::token::Key;
use crate::{Address, ConnId, Context, Handler, ListenerId};

use state::{State, Step};

/// A connection in the loop's table, TCP or Unix.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) stream: Stream,
    /// What the socket did not take yet.
    pub(crate) output: OutputQueue,
    /// When a byte last moved, for the idle timeout.
    pub(crate) last_active: Instant,
    pub(crate) idle_timer: Option<Key>,
    pub(crate) state: State,
}

impl Connection {
    fn new(stream: Stream, now: Instant, state: State) -> Connection {
        Connection { stream, output: OutputQueue::default(), last_active: now, idle_timer: None, state }
    }

    /// Starts tracing this connection's lifecycle, if the lifecycle log is on.
    fn trace(&mut self, peer: Option<&Address>) {
        if crate::lifecycle::enabled() {
            self.state.trace();
            crate::lifecycle::open(&self.stream, peer);
        }
    }

    /// Logs a step of its life, if it is traced.
    #[inline]
    pub(crate) fn step(&self, key: Key, what: std::fmt::Arguments<'_>) {
        if self.state.traced() {
            crate::lifecycle::step(ConnId(key), &self.stream, false, what);
        }
    }

    /// Logs the last step of its life, if it is traced.
    fn last_step(&self, key: Key, what: std::fmt::Arguments<'_>) {
        if self.state.traced() {
            crate::lifecycle::step(ConnId(key), &self.stream, true, what);
        }
    }
}

/// A listener accepted `stream`: enter it in the table and tell the application.
pub(crate) fn open_accepted<H: Handler>(
    core: &mut Core,
    handler: &mut H,
    listener: Key,
    stream: Stream,
    peer: Address,
) {
    let conn = Connection::new(stream, core.now(), State::accepted());
    let key = match core.insert(Entry::Connection(conn), crate::sys::STREAM_INTEREST) {
        Ok(key) => key,
        Err(e) => {
            core.warn(format_args!("dropping connection from {peer}: cannot register it: {e}"));
            return;
        }
    };
    arm_idle_timer(core, key);
    if let Some(conn) = core.connection(key) {
        conn.trace(Some(&peer));
        conn.step(key, format_args!("accepted from the accept queue (ESTABLISHED)"));
    }
    debug!("{} accepted from {peer}", ConnId(key));
    handler.on_open(&mut Context { core }, ConnId(key), Origin::Accepted(ListenerId(listener)));
    close_scheduled(core, handler);
}

/// Starts an outbound connect (see [`Context::connect_with`]); it opens in [`read`] once the poller
/// reports how it ended.
pub(crate) fn connect(core: &mut Core, options: &ConnectOptions) -> io::Result<Key> {
    let stream = match &options.addr {
        Address::Ip(addr) => {
            Stream::Tcp(TcpStream::from_std(crate::sys::connect_nonblocking(*addr, options.bind)?.into()))
        }
        Address::Unix(path) => {
            if options.bind.is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("a local bind address does not apply to a Unix connection ({})", options.addr),
                ));
            }
            // Non-blocking; `WouldBlock` here means the listener's backlog is full. The error is the
            // kernel's own, errno and all (as for TCP), for callers that classify it.
            let stream = UnixStream::connect(path)?;
            crate::sys::no_sigpipe(&stream);
            Stream::Unix(stream)
        }
        Address::UnixUnnamed => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot connect to an unnamed Unix socket",
            ));
        }
    };
    let conn = Connection::new(stream, core.now(), State::connecting(options.nodelay));
    let key = core.insert(Entry::Connection(conn), crate::sys::STREAM_INTEREST | Interest::WRITABLE)?;
    arm_idle_timer(core, key);
    Ok(key)
}

/// Starts the idle timer, if there is an idle timeout.
fn arm_idle_timer(core: &mut Core, key: Key) {
    if let Some(idle) = core.config().idle_timeout {
        let timer = core.set_timer(idle, TimerKind::Idle(key));
        if let Some(conn) = core.connection(key) {
            conn.idle_timer = Some(timer);
        }
    }
}

/// The idle timer fired: close if no byte moved for the idle timeout, or wait for the rest of it.
pub(crate) fn idle_timer_fired(core: &mut Core, key: Key) {
    let (Some(idle), now) = (core.config().idle_timeout, core.now()) else { return };
    let Some(conn) = core.connection(key) else { return };
    conn.idle_timer = None;
    let quiet = now.saturating_duration_since(conn.last_active);
    if quiet >= idle {
        conn.step(key, format_args!("idle timeout: no byte moved for {:.3} s", quiet.as_secs_f64()));
        core.schedule_close(key, CloseReason::of(CloseKind::IdleTimeout));
    } else {
        let timer = core.set_timer(idle - quiet, TimerKind::Idle(key));
        if let Some(conn) = core.connection(key) {
            conn.idle_timer = Some(timer);
        }
    }
}

/// Closes every connection scheduled to close and tells the application. Callbacks may schedule more;
/// they are closed in the same call.
#[inline]
pub(crate) fn close_scheduled<H: Handler>(core: &mut Core, handler: &mut H) {
    if core.has_closing() {
        close_scheduled_now(core, handler);
    }
}

#[cold]
#[inline(never)]
fn close_scheduled_now<H: Handler>(core: &mut Core, handler: &mut H) {
    while let Some((key, reason)) = core.pop_closing() {
        let Some(entry) = core.remove(key) else { continue };
        if let Entry::Connection(conn) = &entry {
            conn.last_step(key, format_args!("closed: {reason}"));
        }
        drop(entry);
        core.counters_mut().closed[reason.kind().index()] += 1;
        debug!("{} closed: {reason}", ConnId(key));
        handler.on_close(&mut Context { core }, ConnId(key), &reason);
    }
}

/// Puts a connection on the ready list so that the next turn reads from it (edge-triggered readiness
/// will not report data that arrived while it was paused).
pub(crate) fn queue_read(core: &mut Core, key: Key) {
    if let Some(conn) = core.connection(key)
        && conn.state.wants_read()
        && !conn.state.is_queued()
    {
        conn.state.set_queued(true);
        core.push_ready(key);
    }
}

/// A traced connection read its first bytes: say so, once. Out of line: it happens once per traced
/// connection, and never for an untraced one.
#[cold]
#[inline(never)]
pub(crate) fn first_byte(conn: &mut Connection, key: Key, bytes: usize) {
    if conn.state.first_byte() {
        conn.step(key, format_args!("first byte ({bytes} B)"));
    }
}

pub(crate) fn not_connected(key: Key) -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, format!("connection {key:?} is closed"))
}
