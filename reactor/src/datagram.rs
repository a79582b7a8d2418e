//! UDP sockets: datagrams in, datagrams out, no connections.
//!
//! Each datagram stands alone: there is no accept, no stream and no queue. Reading drains the socket
//! (within a per-turn budget, like connections); a send either hands the whole datagram to the kernel
//! or is dropped and counted, never kept in an unbounded queue. The socket stays registered for
//! WRITABLE so that a sender refused with `WouldBlock` hears, through [`Handler::on_udp_writable`],
//! when the kernel has room again.
//!
//! # Batches (Linux)
//! On Linux one `recvmmsg` receives up to 64 datagrams into the loop's receive batch (slots of
//! [`Config::read_buffer`](crate::Config) bytes, at most 64 KiB each), and each is handed to
//! [`Handler::on_datagram`]. A batch shorter than 64 means the socket is drained: no call is spent on
//! learning `EAGAIN`. While a batch is delivered, a [`Context::send_to`] on *that* socket is gathered
//! (at most 64 datagrams and 128 KiB, flushed early when full) and the whole gather goes out with one
//! `sendmmsg` when the batch has been delivered, before the loop receives again or does anything else.
//! A gathered reply whose bytes lie in the receive batch (the datagram itself, or a slice of it, as an
//! echo sends) is not copied: it goes out from there, and the batch receives again only after it has.
//! Sends on other sockets, and sends outside `on_datagram`, go out at once as elsewhere.
//!
//! A datagram longer than its slot is cut short by the kernel (`MSG_TRUNC`): it is counted in
//! `datagrams_truncated` and dropped, never delivered as if whole. Other platforms receive one datagram
//! at a time with `recvmsg`, with the same truncation rule.

use std::io;
use std::net::SocketAddr;

use mio::Interest;
use mio::event::Event;
use mio::net::UdpSocket;

use crate::core::{Core, Entry};
use crate::token::Key;
use crate::{Context, Handler, UdpId};

/// Datagrams one socket may deliver in one loop turn before the others get their turn.
const DATAGRAMS_PER_TURN: usize = 256;

/// A UDP socket in the loop's table.
#[derive(Debug)]
pub(crate) struct Datagram {
    pub(crate) socket: UdpSocket,
    /// A send was refused with `WouldBlock`: tell the application at the next writable edge.
    refused: bool,
    /// On the ready list, with datagrams possibly left unread.
    queued: bool,
}

impl Datagram {
    /// Sends one datagram now; a refusal with `WouldBlock` is remembered, to report the next writable edge.
    fn send_now(&mut self, data: &[u8], to: SocketAddr) -> io::Result<()> {
        loop {
            match self.socket.send_to(data, to) {
                Ok(_) => return Ok(()),
                Err(e) if crate::io_util::interrupted(&e) => {}
                Err(e) => {
                    if crate::io_util::would_block(&e) {
                        self.refused = true;
                    }
                    return Err(e);
                }
            }
        }
    }
}

/// What the loop keeps for batched datagram I/O besides its shared read buffer. One socket at a time
/// is answered (the one whose receive batch is being delivered), so one gather serves them all.
#[cfg(target_os = "linux")]
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    /// The receive batch, allocated at the first readable UDP socket; taken out while in use.
    batch: Option<Box<crate::sys::RecvBatch>>,
    /// The socket being answered, and the receive slots its replies may be sent from.
    answering: Option<(Key, std::sync::Arc<crate::sys::Slots>)>,
    /// Sends on that socket, gathered for one `sendmmsg`; allocated at the first one.
    gather: Option<Box<crate::sys::SendBatch>>,
}

/// Binds a UDP socket in the loop (see [`Context::bind_udp`](crate::Context::bind_udp)).
pub(crate) fn bind(core: &mut Core, addr: SocketAddr) -> io::Result<UdpId> {
    let socket = UdpSocket::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind udp {addr}: {e}")))?;
    let datagram = Datagram { socket, refused: false, queued: false };
    core.insert(Entry::Udp(datagram), Interest::READABLE | Interest::WRITABLE).map(UdpId)
}

