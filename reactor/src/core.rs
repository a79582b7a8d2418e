//! The loop's state apart from the application's handler: the table of entries behind methods, the
//! timers, and the lists of work the loop finishes between callbacks.
//!
//! It is split from [`EventLoop`](crate::EventLoop) so that a callback can hold `&mut Core` (through a
//! [`Context`](crate::Context)) while the loop holds the handler and the shared read buffer.
//!
//! Its fields are private: [`insert`](Core::insert) and [`remove`](Core::remove) are the only ways in
//! and out of the table, and they keep everything that depends on it (the registration with the
//! poller, the open-connection counters, the idle timer, the listeners waiting for a free slot), so no
//! caller can forget one.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use log::trace;
use mio::event::Source;
use mio::{Interest, Registry};
use slab::Slab;

use crate::connection::Connection;
use crate::datagram::Datagram;
#[cfg(target_os = "linux")]
use crate::datagram::Inbox;
use crate::handler::CloseReason;
use crate::listener::{Hold, Listener};
use crate::stats::Counters;
use crate::timer::{TimerKind, TimerQueue};
use crate::token::{Generations, Key};
use crate::{Config, ConnId, ListenerId};

/// One row of the table.
#[derive(Debug)]
pub(crate) enum Entry {
    Listener(Listener),
    Connection(Connection),
    Udp(Datagram),
    /// A source the application registered and keeps.
    Source,
}

impl Entry {
    /// The socket the entry owns, registered under its token.
    fn source(&mut self) -> Option<&mut dyn Source> {
        match self {
            Entry::Listener(l) => Some(&mut l.socket),
            Entry::Connection(c) => Some(&mut c.stream),
            Entry::Udp(d) => Some(&mut d.socket),
            Entry::Source => None,
        }
    }
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    entry: Entry,
}

/// What the loop is doing overall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RunState {
    Running,
    /// Listeners closed, connections flushing; ends when none are left or at the deadline.
    Draining,
    Stopped,
}

#[derive(Debug)]
pub(crate) struct Core {
    registry: Registry,
    slots: Slab<Slot>,
    generations: Generations,
    timers: TimerQueue,
    /// Entries with work left over from an earlier turn: connections parked by the read budget or
    /// resumed after a pause, listeners to accept on again, UDP sockets with datagrams left. Each entry
    /// is queued at most once (its own `queued` mark says so).
    ready: VecDeque<Key>,
    /// Connections to close, with their reason; closed (and reported) as soon as the current callback
    /// returns.
    closing: Vec<(Key, CloseReason)>,
    /// Listeners waiting for a connection to close (at capacity or out of descriptors).
    waiting_listeners: Vec<Key>,
    /// Entries removed so far: a caller that sees it unchanged across a callback knows its own entry
    /// is still there without looking it up (the batched UDP path, on Linux).
    #[cfg(target_os = "linux")]
    removals: u64,
    /// Accepted connections open now, for `max_connections`.
    accepted_open: usize,
    config: Config,
    counters: Counters,
    now: Instant,
    state: RunState,
    shutdown_requested: Option<Duration>,
    warnings: Warnings,
    /// What UDP sockets receive into (on Linux, the `recvmmsg` batch), lent out while one socket's
    /// datagrams are delivered. Kept here rather than passed along, so the stream path is untouched.
    #[cfg(target_os = "linux")]
    inbox: Inbox,
}

impl Core {
    pub(crate) fn new(registry: Registry, config: Config) -> Core {
        Core {
            registry,
            slots: Slab::with_capacity(1024),
            generations: Generations::default(),
            timers: TimerQueue::default(),
            ready: VecDeque::new(),
            closing: Vec::new(),
            waiting_listeners: Vec::new(),
            #[cfg(target_os = "linux")]
            removals: 0,
            accepted_open: 0,
            config,
            counters: Counters::default(),
            now: Instant::now(),
            state: RunState::Running,
            shutdown_requested: None,
            warnings: Warnings::default(),
            #[cfg(target_os = "linux")]
            inbox: Inbox::default(),
        }
    }

