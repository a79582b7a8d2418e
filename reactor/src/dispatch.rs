//! Turning readiness into I/O and callbacks: accept until `WouldBlock`, read until drained, finish
//! outbound connects, fire timers, close what was scheduled to close.

use std::io;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use log::{debug, warn};
use mio::event::Event;

use crate::connection::{Connection, Ending, Finish, flag};
use crate::core::{Core, Entry, RunState};
use crate::handle::Requests;
use crate::handler::{AfterEof, CloseReason, Next, Origin};
use crate::listener::Hold;
use crate::stats::AcceptErrorKind;
use crate::timer::TimerKind;
use crate::token::Key;
use crate::{ConnId, Context, Handler, ListenerId, SourceId, TimerId};

/// Everything a turn works on except the poller and its event buffer, which the turn iterates.
pub(crate) struct Inner<H: Handler> {
    pub(crate) core: Core,
    pub(crate) handler: H,
    pub(crate) read_buffer: Box<[u8]>,
    pub(crate) requests: Arc<Requests>,
    pub(crate) messages: Receiver<H::Message>,
    /// When resource warnings were last logged, and how many were held back since.
    warned: Option<Instant>,
    suppressed: u64,
}

impl<H: Handler> Inner<H> {
    pub(crate) fn new(
        core: Core,
        handler: H,
        requests: Arc<Requests>,
        messages: Receiver<H::Message>,
    ) -> Self {
        let read_buffer = vec![0; core.config.read_buffer].into_boxed_slice();
        Inner { core, handler, read_buffer, requests, messages, warned: None, suppressed: 0 }
    }

    fn ctx(&mut self) -> (&mut H, Context<'_>) {
        (&mut self.handler, Context { core: &mut self.core })
    }

    /// Routes one event to its entry; events for entries that no longer exist are counted and dropped.
    pub(crate) fn dispatch(&mut self, event: &Event) {
        let key = Key::from_token(event.token());
        match self.core.slots.get(key.slot) {
            Some(slot) if slot.generation == key.generation => match slot.entry {
                Entry::Connection(_) => self.connection_event(key, event),
                Entry::Listener(_) => self.accept(key),
                Entry::Udp(_) => self.datagram_event(key, event),
                Entry::Source => {
                    let (handler, mut ctx) = self.ctx();
                    handler.on_source_ready(&mut ctx, SourceId(key), event);
                    self.close_scheduled();
                }
            },
            _ => self.core.counters.stale_events += 1,
        }
    }

    fn connection_event(&mut self, key: Key, event: &Event) {
        let Some(conn) = self.core.connection(key) else { return };
        if conn.is_closing() {
            return;
        }
        if conn.has(flag::CONNECTING) {
            self.finish_connect(key);
            self.close_scheduled();
            return;
        }
        if event.is_error() {
            let error = conn.stream.take_error().ok().flatten();
            if let Some(error) = error {
                self.core.schedule_close(key, CloseReason::from_io(error));
                self.close_scheduled();
                return;
            }
        }
        if event.is_readable() || event.is_read_closed() {
            conn.set(flag::READABLE);
        }
        if event.is_read_closed() {
            conn.set(flag::HANGUP_SEEN);
        }
        if crate::sys::urgent_data(event) {
            conn.set(flag::URGENT);
        }
        // A parked connection is read from the ready list, once per turn, not here as well.
        let parked = conn.has(flag::QUEUED);
        if event.is_writable() && conn.wants_write && self.core.flush(key) {
            let (handler, mut ctx) = self.ctx();
            handler.on_drained(&mut ctx, ConnId(key));
        }
        if !parked {
            self.read(key);
        }
        self.close_scheduled();
    }

