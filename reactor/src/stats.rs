//! Counters that other threads can read while the loop runs.
//!
//! The hot path never touches an atomic: the loop counts in plain integers and publishes them once per
//! turn, so a reader sees values at most one turn old.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::handler::CloseKind;

/// Accept errors the loop tells apart; everything else is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AcceptErrorKind {
    /// The process is out of descriptors (RLIMIT_NOFILE).
    Emfile,
    /// The system is out of descriptors (fs.file-max).
    Enfile,
    /// The kernel is out of socket buffers.
    Enobufs,
    /// The kernel is out of memory.
    Enomem,
    /// The peer reset the connection before it was accepted.
    Econnaborted,
    /// Anything else.
    Other,
}

impl AcceptErrorKind {
    /// Every kind, in the order [`Counters`] keeps them.
    pub const ALL: [AcceptErrorKind; 6] = [
        AcceptErrorKind::Emfile,
        AcceptErrorKind::Enfile,
        AcceptErrorKind::Enobufs,
        AcceptErrorKind::Enomem,
        AcceptErrorKind::Econnaborted,
        AcceptErrorKind::Other,
    ];

    /// The errno name.
    pub fn name(self) -> &'static str {
        match self {
            AcceptErrorKind::Emfile => "EMFILE",
            AcceptErrorKind::Enfile => "ENFILE",
            AcceptErrorKind::Enobufs => "ENOBUFS",
            AcceptErrorKind::Enomem => "ENOMEM",
            AcceptErrorKind::Econnaborted => "ECONNABORTED",
            AcceptErrorKind::Other => "OTHER",
        }
    }

    pub(crate) fn of(error: &std::io::Error) -> AcceptErrorKind {
        use nix::libc;
        match error.raw_os_error() {
            Some(libc::EMFILE) => AcceptErrorKind::Emfile,
            Some(libc::ENFILE) => AcceptErrorKind::Enfile,
            Some(libc::ENOBUFS) => AcceptErrorKind::Enobufs,
            Some(libc::ENOMEM) => AcceptErrorKind::Enomem,
            Some(libc::ECONNABORTED) => AcceptErrorKind::Econnaborted,
            _ => AcceptErrorKind::Other,
        }
    }
}

/// The loop's counters: what [`Context::stats`](crate::Context::stats), [`EventLoop::stats`](crate::EventLoop::stats) and
/// [`Handle::stats`](crate::Handle::stats) return.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections accepted from listeners.
    pub accepted: u64,
    /// Outbound connects that completed.
    pub connected: u64,
    /// Connections open now.
    pub active: u64,
    /// Bytes read from peers and handed to the application.
    pub bytes_in: u64,
    /// Bytes read and dropped after the loop closed a connection: it keeps reading until the peer's FIN
    /// (see [`Context::close`](crate::Context::close)) so that unread input does not turn the close
    /// into a reset, and nobody is there to take them.
    pub bytes_discarded: u64,
    /// Bytes written to peers.
    pub bytes_out: u64,
    /// Closed connections by [`CloseKind`], indexed as [`CloseKind::ALL`].
    pub closed: [u64; 8],
    /// Accept errors by [`AcceptErrorKind`], indexed as [`AcceptErrorKind::ALL`].
    pub accept_errors: [u64; 6],
    /// Times the loop stopped accepting because [`Config::max_connections`](crate::Config) was reached.
    pub accept_paused_at_cap: u64,
    /// Events that arrived for an entry already closed (dropped by the generation check).
    pub stale_events: u64,
    /// Loop turns (polls).
    pub turns: u64,
    /// Datagrams received on UDP sockets.
    pub datagrams_in: u64,
    /// Datagrams sent on UDP sockets.
    pub datagrams_out: u64,
    /// Datagram sends refused with `WouldBlock` or `ENOBUFS` (the kernel had no room; nothing was sent).
    /// A send gathered into a batch and refused when the batch was flushed is counted here too.
    pub datagrams_refused: u64,
    /// Datagrams received longer than the loop's datagram buffer (see
    /// [`Config::read_buffer`](crate::Config)): cut short by the kernel, so dropped, never delivered.
    pub datagrams_truncated: u64,
    /// Gathered datagram sends the kernel failed with an error other than a refusal (for example
    /// `EMSGSIZE`, or an address of the wrong family): dropped, each counted once.
    pub datagrams_failed: u64,
}

impl Counters {
    /// Closed connections of one kind.
    pub fn closed(&self, kind: CloseKind) -> u64 {
        self.closed[kind.index()]
    }

    /// Accept errors of one kind.
    pub fn accept_errors(&self, kind: AcceptErrorKind) -> u64 {
        self.accept_errors[kind as usize]
    }

    /// Closed connections of every kind.
    pub fn closed_total(&self) -> u64 {
        self.closed.iter().sum()
    }

