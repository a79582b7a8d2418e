//! The writing side of a connection: send, queue, flush, back-pressure, half-close and close.
//!
//! Writes go straight to the socket; only what the socket does not take is queued, and WRITABLE
//! interest is registered only while something is queued, so a conversation that never fills the
//! socket costs no `epoll_ctl` at all. Past the high watermark of queued output the connection stops
//! reading until the queue drains below the low one.

use std::io;
use std::net::Shutdown;
use std::time::Duration;

use mio::Interest;

use super::{Step, not_connected, queue_read};
use crate::core::Core;
use crate::handler::{CloseKind, CloseReason};
use crate::output::Flush;
use crate::stream::Stream;
use crate::timer::TimerKind;
use crate::token::Key;

/// How long a closed-by-us connection keeps reading (and discarding) after sending its FIN, waiting for
/// the peer's. Closing a socket with unread input makes the kernel send RST, which can destroy replies
/// the peer has not read yet; lingering avoids that, and this bounds it.
const LINGER: Duration = Duration::from_secs(2);

/// Writes `data` now, queueing what the socket does not take. See [`Context::send`](crate::Context).
#[inline]
pub(crate) fn send(core: &mut Core, key: Key, data: &[u8]) -> io::Result<()> {
    let (now, max_output) = (core.now(), core.config().max_output);
    // The common case, kept short: an open connection with nothing queued whose socket takes it all.
    let mut first = None;
    if let Some(conn) = core.connection(key)
        && conn.state.is_open()
        && conn.output.is_empty()
        && !data.is_empty()
        && data.len() <= max_output
    {
        match crate::sys::send(&conn.stream, data) {
            Ok(n) if n == data.len() => {
                conn.last_active = now;
                core.counters_mut().bytes_out += n as u64;
                return Ok(());
            }
            attempt => first = Some(attempt),
        }
    }
    send_slow(core, key, data, first)
}

/// Everything [`send`]'s fast path does not cover: refusals, partial writes, queueing. `first` is the
/// outcome of the fast path's one write, if it made one.
#[cold]
#[inline(never)]
fn send_slow(core: &mut Core, key: Key, data: &[u8], first: Option<io::Result<usize>>) -> io::Result<()> {
    let (max_output, high_watermark) = (core.config().max_output, core.config().high_watermark);
    let now = core.now();
    let Some(conn) = core.connection(key).filter(|c| !c.state.is_closed()) else {
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
        let (n, error) = write_now(&conn.stream, data, first);
        written = n;
        if let Some(e) = error {
            core.counters_mut().bytes_out += written as u64;
            core.schedule_close(key, CloseReason::from_io(e));
            return Ok(());
        }
        if written > 0 {
            conn.last_active = now;
        }
        if written == data.len() {
            core.counters_mut().bytes_out += written as u64;
            return Ok(());
        }
    }
    conn.output.push(&data[written..]);
    conn.state.notify_when_drained();
    if conn.output.len() > high_watermark && !conn.state.paused_by_backpressure() {
        conn.state.pause_by_backpressure();
        let queued = conn.output.len();
        conn.step(
            key,
            format_args!("paused reading: back-pressure, {queued} B queued for a peer that is not reading"),
        );
    }
    core.counters_mut().bytes_out += written as u64;
    want_write(core, key, true);
    Ok(())
}

/// Writes what the socket takes now, starting with the outcome of a write already made (`first`).
/// Returns the bytes written and the error that stopped it; `WouldBlock` is not one.
fn write_now(
    stream: &Stream,
    data: &[u8],
    mut first: Option<io::Result<usize>>,
) -> (usize, Option<io::Error>) {
    let mut written = 0;
    loop {
        match first.take().unwrap_or_else(|| crate::sys::send(stream, &data[written..])) {
            Ok(n) => written += n,
            Err(e) if crate::io_util::would_block(&e) => return (written, None),
            Err(e) => return (written, Some(e)),
        }
        if written == data.len() {
            return (written, None);
        }
    }
}

/// Writes queued output after a writable event. Returns true when the queue drained and the
/// application asked to hear about it.
pub(crate) fn flush(core: &mut Core, key: Key) -> bool {
    // A low watermark of 0 means "once empty": nothing is ever queued below zero bytes.
    let (resume_below, now) = (core.config().low_watermark.max(1), core.now());
    let Some(conn) = core.connection(key) else { return false };
    if conn.output.is_empty() {
        return false;
    }
    let (written, result) = conn.output.flush_to(&mut crate::sys::Sender(&conn.stream));
    if written > 0 {
        conn.last_active = now;
    }
    let resume = conn.state.paused_by_backpressure() && conn.output.len() < resume_below;
    if resume {
        conn.state.resume_by_backpressure();
        let queued = conn.output.len();
        conn.step(key, format_args!("resumed reading: {queued} B queued, below the low watermark"));
    }
    let asked_to_hear = matches!(result, Ok(Flush::Drained)) && conn.state.take_drained_notice();
    core.counters_mut().bytes_out += written as u64;
    let notify = match result {
        Ok(Flush::Blocked) => false,
        Ok(Flush::Drained) => {
            want_write(core, key, false);
            finish_if_flushed(core, key);
            asked_to_hear
        }
        Err(e) => {
            core.schedule_close(key, CloseReason::from_io(e));
            false
        }
    };
    if resume {
        queue_read(core, key);
    }
    notify
}