    /// Reads until the socket is drained, the connection pauses, or its per-turn budget is spent (then it
    /// waits on the ready list for the next turn). Inlined: it is the hot half of every echoed message,
    /// and a call's prologue and epilogue were a tenth of the loop's own instructions per message.
    #[inline(always)]
    pub(crate) fn read(&mut self, key: Key) {
        let mut budget = self.core.config.read_budget;
        let written_at_start = self.core.counters.bytes_out;
        loop {
            let now = self.core.now;
            let Some(conn) = self.core.connection(key) else { return };
            if !conn.wants_read() {
                return;
            }
            if budget == 0 {
                conn.set(flag::QUEUED);
                self.core.push_ready(key);
                return;
            }
            match crate::sys::recv(&conn.stream, &mut self.read_buffer) {
                Ok(0) => {
                    conn.clear(flag::READABLE);
                    conn.set(flag::READ_CLOSED);
                    self.peer_eof(key);
                    return;
                }
                Ok(n) => {
                    conn.last_active = now;
                    // A short read drained the socket: the next arrival raises a new edge, so another
                    // read now would only say EAGAIN. Unless the peer's FIN came with this edge (read on
                    // to see the EOF, which raises no edge of its own), or urgent data did: the kernel
                    // ends a read at the urgent mark with more bytes queued behind it.
                    let drained = crate::sys::SHORT_READ_DRAINS
                        && n < self.read_buffer.len()
                        && !conn.has(flag::HANGUP_SEEN | flag::URGENT);
                    if drained {
                        conn.clear(flag::READABLE);
                    }
                    let lingering = conn.has(flag::LINGERING);
                    if lingering {
                        self.core.counters.bytes_discarded += n as u64;
                    } else {
                        self.core.counters.bytes_in += n as u64;
                        let next = self.handler.on_data(
                            &mut Context { core: &mut self.core },
                            ConnId(key),
                            &self.read_buffer[..n],
                        );
                        self.after_data(key, next);
                    }
                    if drained {
                        return;
                    }
                    // Only a full read goes round again, so only it is charged. The budget pays for the
                    // work the data caused, not only for the bytes read: what the callbacks wrote since
                    // this connection's turn began counts too, so a peer whose every line fans out to
                    // many others yields as soon as one that floods.
                    budget = budget.saturating_sub(n);
                    let written = self.core.counters.bytes_out.wrapping_sub(written_at_start);
                    if written >= budget as u64 {
                        budget = 0;
                    }
                }
                Err(e) if crate::io_util::would_block(&e) => {
                    conn.clear(flag::READABLE | flag::URGENT);
                    return;
                }
                Err(e) if crate::io_util::interrupted(&e) => {}
                Err(e) => {
                    self.core.schedule_close(key, CloseReason::from_io(e));
                    return;
                }
            }
        }
    }

    fn after_data(&mut self, key: Key, next: Next) {
        match next {
            Next::Continue => {}
            Next::Pause => {
                if let Some(conn) = self.core.connection(key) {
                    conn.pause_by_app();
                }
            }
            Next::Close => {
                let _ = self.core.finish(key, Finish::Close(Ending::Local));
            }
        }
    }

    fn peer_eof(&mut self, key: Key) {
        let Some(conn) = self.core.connection(key) else { return };
        if conn.has(flag::LINGERING) {
            // Our FIN went out earlier; the peer's has now arrived: the close is complete.
            let ending = match conn.finish {
                Finish::Close(ending) => ending,
                _ => Ending::Local,
            };
            self.core.schedule_close(key, ending.reason());
            return;
        }
        let (handler, mut ctx) = self.ctx();
        match handler.on_eof(&mut ctx, ConnId(key)) {
            AfterEof::Close => {
                let _ = self.core.finish(key, Finish::Close(Ending::PeerClosed));
            }
            AfterEof::KeepOpen => self.core.finish_if_flushed(key),
        }
    }

