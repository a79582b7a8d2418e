//! A connection's state as one typed value: the phase of its life, which only moves forward, and the
//! few facts that change on their own (readiness seen, pauses, ready-list membership, registered
//! interest).
//!
//! Every change goes through a named method here, so the combinations the loop never makes (lingering
//! while connecting, reading while a close flushes, two FINs) cannot be written elsewhere. The bits are
//! private: callers ask questions (`wants_read`, `is_open`) and report what happened (`eof`,
//! `fin_sent`), and the answer says what to do next.

use std::fmt;

use crate::handler::CloseKind;

/// Where a connection is in its life (see the diagram in the [module doc](super)).
///
/// `repr(u8)` with the reading phases first: [`State::wants_read`], asked before every read, is then
/// one comparison of the tag instead of a decoding of a niche-packed layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// Connected: reading and writing.
    Open = 0,
    /// Half-close asked: queued output flushes, then our FIN. Reading goes on.
    ShuttingWrite = 1,
    /// Our FIN is out (half-closed by us); reading goes on until the peer's EOF.
    WriteShut = 2,
    /// Our FIN is out after a close: reading only to discard until the peer's FIN or the linger timer,
    /// so that unread input does not turn the close into a reset.
    Lingering(CloseKind) = 3,
    /// An outbound connect is in progress. `then` is what the application asked meanwhile; `nodelay`
    /// asks for TCP_NODELAY once connected.
    Opening { nodelay: bool, then: Then } = 4,
    /// Close asked: queued output flushes and nothing more is read (the application hears no more
    /// data); then our FIN.
    Closing(CloseKind) = 5,
    /// Scheduled to close: removed as soon as the current callback returns. Events and calls are
    /// ignored.
    Closed = 6,
}

impl Phase {
    /// The phases that read: the first four, so this compiles to one comparison of the tag.
    #[inline]
    fn reads(self) -> bool {
        matches!(self, Phase::Open | Phase::ShuttingWrite | Phase::WriteShut | Phase::Lingering(_))
    }
}

/// What an opening connection becomes once connected: what the application asked while it waited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    Open,
    ShutWrite,
    Close(CloseKind),
}

impl Then {
    fn phase(self) -> Phase {
        match self {
            Then::Open => Phase::Open,
            Then::ShutWrite => Phase::ShuttingWrite,
            Then::Close(ending) => Phase::Closing(ending),
        }
    }
}

/// What a connection does next, as decided by a change of state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing more for now.
    Stay,
    /// Send our FIN (`shutdown(Write)`), then report it with [`State::fin_sent`].
    SendFin,
    /// Close now, with this ending.
    Close(CloseKind),
    /// Lingering began: arm the linger timer and read on, to see the peer's FIN.
    Linger,
}

/// The facts that vary independently of the phase, one bit each; only this module names the bits.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct Flags(u16);

/// Readable since the last read that found the socket empty.
const READABLE: u16 = 1;
/// The poller reported the peer's FIN: read until EOF instead of stopping at a short read.
const HANGUP_SEEN: u16 = 1 << 1;
/// The poller reported TCP urgent data: a short read may have stopped at the urgent mark, so read
/// until `WouldBlock` before calling the socket drained.
const URGENT: u16 = 1 << 2;
/// The peer's EOF was read.
const READ_CLOSED: u16 = 1 << 3;
/// The application paused reading; only the application resumes it. Apart from the close's own
/// stop, so that neither can undo the other.
const PAUSED_BY_APP: u16 = 1 << 4;
/// Queued output passed the high watermark; cleared below the low one.
const PAUSED_BY_BACKPRESSURE: u16 = 1 << 5;
/// On the ready list.
const QUEUED: u16 = 1 << 6;
/// A send had to queue: tell the application when the queue drains.
const NOTIFY_DRAINED: u16 = 1 << 7;
/// The registered interest includes WRITABLE.
const WRITABLE_INTEREST: u16 = 1 << 8;
/// Accepted from a listener, so it counts against `max_connections`.
const ACCEPTED: u16 = 1 << 9;
/// Traced, and no byte read yet. Part of the mask [`State::short_read_drains`] tests, so that the
/// first read of a traced connection leaves the read loop's fast exit (and its next read finds the
/// socket empty) without a test of its own on every read.
const AWAITING_FIRST_BYTE: u16 = 1 << 10;
/// Its lifecycle is logged (the lifecycle log was on as it opened).
const TRACED: u16 = 1 << 11;

