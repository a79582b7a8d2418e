//! One datagram at a time, for the platforms without `recvmmsg` batching in this crate: `recvmsg(2)`,
//! which, unlike `recvfrom`, reports `MSG_TRUNC`, so a datagram longer than the buffer is known to be cut
//! short instead of being passed on as if whole.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsFd;

use rustix::io::Errno;
use rustix::net::{RecvAncillaryBuffer, RecvFlags, ReturnFlags};

/// One received datagram: its length in the buffer, its sender, and whether it was cut short.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OneDatagram {
    pub(crate) len: usize,
    pub(crate) from: Option<SocketAddr>,
    pub(crate) truncated: bool,
}

/// One `recvmsg`, retried on `EINTR`.
pub(crate) fn recv_datagram(socket: impl AsFd, buffer: &mut [u8]) -> io::Result<OneDatagram> {
    loop {
        let mut control = RecvAncillaryBuffer::default();
        match rustix::net::recvmsg(&socket, &mut [IoSliceMut::new(buffer)], &mut control, RecvFlags::empty())
        {
            Ok(message) => {
                return Ok(OneDatagram {
                    len: message.bytes.min(buffer.len()),
                    from: message.address.and_then(|a| SocketAddr::try_from(a).ok()),
                    truncated: message.flags.contains(ReturnFlags::TRUNC),
                });
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
