//! What a callback can ask of the loop.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::Interest;
use mio::event::Source;

use crate::core::Core;
use crate::handler::{CloseKind, ConnectOptions};
use crate::listener::ListenerOptions;
use crate::stats::Counters;
use crate::timer::TimerKind;
use crate::token::Key;
use crate::{Address, ConnId, ListenerId, SocketId, SourceId, TimerId, UdpId};

/// The loop, as seen from inside a [`Handler`](crate::Handler) callback.
///
/// Calls on a connection that has closed fail with `io::ErrorKind::NotConnected`; the application
/// learns why through [`Handler::on_close`](crate::Handler::on_close), which every connection gets
/// exactly once.
pub struct Context<'a> {
    pub(crate) core: &'a mut Core,
}

impl Context<'_> {
    /// Sends `data`: written to the socket at once where it has room, the rest queued and written as the
    /// peer reads. Past [`Config::high_watermark`](crate::Config::high_watermark) of queued output the
    /// loop stops reading from this peer until it drains.
    ///
    /// Errors: `NotConnected` for a closed connection; `BrokenPipe` after a close or half-close;
    /// `WouldBlock` when the queue would pass [`Config::max_output`](crate::Config::max_output) (nothing
    /// is taken: send again after [`Handler::on_drained`](crate::Handler::on_drained)); `InvalidInput`
    /// for a single `data` larger than `max_output`. A write error on the socket, or the poller refusing
    /// to watch it for room, is not returned here: it closes the connection and arrives as
    /// [`on_close`](crate::Handler::on_close).
    pub fn send(&mut self, conn: ConnId, data: &[u8]) -> io::Result<()> {
        crate::connection::write::send(self.core, conn.0, data)
    }

    /// Closes gracefully: stop reading, flush what is queued, send FIN, then close (after the peer's FIN,
    /// or a short linger).
    pub fn close(&mut self, conn: ConnId) -> io::Result<()> {
        crate::connection::write::close(self.core, conn.0, CloseKind::Local)
    }

    /// Closes at once: drop queued output and reset the connection.
    pub fn abort(&mut self, conn: ConnId) -> io::Result<()> {
        crate::connection::write::abort(self.core, conn.0)
    }

    /// Half-closes: flush what is queued, then shut our sending side (the peer reads EOF) while still
    /// reading what the peer sends.
    pub fn shutdown_write(&mut self, conn: ConnId) -> io::Result<()> {
        crate::connection::write::shutdown_write(self.core, conn.0)
    }

    /// Stops reading from `conn` until [`resume_reading`](Self::resume_reading). Unread data stays in
    /// the kernel, whose receive window then holds the peer back. After [`close`](Self::close) it does
    /// nothing: the loop then reads only to discard until the peer's FIN.
    pub fn pause_reading(&mut self, conn: ConnId) -> io::Result<()> {
        self.core.live_connection(conn)?.state.pause_by_app();
        Ok(())
    }

    /// Reads from `conn` again, including data that arrived while it was paused, whatever happened
    /// meanwhile: after [`shutdown_write`](Self::shutdown_write) in particular, reading goes on until
    /// the peer's EOF.
    pub fn resume_reading(&mut self, conn: ConnId) -> io::Result<()> {
        self.core.live_connection(conn)?.state.resume_by_app();
        crate::connection::queue_read(self.core, conn.0);
        Ok(())
    }

    /// Bytes queued for `conn` and not yet written.
    pub fn queued(&mut self, conn: ConnId) -> io::Result<usize> {
        Ok(self.core.live_connection(conn)?.output.len())
    }

    /// The peer's IP address. A Unix connection has none: `Unsupported`, ask
    /// [`peer_address`](Self::peer_address).
    pub fn peer_addr(&mut self, conn: ConnId) -> io::Result<SocketAddr> {
        ip_only(self.peer_address(conn)?, conn)
    }

    /// The peer's address, TCP or Unix. The client end of a Unix connection is usually unnamed
    /// ([`Address::UnixUnnamed`]); the server end of one we connected is the listener's path.
    pub fn peer_address(&mut self, conn: ConnId) -> io::Result<Address> {
        self.core.live_connection(conn)?.stream.peer_address()
    }

    /// The IP address of our end of a connection, of a listener (with the real port when it was bound
    /// to port 0) or of a UDP socket. A Unix socket has none: `Unsupported`, ask
    /// [`local_address`](Self::local_address).
    ///
    /// ```
    /// use reactor::{Config, ConnId, Context, EventLoop, Handler, ListenerOptions, Next};
    /// # struct Quiet;
    /// # impl Handler for Quiet {
    /// #     type Message = ();
    /// #     fn on_data(&mut self, _: &mut Context<'_>, _: ConnId, _: &[u8]) -> Next { Next::Continue }
    /// # }
    /// let mut event_loop = EventLoop::new(Config::default(), Quiet)?;
    /// let mut ctx = event_loop.context();
    /// let listener = ctx.listen(&ListenerOptions::new("127.0.0.1:0".parse().unwrap()))?;
    /// let udp = ctx.bind_udp("127.0.0.1:0".parse().unwrap())?;
    /// assert_ne!(ctx.local_addr(listener)?.port(), 0);
    /// assert_ne!(ctx.local_addr(udp)?.port(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&mut self, id: impl SocketId) -> io::Result<SocketAddr> {
        ip_only(self.local_address(id)?, id)
    }

    /// The address of our end of a connection, of a listener or of a UDP socket, TCP or Unix: a Unix
    /// listener answers with its path.
    pub fn local_address(&mut self, id: impl SocketId) -> io::Result<Address> {
        let key = Key::from_token(id.token());
        if let Some(conn) = self.core.connection(key).filter(|c| !c.state.is_closed()) {
            conn.stream.local_address()
        } else if let Some(listener) = self.core.listener(key) {
            listener.local_address()
        } else if let Some(datagram) = self.core.datagram(key) {
            datagram.socket.local_addr().map(Address::Ip)
        } else {
            Err(id.gone())
        }
    }

    /// Connects to `addr` over TCP without blocking, with TCP_NODELAY (a Unix socket:
    /// [`ConnectOptions::unix`]). See [`connect_with`](Self::connect_with).
    ///
    /// ```
    /// use reactor::{CloseReason, Config, ConnId, Context, EventLoop, Handler, Next, Origin};
    ///
    /// /// Says hello once connected, then stops the loop when the peer answers.
    /// struct Client { answer: Vec<u8> }
    /// impl Handler for Client {
    ///     type Message = ();
    ///     fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, origin: Origin) {
    ///         assert_eq!(origin, Origin::Connected);
    ///         ctx.send(conn, b"hello").unwrap();
    ///     }
    ///     fn on_data(&mut self, ctx: &mut Context<'_>, _: ConnId, data: &[u8]) -> Next {
    ///         self.answer.extend_from_slice(data);
    ///         ctx.stop();
    ///         Next::Close
    ///     }
    ///     fn on_close(&mut self, ctx: &mut Context<'_>, _: ConnId, reason: &CloseReason) {
    ///         // A refused or failed connect arrives here as CloseKind::ConnectFailed.
    ///         eprintln!("closed: {reason}");
    ///         ctx.stop();
    ///     }
    /// }
    ///
    /// # use std::io::{Read, Write};
    /// let server = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = server.local_addr()?;
    /// let peer = std::thread::spawn(move || -> std::io::Result<()> {
    ///     let (mut stream, _) = server.accept()?;
    ///     let mut hello = [0; 5];
    ///     stream.read_exact(&mut hello)?;
    ///     stream.write_all(b"hi!")
    /// });
    /// let mut event_loop = EventLoop::new(Config::default(), Client { answer: Vec::new() })?;
    /// event_loop.context().connect(addr)?;
    /// event_loop.run()?;
    /// assert_eq!(event_loop.handler().answer, b"hi!");
    /// # peer.join().unwrap()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect(&mut self, addr: SocketAddr) -> io::Result<ConnId> {
        self.connect_with(&ConnectOptions::new(addr))
    }

    /// Starts a non-blocking connect, TCP or Unix. Errors the kernel reports at once (EMFILE,
    /// EADDRNOTAVAIL, ENETUNREACH; for a Unix socket ENOENT, ECONNREFUSED, and `WouldBlock` when its
    /// listener's backlog is full) are returned here; otherwise the outcome arrives later as
    /// [`on_open`](crate::Handler::on_open) with [`Origin::Connected`](crate::Origin::Connected), or as
    /// [`on_close`](crate::Handler::on_close) with [`CloseKind::ConnectFailed`](crate::CloseKind::ConnectFailed). Data sent before the
    /// connect completes is queued. [`Config::idle_timeout`](crate::Config::idle_timeout) bounds how long
    /// it may take.
    pub fn connect_with(&mut self, options: &ConnectOptions) -> io::Result<ConnId> {
        crate::connection::connect(self.core, options).map(ConnId)
    }

    /// Opens a listener, TCP or Unix; accepted connections arrive as
    /// [`on_open`](crate::Handler::on_open).
    pub fn listen(&mut self, options: &ListenerOptions) -> io::Result<ListenerId> {
        crate::listener::open(self.core, options).map(ListenerId)
    }

    /// The address a listener is bound to (with the real port when it was bound to port 0).
    /// Makes the listener's next accepts fail with these errno values, in order, before the kernel is
    /// asked again, and tries accepting at once: a seam for testing how the loop handles ENFILE,
    /// ENOBUFS, ENOMEM or ECONNABORTED, which are hard to provoke for real. Only with the
    /// `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    pub fn inject_accept_errors(&mut self, listener: ListenerId, errnos: &[i32]) -> io::Result<()> {
        if crate::listener::inject_errors(self.core, listener.0, errnos) {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::NotFound, format!("{listener} is closed")))
        }
    }

    /// Closes a listener. Peers still in its accept queue are reset by the kernel.
    pub fn close_listener(&mut self, listener: ListenerId) -> io::Result<()> {
        match self.core.remove(listener.0) {
            Some(_) => Ok(()),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "listener is closed")),
        }
    }

    /// Calls [`Handler::on_timer`](crate::Handler::on_timer) with `tag` once `after` has passed. A
    /// duration of a century or more (`Duration::MAX` included) means never.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::{Config, ConnId, Context, EventLoop, Handler, Next, TimerId};
    ///
    /// struct Ticker { ticks: u32 }
    /// impl Handler for Ticker {
    ///     type Message = ();
    ///     fn on_data(&mut self, _: &mut Context<'_>, _: ConnId, _: &[u8]) -> Next { Next::Continue }
    ///     fn on_timer(&mut self, ctx: &mut Context<'_>, _: TimerId, tag: u64) {
    ///         self.ticks += 1;
    ///         if self.ticks < 3 {
    ///             ctx.set_timer(Duration::from_millis(5), tag); // periodic: re-arm
    ///         } else {
    ///             ctx.stop();
    ///         }
    ///     }
    /// }
    ///
    /// let mut event_loop = EventLoop::new(Config::default(), Ticker { ticks: 0 })?;
    /// event_loop.context().set_timer(Duration::from_millis(5), 7);
    /// event_loop.run()?;
    /// assert_eq!(event_loop.handler().ticks, 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_timer(&mut self, after: Duration, tag: u64) -> TimerId {
        TimerId(self.core.set_timer(after, TimerKind::User(tag)))
    }

    /// Cancels a timer; false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.core.cancel_timer(timer.0)
    }

    /// Registers one of the application's own sources (for example a `signal_hook_mio::v1_0::Signals`);
    /// its readiness arrives as [`on_source_ready`](crate::Handler::on_source_ready). The application
    /// keeps the source and must [`deregister`](Self::deregister) it before dropping it.
    ///
    /// Signals, for example, through `signal-hook-mio`:
    /// ```
    /// use reactor::mio::{Interest, event::Event};
    /// use reactor::{Config, ConnId, Context, EventLoop, Handler, Next, SourceId};
    /// use signal_hook::consts::SIGUSR1;
    /// use signal_hook_mio::v1_0::Signals;
    ///
    /// struct OnSignal { signals: Option<Signals>, seen: Vec<i32> }
    /// impl Handler for OnSignal {
    ///     type Message = ();
    ///     fn on_data(&mut self, _: &mut Context<'_>, _: ConnId, _: &[u8]) -> Next { Next::Continue }
    ///     fn on_source_ready(&mut self, ctx: &mut Context<'_>, _: SourceId, _: &Event) {
    ///         // Edge-triggered: take every pending signal now.
    ///         if let Some(signals) = &mut self.signals {
    ///             self.seen.extend(signals.pending());
    ///         }
    ///         ctx.stop();
    ///     }
    /// }
    ///
    /// let mut event_loop = EventLoop::new(Config::default(), OnSignal { signals: None, seen: Vec::new() })?;
    /// let mut signals = Signals::new([SIGUSR1])?;
    /// event_loop.context().register(&mut signals, Interest::READABLE)?;
    /// event_loop.handler_mut().signals = Some(signals);
    /// signal_hook::low_level::raise(SIGUSR1)?;
    /// event_loop.run()?;
    /// assert_eq!(event_loop.handler().seen, [SIGUSR1]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn register(&mut self, source: &mut dyn Source, interest: Interest) -> io::Result<SourceId> {
        self.core.register_source(source, interest).map(SourceId)
    }

    /// Removes a source registered with [`register`](Self::register).
    pub fn deregister(&mut self, source: &mut dyn Source, id: SourceId) -> io::Result<()> {
        match self.core.remove(id.0) {
            Some(_) => self.core.registry().deregister(source),
            None => Err(io::Error::new(io::ErrorKind::NotFound, format!("{id} is not registered"))),
        }
    }

    /// Binds a UDP socket; datagrams arrive as [`Handler::on_datagram`](crate::Handler::on_datagram).
    pub fn bind_udp(&mut self, addr: SocketAddr) -> io::Result<UdpId> {
        crate::datagram::bind(self.core, addr)
    }

    /// Sends one datagram to `to`. `WouldBlock` means the kernel's buffer is full and the datagram was
    /// not sent (and counted in [`Counters::datagrams_refused`](crate::Counters)): send it again after
    /// [`Handler::on_udp_writable`](crate::Handler::on_udp_writable), or drop it knowingly.
    ///
    /// On Linux, a send on the socket whose datagram [`Handler::on_datagram`](crate::Handler::on_datagram)
    /// is handling is gathered, and the gather goes out with one `sendmmsg` once the receive batch has
    /// been delivered (earlier when 64 datagrams or 128 KiB are waiting). Then `Ok` means *accepted
    /// for the batch*, not yet handed to the kernel: the kernel's verdict comes later and is counted —
    /// `datagrams_out` when taken, `datagrams_refused` when refused (`EAGAIN`, `ENOBUFS`; an `EAGAIN`
    /// is also followed by `on_udp_writable` when room returns, as for a direct send), and
    /// `datagrams_failed` for any other error. UDP promises no delivery either way; the counters say
    /// what the kernel did.
    #[inline]
    pub fn send_to(&mut self, socket: UdpId, data: &[u8], to: SocketAddr) -> io::Result<()> {
        crate::datagram::send_to(self.core, socket, data, to)
    }

    /// Closes a UDP socket.
    pub fn close_udp(&mut self, socket: UdpId) -> io::Result<()> {
        crate::datagram::close(self.core, socket)
    }

    /// Stops the loop after this turn, closing nothing (see [`Handle::stop`](crate::Handle::stop)).
    pub fn stop(&mut self) {
        self.core.stop();
    }

    /// Begins a graceful shutdown (see [`Handle::shutdown`](crate::Handle::shutdown)).
    pub fn shutdown(&mut self, timeout: Duration) {
        self.core.request_shutdown(timeout);
    }

    /// The loop's counters as of now.
    pub fn stats(&self) -> &Counters {
        self.core.counters()
    }

    /// The time this loop turn began: cheaper than `Instant::now()` and the same for every callback in
    /// the turn.
    pub fn now(&self) -> Instant {
        self.core.now()
    }

    /// Connections open in this loop, accepted and outbound.
    pub fn connections(&self) -> usize {
        self.core.counters().active as usize
    }
}

/// The IP address in `addr`, or `Unsupported` naming the Unix socket `id` is.
fn ip_only(addr: Address, id: impl std::fmt::Display) -> io::Result<SocketAddr> {
    addr.ip().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{id} is a Unix socket ({addr}), which has no IP address: ask local_address or peer_address"
            ),
        )
    })
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("connections", &self.core.counters().active).finish_non_exhaustive()
    }
}
