//! A TCP connection in the loop's table, and the writing side of its life: send, queue, flush,
//! back-pressure, half-close and close.
//!
//! Writes go straight to the socket; only what the socket does not take is queued, and WRITABLE interest
//! is registered only while something is queued, so a conversation that never fills the socket costs no
//! `epoll_ctl` at all.

use std::io;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use log::trace;
use mio::Interest;
use mio::net::TcpStream;

use crate::core::Core;
use crate::handler::CloseReason;
use crate::output::{Flush, OutputQueue};
use crate::timer::TimerKind;
use crate::token::Key;

/// How long a closed-by-us connection keeps reading (and discarding) after sending its FIN, waiting for
/// the peer's. Closing a socket with unread input makes the kernel send RST, which can destroy replies
/// the peer has not read yet; lingering avoids that, and this bounds it.
const LINGER: Duration = Duration::from_secs(2);

pub(crate) mod flag {
    /// Outbound connect not yet complete.
    pub(crate) const CONNECTING: u16 = 1;
    /// The application paused reading ([`Context::pause_reading`](crate::Context::pause_reading) or
    /// `Next::Pause`); only the application clears it.
    pub(crate) const PAUSED_BY_APP: u16 = 1 << 1;
    /// Queued output passed the high watermark.
    pub(crate) const PAUSED_BY_BACKPRESSURE: u16 = 1 << 2;
    /// The peer's EOF was read.
    pub(crate) const READ_CLOSED: u16 = 1 << 3;
    /// The poller reported the peer's FIN: read until EOF instead of stopping at a short read.
    pub(crate) const HANGUP_SEEN: u16 = 1 << 4;
    /// Our sending side is shut.
    pub(crate) const WRITE_SHUT: u16 = 1 << 5;
    /// Scheduled for close; events and calls for it are ignored.
    pub(crate) const CLOSING: u16 = 1 << 6;
    /// On the ready list.
    pub(crate) const QUEUED: u16 = 1 << 7;
    /// A send had to queue: tell the application when the queue drains.
    pub(crate) const NOTIFY_DRAINED: u16 = 1 << 8;
    /// Closed by us, FIN sent: reading only to discard until the peer's FIN.
    pub(crate) const LINGERING: u16 = 1 << 9;
    /// Readable since the last read that found the socket empty.
    pub(crate) const READABLE: u16 = 1 << 10;
    /// An outbound connect asked for Nagle's algorithm to stay on.
    pub(crate) const NO_NODELAY: u16 = 1 << 11;
    /// Closed by us with output still to flush: read nothing (the application hears no more data)
    /// until lingering begins. The loop's own state, apart from the application's pause, so that
    /// neither can undo the other.
    pub(crate) const CLOSE_PENDING: u16 = 1 << 12;
    /// The poller reported TCP urgent data: a short read may have stopped at the urgent mark, so read
    /// until `WouldBlock` before calling the socket drained.
    pub(crate) const URGENT: u16 = 1 << 13;

    pub(crate) const PAUSED: u16 = PAUSED_BY_APP | PAUSED_BY_BACKPRESSURE;
}

/// What to do once the output queue is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Nothing: keep the connection as it is.
    None,
    /// Shut our sending side (half-close), keep reading.
    ShutdownWrite,
    /// Shut our sending side, linger for the peer's FIN, then close with this reason.
    Close(Ending),
}

/// The reasons a close that waits for a flush can end with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    PeerClosed,
    Local,
    Shutdown,
}

impl Ending {
    pub(crate) fn reason(self) -> CloseReason {
        match self {
            Ending::PeerClosed => CloseReason::PeerClosed,
            Ending::Local => CloseReason::Local,
            Ending::Shutdown => CloseReason::Shutdown,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) stream: TcpStream,
    pub(crate) output: OutputQueue,
    pub(crate) finish: Finish,
    pub(crate) last_active: Instant,
    pub(crate) idle_timer: Option<Key>,
    pub(crate) flags: u16,
    /// Registered interest includes WRITABLE.
    pub(crate) wants_write: bool,
    /// Accepted from a listener, so it counts against `max_connections`.
    pub(crate) accepted: bool,
}

impl Connection {
    pub(crate) fn new(stream: TcpStream, now: Instant, accepted: bool, connecting: bool) -> Connection {
        Connection {
            stream,
            output: OutputQueue::default(),
            finish: Finish::None,
            last_active: now,
            idle_timer: None,
            flags: if connecting { flag::CONNECTING } else { flag::READABLE },
            wants_write: connecting,
            accepted,
        }
    }