    // The table.

    /// Inserts an entry and registers its socket under the entry's token; on failure nothing is left
    /// behind. A connection counts as open from here until [`remove`](Self::remove).
    pub(crate) fn insert(&mut self, entry: Entry, interest: Interest) -> io::Result<Key> {
        let key = self.insert_slot(entry)?;
        if let Some(source) = self.slots[key.slot].entry.source() {
            trace!("register {key:?} {interest:?}");
            if let Err(e) = self.registry.register(source, key.token(), interest) {
                self.slots.remove(key.slot);
                return Err(e);
            }
        }
        if let Entry::Connection(conn) = &self.slots[key.slot].entry {
            self.counters.active += 1;
            if conn.state.is_accepted() {
                self.counters.accepted += 1;
                self.accepted_open += 1;
            }
        }
        Ok(key)
    }

    /// Registers a source the application keeps; on failure nothing is left behind.
    pub(crate) fn register_source(&mut self, source: &mut dyn Source, interest: Interest) -> io::Result<Key> {
        let key = self.insert_slot(Entry::Source)?;
        trace!("register {key:?} {interest:?}");
        if let Err(e) = self.registry.register(source, key.token(), interest) {
            self.slots.remove(key.slot);
            return Err(e);
        }
        Ok(key)
    }

    fn insert_slot(&mut self, entry: Entry) -> io::Result<Key> {
        if self.slots.len() >= crate::token::MAX_SLOTS {
            return Err(io::Error::new(io::ErrorKind::OutOfMemory, "the loop's entry table is full"));
        }
        let generation = self.generations.next();
        let slot = self.slots.insert(Slot { generation, entry });
        Ok(Key { slot, generation })
    }

    /// Removes an entry, if `key` still names one, and undoes everything [`insert`](Self::insert)
    /// did: deregisters its socket (which closes when the entry is dropped), cancels a connection's
    /// idle timer and uncounts it, and lets every listener that waited for a free slot try again. A
    /// [`Entry::Source`] is the application's to deregister.
    ///
    /// Generations come from one counter for every kind of entry, so a key taken from a typed id
    /// (`ListenerId`, `UdpId`, ...) can only name an entry of that kind.
    pub(crate) fn remove(&mut self, key: Key) -> Option<Entry> {
        self.entry(key)?;
        #[cfg(target_os = "linux")]
        {
            self.removals += 1;
        }
        let mut entry = self.slots.remove(key.slot).entry;
        if let Some(source) = entry.source() {
            trace!("deregister {key:?}");
            if let Err(e) = self.registry.deregister(source) {
                // The descriptor is about to be closed, which removes it from epoll anyway.
                log::debug!("deregister {key:?}: {e}");
            }
        }
        match &entry {
            Entry::Connection(conn) => {
                if let Some(timer) = conn.idle_timer {
                    self.timers.cancel(timer);
                }
                self.counters.active -= 1;
                if conn.state.is_accepted() {
                    self.accepted_open -= 1;
                }
                self.wake_waiting_listeners();
            }
            Entry::Listener(_) => self.waiting_listeners.retain(|k| *k != key),
            Entry::Udp(_) | Entry::Source => {}
        }
        Some(entry)
    }

    /// The live entry for `key`, if its generation still matches.
    #[inline]
    pub(crate) fn entry(&mut self, key: Key) -> Option<&mut Entry> {
        match self.slots.get_mut(key.slot) {
            Some(slot) if slot.generation == key.generation => Some(&mut slot.entry),
            _ => None,
        }
    }

    #[inline]
    pub(crate) fn connection(&mut self, key: Key) -> Option<&mut Connection> {
        match self.entry(key) {
            Some(Entry::Connection(conn)) => Some(conn),
            _ => None,
        }
    }

    /// A connection that is open and not yet being closed, or `NotConnected`.
    pub(crate) fn live_connection(&mut self, id: ConnId) -> io::Result<&mut Connection> {
        match self.connection(id.0) {
            Some(conn) if !conn.state.is_closed() => Ok(conn),
            _ => Err(io::Error::new(io::ErrorKind::NotConnected, format!("{id} is closed"))),
        }
    }