/// Sends one datagram, or gathers it into the batch being answered (see
/// [`Context::send_to`](crate::Context::send_to)), and counts it.
#[inline]
pub(crate) fn send_to(core: &mut Core, socket: UdpId, data: &[u8], to: SocketAddr) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if gather(core, socket, data, to)? {
        return Ok(());
    }
    let result = open(core, socket)?.send_now(data, to);
    let counters = core.counters_mut();
    match &result {
        Ok(()) => {
            counters.datagrams_out += 1;
            counters.bytes_out += data.len() as u64;
        }
        Err(e) if refusal(e) => counters.datagrams_refused += 1,
        Err(_) => {}
    }
    result
}

/// The kernel had no room for a datagram: `WouldBlock`, or `ENOBUFS` (a full device queue).
fn refusal(error: &io::Error) -> bool {
    crate::io_util::would_block(error) || error.raw_os_error() == Some(nix::libc::ENOBUFS)
}

/// Gathers a send made while the socket's receive batch is delivered; false when the socket is not
/// being answered (send it now). A full gather is flushed first, so order is kept. The socket needs no
/// lookup: the one being answered is open (closing it ends the answering).
#[cfg(target_os = "linux")]
#[inline]
fn gather(core: &mut Core, socket: UdpId, data: &[u8], to: SocketAddr) -> io::Result<bool> {
    let inbox = core.inbox();
    let Some((key, slots)) = &inbox.answering else { return Ok(false) };
    if *key != socket.0 {
        return Ok(false);
    }
    let batch = inbox.gather.get_or_insert_with(Box::default);
    if batch.push(data, to, slots) {
        return Ok(true);
    }
    flush(core);
    let inbox = core.inbox();
    let (Some(batch), Some((_, slots))) = (inbox.gather.as_mut(), &inbox.answering) else { return Ok(false) };
    Ok(batch.push(data, to, slots))
}

/// Sends what the socket being answered gathered, with one `sendmmsg` where the kernel takes it all,
/// and counts the outcome. A refusal with `EAGAIN` is reported at the next writable edge, as for a
/// single send.
#[cfg(target_os = "linux")]
fn flush(core: &mut Core) {
    let inbox = core.inbox();
    let Some(mut batch) = inbox.gather.take_if(|batch| !batch.is_empty()) else { return };
    let Some((key, slots)) = inbox.answering.take() else {
        inbox.gather = Some(batch);
        return;
    };
    let flushed = match core.datagram(key) {
        Some(datagram) => {
            let flushed = batch.flush(&datagram.socket, &slots);
            datagram.refused |= flushed.would_block;
            flushed
        }
        // Not reached: closing the socket flushes first and ends the answering.
        None => batch.discard(),
    };
    let counters = core.counters_mut();
    counters.datagrams_out += flushed.sent;
    counters.bytes_out += flushed.bytes;
    counters.datagrams_refused += flushed.refused;
    counters.datagrams_failed += flushed.failed;
    let inbox = core.inbox();
    (inbox.gather, inbox.answering) = (Some(batch), Some((key, slots)));
}

/// Ends the answering of the socket whose batch was delivered (or that closed): its gather is sent
/// and the receive slots are free to be received into again.
#[cfg(target_os = "linux")]
fn end_answering(core: &mut Core) {
    flush(core);
    core.inbox().answering = None;
}

/// Closes a UDP socket, after sending what it gathered.
pub(crate) fn close(core: &mut Core, socket: UdpId) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if core.inbox().answering.as_ref().is_some_and(|(key, _)| *key == socket.0) {
        end_answering(core);
    }
    core.remove(socket.0).map(drop).ok_or_else(|| closed(socket))
}

fn open(core: &mut Core, socket: UdpId) -> io::Result<&mut Datagram> {
    core.datagram(socket.0).ok_or_else(|| closed(socket))
}

fn closed(socket: UdpId) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{socket} is closed"))
}

/// A UDP socket is readable, writable, or both.
pub(crate) fn on_event<H: Handler>(
    core: &mut Core,
    handler: &mut H,
    buffer: &mut [u8],
    key: Key,
    event: &Event,
) {
    if event.is_writable()
        && let Some(datagram) = core.datagram(key)
        && datagram.refused
    {
        datagram.refused = false;
        handler.on_udp_writable(&mut Context { core }, UdpId(key));
    }
    if event.is_readable() {
        read(core, handler, buffer, key);
    }
}

