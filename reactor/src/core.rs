//! The loop's state apart from the application's handler: the entry table, timers, and the queues of
//! work that the loop finishes between callbacks.
//!
//! It is split from [`EventLoop`](crate::EventLoop) so that a callback can hold `&mut Core` (through a
//! [`Context`](crate::Context)) while the loop holds the handler and the shared read buffer.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use log::trace;
use mio::event::Source;
use mio::{Interest, Registry};
use slab::Slab;

use crate::connection::Connection;
use crate::handler::CloseReason;
use crate::listener::{Hold, Listener};
use crate::stats::Counters;
use crate::timer::{TimerKind, TimerQueue};
use crate::token::{Generations, Key};
use crate::{Config, ConnId};

/// One row of the table.
#[derive(Debug)]
pub(crate) enum Entry {
    Listener(Listener),
    Connection(Connection),
    Udp(crate::datagram::Datagram),
    Source,
}

#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) generation: u32,
    pub(crate) entry: Entry,
}

/// What the loop is doing overall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunState {
    Running,
    /// Listeners closed, connections flushing; ends when none are left or at the deadline.
    Draining,
    Stopped,
}

#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) registry: Registry,
    pub(crate) slots: Slab<Slot>,
    generations: Generations,
    pub(crate) timers: TimerQueue,
    /// Entries with work left over from an earlier turn: connections parked by the read budget or
    /// resumed after a pause, listeners to accept on again. Each entry is queued at most once.
    pub(crate) ready: VecDeque<Key>,
    /// Connections to close, with their reason; closed (and reported) as soon as the current callback
    /// returns.
    pub(crate) closing: Vec<(Key, CloseReason)>,
    /// Listeners waiting for a connection to close (at capacity or out of descriptors).
    pub(crate) waiting_listeners: Vec<Key>,
    pub(crate) connections: usize,
    pub(crate) config: Config,
    pub(crate) counters: Counters,
    pub(crate) now: Instant,
    pub(crate) state: RunState,
    pub(crate) shutdown_requested: Option<Duration>,
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
            connections: 0,
            config,
            counters: Counters::default(),
            now: Instant::now(),
            state: RunState::Running,
            shutdown_requested: None,
        }
    }

    /// Inserts an entry and registers its source under the entry's token; on failure nothing is left
    /// behind.
    pub(crate) fn insert(
        &mut self,
        entry: Entry,
        source: impl FnOnce(&mut Entry) -> Option<&mut dyn Source>,
        interest: Interest,
    ) -> io::Result<Key> {
        if self.slots.len() >= crate::token::MAX_SLOTS {
            return Err(io::Error::new(io::ErrorKind::OutOfMemory, "the loop's entry table is full"));
        }
        let generation = self.generations.next();
        let slot = self.slots.insert(Slot { generation, entry });
        let key = Key { slot, generation };
        if let Some(source) = source(&mut self.slots[slot].entry) {
            trace!("register {key:?} {interest:?}");
            if let Err(e) = self.registry.register(source, key.token(), interest) {
                self.slots.remove(slot);
                return Err(e);
            }
        }
        Ok(key)
    }

    /// The live entry for `key`, if its generation still matches.
    pub(crate) fn entry(&mut self, key: Key) -> Option<&mut Entry> {
        match self.slots.get_mut(key.slot) {
            Some(slot) if slot.generation == key.generation => Some(&mut slot.entry),
            _ => None,
        }
    }

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

    /// Queues an entry for the ready list (callers keep it unique).
    pub(crate) fn push_ready(&mut self, key: Key) {
        self.ready.push_back(key);
    }

    /// Holds a listener until a connection closes.
    pub(crate) fn hold_listener(&mut self, key: Key, hold: Hold) {
        if let Some(listener) = self.listener(key) {
            let was_waiting = matches!(listener.hold, Some(Hold::AtCapacity | Hold::Exhausted));
            listener.hold = Some(hold);
            if !was_waiting {
                self.waiting_listeners.push(key);
            }
        }
    }

    /// A descriptor (and a connection slot) came free: every listener that waited for one tries again.
    pub(crate) fn wake_waiting_listeners(&mut self) {
        while let Some(key) = self.waiting_listeners.pop() {
            if let Some(listener) = self.listener(key) {
                listener.hold = None;
                self.queue_accept(key);
            }
        }
    }

    /// Puts a listener on the ready list, once, so that the next turn accepts from it.
    pub(crate) fn queue_accept(&mut self, key: Key) {
        if let Some(listener) = self.listener(key)
            && !listener.queued
        {
            listener.queued = true;
            self.push_ready(key);
        }
    }

    pub(crate) fn set_timer(&mut self, after: Duration, kind: TimerKind) -> Key {
        self.timers.insert(crate::timer::deadline_after(self.now, after), kind)
    }

    pub(crate) fn deregister(&mut self, source: &mut dyn Source, key: Key) {
        trace!("deregister {key:?}");
        if let Err(e) = self.registry.deregister(source) {
            // The descriptor is about to be closed, which removes it from epoll anyway.
            log::debug!("deregister {key:?}: {e}");
        }
    }

    pub(crate) fn remove_listener(&mut self, key: Key) -> io::Result<()> {
        let Some(Entry::Listener(_)) = self.entry(key) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "listener is closed"));
        };
        let Entry::Listener(mut listener) = self.slots.remove(key.slot).entry else {
            unreachable!("checked above")
        };
        self.deregister(&mut listener.socket, key);
        self.waiting_listeners.retain(|k| *k != key);
        Ok(())
    }

    pub(crate) fn arm_idle_timer(&mut self, key: Key) {
        if let Some(idle) = self.config.idle_timeout {
            let timer = self.set_timer(idle, TimerKind::Idle(key));
            if let Some(conn) = self.connection(key) {
                conn.idle_timer = Some(timer);
            }
        }
    }
}