    pub(crate) fn has(&self, flags: u16) -> bool {
        self.flags & flags != 0
    }

    pub(crate) fn set(&mut self, flags: u16) {
        self.flags |= flags;
    }

    pub(crate) fn clear(&mut self, flags: u16) {
        self.flags &= !flags;
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.has(flag::CLOSING)
    }

    /// Worth reading now: readable, not paused, and not finished reading.
    pub(crate) fn wants_read(&self) -> bool {
        const STOPPED: u16 =
            flag::PAUSED | flag::READ_CLOSED | flag::CLOSING | flag::CONNECTING | flag::CLOSE_PENDING;
        self.flags & (flag::READABLE | STOPPED) == flag::READABLE
    }

    /// The application's pause. Ignored once the application has closed: from then on the loop reads
    /// only to discard until the peer's FIN, and a pause would leave that FIN unseen until the linger
    /// timer, closing with unread input (a reset).
    pub(crate) fn pause_by_app(&mut self) {
        if !matches!(self.finish, Finish::Close(_)) {
            self.set(flag::PAUSED_BY_APP);
        }
    }
}

impl Core {
    /// Writes `data` now, queueing what the socket does not take. See [`Context::send`](crate::Context).
    #[inline]
    pub(crate) fn send(&mut self, key: Key, data: &[u8]) -> io::Result<()> {
        let (now, max_output) = (self.now, self.config.max_output);
        // The common case, kept short: an open connection with nothing queued whose socket takes it all.
        let mut first = None;
        if let Some(conn) = self.connection(key)
            && conn.flags & (flag::CLOSING | flag::CONNECTING | flag::WRITE_SHUT) == 0
            && conn.finish == Finish::None
            && conn.output.is_empty()
            && !data.is_empty()
            && data.len() <= max_output
        {
            match crate::sys::send(&conn.stream, data) {
                Ok(n) if n == data.len() => {
                    conn.last_active = now;
                    self.counters.bytes_out += n as u64;
                    return Ok(());
                }
                attempt => first = Some(attempt),
            }
        }
        self.send_slow(key, data, first)
    }

