//! The embedding API: what the loop tells the application, and what the application answers.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use mio::event::Event;

use crate::{Address, ConnId, Context, ListenerId, SourceId, TimerId, UdpId};

/// The application's side of the loop. Only [`on_data`](Handler::on_data) is required; every other
/// callback has a sensible default.
///
/// Callbacks run on the loop's thread and must not block: a callback that waits stalls every
/// connection. Everything a callback wants done (send, close, connect, set a timer) goes through the
/// [`Context`].
///
/// # The life of one connection, as callbacks
/// | order | callback | when | what may follow |
/// |---|---|---|---|
/// | 1 | [`on_open`](Handler::on_open) | accepted, or an outbound connect completed | data, EOF, close |
/// | 2… | [`on_data`](Handler::on_data) | bytes arrived, in order; its [`Next`] pauses or closes | more data, EOF, drained, close |
/// | any | [`on_drained`](Handler::on_drained) | output that had to queue is all written | data, EOF, close |
/// | 3 | [`on_eof`](Handler::on_eof) | the peer will send nothing more; its [`AfterEof`] says what next | drained, close |
/// | last | [`on_close`](Handler::on_close) | gone, whatever the reason; exactly once | nothing: the id is dead |
///
/// An outbound connect that fails gets only `on_close`, with [`CloseKind::ConnectFailed`]. A
/// connection closed by the application ([`Next::Close`], [`Context::close`]) gets no more `on_data`;
/// the loop flushes its output and reads (and discards) until the peer's FIN or a short linger.
///
/// # Example: a line counter
/// Counts the lines each peer sends, answers each with its number, and says goodbye on EOF:
/// ```
/// use std::collections::HashMap;
/// use reactor::{AfterEof, CloseReason, ConnId, Context, Handler, Next, Origin};
///
/// #[derive(Default)]
/// struct Lines { seen: HashMap<ConnId, u64> }
///
/// impl Handler for Lines {
///     type Message = ();
///
///     fn on_open(&mut self, _: &mut Context<'_>, conn: ConnId, _: Origin) {
///         self.seen.insert(conn, 0);
///     }
///
///     fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
///         let count = self.seen.entry(conn).or_default();
///         for _ in data.iter().filter(|b| **b == b'\n') {
///             *count += 1;
///             if ctx.send(conn, format!("{count}\n").as_bytes()).is_err() {
///                 // The queue is full (a peer that does not read): drop it.
///                 return Next::Close;
///             }
///         }
///         Next::Continue
///     }
///
///     fn on_eof(&mut self, ctx: &mut Context<'_>, conn: ConnId) -> AfterEof {
///         let _ = ctx.send(conn, b"bye\n");
///         AfterEof::Close // flush, then close
///     }
///
///     fn on_close(&mut self, _: &mut Context<'_>, conn: ConnId, reason: &CloseReason) {
///         let lines = self.seen.remove(&conn).unwrap_or(0);
///         println!("{conn} closed after {lines} lines: {reason}");
///     }
/// }
/// # use std::io::{Read, Write};
/// # let mut event_loop = reactor::EventLoop::new(reactor::Config::default(), Lines::default())?;
/// # let (_, addr) = event_loop.listen(&reactor::ListenerOptions::new("127.0.0.1:0".parse().unwrap()))?;
/// # let handle = event_loop.handle();
/// # let server = std::thread::spawn(move || event_loop.run().map(|()| event_loop.into_handler()));
/// # let mut peer = std::net::TcpStream::connect(addr)?;
/// # peer.write_all(b"one\ntwo\n")?;
/// # peer.shutdown(std::net::Shutdown::Write)?;
/// # let mut answer = String::new();
/// # peer.read_to_string(&mut answer)?;
/// # assert_eq!(answer, "1\n2\nbye\n");
/// # handle.shutdown(std::time::Duration::from_secs(1))?;
/// # assert!(server.join().unwrap()?.seen.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Handler {
    /// What other threads can deliver through a [`Handle`](crate::Handle). Use `()` if unused.
    type Message: Send + 'static;

    /// Bytes arrived on `conn`. `data` lives in the loop's shared read buffer: copy what must outlive the
    /// call. The answer says whether to keep reading from this peer.
    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next;

    /// A connection is open: accepted from one of the loop's listeners, or an outbound connect completed.
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, origin: Origin) {
        let _ = (ctx, conn, origin);
    }

    /// The peer closed its sending side (it will send nothing more; it may still read). The default
    /// finishes the conversation: flush what is queued, shut our sending side, close.
    fn on_eof(&mut self, ctx: &mut Context<'_>, conn: ConnId) -> AfterEof {
        let _ = (ctx, conn);
        AfterEof::Close
    }

    /// A connection is gone: its socket is closed and its id is no longer valid. Called exactly once for
    /// every connection, whatever the reason, including outbound connects that failed.
    fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, reason: &CloseReason) {
        let _ = (ctx, conn, reason);
    }

    /// Everything queued for `conn` has been written (called only after a send had to queue). Use it to
    /// resume a producer that [`Context::send`] refused with `WouldBlock`.
    fn on_drained(&mut self, ctx: &mut Context<'_>, conn: ConnId) {
        let _ = (ctx, conn);
    }

    /// A timer set with [`Context::set_timer`] expired.
    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId, tag: u64) {
        let _ = (ctx, timer, tag);
    }

    /// Another thread sent a message through a [`Handle`](crate::Handle).
    fn on_message(&mut self, ctx: &mut Context<'_>, message: Self::Message) {
        let _ = (ctx, message);
    }

    /// A source registered with [`Context::register`] is ready. Drain it until `WouldBlock`: readiness
    /// is edge-triggered and will not be reported again for data already there.
    fn on_source_ready(&mut self, ctx: &mut Context<'_>, source: SourceId, event: &Event) {
        let _ = (ctx, source, event);
    }

    /// A datagram arrived on a UDP socket bound with [`Context::bind_udp`]. `data` lives in the loop's
    /// receive buffer. A datagram longer than [`Config::read_buffer`](crate::Config) (at most 64 KiB
    /// on Linux) is cut short by the kernel: it is counted in
    /// [`Counters::datagrams_truncated`](crate::Counters) and never delivered here.
    fn on_datagram(&mut self, ctx: &mut Context<'_>, socket: UdpId, data: &[u8], from: SocketAddr) {
        let _ = (ctx, socket, data, from);
    }

    /// A UDP socket whose send was refused with `WouldBlock` has room again.
    fn on_udp_writable(&mut self, ctx: &mut Context<'_>, socket: UdpId) {
        let _ = (ctx, socket);
    }

    /// A graceful shutdown began ([`Context::shutdown`] or [`Handle::shutdown`](crate::Handle::shutdown)):
    /// listeners are already closed, and every connection will be flushed and closed.
    fn on_shutdown(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }
}

