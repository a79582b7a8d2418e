//! Listening sockets: socket → bind → listen(backlog), and what the loop remembers about each.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};

use crate::ConfigError;

/// How to open a listening socket, for [`Context::listen`](crate::Context::listen) and
/// [`EventLoop::listen`](crate::EventLoop::listen).
///
/// ```
/// let options = reactor::ListenerOptions::new("127.0.0.1:0".parse().unwrap()).backlog(128);
/// let socket = options.bind().unwrap();
/// assert_ne!(socket.local_addr().unwrap().port(), 0);
/// ```
#[derive(Clone, Debug)]
pub struct ListenerOptions {
    /// Address to bind; port 0 lets the kernel pick one.
    pub addr: SocketAddr,
    /// The value passed to `listen(2)`: how many completed connections the kernel queues for us while we
    /// are not accepting. Linux caps it at `net.core.somaxconn`.
    pub backlog: u32,
    /// SO_REUSEADDR: rebind at once although old connections on the port linger in TIME_WAIT.
    pub reuse_addr: bool,
    /// SO_REUSEPORT: several sockets (threads, processes) listen on one port and the kernel spreads
    /// connections among them.
    pub reuse_port: bool,
    /// TCP_NODELAY on accepted connections: send small writes at once instead of waiting to coalesce.
    pub nodelay: bool,
    /// Accept nothing: connections complete in the kernel and wait in the accept queue (for backlog
    /// experiments).
    pub paused: bool,
}

impl ListenerOptions {
    /// Defaults: backlog 1024, SO_REUSEADDR and TCP_NODELAY on, SO_REUSEPORT off.
    pub fn new(addr: SocketAddr) -> ListenerOptions {
        ListenerOptions {
            addr,
            backlog: 1024,
            reuse_addr: true,
            reuse_port: false,
            nodelay: true,
            paused: false,
        }
    }

    /// Sets the listen backlog.
    pub fn backlog(mut self, backlog: u32) -> ListenerOptions {
        self.backlog = backlog;
        self
    }

    /// Sets SO_REUSEPORT.
    pub fn reuse_port(mut self, on: bool) -> ListenerOptions {
        self.reuse_port = on;
        self
    }

    /// Sets TCP_NODELAY for accepted connections.
    pub fn nodelay(mut self, on: bool) -> ListenerOptions {
        self.nodelay = on;
        self
    }

    /// Listen but never accept.
    pub fn paused(mut self, on: bool) -> ListenerOptions {
        self.paused = on;
        self
    }

    /// Creates the non-blocking listening socket. Errors name the address (for example "address in
    /// use").
    pub fn bind(&self) -> io::Result<TcpListener> {
        if self.backlog == 0 {
            return Err(ConfigError::ZeroBacklog.into());
        }
        let socket = Socket::new(Domain::for_address(self.addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(self.reuse_addr)?;
        if self.reuse_port {
            socket.set_reuse_port(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&self.addr.into()).map_err(|e| annotate(e, "bind", self.addr))?;
        let backlog = i32::try_from(self.backlog).unwrap_or(i32::MAX);
        socket.listen(backlog).map_err(|e| annotate(e, "listen on", self.addr))?;
        Ok(TcpListener::from_std(socket.into()))
    }
}

fn annotate(error: io::Error, what: &str, addr: SocketAddr) -> io::Error {
    io::Error::new(error.kind(), format!("cannot {what} {addr}: {error}"))
}

/// A listener in the loop's table.
#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) socket: TcpListener,
    pub(crate) nodelay: bool,
    /// Why accepting is suspended, if it is.
    pub(crate) hold: Option<Hold>,
    /// Delay before the next retry after exhaustion; doubles on each failure, resets on success.
    pub(crate) backoff: Duration,
    /// A retry timer is pending.
    pub(crate) retry_armed: bool,
    /// On the ready list: accepting goes on next turn (the per-turn accept budget ran out, or a
    /// connection closed while the listener was held).
    pub(crate) queued: bool,
    /// Errors to return from the next accepts instead of calling the kernel (fault injection).
    #[cfg(feature = "fault-injection")]
    pub(crate) injected: std::collections::VecDeque<i32>,
}

impl Listener {
    pub(crate) fn new(socket: TcpListener, options: &ListenerOptions, backoff: Duration) -> Listener {
        Listener {
            socket,
            nodelay: options.nodelay,
            hold: options.paused.then_some(Hold::Paused),
            backoff,
            retry_armed: false,
            queued: false,
            #[cfg(feature = "fault-injection")]
            injected: Default::default(),
        }
    }

    /// Held until a connection closes (at capacity, or out of descriptors or memory).
    pub(crate) fn waits_for_close(&self) -> bool {
        matches!(self.hold, Some(Hold::AtCapacity | Hold::Exhausted))
    }

    /// Accepts one connection: the seam where scripted errors replace the kernel's answer.
    pub(crate) fn accept(&mut self) -> io::Result<(mio::net::TcpStream, SocketAddr)> {
        #[cfg(feature = "fault-injection")]
        if let Some(errno) = self.injected.pop_front() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        self.socket.accept()
    }
}

/// Why a listener is not accepting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hold {
    /// The application asked for a listener that never accepts.
    Paused,
    /// `max_connections` reached: resume when one closes.
    AtCapacity,
    /// Out of descriptors or memory: resume when one closes, or on the back-off timer.
    Exhausted,
}
