//! UDP sockets: datagrams in, datagrams out, no connections.
//!
//! Each datagram stands alone: there is no accept, no stream and no queue. Reading drains the socket
//! until `WouldBlock` (within a per-turn budget, like connections); a send either hands the whole
//! datagram to the kernel or fails, and `WouldBlock` is reported to the caller and counted rather than
//! hidden in an unbounded queue. The socket stays registered for WRITABLE so that a sender refused
//! with `WouldBlock` hears, through [`Handler::on_udp_writable`](crate::Handler::on_udp_writable), when
//! the kernel has room again.

use std::io;
use std::net::SocketAddr;

use mio::Interest;
use mio::net::UdpSocket;

use crate::core::Entry;
use crate::dispatch::Inner;
use crate::token::Key;
use crate::{Context, Handler, UdpId};

/// Datagrams one socket may deliver in one loop turn before the others get their turn.
const DATAGRAMS_PER_TURN: usize = 256;

/// A UDP socket in the loop's table.
#[derive(Debug)]
pub(crate) struct Datagram {
    pub(crate) socket: UdpSocket,
    /// A send was refused with `WouldBlock`: tell the application at the next writable edge.
    pub(crate) refused: bool,
    /// On the ready list, with datagrams possibly left unread.
    pub(crate) queued: bool,
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

impl Context<'_> {
    /// Binds a UDP socket; datagrams arrive as [`Handler::on_datagram`](crate::Handler::on_datagram).
    pub fn bind_udp(&mut self, addr: SocketAddr) -> io::Result<UdpId> {
        let socket = UdpSocket::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind udp {addr}: {e}")))?;
        let datagram = Datagram { socket, refused: false, queued: false };
        let key = self.core.insert(Entry::Udp(datagram), Interest::READABLE | Interest::WRITABLE)?;
        Ok(UdpId(key))
    }

    /// Sends one datagram to `to`. `WouldBlock` means the kernel's buffer is full and the datagram was
    /// not sent (and counted in [`Counters::datagrams_refused`](crate::Counters)): send it again after
    /// [`Handler::on_udp_writable`](crate::Handler::on_udp_writable), or drop it knowingly.
    pub fn send_to(&mut self, socket: UdpId, data: &[u8], to: SocketAddr) -> io::Result<()> {
        let Some(datagram) = self.core.datagram(socket.0) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{socket} is closed")));
        };
        let result = datagram.send_to(data, to);
        let counters = self.core.counters_mut();
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
    pub fn udp_local_addr(&mut self, socket: UdpId) -> io::Result<SocketAddr> {
        match self.core.datagram(socket.0) {
            Some(d) => d.socket.local_addr(),
            None => Err(io::Error::new(io::ErrorKind::NotFound, format!("{socket} is closed"))),
        }
    }

    /// Closes a UDP socket.
    pub fn close_udp(&mut self, socket: UdpId) -> io::Result<()> {
        match self.core.remove(socket.0) {
            Some(_) => Ok(()),
            None => Err(io::Error::new(io::ErrorKind::NotFound, format!("{socket} is closed"))),
        }
    }
}

impl<H: Handler> Inner<H> {
    /// A UDP socket is readable, writable, or both.
    pub(crate) fn datagram_event(&mut self, key: Key, event: &mio::event::Event) {
        if event.is_writable()
            && let Some(datagram) = self.core.datagram(key)
            && datagram.refused
        {
            datagram.refused = false;
            self.handler.on_udp_writable(&mut Context { core: &mut self.core }, UdpId(key));
        }
        if event.is_readable() {
            self.read_datagrams(key);
        }
    }

    /// Delivers datagrams until the socket is empty or this turn's share is used up.
    pub(crate) fn read_datagrams(&mut self, key: Key) {
        for _ in 0..DATAGRAMS_PER_TURN {
            let Some(datagram) = self.core.datagram(key) else { return };
            match datagram.socket.recv_from(&mut self.read_buffer) {
                Ok((n, from)) => {
                    let counters = self.core.counters_mut();
                    counters.datagrams_in += 1;
                    counters.bytes_in += n as u64;
                    let data = &self.read_buffer[..n];
                    self.handler.on_datagram(&mut Context { core: &mut self.core }, UdpId(key), data, from);
                    self.close_scheduled();
                }
                Err(e) if crate::io_util::would_block(&e) => return,
                Err(e) if crate::io_util::interrupted(&e) => {}
                // ICMP errors from an earlier send (port unreachable) surface here; the socket is fine.
                Err(e) => log::debug!("{}: {e}", UdpId(key)),
            }
        }
        if let Some(datagram) = self.core.datagram(key)
            && !datagram.queued
        {
            datagram.queued = true;
            self.core.push_ready(key);
        }
    }
}