    /// Everything [`send`](Self::send)'s fast path does not cover: refusals, partial writes, queueing.
    /// `first` is the outcome of the fast path's one write, if it made one.
    #[cold]
    #[inline(never)]
    fn send_slow(&mut self, key: Key, data: &[u8], first: Option<io::Result<usize>>) -> io::Result<()> {
        let (max_output, high_watermark, now) =
            (self.config.max_output, self.config.high_watermark, self.now);
        let Some(conn) = self.connection(key).filter(|c| !c.is_closing()) else {
            return Err(not_connected(key));
        };
        if conn.finish != Finish::None || conn.has(flag::WRITE_SHUT) {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the sending side is already closed"));
        }
        if data.len() > max_output {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} B is more than max_output ({max_output} B): send it in pieces", data.len()),
            ));
        }
        if conn.output.len() + data.len() > max_output {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "output queue full: wait for on_drained before sending more",
            ));
        }
        let mut written = 0;
        if conn.output.is_empty() && !conn.has(flag::CONNECTING) {
            let mut attempt = first;
            loop {
                match attempt.take().unwrap_or_else(|| crate::sys::send(&conn.stream, &data[written..])) {
                    Ok(n) => written += n,
                    Err(e) if crate::io_util::would_block(&e) => break,
                    Err(e) => {
                        self.counters.bytes_out += written as u64;
                        self.schedule_close(key, CloseReason::from_io(e));
                        return Ok(());
                    }
                }
                if written == data.len() {
                    break;
                }
            }
            if written > 0 {
                conn.last_active = now;
                self.counters.bytes_out += written as u64;
            }
            if written == data.len() {
                return Ok(());
            }
        }
        let conn = self.connection(key).expect("checked above");
        conn.output.push(&data[written..]);
        conn.set(flag::NOTIFY_DRAINED);
        if conn.output.len() > high_watermark {
            conn.set(flag::PAUSED_BY_BACKPRESSURE);
        }
        self.want_write(key, true);
        Ok(())
    }

    /// Writes queued output after a writable event. Returns true when the queue drained and the
    /// application asked to hear about it.
    pub(crate) fn flush(&mut self, key: Key) -> bool {
        // A low watermark of 0 means "once empty": nothing is ever queued below zero bytes.
        let (resume_below, now) = (self.config.low_watermark.max(1), self.now);
        let Some(conn) = self.connection(key) else { return false };
        if conn.output.is_empty() {
            return false;
        }
        let (written, result) = conn.output.flush_to(&mut crate::sys::Sender(&conn.stream));
        if written > 0 {
            conn.last_active = now;
        }
        self.counters.bytes_out += written as u64;
        let conn = self.connection(key).expect("checked above");
        let resume = conn.has(flag::PAUSED_BY_BACKPRESSURE) && conn.output.len() < resume_below;
        if resume {
            conn.clear(flag::PAUSED_BY_BACKPRESSURE);
        }
        let notify = match result {
            Ok(Flush::Blocked) => false,
            Ok(Flush::Drained) => {
                let notify = conn.has(flag::NOTIFY_DRAINED);
                conn.clear(flag::NOTIFY_DRAINED);
                self.want_write(key, false);
                self.finish_if_flushed(key);
                notify
            }
            Err(e) => {
                self.schedule_close(key, CloseReason::from_io(e));
                false
            }
        };
        if resume {
            self.queue_read(key);
        }
        notify
    }

    /// Registers or drops WRITABLE interest, only when it changes. If the poller refuses, the connection
    /// closes with its error: output queued without WRITABLE interest would never be written, and a
    /// `wants_write` that disagreed with the poller would keep the next call from trying again.
    pub(crate) fn want_write(&mut self, key: Key, on: bool) {
        let Some(slot) = self.slots.get_mut(key.slot) else { return };
        let crate::core::Entry::Connection(conn) = &mut slot.entry else { return };
        if conn.wants_write == on {
            return;
        }
        let interest =
            if on { crate::sys::STREAM_INTEREST | Interest::WRITABLE } else { crate::sys::STREAM_INTEREST };
        trace!("reregister {key:?} {interest:?}");
        match self.registry.reregister(&mut conn.stream, key.token(), interest) {
            Ok(()) => conn.wants_write = on,
            Err(e) => self.schedule_close(key, CloseReason::Error(e)),
        }
    }

    /// Asks for the connection to end once its output is flushed: `Finish::ShutdownWrite` for a
    /// half-close, `Finish::Close` for a full one.
    pub(crate) fn finish(&mut self, key: Key, finish: Finish) -> io::Result<()> {
        let Some(conn) = self.connection(key).filter(|c| !c.is_closing()) else {
            return Err(not_connected(key));
        };
        let stronger = match (conn.finish, finish) {
            (Finish::Close(_), _) => false,
            (_, Finish::Close(_)) => true,
            (Finish::None, Finish::ShutdownWrite) => true,
            _ => false,
        };
        if stronger {
            conn.finish = finish;
            // Only the step to Close stops reading: a repeated close (or the shutdown pass) must not
            // stop a linger read that has already begun.
            if matches!(finish, Finish::Close(_)) {
                conn.set(flag::CLOSE_PENDING);
            }
        }
        self.finish_if_flushed(key);
        Ok(())
    }

    /// Carries out a pending half-close or close once nothing is left to write.
    pub(crate) fn finish_if_flushed(&mut self, key: Key) {
        let Some(conn) = self.connection(key) else { return };
        if conn.finish == Finish::None || !conn.output.is_empty() || conn.is_closing() {
            return;
        }
        if conn.has(flag::CONNECTING) {
            if let Finish::Close(ending) = conn.finish {
                self.schedule_close(key, ending.reason());
            }
            return;
        }
        if !conn.has(flag::WRITE_SHUT) {
            conn.set(flag::WRITE_SHUT);
            if let Err(e) = conn.stream.shutdown(Shutdown::Write)
                && e.kind() != io::ErrorKind::NotConnected
            {
                self.schedule_close(key, CloseReason::from_io(e));
                return;
            }
        }
        let read_closed = conn.has(flag::READ_CLOSED);
        match conn.finish {
            Finish::Close(ending) if read_closed => self.schedule_close(key, ending.reason()),
            Finish::ShutdownWrite if read_closed => self.schedule_close(key, CloseReason::PeerClosed),
            Finish::Close(_) if !conn.has(flag::LINGERING) => {
                conn.set(flag::LINGERING);
                conn.clear(flag::PAUSED | flag::CLOSE_PENDING);
                self.set_timer(LINGER, TimerKind::Linger(key));
                self.queue_read(key);
            }
            _ => {}
        }
    }

    /// Puts a connection on the ready list so that the next turn reads from it (edge-triggered
    /// readiness will not report data that arrived while it was paused).
    pub(crate) fn queue_read(&mut self, key: Key) {
        if let Some(conn) = self.connection(key)
            && conn.wants_read()
            && !conn.has(flag::QUEUED)
        {
            conn.set(flag::QUEUED);
            self.push_ready(key);
        }
    }

    /// Marks a connection for closing; the loop closes it and tells the application as soon as the
    /// current callback returns. The first reason wins.
    pub(crate) fn schedule_close(&mut self, key: Key, reason: CloseReason) {
        if let Some(conn) = self.connection(key)
            && !conn.is_closing()
        {
            conn.set(flag::CLOSING);
            self.closing.push((key, reason));
        }
    }

    /// Drops queued output and closes at once with a reset (SO_LINGER 0), so the peer learns at once.
    pub(crate) fn abort(&mut self, key: Key) -> io::Result<()> {
        let Some(conn) = self.connection(key).filter(|c| !c.is_closing()) else {
            return Err(not_connected(key));
        };
        conn.output.clear();
        let _ = socket2::SockRef::from(&conn.stream).set_linger(Some(Duration::ZERO));
        self.schedule_close(key, CloseReason::Aborted);
        Ok(())
    }

    /// Removes a connection from the table and closes its socket. Returns whether it existed.
    pub(crate) fn remove_connection(&mut self, key: Key) -> bool {
        let Some(crate::core::Entry::Connection(_)) = self.entry(key) else { return false };
        let crate::core::Entry::Connection(mut conn) = self.slots.remove(key.slot).entry else {
            unreachable!("checked above")
        };
        self.deregister(&mut conn.stream, key);
        if let Some(timer) = conn.idle_timer {
            self.timers.cancel(timer);
        }
        self.counters.active -= 1;
        if conn.accepted {
            self.connections -= 1;
        }
        self.wake_waiting_listeners();
        true
    }
}

