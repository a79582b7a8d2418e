//! Outbound sockets: socket → (bind) → connect, without blocking; and what every stream socket needs
//! once, whichever way it came.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Creates a non-blocking TCP socket and starts connecting it. `EINPROGRESS` is the normal answer and is
/// not an error; anything else the kernel says at once is.
///
/// On Apple's systems `Socket::new` sets `SO_NOSIGPIPE` itself (socket2 documents it), so an outbound
/// socket needs no [`no_sigpipe`] of its own.
pub(crate) fn connect_nonblocking(addr: SocketAddr, bind: Option<SocketAddr>) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    if let Some(local) = bind {
        if local.port() == 0 {
            // Let connect() choose the port for the whole 4-tuple, so each source address can use the
            // entire ephemeral range against each destination instead of sharing it. Where the option
            // does not exist, bind(ip, 0) picks the port now, from the range the address shares with
            // every destination.
            bind_address_no_port(&socket)?;
        }
        socket.bind(&local.into())?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => Ok(socket),
        Err(e) if e.raw_os_error() == Some(nix::libc::EINPROGRESS) => Ok(socket),
        Err(e) => Err(e),
    }
}

/// IP_BIND_ADDRESS_NO_PORT: Linux only.
#[cfg(target_os = "linux")]
fn bind_address_no_port(socket: &Socket) -> io::Result<()> {
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::IpBindAddressNoPort, &true)
        .map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn bind_address_no_port(_: &Socket) -> io::Result<()> {
    Ok(())
}

/// Makes sure a `send` on an accepted stream never raises SIGPIPE. Apple's systems have no
/// `MSG_NOSIGNAL`, so there the socket itself must say so (`SO_NOSIGPIPE`), once, before anything is
/// sent; elsewhere [`send`](super::send) asks per call and this does nothing. Accepted sockets inherit
/// the option from a listener that has it, but a listener may come from anywhere.
///
/// A failure is logged and otherwise ignored: the option cannot fail on a valid TCP socket, and the
/// listener's inherited option still covers it.
pub(crate) fn no_sigpipe(stream: &impl std::os::fd::AsFd) {
    #[cfg(target_vendor = "apple")]
    if let Err(e) = socket2::SockRef::from(stream).set_nosigpipe(true) {
        log::warn!("cannot set SO_NOSIGPIPE on an accepted socket: {e}");
    }
    #[cfg(not(target_vendor = "apple"))]
    let _ = stream;
}