    /// An outbound connect reported progress: find out whether it succeeded.
    fn finish_connect(&mut self, key: Key) {
        let Some(conn) = self.core.connection(key) else { return };
        let failure = match conn.stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match conn.stream.peer_addr() {
                Ok(_) => None,
                // Spurious wake-up: still connecting.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => Some(e),
            },
        };
        if let Some(error) = failure {
            self.core.schedule_close(key, CloseReason::ConnectFailed(error));
            return;
        }
        conn.clear(flag::CONNECTING);
        conn.set(flag::READABLE);
        if !conn.has(flag::NO_NODELAY) {
            let _ = conn.stream.set_nodelay(true);
        }
        self.core.counters.connected += 1;
        debug!("{} connected", ConnId(key));
        let (handler, mut ctx) = self.ctx();
        handler.on_open(&mut ctx, ConnId(key), Origin::Connected);
        // Output sent while connecting waits in the queue; WRITABLE is still registered, so flushing
        // now either drains it (and drops WRITABLE) or leaves it for the next writable edge.
        let queued = self.core.connection(key).is_some_and(|c| !c.output.is_empty());
        if queued {
            if self.core.flush(key) {
                let (handler, mut ctx) = self.ctx();
                handler.on_drained(&mut ctx, ConnId(key));
            }
        } else {
            self.core.want_write(key, false);
        }
        self.core.finish_if_flushed(key);
        self.read(key);
    }

    /// Accepts until `WouldBlock`, the connection cap, an error that says to back off, or the per-turn
    /// accept budget: past it the listener waits on the ready list for the next turn, so that a connect
    /// flood cannot hold one turn while the peers already connected wait.
    pub(crate) fn accept(&mut self, key: Key) {
        for _ in 0..self.core.config.accept_budget {
            if self.core.state != RunState::Running {
                return;
            }
            let (max, connections) = (self.core.config.max_connections, self.core.connections);
            let initial_backoff = self.core.config.accept_backoff;
            let Some(listener) = self.core.listener(key) else { return };
            if listener.hold.is_some() {
                return;
            }
            if connections >= max {
                self.core.hold_listener(key, Hold::AtCapacity);
                self.core.counters.accept_paused_at_cap += 1;
                self.warn(format_args!("at max_connections ({max}): new peers wait in the accept queue"));
                return;
            }
            match listener.accept() {
                Ok((stream, peer)) => {
                    crate::sys::no_sigpipe(&stream);
                    listener.backoff = initial_backoff;
                    if listener.nodelay {
                        let _ = stream.set_nodelay(true);
                    }
                    self.open_accepted(key, stream, peer);
                }
                Err(e) if crate::io_util::would_block(&e) => return,
                Err(e) if crate::io_util::interrupted(&e) => {}
                Err(e) => {
                    let kind = AcceptErrorKind::of(&e);
                    self.core.counters.accept_errors[kind as usize] += 1;
                    if kind == AcceptErrorKind::Econnaborted {
                        continue;
                    }
                    self.back_off(key, &e);
                    return;
                }
            }
        }
        self.core.queue_accept(key);
    }

    fn open_accepted(&mut self, listener: Key, stream: mio::net::TcpStream, peer: std::net::SocketAddr) {
        let conn = Connection::new(stream, self.core.now, true, false);
        let inserted = self.core.insert(
            Entry::Connection(conn),
            |e| match e {
                Entry::Connection(c) => Some(&mut c.stream),
                _ => None,
            },
            crate::sys::STREAM_INTEREST,
        );
        let key = match inserted {
            Ok(key) => key,
            Err(e) => {
                self.warn(format_args!("dropping connection from {peer}: cannot register it: {e}"));
                return;
            }
        };
        self.core.counters.accepted += 1;
        self.core.counters.active += 1;
        self.core.connections += 1;
        self.core.arm_idle_timer(key);
        debug!("{} accepted from {peer}", ConnId(key));
        let (handler, mut ctx) = self.ctx();
        handler.on_open(&mut ctx, ConnId(key), Origin::Accepted(ListenerId(listener)));
        self.close_scheduled();
    }

    /// Out of descriptors or memory (or an unexpected error): stop accepting on this listener until a
    /// connection closes or the back-off timer fires, so the loop never spins on a full accept queue.
    fn back_off(&mut self, key: Key, error: &io::Error) {
        let max = self.core.config.accept_backoff_max;
        let Some(listener) = self.core.listener(key) else { return };
        let delay = listener.backoff;
        listener.backoff = delay.saturating_mul(2).min(max);
        let arm = !listener.retry_armed;
        listener.retry_armed = true;
        self.core.hold_listener(key, Hold::Exhausted);
        if arm {
            self.core.set_timer(delay, TimerKind::AcceptRetry(key));
        }
        let limit = hostinfo::fd_limit().map(|l| l.to_string()).unwrap_or_default();
        self.warn(format_args!(
            "accept failed: {error} ({}; fd limit {limit}); accepting again when a connection closes or in {delay:?}",
            hostinfo::errno_name(error)
        ));
    }

    /// Logs a resource warning at most once a second, saying how many were held back.
    fn warn(&mut self, message: std::fmt::Arguments<'_>) {
        let now = self.core.now;
        match self.warned {
            Some(at) if now.duration_since(at).as_secs() < 1 => self.suppressed += 1,
            _ => {
                if self.suppressed > 0 {
                    warn!("{message} (and {} similar since the last warning)", self.suppressed);
                } else {
                    warn!("{message}");
                }
                self.warned = Some(now);
                self.suppressed = 0;
            }
        }
    }

    /// Closes every connection scheduled to close and tells the application. Callbacks may schedule
    /// more; they are closed in the same call.
    #[inline]
    pub(crate) fn close_scheduled(&mut self) {
        if !self.core.closing.is_empty() {
            self.close_scheduled_now();
        }
    }

    #[cold]
    #[inline(never)]
    fn close_scheduled_now(&mut self) {
        while let Some((key, reason)) = self.core.closing.pop() {
            if !self.core.remove_connection(key) {
                continue;
            }
            self.core.counters.closed[reason.kind().index()] += 1;
            debug!("{} closed: {reason}", ConnId(key));
            let (handler, mut ctx) = self.ctx();
            handler.on_close(&mut ctx, ConnId(key), &reason);
        }
    }

    /// Works through the first `count` entries of the ready list: those left over from earlier turns.
    /// Entries parked during this turn wait for the next, so a flooding peer gets one budget per turn.
    pub(crate) fn run_ready(&mut self, count: usize) {
        for _ in 0..count {
            let Some(key) = self.core.ready.pop_front() else { break };
            match self.core.entry(key) {
                Some(Entry::Connection(conn)) => {
                    conn.clear(flag::QUEUED);
                    self.read(key);
                    self.close_scheduled();
                }
                Some(Entry::Listener(listener)) => {
                    listener.queued = false;
                    self.accept(key);
                }
                Some(Entry::Udp(datagram)) => {
                    datagram.queued = false;
                    self.read_datagrams(key);
                }
                _ => {}
            }
        }
    }

    /// Fires the timers that were due when the phase began (a timer set meanwhile waits for the next
    /// turn, so a callback that re-arms a zero-length timer cannot trap the loop).
    pub(crate) fn fire_timers(&mut self) {
        let now = self.core.now;
        self.core.timers.begin_phase();
        for _ in 0..self.core.timers.len() {
            let Some((timer, kind)) = self.core.timers.pop_expired(now) else { break };
            match kind {
                TimerKind::User(tag) => {
                    let (handler, mut ctx) = self.ctx();
                    handler.on_timer(&mut ctx, TimerId(timer), tag);
                }
                TimerKind::Idle(key) => self.check_idle(key, now),
                TimerKind::AcceptRetry(key) => {
                    if let Some(listener) = self.core.listener(key) {
                        listener.retry_armed = false;
                        if listener.hold == Some(Hold::Exhausted) {
                            listener.hold = None;
                            self.core.waiting_listeners.retain(|k| *k != key);
                            self.accept(key);
                        }
                    }
                }
                TimerKind::Linger(key) => {
                    if let Some(conn) = self.core.connection(key)
                        && conn.has(flag::LINGERING)
                    {
                        let ending = match conn.finish {
                            Finish::Close(ending) => ending,
                            _ => Ending::Local,
                        };
                        self.core.schedule_close(key, ending.reason());
                    }
                }
                TimerKind::ShutdownDeadline => self.abandon_all(),
            }
            self.close_scheduled();
        }
    }

    fn check_idle(&mut self, key: Key, now: Instant) {
        let Some(idle) = self.core.config.idle_timeout else { return };
        let Some(conn) = self.core.connection(key) else { return };
        conn.idle_timer = None;
        let quiet = now.saturating_duration_since(conn.last_active);
        if quiet >= idle {
            self.core.schedule_close(key, CloseReason::IdleTimeout);
        } else {
            let timer = self.core.set_timer(idle - quiet, TimerKind::Idle(key));
            if let Some(conn) = self.core.connection(key) {
                conn.idle_timer = Some(timer);
            }
        }
    }

    /// Takes requests from other threads: stop, shutdown, messages (at most the queue's capacity per
    /// turn, so a flood of messages cannot starve the sockets).
    pub(crate) fn take_requests(&mut self) {
        if self.requests.take_stop() {
            self.core.state = RunState::Stopped;
        }
        if let Some(deadline) = self.requests.take_shutdown() {
            self.core.shutdown_requested.get_or_insert(deadline);
        }
        for _ in 0..self.core.config.message_capacity {
            let Ok(message) = self.messages.try_recv() else { break };
            let (handler, mut ctx) = self.ctx();
            handler.on_message(&mut ctx, message);
            self.close_scheduled();
        }
    }

    /// Starts a graceful shutdown if one was asked for, and ends the loop once it is complete.
    pub(crate) fn progress_shutdown(&mut self) {
        if let Some(deadline) = self.core.shutdown_requested.take()
            && self.core.state == RunState::Running
        {
            self.core.state = RunState::Draining;
            let mut listeners = Vec::new();
            let mut connections = Vec::new();
            for (slot, entry) in self.core.slots.iter() {
                let key = Key { slot, generation: entry.generation };
                match entry.entry {
                    Entry::Listener(_) => listeners.push(key),
                    Entry::Connection(_) => connections.push(key),
                    Entry::Udp(_) | Entry::Source => {}
                }
            }
            for key in listeners {
                let _ = self.core.remove_listener(key);
            }
            for key in connections {
                let _ = self.core.finish(key, Finish::Close(Ending::Shutdown));
            }
            self.core.set_timer(deadline, TimerKind::ShutdownDeadline);
            debug!("shutting down: {} connections to flush within {deadline:?}", self.core.counters.active);
            let (handler, mut ctx) = self.ctx();
            handler.on_shutdown(&mut ctx);
            self.close_scheduled();
        }
        if self.core.state == RunState::Draining && self.core.counters.active == 0 {
            self.core.state = RunState::Stopped;
        }
    }

    /// The shutdown deadline passed: close what is left as it is.
    fn abandon_all(&mut self) {
        let keys: Vec<Key> = self
            .core
            .slots
            .iter()
            .filter(|(_, s)| matches!(s.entry, Entry::Connection(_)))
            .map(|(slot, s)| Key { slot, generation: s.generation })
            .collect();
        if !keys.is_empty() {
            warn!("shutdown deadline passed: closing {} connections with output still queued", keys.len());
        }
        for key in keys {
            self.core.schedule_close(key, CloseReason::Shutdown);
        }
    }
}