/// Registers or drops WRITABLE interest, only when it changes. If the poller refuses, the connection
/// closes with its error: output queued without WRITABLE interest would never be written, and a
/// recorded interest that disagreed with the poller would keep the next call from trying again.
pub(crate) fn want_write(core: &mut Core, key: Key, on: bool) {
    let Some(conn) = core.connection(key) else { return };
    if conn.state.writable_interest() == on {
        return;
    }
    let interest =
        if on { crate::sys::STREAM_INTEREST | Interest::WRITABLE } else { crate::sys::STREAM_INTEREST };
    match core.reregister(key, interest) {
        Ok(()) => {
            if let Some(conn) = core.connection(key) {
                conn.state.set_writable_interest(on);
            }
        }
        Err(e) => core.schedule_close(key, CloseReason::io_error(e)),
    }
}

/// Asks for a half-close once the output is flushed: our FIN, reading goes on.
pub(crate) fn shutdown_write(core: &mut Core, key: Key) -> io::Result<()> {
    let Some(conn) = core.connection(key).filter(|c| !c.state.is_closed()) else {
        return Err(not_connected(key));
    };
    conn.state.ask_shutdown_write();
    finish_if_flushed(core, key);
    Ok(())
}

/// Asks for a close once the output is flushed: stop reading, flush, FIN, linger for the peer's FIN,
/// close with `ending`.
pub(crate) fn close(core: &mut Core, key: Key, ending: CloseKind) -> io::Result<()> {
    let Some(conn) = core.connection(key).filter(|c| !c.state.is_closed()) else {
        return Err(not_connected(key));
    };
    let step = conn.state.ask_close(ending);
    take_step(core, key, step);
    finish_if_flushed(core, key);
    Ok(())
}

/// Carries out a pending half-close or close once nothing is left to write.
pub(crate) fn finish_if_flushed(core: &mut Core, key: Key) {
    let Some(conn) = core.connection(key) else { return };
    if !conn.output.is_empty() {
        return;
    }
    let step = conn.state.flushed();
    take_step(core, key, step);
}

/// Does what a change of state asked for.
fn take_step(core: &mut Core, key: Key, step: Step) {
    match step {
        Step::Stay => {}
        Step::SendFin => {
            let Some(conn) = core.connection(key) else { return };
            if let Err(e) = conn.stream.shutdown(Shutdown::Write)
                && e.kind() != io::ErrorKind::NotConnected
            {
                core.schedule_close(key, CloseReason::from_io(e));
                return;
            }
            if conn.state.traced() {
                let state = if conn.state.read_closed() { "LAST_ACK" } else { "FIN_WAIT_1" };
                conn.step(key, format_args!("our FIN sent (shutdown write), our side is {state}"));
            }
            let next = conn.state.fin_sent();
            take_step(core, key, next);
        }
        Step::Close(ending) => core.schedule_close(key, CloseReason::of(ending)),
        Step::Linger => {
            core.set_timer(LINGER, TimerKind::Linger(key));
            queue_read(core, key);
        }
    }
}

/// Drops queued output and closes at once with a reset (SO_LINGER 0), so the peer learns at once.
pub(crate) fn abort(core: &mut Core, key: Key) -> io::Result<()> {
    let Some(conn) = core.connection(key).filter(|c| !c.state.is_closed()) else {
        return Err(not_connected(key));
    };
    conn.output.clear();
    let _ = socket2::SockRef::from(&conn.stream).set_linger(Some(Duration::ZERO));
    core.schedule_close(key, CloseReason::of(CloseKind::Aborted));
    Ok(())
}

/// The linger timer fired: the peer's FIN did not come in time; close anyway.
pub(crate) fn linger_expired(core: &mut Core, key: Key) {
    if let Some(ending) = core.connection(key).and_then(|c| c.state.lingering()) {
        core.schedule_close(key, CloseReason::of(ending));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{Connection, State};
    use crate::core::Entry;
    use mio::net::TcpStream;

    #[test]
    fn a_failed_reregister_closes_instead_of_stranding_output() {
        let poll = mio::Poll::new().unwrap();
        let mut core = Core::new(poll.registry().try_clone().unwrap(), crate::Config::default());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, _) = listener.accept().unwrap();
        stream.set_nonblocking(true).unwrap();
        let conn = Connection::new(Stream::Tcp(TcpStream::from_std(stream)), core.now(), State::accepted());
        let key = core.insert(Entry::Connection(conn), Interest::READABLE).unwrap();
        // Out of the poller behind the loop's back: the next reregister fails (ENOENT), as it would
        // for a poller out of memory.
        let registry = poll.registry().try_clone().unwrap();
        registry.deregister(&mut core.connection(key).unwrap().stream).unwrap();
        // The peer reads nothing: fill its window until a send has to queue.
        let block = vec![7; 64 * 1024];
        let mut result = Ok(());
        for _ in 0..1024 {
            result = send(&mut core, key, &block);
            let conn = core.connection(key).unwrap();
            if result.is_err() || conn.state.is_closed() || !conn.output.is_empty() {
                break;
            }
        }
        let conn = core.connection(key).unwrap();
        let (queued, wants_write) = (conn.output.len(), conn.state.writable_interest());
        let closed = matches!(core.pop_closing(), Some((k, r)) if k == key && r.kind() == CloseKind::Error);
        assert!(
            closed && result.is_ok() && !wants_write,
            "{queued} B queued, closing: {closed}, WRITABLE believed registered: {wants_write}, send: {result:?}"
        );
    }
}
