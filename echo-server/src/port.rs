//! One server per port. SO_REUSEPORT, which lets our loops (`--threads`) and processes (`--workers`)
//! share a listening port, lets any other socket of the same user join them just as well: a second
//! instance started on the same address would bind, say it listens, and take a share of the traffic.
//! So before binding such a group we check that nobody serves the address yet.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Fails with "address in use", naming `addr`, when a socket already listens on it (ours or anyone's).
///
/// The check binds a probe socket WITHOUT SO_REUSEPORT, so that an existing reuse-port group does not
/// admit it, and drops it again. It sets SO_REUSEADDR, as our listeners do, so that connections of an
/// earlier server lingering in TIME_WAIT do not count as a server. Port 0 needs no check: the kernel
/// picks a port nobody holds.
///
/// This narrows the window rather than closing it: two instances started at the same instant can both
/// pass the probe before either binds its group. Closing it would take a lock outside the socket API
/// (a lock file per port, say); the check is aimed at the common mistake of starting a server twice.
pub fn check_unserved(addr: SocketAddr) -> io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into()).map_err(|e| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))
}