pub(crate) fn not_connected(key: Key) -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, format!("connection {key:?} is closed"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Entry;

    #[test]
    fn a_failed_reregister_closes_instead_of_stranding_output() {
        let poll = mio::Poll::new().unwrap();
        let mut core = Core::new(poll.registry().try_clone().unwrap(), crate::Config::default());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, _) = listener.accept().unwrap();
        stream.set_nonblocking(true).unwrap();
        let conn = Connection::new(TcpStream::from_std(stream), core.now, false, false);
        let key = core
            .insert(
                Entry::Connection(conn),
                |e| match e {
                    Entry::Connection(c) => Some(&mut c.stream),
                    _ => None,
                },
                Interest::READABLE,
            )
            .unwrap();
        // Out of the poller behind the loop's back: the next reregister fails (ENOENT), as it would
        // for a poller out of memory.
        let Entry::Connection(conn) = &mut core.slots[key.slot].entry else { unreachable!() };
        core.registry.deregister(&mut conn.stream).unwrap();
        // The peer reads nothing: fill its window until a send has to queue.
        let block = vec![7; 64 * 1024];
        let mut result = Ok(());
        for _ in 0..1024 {
            result = core.send(key, &block);
            let conn = core.connection(key).unwrap();
            if result.is_err() || conn.is_closing() || !conn.output.is_empty() {
                break;
            }
        }
        let conn = core.connection(key).unwrap();
        let (queued, wants_write) = (conn.output.len(), conn.wants_write);
        let closed =
            core.closing.iter().any(|(k, reason)| *k == key && matches!(reason, CloseReason::Error(_)));
        assert!(
            closed && result.is_ok() && !wants_write,
            "{queued} B queued, closing: {closed}, WRITABLE believed registered: {wants_write}, send: {result:?}"
        );
    }
}
