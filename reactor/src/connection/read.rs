//! The reading side of a connection: its readiness events, the read loop that hands bytes to
//! [`Handler::on_data`], the peer's EOF, and the end of an outbound connect.
//!
//! Reads go into the one buffer the loop shares between all connections, until the socket is drained
//! (a short read, on Linux), the connection pauses, or its per-turn budget is spent; then it waits on
//! the ready list for the next turn, so that one flooding peer cannot starve the rest.

use std::io;

use log::debug;
use mio::event::Event;

use super::write;
use crate::core::Core;
use crate::handler::{AfterEof, CloseKind, CloseReason, Next, Origin};
use crate::token::Key;
use crate::{ConnId, Context, Handler};

/// A readiness event for a connection: finish a connect, report an error, write what is queued, read.
pub(crate) fn on_event<H: Handler>(
    core: &mut Core,
    handler: &mut H,
    buffer: &mut [u8],
    key: Key,
    event: &Event,
) {
    let Some(conn) = core.connection(key) else { return };
    if conn.state.is_closed() {
        return;
    }
    if conn.state.is_opening() {
        connected(core, handler, buffer, key);
        return;
    }
    if event.is_error()
        && let Some(error) = conn.stream.take_error().ok().flatten()
    {
        core.schedule_close(key, CloseReason::from_io(error));
        return;
    }
    let hangup = event.is_read_closed();
    conn.state.readiness(event.is_readable() || hangup, hangup, crate::sys::urgent_data(event));
    // A parked connection is read from the ready list, once per turn, not here as well.
    let parked = conn.state.is_queued();
    if event.is_writable() && conn.state.writable_interest() && write::flush(core, key) {
        handler.on_drained(&mut Context { core }, ConnId(key));
    }
    if !parked {
        read(core, handler, buffer, key);
    }
}

/// A connection parked on the ready list (by its read budget, or resumed after a pause) gets its turn.
pub(crate) fn read_parked<H: Handler>(core: &mut Core, handler: &mut H, buffer: &mut [u8], key: Key) {
    let Some(conn) = core.connection(key) else { return };
    conn.state.set_queued(false);
    read(core, handler, buffer, key);
}

/// Reads until the socket is drained, the connection pauses, or its per-turn budget is spent (then it
/// waits on the ready list for the next turn). Inlined: it is the hot half of every echoed message,
/// and a call's prologue and epilogue were a tenth of the loop's own instructions per message.
#[inline(always)]
fn read<H: Handler>(core: &mut Core, handler: &mut H, buffer: &mut [u8], key: Key) {
    let mut budget = core.config().read_budget;
    let written_at_start = core.counters().bytes_out;
    loop {
        let now = core.now();
        let Some(conn) = core.connection(key) else { return };
        if !conn.state.wants_read() {
            return;
        }
        if budget == 0 {
            conn.state.set_queued(true);
            core.push_ready(key);
            return;
        }
        match crate::sys::recv(&conn.stream, buffer) {
            Ok(0) => {
                conn.state.eof();
                peer_eof(core, handler, key);
                return;
            }
            Ok(n) => {
                conn.last_active = now;
                // A short read drained the socket: the next arrival raises a new edge, so another read
                // now would only say EAGAIN. Unless the peer's FIN or urgent data came with this edge
                // (see `short_read_drains`).
                let drained =
                    crate::sys::SHORT_READ_DRAINS && n < buffer.len() && conn.state.short_read_drains();
                if drained {
                    conn.state.drained();
                } else if conn.state.awaiting_first_byte() {
                    super::first_byte(conn, key, n);
                }
                if conn.state.lingering().is_some() {
                    core.counters_mut().bytes_discarded += n as u64;
                } else {
                    core.counters_mut().bytes_in += n as u64;
                    let next = handler.on_data(&mut Context { core }, ConnId(key), &buffer[..n]);
                    after_data(core, key, next);
                }
                if drained {
                    return;
                }
                // Only a full read goes round again, so only it is charged. The budget pays for the
                // work the data caused, not only for the bytes read: what the callbacks wrote since
                // this connection's turn began counts too, so a peer whose every line fans out to many
                // others yields as soon as one that floods.
                budget = budget.saturating_sub(n);
                let written = core.counters().bytes_out.wrapping_sub(written_at_start);
                if written >= budget as u64 {
                    budget = 0;
                }
            }
            Err(e) if crate::io_util::would_block(&e) => {
                conn.state.read_would_block();
                return;
            }
            Err(e) if crate::io_util::interrupted(&e) => {}
            Err(e) => {
                core.schedule_close(key, CloseReason::from_io(e));
                return;
            }
        }
    }
}