const NAMES: [(u16, &str); 12] = [
    (READABLE, "READABLE"),
    (HANGUP_SEEN, "HANGUP_SEEN"),
    (URGENT, "URGENT"),
    (READ_CLOSED, "READ_CLOSED"),
    (PAUSED_BY_APP, "PAUSED_BY_APP"),
    (PAUSED_BY_BACKPRESSURE, "PAUSED_BY_BACKPRESSURE"),
    (QUEUED, "QUEUED"),
    (NOTIFY_DRAINED, "NOTIFY_DRAINED"),
    (WRITABLE_INTEREST, "WRITABLE_INTEREST"),
    (ACCEPTED, "ACCEPTED"),
    (AWAITING_FIRST_BYTE, "AWAITING_FIRST_BYTE"),
    (TRACED, "TRACED"),
];

impl Flags {
    #[inline]
    fn has(self, bits: u16) -> bool {
        self.0 & bits != 0
    }

    #[inline]
    fn set(&mut self, bits: u16) {
        self.0 |= bits;
    }

    #[inline]
    fn clear(&mut self, bits: u16) {
        self.0 &= !bits;
    }

    #[inline]
    fn put(&mut self, bits: u16, on: bool) {
        if on { self.set(bits) } else { self.clear(bits) }
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names = NAMES.iter().filter(|(bit, _)| self.has(*bit)).map(|(_, name)| name);
        match names.next() {
            None => f.write_str("(none)"),
            Some(first) => {
                f.write_str(first)?;
                names.try_for_each(|name| write!(f, " | {name}"))
            }
        }
    }
}

/// A connection's state: its phase and the independent facts beside it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct State {
    phase: Phase,
    flags: Flags,
}

impl State {
    /// Accepted from a listener: open, and readable (data may have arrived before registration).
    pub(crate) fn accepted() -> State {
        State { phase: Phase::Open, flags: Flags(READABLE | ACCEPTED) }
    }

    /// An outbound connect in progress, registered with WRITABLE interest to hear how it ends.
    pub(crate) fn connecting(nodelay: bool) -> State {
        State { phase: Phase::Opening { nodelay, then: Then::Open }, flags: Flags(WRITABLE_INTEREST) }
    }

    // Phase questions.

    /// Scheduled to close: events and calls for it are ignored.
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// An outbound connect is still in progress.
    #[inline]
    pub(crate) fn is_opening(&self) -> bool {
        matches!(self.phase, Phase::Opening { .. })
    }