/// A UDP socket on the ready list, with datagrams possibly left unread, gets its turn.
pub(crate) fn read_queued<H: Handler>(core: &mut Core, handler: &mut H, buffer: &mut [u8], key: Key) {
    let Some(datagram) = core.datagram(key) else { return };
    datagram.queued = false;
    read(core, handler, buffer, key);
}

/// Hands one received datagram to the application, or counts it as truncated.
fn deliver<H: Handler>(core: &mut Core, handler: &mut H, key: Key, data: &[u8], from: SocketAddr, cut: bool) {
    let counters = core.counters_mut();
    if cut {
        counters.datagrams_truncated += 1;
        return;
    }
    counters.datagrams_in += 1;
    counters.bytes_in += data.len() as u64;
    handler.on_datagram(&mut Context { core }, UdpId(key), data, from);
    crate::connection::close_scheduled(core, handler);
}

/// Delivers batches until the socket is drained (a short batch) or this turn's share is used up;
/// what each batch's callbacks sent goes out before the next batch is received.
#[cfg(target_os = "linux")]
fn read<H: Handler>(core: &mut Core, handler: &mut H, buffer: &mut [u8], key: Key) {
    // Lent out of the loop's state, so that the callbacks may have the loop while reading from it.
    let batch = core.inbox().batch.take();
    let mut batch = batch.unwrap_or_else(|| Box::new(crate::sys::RecvBatch::new(buffer.len())));
    read_batches(core, handler, &mut batch, key);
    core.inbox().batch = Some(batch);
}

/// Receives and delivers batches for [`read`].
#[cfg(target_os = "linux")]
fn read_batches<H: Handler>(core: &mut Core, handler: &mut H, batch: &mut crate::sys::RecvBatch, key: Key) {
    use crate::sys::DATAGRAM_BATCH;
    let mut taken = 0;
    while taken < DATAGRAMS_PER_TURN {
        let Some(datagram) = core.datagram(key) else { return };
        let count = match batch.receive(&datagram.socket) {
            Ok(count) => count,
            Err(e) if crate::io_util::would_block(&e) => return,
            Err(e) => {
                // EINTR, or an ICMP error from an earlier send (port unreachable) reported here: the
                // socket is fine. Counted against the budget so that a stream of them cannot hold the turn.
                if !crate::io_util::interrupted(&e) {
                    log::debug!("{}: {e}", UdpId(key));
                }
                taken += 1;
                continue;
            }
        };
        core.inbox().answering = Some((key, batch.slots()));
        for index in 0..count {
            let Some((data, Some(from), truncated)) = batch.get(index) else { continue };
            let removals = core.removals();
            deliver(core, handler, key, data, from, truncated);
            if core.removals() != removals && core.datagram(key).is_none() {
                // Closed by a callback: the rest of this batch has nowhere to go.
                return;
            }
        }
        end_answering(core);
        taken += count;
        if count < DATAGRAM_BATCH {
            return;
        }
    }
    queue(core, key);
}

/// Delivers datagrams one at a time until the socket is empty or this turn's share is used up.
#[cfg(not(target_os = "linux"))]
fn read<H: Handler>(core: &mut Core, handler: &mut H, buffer: &mut [u8], key: Key) {
    for _ in 0..DATAGRAMS_PER_TURN {
        let Some(datagram) = core.datagram(key) else { return };
        match crate::sys::recv_datagram(&datagram.socket, buffer) {
            Ok(one) => {
                let Some(from) = one.from else { continue };
                deliver(core, handler, key, &buffer[..one.len], from, one.truncated);
            }
            Err(e) if crate::io_util::would_block(&e) => return,
            // ICMP errors from an earlier send (port unreachable) surface here; the socket is fine.
            Err(e) => log::debug!("{}: {e}", UdpId(key)),
        }
    }
    queue(core, key);
}

/// Puts a socket with datagrams possibly left on the ready list, once.
fn queue(core: &mut Core, key: Key) {
    if let Some(datagram) = core.datagram(key)
        && !datagram.queued
    {
        datagram.queued = true;
        core.push_ready(key);
    }
}