/// What [`Handler::on_data`] answered. Inlined with the read loop: `Continue`, nearly every answer,
/// costs one comparison; the others are out of line.
#[inline(always)]
fn after_data(core: &mut Core, key: Key, next: Next) {
    if next != Next::Continue {
        pause_or_close(core, key, next);
    }
}

#[cold]
#[inline(never)]
fn pause_or_close(core: &mut Core, key: Key, next: Next) {
    match next {
        Next::Continue => {}
        Next::Pause => {
            if let Some(conn) = core.connection(key) {
                conn.state.pause_by_app();
            }
        }
        Next::Close => {
            let _ = write::close(core, key, CloseKind::Local);
        }
    }
}

/// The peer's EOF: the end of a linger, or the application decides.
fn peer_eof<H: Handler>(core: &mut Core, handler: &mut H, key: Key) {
    let Some(conn) = core.connection(key) else { return };
    if conn.state.traced() {
        if conn.state.our_fin_is_out() {
            conn.step(key, format_args!("peer EOF after our FIN: our side is TIME_WAIT"));
        } else {
            conn.step(key, format_args!("peer EOF: its FIN arrived, our side is CLOSE_WAIT"));
        }
    }
    if let Some(ending) = conn.state.lingering() {
        // Our FIN went out earlier; the peer's has now arrived: the close is complete.
        core.schedule_close(key, CloseReason::of(ending));
        return;
    }
    match handler.on_eof(&mut Context { core }, ConnId(key)) {
        AfterEof::Close => {
            let _ = write::close(core, key, CloseKind::PeerClosed);
        }
        AfterEof::KeepOpen => write::finish_if_flushed(core, key),
    }
}

/// An outbound connect reported progress: find out whether it succeeded, and if so open.
fn connected<H: Handler>(core: &mut Core, handler: &mut H, buffer: &mut [u8], key: Key) {
    let Some(conn) = core.connection(key) else { return };
    let failure = match conn.stream.take_error() {
        Ok(Some(e)) | Err(e) => Some(e),
        Ok(None) => match conn.stream.peer_address() {
            Ok(_) => None,
            // Spurious wake-up: still connecting.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
            Err(e) => Some(e),
        },
    };
    if let Some(error) = failure {
        core.schedule_close(key, CloseReason::connect_failed(error));
        return;
    }
    if conn.state.connected() == Some(true) {
        let _ = conn.stream.set_nodelay(true);
    }
    core.counters_mut().connected += 1;
    if let Some(conn) = core.connection(key) {
        conn.trace(None);
        conn.step(key, format_args!("connected (ESTABLISHED)"));
    }
    debug!("{} connected", ConnId(key));
    handler.on_open(&mut Context { core }, ConnId(key), Origin::Connected);
    // Output sent while connecting waits in the queue; WRITABLE is still registered, so flushing now
    // either drains it (and drops WRITABLE) or leaves it for the next writable edge.
    let queued = core.connection(key).is_some_and(|c| !c.output.is_empty());
    if queued {
        if write::flush(core, key) {
            handler.on_drained(&mut Context { core }, ConnId(key));
        }
    } else {
        write::want_write(core, key, false);
    }
    write::finish_if_flushed(core, key);
    read(core, handler, buffer, key);
}
