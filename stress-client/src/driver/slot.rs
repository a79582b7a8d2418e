//! One planned connection's state: its place in the ramp survives reconnects (churn), so the slot
//! index, not the [`ConnId`], is what timers and the stream of bytes are keyed by.

use std::collections::VecDeque;
use std::time::Instant;

use reactor::{ConnId, TimerId};

use crate::message::Stream;

/// A planned connection: the live connection (if any), its byte stream and its timers.
#[derive(Debug)]
pub(super) struct Slot {
    /// The connection now in this slot; `None` once it failed, closed, or we closed it ourselves.
    pub(super) conn: Option<ConnId>,
    /// The bytes sent and to verify.
    pub(super) stream: Stream,
    /// When the current connect began (connect latency, and churn's cycle latency).
    pub(super) connect_started: Instant,
    /// The connect timeout, until the connect completes.
    pub(super) connect_timer: Option<TimerId>,
    /// When the connect completed; `None` until then and after close.
    pub(super) opened_at: Option<Instant>,
    /// The connect timeout fired: the abort that follows is an ETIMEDOUT.
    pub(super) timed_out: bool,
    /// Send (or intended send) times of the messages in flight, oldest first.
    pub(super) sent_at: VecDeque<Instant>,
    /// A fixed-rate send timer is armed (at most one per slot).
    pub(super) send_timer: bool,
    /// Churn: open this slot again on the next tick.
    pub(super) retry: bool,
}

impl Slot {
    /// A slot for connection `id` with messages of `size` bytes, its connect starting at `now`.
    pub(super) fn new(id: u64, size: usize, now: Instant) -> Slot {
        Slot {
            conn: None,
            stream: Stream::new(id, size),
            connect_started: now,
            connect_timer: None,
            opened_at: None,
            timed_out: false,
            sent_at: VecDeque::new(),
            send_timer: false,
            retry: false,
        }
    }

    /// Connected and still ours.
    pub(super) fn is_open(&self) -> bool {
        self.conn.is_some() && self.opened_at.is_some()
    }

    /// Not waiting for a connect to complete.
    pub(super) fn is_settled(&self) -> bool {
        self.conn.is_none() || self.opened_at.is_some()
    }
}