    /// Adds another loop's counters to these, for a total over several loops.
    pub fn add(&mut self, other: &Counters) {
        // Destructured, so that a new counter cannot be left out of the sum without a compile error.
        let Counters {
            accepted,
            connected,
            active,
            bytes_in,
            bytes_discarded,
            bytes_out,
            closed,
            accept_errors,
            accept_paused_at_cap,
            stale_events,
            turns,
            datagrams_in,
            datagrams_out,
            datagrams_refused,
            datagrams_truncated,
            datagrams_failed,
        } = other;
        self.accepted += accepted;
        self.connected += connected;
        self.active += active;
        self.bytes_in += bytes_in;
        self.bytes_discarded += bytes_discarded;
        self.bytes_out += bytes_out;
        for (sum, v) in self.closed.iter_mut().zip(closed) {
            *sum += v;
        }
        for (sum, v) in self.accept_errors.iter_mut().zip(accept_errors) {
            *sum += v;
        }
        self.accept_paused_at_cap += accept_paused_at_cap;
        self.stale_events += stale_events;
        self.turns += turns;
        self.datagrams_in += datagrams_in;
        self.datagrams_out += datagrams_out;
        self.datagrams_refused += datagrams_refused;
        self.datagrams_truncated += datagrams_truncated;
        self.datagrams_failed += datagrams_failed;
    }
}

/// The loop's counters, published once a turn for other threads, which read them through
/// [`Handle::stats`](crate::Handle::stats).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    accepted: AtomicU64,
    connected: AtomicU64,
    active: AtomicU64,
    bytes_in: AtomicU64,
    bytes_discarded: AtomicU64,
    bytes_out: AtomicU64,
    closed: [AtomicU64; 8],
    accept_errors: [AtomicU64; 6],
    accept_paused_at_cap: AtomicU64,
    stale_events: AtomicU64,
    turns: AtomicU64,
    datagrams_in: AtomicU64,
    datagrams_out: AtomicU64,
    datagrams_refused: AtomicU64,
    datagrams_truncated: AtomicU64,
    datagrams_failed: AtomicU64,
}

impl Stats {
    /// A copy of every counter, as of the end of the loop's last turn.
    pub(crate) fn snapshot(&self) -> Counters {
        let load = |a: &AtomicU64| a.load(Relaxed);
        Counters {
            accepted: load(&self.accepted),
            connected: load(&self.connected),
            active: load(&self.active),
            bytes_in: load(&self.bytes_in),
            bytes_discarded: load(&self.bytes_discarded),
            bytes_out: load(&self.bytes_out),
            closed: std::array::from_fn(|i| load(&self.closed[i])),
            accept_errors: std::array::from_fn(|i| load(&self.accept_errors[i])),
            accept_paused_at_cap: load(&self.accept_paused_at_cap),
            stale_events: load(&self.stale_events),
            turns: load(&self.turns),
            datagrams_in: load(&self.datagrams_in),
            datagrams_out: load(&self.datagrams_out),
            datagrams_refused: load(&self.datagrams_refused),
            datagrams_truncated: load(&self.datagrams_truncated),
            datagrams_failed: load(&self.datagrams_failed),
        }
    }

    pub(crate) fn publish(&self, c: &Counters) {
        let store = |a: &AtomicU64, v: u64| a.store(v, Relaxed);
        store(&self.accepted, c.accepted);
        store(&self.connected, c.connected);
        store(&self.active, c.active);
        store(&self.bytes_in, c.bytes_in);
        store(&self.bytes_discarded, c.bytes_discarded);
        store(&self.bytes_out, c.bytes_out);
        for (a, v) in self.closed.iter().zip(c.closed) {
            store(a, v);
        }
        for (a, v) in self.accept_errors.iter().zip(c.accept_errors) {
            store(a, v);
        }
        store(&self.accept_paused_at_cap, c.accept_paused_at_cap);
        store(&self.stale_events, c.stale_events);
        store(&self.turns, c.turns);
        store(&self.datagrams_in, c.datagrams_in);
        store(&self.datagrams_out, c.datagrams_out);
        store(&self.datagrams_refused, c.datagrams_refused);
        store(&self.datagrams_truncated, c.datagrams_truncated);
        store(&self.datagrams_failed, c.datagrams_failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_returns_what_was_published() {
        let stats = Stats::default();
        let mut counters = Counters { accepted: 3, bytes_in: 99, ..Counters::default() };
        counters.closed[CloseKind::Reset.index()] = 2;
        counters.accept_errors[AcceptErrorKind::Emfile as usize] = 5;
        stats.publish(&counters);
        let seen = stats.snapshot();
        assert_eq!(seen, counters);
        assert_eq!(seen.closed(CloseKind::Reset), 2);
        assert_eq!(seen.accept_errors(AcceptErrorKind::Emfile), 5);
    }

    #[test]
    fn counters_of_several_loops_add_up_field_by_field() {
        let mut one = Counters { accepted: 3, bytes_discarded: 7, turns: 10, ..Counters::default() };
        one.closed[CloseKind::Reset.index()] = 2;
        let mut two = Counters { accepted: 4, datagrams_refused: 1, turns: 5, ..Counters::default() };
        two.closed[CloseKind::Reset.index()] = 1;
        two.accept_errors[AcceptErrorKind::Emfile as usize] = 6;
        one.add(&two);
        assert_eq!((one.accepted, one.bytes_discarded, one.turns, one.datagrams_refused), (7, 7, 15, 1));
        assert_eq!(one.closed(CloseKind::Reset), 3);
        assert_eq!(one.accept_errors(AcceptErrorKind::Emfile), 6);
    }
}
