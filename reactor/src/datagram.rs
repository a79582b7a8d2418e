//! UDP sockets: datagrams in, datagrams out, no connections.
//!
//! Each datagram stands alone: there is no accept, no stream and no queue. Reading drains the socket
//! until `WouldBlock` (within a per-turn budget, like connections); a send either hands the whole
//! datagram to the kernel or fails, and `WouldBlock` is reported to the caller and counted rather than
//! hidden in an unbounded queue. The socket stays registered for WRITABLE so that a sender refused
//! with `WouldBlock` hears, through [`Handler::on_udp_writable`], when the kernel has room again.

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
    /// Sends one datagram; a refusal with `WouldBlock` is remembered, to report the next writable edge.
    fn send_to(&mut self, data: &[u8], to: SocketAddr) -> io::Result<()> {
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

/// Binds a UDP socket in the loop (see [`Context::bind_udp`](crate::Context::bind_udp)).
pub(crate) fn bind(core: &mut Core, addr: SocketAddr) -> io::Result<UdpId> {
    let socket = UdpSocket::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind udp {addr}: {e}")))?;
    let datagram = Datagram { socket, refused: false, queued: false };
    core.insert(Entry::Udp(datagram), Interest::READABLE | Interest::WRITABLE).map(UdpId)
}

/// Sends one datagram and counts it (see [`Context::send_to`](crate::Context::send_to)).
pub(crate) fn send_to(core: &mut Core, socket: UdpId, data: &[u8], to: SocketAddr) -> io::Result<()> {
    let result = open(core, socket)?.send_to(data, to);
    let counters = core.counters_mut();
    match &result {
        Ok(()) => {
            counters.datagrams_out += 1;
            counters.bytes_out += data.len() as u64;
        }
        Err(e) if crate::io_util::would_block(e) => counters.datagrams_refused += 1,
        Err(_) => {}
    }
    result
}

/// The address a UDP socket is bound to.
/// Closes a UDP socket.
pub(crate) fn close(core: &mut Core, socket: UdpId) -> io::Result<()> {
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

/// Delivers datagrams until the socket is empty or this turn's share is used up.
fn read<H: Handler>(core: &mut Core, handler: &mut H, buffer: &mut [u8], key: Key) {
    for _ in 0..DATAGRAMS_PER_TURN {
        let Some(datagram) = core.datagram(key) else { return };
        match datagram.socket.recv_from(buffer) {
            Ok((n, from)) => {
                let counters = core.counters_mut();
                counters.datagrams_in += 1;
                counters.bytes_in += n as u64;
                handler.on_datagram(&mut Context { core }, UdpId(key), &buffer[..n], from);
                crate::connection::close_scheduled(core, handler);
            }
            Err(e) if crate::io_util::would_block(&e) => return,
            Err(e) if crate::io_util::interrupted(&e) => {}
            // ICMP errors from an earlier send (port unreachable) surface here; the socket is fine.
            Err(e) => log::debug!("{}: {e}", UdpId(key)),
        }
    }
    if let Some(datagram) = core.datagram(key)
        && !datagram.queued
    {
        datagram.queued = true;
        core.push_ready(key);
    }
}
