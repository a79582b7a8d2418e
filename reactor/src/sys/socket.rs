//! Outbound sockets: socket → (bind) → connect, without blocking.

use std::io;

use socket2::{Domain, Protocol, Socket, Type};

use crate::ConnectOptions;

/// Creates a non-blocking socket and starts connecting it. `EINPROGRESS` is the normal answer and is
/// not an error; anything else the kernel says at once is.
pub(crate) fn connect_nonblocking(options: &ConnectOptions) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(options.addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    if let Some(local) = options.bind {
        if local.port() == 0 {
            // Let connect() choose the port for the whole 4-tuple, so each source address can use the
            // entire ephemeral range against each destination instead of sharing it.
            bind_address_no_port(&socket)?;
        }
        socket.bind(&local.into())?;
    }
    match socket.connect(&options.addr.into()) {
        Ok(()) => Ok(socket),
        Err(e) if e.raw_os_error() == Some(nix::libc::EINPROGRESS) => Ok(socket),
        Err(e) => Err(e),
    }
}

#[cfg(target_os = "linux")]
fn bind_address_no_port(socket: &Socket) -> io::Result<()> {
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::IpBindAddressNoPort, &true)
        .map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn bind_address_no_port(_: &Socket) -> io::Result<()> {
    Ok(())
}