/// What [`Handler::on_data`] wants next for the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Keep reading.
    Continue,
    /// Stop reading from this peer until [`Context::resume_reading`]; unread bytes wait in the kernel,
    /// whose window then slows the peer down.
    Pause,
    /// Flush what is queued, then close.
    Close,
}

/// What happens after the peer's EOF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterEof {
    /// Flush what is queued, shut our sending side, then close.
    Close,
    /// Leave the connection open for writing; the application closes or half-closes it later.
    KeepOpen,
}

/// How a connection came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Accepted on one of the loop's listeners.
    Accepted(ListenerId),
    /// An outbound connect made with [`Context::connect`] completed.
    Connected,
}

/// Why a connection closed: what happened ([`CloseKind`], what the loop counts) and, where the OS
/// reported it, the error.
///
/// ```
/// use reactor::{CloseKind, CloseReason};
/// fn log(reason: &CloseReason) {
///     match (reason.kind(), reason.error()) {
///         (CloseKind::ConnectFailed, Some(e)) => eprintln!("connect failed: {e}"),
///         (kind, _) => eprintln!("closed: {}", kind.name()),
///     }
/// }
/// # let _ = log;
/// ```
#[derive(Debug)]
pub struct CloseReason {
    kind: CloseKind,
    error: Option<io::Error>,
}