    /// Open in both directions as far as we are concerned: a send may go straight to the socket.
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open)
    }

    /// Sends are still accepted (written now, or queued while the connect completes).
    pub(crate) fn accepts_sends(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Opening { then: Then::Open, .. })
    }

    /// The ending of a close whose FIN is out, while it waits for the peer's.
    #[inline]
    pub(crate) fn lingering(&self) -> Option<CloseKind> {
        match self.phase {
            Phase::Lingering(ending) => Some(ending),
            _ => None,
        }
    }

    /// Worth reading now: readable, not paused, the peer's EOF not yet read, and in a phase that
    /// reads.
    #[inline]
    pub(crate) fn wants_read(&self) -> bool {
        const STOPPED: u16 = READ_CLOSED | PAUSED_BY_APP | PAUSED_BY_BACKPRESSURE;
        self.flags.0 & (READABLE | STOPPED) == READABLE && self.phase.reads()
    }

    // Reading.

    /// The poller reported readiness: readable (or the peer's FIN), the FIN itself, urgent data.
    #[inline]
    pub(crate) fn readiness(&mut self, readable: bool, hangup: bool, urgent: bool) {
        if readable {
            self.flags.set(READABLE);
        }
        if hangup {
            self.flags.set(HANGUP_SEEN);
        }
        if urgent {
            self.flags.set(URGENT);
        }
    }

    /// Whether a read shorter than the buffer proves the socket empty: not when the FIN was reported
    /// (read on to see the EOF, which raises no edge of its own), nor after urgent data (the kernel
    /// ends a read at the urgent mark with more bytes queued behind it), nor on a traced connection's
    /// first read (which the read loop reports on the slower way out; one read more finds the socket
    /// empty).
    #[inline]
    pub(crate) fn short_read_drains(&self) -> bool {
        !self.flags.has(HANGUP_SEEN | URGENT | AWAITING_FIRST_BYTE)
    }

    /// The lifecycle log follows this connection, from its first byte on.
    pub(crate) fn trace(&mut self) {
        self.flags.set(TRACED | AWAITING_FIRST_BYTE);
    }

    /// Its lifecycle is logged.
    #[inline]
    pub(crate) fn traced(&self) -> bool {
        self.flags.has(TRACED)
    }

    /// Traced and no byte read until now: asked only on reads that did not drain the socket.
    #[inline]
    pub(crate) fn awaiting_first_byte(&self) -> bool {
        self.flags.has(AWAITING_FIRST_BYTE)
    }

    /// Bytes were read: whether they were the first a traced connection read (true once).
    pub(crate) fn first_byte(&mut self) -> bool {
        let first = self.flags.has(AWAITING_FIRST_BYTE);
        self.flags.clear(AWAITING_FIRST_BYTE);
        first
    }

    /// The peer's EOF has been read.
    pub(crate) fn read_closed(&self) -> bool {
        self.flags.has(READ_CLOSED)
    }

    /// Our FIN is out (after a half-close or a close), so the peer's FIN ends in TIME_WAIT on our side.
    pub(crate) fn our_fin_is_out(&self) -> bool {
        matches!(self.phase, Phase::WriteShut | Phase::Lingering(_))
    }

    /// A short read emptied the socket: the next arrival raises a new edge.
    #[inline]
    pub(crate) fn drained(&mut self) {
        self.flags.clear(READABLE);
    }

    /// A read found nothing (`WouldBlock`): readiness, urgent data included, is used up.
    #[inline]
    pub(crate) fn read_would_block(&mut self) {
        self.flags.clear(READABLE | URGENT);
    }

    /// The peer's EOF was read.
    pub(crate) fn eof(&mut self) {
        self.flags.clear(READABLE);
        self.flags.set(READ_CLOSED);
    }

    /// On the ready list.
    #[inline]
    pub(crate) fn is_queued(&self) -> bool {
        self.flags.has(QUEUED)
    }

    /// Put on (true) or taken off (false) the ready list.
    #[inline]
    pub(crate) fn set_queued(&mut self, queued: bool) {
        self.flags.put(QUEUED, queued);
    }

    /// The application's pause. Ignored once a close is asked: from then on the loop reads only to
    /// discard until the peer's FIN, and a pause would leave that FIN unseen until the linger timer,
    /// closing with unread input (a reset).
    pub(crate) fn pause_by_app(&mut self) {
        let close_asked = matches!(
            self.phase,
            Phase::Opening { then: Then::Close(_), .. }
                | Phase::Closing(_)
                | Phase::Lingering(_)
                | Phase::Closed
        );
        if !close_asked {
            self.flags.set(PAUSED_BY_APP);
        }
    }

    /// The application resumes reading.
    pub(crate) fn resume_by_app(&mut self) {
        self.flags.clear(PAUSED_BY_APP);
    }

    /// The outbound connect completed: carry out what was asked meanwhile, and start reading. Returns
    /// whether TCP_NODELAY was asked for, or `None` if the connection was not opening.
    pub(crate) fn connected(&mut self) -> Option<bool> {
        let Phase::Opening { nodelay, then } = self.phase else { return None };
        self.phase = then.phase();
        self.flags.set(READABLE);
        Some(nodelay)
    }

    // Writing.

    /// Queued output passed the high watermark: stop reading until it drains.
    pub(crate) fn pause_by_backpressure(&mut self) {
        self.flags.set(PAUSED_BY_BACKPRESSURE);
    }

    pub(crate) fn paused_by_backpressure(&self) -> bool {
        self.flags.has(PAUSED_BY_BACKPRESSURE)
    }

    /// Queued output fell below the low watermark.
    pub(crate) fn resume_by_backpressure(&mut self) {
        self.flags.clear(PAUSED_BY_BACKPRESSURE);
    }

    /// A send had to queue: the application hears when the queue drains.
    pub(crate) fn notify_when_drained(&mut self) {
        self.flags.set(NOTIFY_DRAINED);
    }

    /// The queue drained: whether the application asked to hear about it (asked once, told once).
    pub(crate) fn take_drained_notice(&mut self) -> bool {
        let notify = self.flags.has(NOTIFY_DRAINED);
        self.flags.clear(NOTIFY_DRAINED);
        notify
    }

    /// The registered interest includes WRITABLE.
    #[inline]
    pub(crate) fn writable_interest(&self) -> bool {
        self.flags.has(WRITABLE_INTEREST)
    }

    /// The poller accepted a change of interest.
    pub(crate) fn set_writable_interest(&mut self, on: bool) {
        self.flags.put(WRITABLE_INTEREST, on);
    }

    /// Accepted from a listener (counts against `max_connections`).
    pub(crate) fn is_accepted(&self) -> bool {
        self.flags.has(ACCEPTED)
    }

    // The end of the conversation.

    /// The application asks for a half-close: our FIN once the queue is flushed. A close asked
    /// earlier, or a half-close already under way, stands.
    pub(crate) fn ask_shutdown_write(&mut self) {
        match self.phase {
            Phase::Opening { nodelay, then: Then::Open } => {
                self.phase = Phase::Opening { nodelay, then: Then::ShutWrite }
            }
            Phase::Open => self.phase = Phase::ShuttingWrite,
            _ => {}
        }
    }

    /// A close is asked (by the application, the peer's EOF, or shutdown): stop reading, flush, FIN.
    /// The first close asked stands. After a half-close whose FIN is already out, the close goes
    /// straight to what follows the FIN, which the returned step says.
    pub(crate) fn ask_close(&mut self, ending: CloseKind) -> Step {
        match self.phase {
            Phase::Opening { nodelay, then: Then::Open | Then::ShutWrite } => {
                self.phase = Phase::Opening { nodelay, then: Then::Close(ending) };
            }
            Phase::Open | Phase::ShuttingWrite => self.phase = Phase::Closing(ending),
            Phase::WriteShut => {
                self.phase = Phase::Closing(ending);
                return self.fin_sent();
            }
            Phase::Opening { then: Then::Close(_), .. }
            | Phase::Closing(_)
            | Phase::Lingering(_)
            | Phase::Closed => {}
        }
        Step::Stay
    }

    /// Nothing is left to write: what the phase asks for now.
    pub(crate) fn flushed(&self) -> Step {
        let read_closed = self.flags.has(READ_CLOSED);
        match self.phase {
            // A connect that never completed sends no FIN; a half-close waits for the connect.
            Phase::Opening { then: Then::Close(ending), .. } => Step::Close(ending),
            Phase::ShuttingWrite | Phase::Closing(_) => Step::SendFin,
            Phase::WriteShut if read_closed => Step::Close(CloseKind::PeerClosed),
            Phase::Lingering(ending) if read_closed => Step::Close(ending),
            Phase::Opening { .. } | Phase::Open | Phase::WriteShut | Phase::Lingering(_) | Phase::Closed => {
                Step::Stay
            }
        }
    }

    /// Our FIN is out (or the socket was no longer connected): half-closed, lingering, or closed if
    /// the peer's EOF was read already.
    pub(crate) fn fin_sent(&mut self) -> Step {
        let read_closed = self.flags.has(READ_CLOSED);
        match self.phase {
            Phase::ShuttingWrite => {
                self.phase = Phase::WriteShut;
                if read_closed { Step::Close(CloseKind::PeerClosed) } else { Step::Stay }
            }
            Phase::Closing(ending) if read_closed => Step::Close(ending),
            Phase::Closing(ending) => {
                self.phase = Phase::Lingering(ending);
                // Lingering reads whatever the pauses say: the FIN must be seen.
                self.flags.clear(PAUSED_BY_APP | PAUSED_BY_BACKPRESSURE);
                Step::Linger
            }
            _ => Step::Stay,
        }
    }

    /// Scheduled to close. Returns false if it already was (the first reason wins).
    pub(crate) fn close(&mut self) -> bool {
        let was_open = !matches!(self.phase, Phase::Closed);
        self.phase = Phase::Closed;
        was_open
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {:?}", self.phase, self.flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Untraced, a short read drains as ever; traced, the first read does not (so that the read loop
    /// reports it), and the first byte is reported once.
    #[test]
    fn only_a_traced_connection_awaits_its_first_byte() {
        let mut state = State::accepted();
        assert!(state.short_read_drains() && !state.awaiting_first_byte());
        state.trace();
        assert!(!state.short_read_drains() && state.awaiting_first_byte());
        assert!(state.first_byte());
        assert!(!state.first_byte(), "reported twice");
        assert!(state.short_read_drains());
    }

    #[test]
    fn a_close_after_a_half_close_lingers_without_a_second_fin() {
        let mut state = State::accepted();
        state.ask_shutdown_write();
        assert_eq!(state.flushed(), Step::SendFin);
        assert_eq!(state.fin_sent(), Step::Stay);
        assert_eq!(state.ask_close(CloseKind::Local), Step::Linger);
        assert_eq!(state.lingering(), Some(CloseKind::Local));
        assert_eq!(state.flushed(), Step::Stay);
    }

    #[test]
    fn what_is_asked_while_connecting_waits_for_the_connect() {
        let mut state = State::connecting(true);
        assert!(!state.wants_read() && state.accepts_sends() && !state.is_open());
        state.ask_shutdown_write();
        assert_eq!(state.flushed(), Step::Stay, "no FIN before the connect completes");
        assert_eq!(state.connected(), Some(true));
        assert_eq!(state.flushed(), Step::SendFin);
        assert!(state.wants_read());
    }

    #[test]
    fn lingering_ignores_pauses_and_ends_at_the_peers_eof() {
        let mut state = State::accepted();
        state.pause_by_backpressure();
        state.pause_by_app();
        assert_eq!(state.ask_close(CloseKind::Shutdown), Step::Stay);
        assert!(!state.wants_read(), "a close that flushes reads nothing");
        assert_eq!(state.flushed(), Step::SendFin);
        assert_eq!(state.fin_sent(), Step::Linger);
        assert!(state.wants_read());
        state.pause_by_app();
        assert!(state.wants_read(), "a pause after the close is ignored");
        state.eof();
        assert_eq!(state.flushed(), Step::Close(CloseKind::Shutdown));
    }
}
