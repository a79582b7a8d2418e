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

mod state;

pub(crate) use state::{Ending, State, Step};

#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) stream: TcpStream,
    pub(crate) output: OutputQueue,
    pub(crate) last_active: Instant,
    pub(crate) idle_timer: Option<Key>,
    pub(crate) state: State,
}

impl Connection {
    pub(crate) fn new(stream: TcpStream, now: Instant, state: State) -> Connection {
        Connection { stream, output: OutputQueue::default(), last_active: now, idle_timer: None, state }
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
            && conn.state.is_open()
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
        let Some(conn) = self.connection(key).filter(|c| !c.state.is_closed()) else {
            return Err(not_connected(key));
        };
        if !conn.state.accepts_sends() {
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
        if conn.output.is_empty() && !conn.state.is_opening() {
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
        conn.state.notify_when_drained();
        if conn.output.len() > high_watermark {
            conn.state.pause_by_backpressure();
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
        let resume = conn.state.paused_by_backpressure() && conn.output.len() < resume_below;
        if resume {
            conn.state.resume_by_backpressure();
        }
        let notify = match result {
            Ok(Flush::Blocked) => false,
            Ok(Flush::Drained) => {
                let notify = conn.state.take_drained_notice();
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
    /// recorded interest that disagreed with the poller would keep the next call from trying again.
    pub(crate) fn want_write(&mut self, key: Key, on: bool) {
        let Some(slot) = self.slots.get_mut(key.slot) else { return };
        let crate::core::Entry::Connection(conn) = &mut slot.entry else { return };
        if conn.state.writable_interest() == on {
            return;
        }
        let interest =
            if on { crate::sys::STREAM_INTEREST | Interest::WRITABLE } else { crate::sys::STREAM_INTEREST };
        trace!("reregister {key:?} {interest:?}");
        match self.registry.reregister(&mut conn.stream, key.token(), interest) {
            Ok(()) => conn.state.set_writable_interest(on),
            Err(e) => self.schedule_close(key, CloseReason::Error(e)),
        }
    }

    /// Asks for a half-close once the output is flushed: our FIN, reading goes on.
    pub(crate) fn shutdown_write(&mut self, key: Key) -> io::Result<()> {
        let Some(conn) = self.connection(key).filter(|c| !c.state.is_closed()) else {
            return Err(not_connected(key));
        };
        conn.state.ask_shutdown_write();
        self.finish_if_flushed(key);
        Ok(())
    }

    /// Asks for a close once the output is flushed: stop reading, flush, FIN, linger for the peer's
    /// FIN, close with `ending`.
    pub(crate) fn close(&mut self, key: Key, ending: Ending) -> io::Result<()> {
        let Some(conn) = self.connection(key).filter(|c| !c.state.is_closed()) else {
            return Err(not_connected(key));
        };
        let step = conn.state.ask_close(ending);
        self.take_step(key, step);
        self.finish_if_flushed(key);
        Ok(())
    }

    /// Carries out a pending half-close or close once nothing is left to write.
    pub(crate) fn finish_if_flushed(&mut self, key: Key) {
        let Some(conn) = self.connection(key) else { return };
        if !conn.output.is_empty() {
            return;
        }
        let step = conn.state.flushed();
        self.take_step(key, step);
    }

    /// Does what a change of state asked for.
    fn take_step(&mut self, key: Key, step: Step) {
        match step {
            Step::Stay => {}
            Step::SendFin => {
                let Some(conn) = self.connection(key) else { return };
                if let Err(e) = conn.stream.shutdown(Shutdown::Write)
                    && e.kind() != io::ErrorKind::NotConnected
                {
                    self.schedule_close(key, CloseReason::from_io(e));
                    return;
                }
                let next = conn.state.fin_sent();
                self.take_step(key, next);
            }
            Step::Close(ending) => self.schedule_close(key, ending.reason()),
            Step::Linger => {
                self.set_timer(LINGER, TimerKind::Linger(key));
                self.queue_read(key);
            }
        }
    }

    /// Puts a connection on the ready list so that the next turn reads from it (edge-triggered
    /// readiness will not report data that arrived while it was paused).
    pub(crate) fn queue_read(&mut self, key: Key) {
        if let Some(conn) = self.connection(key)
            && conn.state.wants_read()
            && !conn.state.is_queued()
        {
            conn.state.set_queued(true);
            self.push_ready(key);
        }
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

    /// Drops queued output and closes at once with a reset (SO_LINGER 0), so the peer learns at once.
    pub(crate) fn abort(&mut self, key: Key) -> io::Result<()> {
        let Some(conn) = self.connection(key).filter(|c| !c.state.is_closed()) else {
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
        if conn.state.is_accepted() {
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
        let conn = Connection::new(TcpStream::from_std(stream), core.now, State::accepted());
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
            if result.is_err() || conn.state.is_closed() || !conn.output.is_empty() {
                break;
            }
        }
        let conn = core.connection(key).unwrap();
        let (queued, wants_write) = (conn.output.len(), conn.state.writable_interest());
        let closed =
            core.closing.iter().any(|(k, reason)| *k == key && matches!(reason, CloseReason::Error(_)));
        assert!(
            closed && result.is_ok() && !wants_write,
            "{queued} B queued, closing: {closed}, WRITABLE believed registered: {wants_write}, send: {result:?}"
        );
    }
}