impl CloseReason {
    /// What happened.
    pub fn kind(&self) -> CloseKind {
        self.kind
    }

    /// The error the OS reported, for [`CloseKind::Reset`], [`CloseKind::ConnectFailed`] and
    /// [`CloseKind::Error`]; `None` for the others.
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }

    /// A reason with no error behind it.
    pub(crate) fn of(kind: CloseKind) -> CloseReason {
        CloseReason { kind, error: None }
    }

    /// A failed outbound connect.
    pub(crate) fn connect_failed(error: io::Error) -> CloseReason {
        CloseReason { kind: CloseKind::ConnectFailed, error: Some(error) }
    }

    /// An error that is not a reset (a poller that refused a registration, say).
    pub(crate) fn io_error(error: io::Error) -> CloseReason {
        CloseReason { kind: CloseKind::Error, error: Some(error) }
    }

    /// An I/O error on an open connection: a reset when the peer went away, an error otherwise.
    pub(crate) fn from_io(error: io::Error) -> CloseReason {
        let kind = match error.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted => {
                CloseKind::Reset
            }
            _ => CloseKind::Error,
        };
        CloseReason { kind, error: Some(error) }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            Some(e) => write!(f, "{}: {e}", self.kind.name()),
            None => f.write_str(self.kind.name()),
        }
    }
}

/// What ended a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseKind {
    /// The conversation ended normally: the peer sent EOF and everything was flushed.
    PeerClosed,
    /// The application closed it ([`Next::Close`], [`Context::close`]) after flushing.
    Local,
    /// The application aborted it ([`Context::abort`]): queued output was dropped.
    Aborted,
    /// The peer reset the connection (ECONNRESET, EPIPE, ECONNABORTED).
    Reset,
    /// No byte moved for [`Config::idle_timeout`](crate::Config::idle_timeout).
    IdleTimeout,
    /// The loop shut down; output was flushed where the timeout allowed.
    Shutdown,
    /// An outbound connect failed (for example ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH).
    ConnectFailed,
    /// Any other I/O error on the socket.
    Error,
}

impl CloseKind {
    /// Every kind, in the order [`Counters`](crate::Counters) keeps them.
    pub const ALL: [CloseKind; 8] = [
        CloseKind::PeerClosed,
        CloseKind::Local,
        CloseKind::Aborted,
        CloseKind::Reset,
        CloseKind::IdleTimeout,
        CloseKind::Shutdown,
        CloseKind::ConnectFailed,
        CloseKind::Error,
    ];

    /// A short snake_case name for logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            CloseKind::PeerClosed => "peer_closed",
            CloseKind::Local => "local",
            CloseKind::Aborted => "aborted",
            CloseKind::Reset => "reset",
            CloseKind::IdleTimeout => "idle_timeout",
            CloseKind::Shutdown => "shutdown",
            CloseKind::ConnectFailed => "connect_failed",
            CloseKind::Error => "error",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Where to connect and how, for [`Context::connect_with`]: over TCP, or to a Unix socket path
/// ([`ConnectOptions::unix`]).
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// The peer: an IP socket address or a Unix socket path.
    pub addr: Address,
    /// Bind to this local address first (port 0 lets the kernel choose the port at connect time, so many
    /// source addresses can each use the whole ephemeral range). TCP only: a Unix connect with a bind
    /// address is refused with `InvalidInput`.
    pub bind: Option<SocketAddr>,
    /// Set TCP_NODELAY once connected (TCP only).
    pub nodelay: bool,
}

impl ConnectOptions {
    /// Connect to `addr` from any local address, with TCP_NODELAY.
    pub fn new(addr: SocketAddr) -> ConnectOptions {
        ConnectOptions::to(Address::Ip(addr))
    }

    /// Connect to the Unix domain socket at `path`.
    pub fn unix(path: impl Into<std::path::PathBuf>) -> ConnectOptions {
        ConnectOptions::to(Address::Unix(path.into()))
    }

    /// Connect to `addr`, TCP or Unix, with the defaults of [`new`](Self::new).
    pub fn to(addr: Address) -> ConnectOptions {
        ConnectOptions { addr, bind: None, nodelay: true }
    }
}
