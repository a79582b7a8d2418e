//! Listening sockets: socket → bind → listen(backlog), then accept until `WouldBlock`, with
//! admission and back-off.
//!
//! - **Budget**: at most [`Config::accept_budget`](crate::Config::accept_budget) connections a turn;
//!   the rest of the accept queue waits on the ready list for the next turn, so a connect flood cannot
//!   hold a turn while the peers already connected wait.
//! - **Admission**: at [`Config::max_connections`](crate::Config::max_connections) the listener holds,
//!   leaving peers in the kernel's accept queue, until one of the loop's connections closes.
//! - **Back-off**: out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), the listener holds
//!   until a connection closes or a timer fires, whose delay doubles on each failure up to
//!   [`Config::accept_backoff_max`](crate::Config::accept_backoff_max): the loop never spins on an
//!   accept queue it cannot take from. ECONNABORTED (a peer that left before it was accepted) is
//!   counted and skipped.
//!
//! The waiting list of held listeners lives in the table ([`Core`]), whose `remove` of a connection
//! wakes them.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mio::Interest;
use mio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};

use crate::core::{Core, Entry};
use crate::stats::AcceptErrorKind;
use crate::stream::{ListenSocket, Stream};
use crate::timer::TimerKind;
use crate::token::Key;
use crate::{Address, ConfigError, Handler, ListenerId};

/// How to open a listening socket, TCP or Unix, for [`Context::listen`](crate::Context::listen) and
/// [`EventLoop::listen`](crate::EventLoop::listen).
///
/// ```
/// let options = reactor::ListenerOptions::new("127.0.0.1:0".parse().unwrap()).backlog(128);
/// let socket = options.bind().unwrap();
/// assert_ne!(socket.local_addr().unwrap().port(), 0);
/// ```
///
/// A Unix listener ([`ListenerOptions::unix`]) removes a stale socket file at its path (one nobody
/// answers on), refuses with `AddrInUse` naming the path when a server answers there, and removes its
/// own socket file when it is closed or the loop is dropped. The TCP settings (`reuse_addr`,
/// `reuse_port`, `nodelay`) do not apply to it.
#[derive(Clone, Debug)]
pub struct ListenerOptions {
    /// Address to bind: an IP socket address (port 0 lets the kernel pick one) or a Unix socket path.
    pub addr: Address,
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
    /// A TCP listener. Defaults: backlog 1024, SO_REUSEADDR and TCP_NODELAY on, SO_REUSEPORT off.
    pub fn new(addr: SocketAddr) -> ListenerOptions {
        ListenerOptions::at(Address::Ip(addr))
    }

    /// A Unix domain socket listener at `path`, backlog 1024.
    pub fn unix(path: impl Into<PathBuf>) -> ListenerOptions {
        ListenerOptions::at(Address::Unix(path.into()))
    }

    /// A listener at `addr`, TCP or Unix, with the defaults of [`new`](Self::new).
    pub fn at(addr: Address) -> ListenerOptions {
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

    /// Creates the non-blocking TCP listening socket. Errors name the address (for example "address
    /// in use"); a Unix address is `InvalidInput` here (a Unix listener opens through
    /// [`Context::listen`](crate::Context::listen), which owns its socket file).
    pub fn bind(&self) -> io::Result<TcpListener> {
        let Address::Ip(addr) = self.addr else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("ListenerOptions::bind makes TCP listeners; open {} with Context::listen", self.addr),
            ));
        };
        let backlog = self.checked_backlog()?;
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(self.reuse_addr)?;
        if self.reuse_port {
            socket.set_reuse_port(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into()).map_err(|e| annotate(e, "bind", addr))?;
        socket.listen(backlog).map_err(|e| annotate(e, "listen on", addr))?;
        Ok(TcpListener::from_std(socket.into()))
    }

    fn checked_backlog(&self) -> io::Result<i32> {
        if self.backlog == 0 {
            return Err(ConfigError::ZeroBacklog.into());
        }
        Ok(i32::try_from(self.backlog).unwrap_or(i32::MAX))
    }

    /// The listening socket, TCP or Unix.
    fn open_socket(&self) -> io::Result<ListenSocket> {
        match &self.addr {
            Address::Ip(_) => self.bind().map(ListenSocket::Tcp),
            Address::Unix(path) => {
                let (socket, file) = crate::unix_path::bind(path, self.checked_backlog()?)?;
                Ok(ListenSocket::Unix(socket, file))
            }
            Address::UnixUnnamed => {
                Err(io::Error::new(io::ErrorKind::InvalidInput, "a Unix listener needs a path to bind"))
            }
        }
    }
}

