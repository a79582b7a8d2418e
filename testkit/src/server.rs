//! The in-process server harness: an event loop of the reactor under test serving on its own thread,
//! and an echo handler that records what happened to its connections.
//!
//! Tests drive it from outside with the independent clients in the crate root (or plain std sockets),
//! then [`Server::finish`] it and read the handler back to check what the loop saw.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use reactor::{
    CloseKind, CloseReason, Config, ConnId, Context, EventLoop, Handle, Handler, ListenerOptions, Next,
};

/// How long [`Server::finish`] gives open connections to drain before the loop closes them.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The loopback address with a port the kernel picks.
pub fn any_local_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Logs to the test output when `RUST_LOG` asks for it; safe to call from every test.
pub fn init() {
    let _ = env_logger::builder().is_test(true).try_init();
}

/// An event loop serving on its own thread, with one listener.
///
/// The loop never raises the process's descriptor limit (`Config::raise_fd_limit` is forced off): the
/// tests of one binary share the process and run in parallel, so a test that needs many descriptors
/// says so itself with [`crate::raise_fd_limit`], which checks that the hard limit allows them.
pub struct Server<H: Handler> {
    /// Where the listener is bound.
    pub addr: SocketAddr,
    /// The loop's handle: stop it, shut it down, send it messages.
    pub handle: Handle<H::Message>,
    thread: JoinHandle<io::Result<H>>,
}

impl<H: Handler> fmt::Debug for Server<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl<H: Handler + Send + 'static> Server<H> {
    /// Starts a loop with one listener on loopback, on a port the kernel picks.
    #[track_caller]
    pub fn start(config: Config, handler: H) -> Server<H> {
        Self::start_with(config, handler, ListenerOptions::new(any_local_address()))
    }

    /// Starts a loop with a listener made from `listener` (backlog, address, reuse options).
    #[track_caller]
    pub fn start_with(config: Config, handler: H, listener: ListenerOptions) -> Server<H> {
        init();
        let config = Config { raise_fd_limit: false, ..config };
        let mut event_loop = EventLoop::new(config, handler).expect("create the loop");
        let (_, addr) = event_loop.listen(&listener).expect("listen");
        let handle = event_loop.handle();
        let thread = std::thread::spawn(move || event_loop.run().map(|()| event_loop.into_handler()));
        Server { addr, handle, thread }
    }

    /// The loop's counters, as of the end of its last turn.
    pub fn stats(&self) -> reactor::Counters {
        self.handle.stats()
    }

    /// Shuts the loop down gracefully (open connections get a few seconds to drain) and returns its
    /// handler.
    #[track_caller]
    pub fn finish(self) -> H {
        self.handle.shutdown(SHUTDOWN_TIMEOUT).expect("wake the loop");
        self.join()
    }

    /// Waits for the loop to end by itself (a handler that stopped it) and returns its handler.
    #[track_caller]
    pub fn join(self) -> H {
        self.thread.join().expect("the loop thread panicked").expect("the loop failed")
    }
}

/// Echoes everything; remembers how connections ended, the most output ever queued on one, and how
/// many sends the loop refused.
#[derive(Debug, Default)]
pub struct Echo {
    /// How each connection ended, in the order they closed.
    pub closed: Vec<CloseKind>,
    /// The most output queued on one connection right after an echo: what back-pressure allowed.
    pub max_queued: usize,
    /// Sends refused (past `Config::max_output`); each closed its connection.
    pub refused_sends: usize,
}

impl Handler for Echo {
    type Message = ();

    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        if ctx.send(conn, data).is_err() {
            self.refused_sends += 1;
            return Next::Close;
        }
        self.max_queued = self.max_queued.max(ctx.queued(conn).unwrap_or(0));
        Next::Continue
    }

    fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, reason: &CloseReason) {
        self.closed.push(reason.kind());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_and_records_the_close() {
        let server = Server::start(Config::default(), Echo::default());
        let reply = crate::echo_once(server.addr, b"hello", Duration::from_secs(10)).unwrap();
        assert_eq!(reply, b"hello");
        let echo = server.finish();
        assert_eq!(echo.closed.len(), 1);
        assert_eq!(echo.refused_sends, 0);
    }
}
