//! The two kinds of stream socket the loop serves, TCP and Unix, behind one type each for the
//! connection code ([`Stream`]) and the listener code ([`ListenSocket`]).
//!
//! Everything on the per-message path (`as_fd` for `recv`/`send`) is one predictable branch and is
//! inlined; what differs between the kinds (addresses, TCP_NODELAY, the Unix socket file) stays here.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd};

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use crate::Address;
use crate::unix_path::SocketFile;

/// A connected (or connecting) stream socket.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Our end's address.
    pub(crate) fn local_address(&self) -> io::Result<Address> {
        match self {
            Stream::Tcp(s) => s.local_addr().map(Address::Ip),
            Stream::Unix(s) => s.local_addr().map(|a| Address::from_unix(&a)),
        }
    }

    /// The peer's address; `NotConnected` while a connect is in progress.
    pub(crate) fn peer_address(&self) -> io::Result<Address> {
        match self {
            Stream::Tcp(s) => s.peer_addr().map(Address::Ip),
            Stream::Unix(s) => s.peer_addr().map(|a| Address::from_unix(&a)),
        }
    }

    /// SO_ERROR: the pending error, cleared.
    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Stream::Tcp(s) => s.take_error(),
            Stream::Unix(s) => s.take_error(),
        }
    }

    /// Shuts one or both directions.
    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }

    /// TCP_NODELAY; a Unix socket has no Nagle delay to turn off.
    pub(crate) fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nodelay(on),
            Stream::Unix(_) => Ok(()),
        }
    }
}

impl AsFd for Stream {
    #[inline]
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

impl Source for Stream {
    fn register(&mut self, registry: &Registry, token: Token, interest: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(registry, token, interest),
            Stream::Unix(s) => s.register(registry, token, interest),
        }
    }

    fn reregister(&mut self, registry: &Registry, token: Token, interest: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(registry, token, interest),
            Stream::Unix(s) => s.reregister(registry, token, interest),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(registry),
            Stream::Unix(s) => s.deregister(registry),
        }
    }
}

/// A listening socket. A Unix one owns its socket file, removed when the listener is dropped
/// (field order: the socket closes first, then the file goes).
#[derive(Debug)]
pub(crate) enum ListenSocket {
    Tcp(TcpListener),
    Unix(UnixListener, SocketFile),
}

impl ListenSocket {
    /// The address it is bound to (with the real port when it was bound to port 0).
    pub(crate) fn local_address(&self) -> io::Result<Address> {
        match self {
            ListenSocket::Tcp(l) => l.local_addr().map(Address::Ip),
            ListenSocket::Unix(_, file) => Ok(Address::Unix(file.path().to_path_buf())),
        }
    }

    /// Accepts one connection.
    pub(crate) fn accept(&self) -> io::Result<(Stream, Address)> {
        match self {
            ListenSocket::Tcp(l) => l.accept().map(|(s, a)| (Stream::Tcp(s), Address::Ip(a))),
            ListenSocket::Unix(l, _) => l.accept().map(|(s, a)| (Stream::Unix(s), Address::from_unix(&a))),
        }
    }
}

impl Source for ListenSocket {
    fn register(&mut self, registry: &Registry, token: Token, interest: Interest) -> io::Result<()> {
        match self {
            ListenSocket::Tcp(l) => l.register(registry, token, interest),
            ListenSocket::Unix(l, _) => l.register(registry, token, interest),
        }
    }

    fn reregister(&mut self, registry: &Registry, token: Token, interest: Interest) -> io::Result<()> {
        match self {
            ListenSocket::Tcp(l) => l.reregister(registry, token, interest),
            ListenSocket::Unix(l, _) => l.reregister(registry, token, interest),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            ListenSocket::Tcp(l) => l.deregister(registry),
            ListenSocket::Unix(l, _) => l.deregister(registry),
        }
    }
}