    pub(crate) fn listener(&mut self, key: Key) -> Option<&mut Listener> {
        match self.entry(key) {
            Some(Entry::Listener(listener)) => Some(listener),
            _ => None,
        }
    }

    /// The loop's datagram receive state.
    #[cfg(target_os = "linux")]
    pub(crate) fn inbox(&mut self) -> &mut Inbox {
        &mut self.inbox
    }

    /// Entries removed so far (see the field).
    #[cfg(target_os = "linux")]
    #[inline]
    pub(crate) fn removals(&self) -> u64 {
        self.removals
    }

    pub(crate) fn datagram(&mut self, key: Key) -> Option<&mut Datagram> {
        match self.entry(key) {
            Some(Entry::Udp(datagram)) => Some(datagram),
            _ => None,
        }
    }

    /// The keys of every entry `pick` chooses, collected so that the caller may change the table.
    pub(crate) fn keys(&self, pick: impl Fn(&Entry) -> bool) -> Vec<Key> {
        self.slots
            .iter()
            .filter(|(_, s)| pick(&s.entry))
            .map(|(slot, s)| Key { slot, generation: s.generation })
            .collect()
    }

    /// Entries in the table.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Changes the interest an entry's socket is registered with.
    pub(crate) fn reregister(&mut self, key: Key, interest: Interest) -> io::Result<()> {
        // The slot directly rather than through `entry`, so the registry stays free to borrow.
        let source = match self.slots.get_mut(key.slot) {
            Some(slot) if slot.generation == key.generation => slot.entry.source(),
            _ => None,
        };
        let Some(source) = source else {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{key:?} is not registered")));
        };
        trace!("reregister {key:?} {interest:?}");
        self.registry.reregister(source, key.token(), interest)
    }

    /// The poller's registry, for sources the application keeps.
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    // Work between callbacks.

    /// Queues an entry for the ready list (callers keep it unique with the entry's own mark).
    #[inline]
    pub(crate) fn push_ready(&mut self, key: Key) {
        self.ready.push_back(key);
    }

    pub(crate) fn pop_ready(&mut self) -> Option<Key> {
        self.ready.pop_front()
    }

    pub(crate) fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Marks a connection for closing; the loop closes it and tells the application as soon as the
    /// current callback returns. The first reason wins.
    pub(crate) fn schedule_close(&mut self, key: Key, reason: CloseReason) {
        if let Some(conn) = self.connection(key)
            && conn.state.close()
        {
            self.closing.push((key, reason));
        }
    }

    /// Connections are waiting to be closed.
    #[inline]
    pub(crate) fn has_closing(&self) -> bool {
        !self.closing.is_empty()
    }

    /// The next connection to close, with its reason.
    pub(crate) fn pop_closing(&mut self) -> Option<(Key, CloseReason)> {
        self.closing.pop()
    }

    // Listeners waiting for a free slot.

    /// Accepted connections open now (what `max_connections` limits).
    pub(crate) fn accepted_open(&self) -> usize {
        self.accepted_open
    }

    /// Holds a listener; at capacity or out of descriptors, until a connection closes.
    pub(crate) fn hold_listener(&mut self, key: Key, hold: Hold) {
        if let Some(listener) = self.listener(key) {
            let was_waiting = listener.waits_for_close();
            listener.hold(hold);
            if !was_waiting && listener.waits_for_close() {
                self.waiting_listeners.push(key);
            }
        }
    }

    /// Lifts a listener's hold (its back-off timer fired); returns whether it was held for that.
    pub(crate) fn release_listener(&mut self, key: Key, hold: Hold) -> bool {
        let released = self.listener(key).is_some_and(|listener| listener.release(hold));
        if released {
            self.waiting_listeners.retain(|k| *k != key);
        }
        released
    }