fn annotate(error: io::Error, what: &str, addr: SocketAddr) -> io::Error {
    io::Error::new(error.kind(), format!("cannot {what} {addr}: {error}"))
}

/// A listener in the loop's table.
#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) socket: ListenSocket,
    nodelay: bool,
    /// Why accepting is suspended, if it is.
    hold: Option<Hold>,
    /// Delay before the next retry after exhaustion; doubles on each failure, resets on success.
    backoff: Duration,
    /// A retry timer is pending.
    retry_armed: bool,
    /// On the ready list: accepting goes on next turn (the per-turn accept budget ran out, or a
    /// connection closed while the listener was held).
    queued: bool,
    /// Errors to return from the next accepts instead of calling the kernel (fault injection).
    #[cfg(feature = "fault-injection")]
    injected: std::collections::VecDeque<i32>,
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

impl Listener {
    fn new(socket: ListenSocket, options: &ListenerOptions, backoff: Duration) -> Listener {
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

    /// Suspends accepting, for `hold`'s reason.
    pub(crate) fn hold(&mut self, hold: Hold) {
        self.hold = Some(hold);
    }

    /// Lifts the hold if it is `hold`; returns whether it was.
    pub(crate) fn release(&mut self, hold: Hold) -> bool {
        let held = self.hold == Some(hold);
        if held {
            self.hold = None;
        }
        held
    }

    /// A connection closed: lifts a hold that waited for one; returns whether there was one.
    pub(crate) fn resume_after_close(&mut self) -> bool {
        let waited = self.waits_for_close();
        if waited {
            self.hold = None;
        }
        waited
    }

    /// Marks the listener as on the ready list; false if it already was.
    pub(crate) fn set_queued(&mut self) -> bool {
        !std::mem::replace(&mut self.queued, true)
    }

    /// The address it is bound to (with the real port when it was bound to port 0).
    pub(crate) fn local_address(&self) -> io::Result<Address> {
        self.socket.local_address()
    }

    /// Accepts one connection: the seam where scripted errors replace the kernel's answer.
    fn accept_one(&mut self) -> io::Result<(Stream, Address)> {
        #[cfg(feature = "fault-injection")]
        if let Some(errno) = self.injected.pop_front() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        self.socket.accept()
    }
}

/// Opens a listener in the loop (see [`Context::listen`](crate::Context::listen)).
pub(crate) fn open(core: &mut Core, options: &ListenerOptions) -> io::Result<Key> {
    if !core.is_running() {
        return Err(io::Error::other("the loop is shutting down"));
    }
    let socket = options.open_socket()?;
    let listener = Listener::new(socket, options, core.config().accept_backoff);
    core.insert(Entry::Listener(listener), Interest::READABLE)
}

/// Accepts until `WouldBlock`, the connection cap, an error that says to back off, or the per-turn
/// accept budget: past it the listener waits on the ready list for the next turn, so that a connect
/// flood cannot hold one turn while the peers already connected wait.
pub(crate) fn accept<H: Handler>(core: &mut Core, handler: &mut H, key: Key) {
    for _ in 0..core.config().accept_budget {
        if !core.is_running() {
            return;
        }
        let (max, open) = (core.config().max_connections, core.accepted_open());
        let initial_backoff = core.config().accept_backoff;
        let Some(listener) = core.listener(key) else { return };
        if listener.hold.is_some() {
            return;
        }
        if open >= max {
            crate::lifecycle::listener_step(
                ListenerId(key),
                &listener.socket,
                format_args!("accept paused: at max_connections ({max}), new peers wait in the accept queue"),
            );
            core.hold_listener(key, Hold::AtCapacity);
            core.counters_mut().accept_paused_at_cap += 1;
            core.warn(format_args!("at max_connections ({max}): new peers wait in the accept queue"));
            return;
        }
        match listener.accept_one() {
            Ok((stream, peer)) => {
                crate::sys::no_sigpipe(&stream);
                listener.backoff = initial_backoff;
                if listener.nodelay {
                    let _ = stream.set_nodelay(true);
                }
                crate::connection::open_accepted(core, handler, key, stream, peer);
            }
            Err(e) if crate::io_util::would_block(&e) => return,
            Err(e) if crate::io_util::interrupted(&e) => {}
            Err(e) => {
                let kind = AcceptErrorKind::of(&e);
                core.counters_mut().accept_errors[kind as usize] += 1;
                if kind == AcceptErrorKind::Econnaborted {
                    continue;
                }
                back_off(core, key, &e);
                return;
            }
        }
    }
    core.queue_accept(key);
}

/// A listener on the ready list gets its turn.
pub(crate) fn accept_queued<H: Handler>(core: &mut Core, handler: &mut H, key: Key) {
    let Some(listener) = core.listener(key) else { return };
    listener.queued = false;
    accept(core, handler, key);
}

/// Out of descriptors or memory (or an unexpected error): stop accepting on this listener until a
/// connection closes or the back-off timer fires, so the loop never spins on a full accept queue.
fn back_off(core: &mut Core, key: Key, error: &io::Error) {
    let max = core.config().accept_backoff_max;
    let Some(listener) = core.listener(key) else { return };
    let delay = listener.backoff;
    listener.backoff = delay.saturating_mul(2).min(max);
    let arm = !listener.retry_armed;
    listener.retry_armed = true;
    crate::lifecycle::listener_step(
        ListenerId(key),
        &listener.socket,
        format_args!(
            "accept paused: {} ({error}), until a connection closes or {delay:?} pass",
            hostinfo::errno_name(error)
        ),
    );
    core.hold_listener(key, Hold::Exhausted);
    if arm {
        core.set_timer(delay, TimerKind::AcceptRetry(key));
    }
    let limit = hostinfo::fd_limit().map(|l| l.to_string()).unwrap_or_default();
    core.warn(format_args!(
        "accept failed: {error} ({}; fd limit {limit}); accepting again when a connection closes or in {delay:?}",
        hostinfo::errno_name(error)
    ));
}

/// The back-off timer fired: accept again, unless a closing connection already resumed it.
pub(crate) fn retry_timer_fired<H: Handler>(core: &mut Core, handler: &mut H, key: Key) {
    let Some(listener) = core.listener(key) else { return };
    listener.retry_armed = false;
    if core.release_listener(key, Hold::Exhausted) {
        if let Some(listener) = core.listener(key) {
            let id = ListenerId(key);
            crate::lifecycle::listener_step(
                id,
                &listener.socket,
                format_args!("accept resumed: the back-off passed"),
            );
        }
        accept(core, handler, key);
    }
}

/// Makes the listener's next accepts fail with `errnos`, then tries accepting (see
/// [`Context::inject_accept_errors`](crate::Context::inject_accept_errors)). False if it is closed.
#[cfg(feature = "fault-injection")]
pub(crate) fn inject_errors(core: &mut Core, key: Key, errnos: &[i32]) -> bool {
    let Some(listener) = core.listener(key) else { return false };
    listener.injected.extend(errnos);
    core.queue_accept(key);
    true
}