    /// A descriptor (and a connection slot) came free: every listener that waited for one tries again.
    fn wake_waiting_listeners(&mut self) {
        while let Some(key) = self.waiting_listeners.pop() {
            if let Some(listener) = self.listener(key)
                && listener.resume_after_close()
            {
                let resumed = "accept resumed: a connection closed";
                crate::lifecycle::listener_step(ListenerId(key), &listener.socket, format_args!("{resumed}"));
                self.queue_accept(key);
            }
        }
    }

    /// Puts a listener on the ready list, once, so that the next turn accepts from it.
    pub(crate) fn queue_accept(&mut self, key: Key) {
        if self.listener(key).is_some_and(Listener::set_queued) {
            self.push_ready(key);
        }
    }

    // Timers.

    pub(crate) fn set_timer(&mut self, after: Duration, kind: TimerKind) -> Key {
        self.timers.insert(crate::timer::deadline_after(self.now, after), kind)
    }

    /// Cancels a timer; false if it already fired or was cancelled.
    pub(crate) fn cancel_timer(&mut self, timer: Key) -> bool {
        self.timers.cancel(timer)
    }

    /// Opens a firing phase: timers set from now on wait for the next one.
    pub(crate) fn begin_timer_phase(&mut self) {
        self.timers.begin_phase();
    }

    /// The earliest timer due at `now` and set before the current firing phase, taken off the queue.
    pub(crate) fn pop_expired_timer(&mut self, now: Instant) -> Option<(Key, TimerKind)> {
        self.timers.pop_expired(now)
    }

    /// The earliest live timer deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Timers pending.
    pub(crate) fn timers_len(&self) -> usize {
        self.timers.len()
    }

    // The loop's clock, settings and counters.

    /// The time the current turn began.
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    pub(crate) fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    #[inline]
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    #[inline]
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Every counter but the open-connection counts, which [`insert`](Self::insert) and
    /// [`remove`](Self::remove) keep.
    #[inline]
    pub(crate) fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// Logs a resource warning, at most once a second (see [`Warnings`]).
    pub(crate) fn warn(&mut self, message: std::fmt::Arguments<'_>) {
        self.warnings.warn(self.now, message);
    }

    // Running, draining, stopped.

    pub(crate) fn is_running(&self) -> bool {
        self.state == RunState::Running
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.state == RunState::Stopped
    }

    /// Stops the loop after this turn, closing nothing.
    pub(crate) fn stop(&mut self) {
        self.state = RunState::Stopped;
    }

    /// Asks for a graceful shutdown that ends within `timeout`; the first request stands.
    pub(crate) fn request_shutdown(&mut self, timeout: Duration) {
        self.shutdown_requested.get_or_insert(timeout);
    }

    /// A shutdown was asked for and has not begun.
    pub(crate) fn shutdown_requested(&self) -> bool {
        self.shutdown_requested.is_some()
    }

    /// Begins draining if a shutdown was asked for while running: returns its timeout.
    pub(crate) fn begin_draining(&mut self) -> Option<Duration> {
        let timeout = self.shutdown_requested.take()?;
        if self.state != RunState::Running {
            return None;
        }
        self.state = RunState::Draining;
        Some(timeout)
    }

    /// Stops a draining loop once its last connection is gone.
    pub(crate) fn stop_if_drained(&mut self) {
        if self.state == RunState::Draining && self.counters.active == 0 {
            self.state = RunState::Stopped;
        }
    }
}

/// Resource warnings (at capacity, out of descriptors) at most once a second, saying how many were
/// held back: a connect flood against a full server must not flood the log as well.
#[derive(Debug, Default)]
struct Warnings {
    last: Option<Instant>,
    suppressed: u64,
}

impl Warnings {
    fn warn(&mut self, now: Instant, message: std::fmt::Arguments<'_>) {
        match self.last {
            Some(at) if now.duration_since(at).as_secs() < 1 => self.suppressed += 1,
            _ => {
                if self.suppressed > 0 {
                    log::warn!("{message} (and {} similar since the last warning)", self.suppressed);
                } else {
                    log::warn!("{message}");
                }
                self.last = Some(now);
                self.suppressed = 0;
            }
        }
    }
}
