//! A readiness-driven event loop over [`mio`]: one thread, many sockets.
//!
//! # Two ways to serve many peers
//! The socket API blocks by default: `accept` waits for a peer, `recv` waits for bytes. A server built
//! that way needs one thread per peer, and every idle peer costs a thread (a stack, a scheduler entry):
//! threads, not sockets, become the limit.
//!
//! This crate takes the other road. Every socket is non-blocking and registered with one poller (epoll on
//! Linux, kqueue on BSD and macOS). Streams are TCP or Unix domain sockets
//! ([`ListenerOptions::unix`], [`ConnectOptions::unix`]): both go through the same code, with the
//! same callbacks and guarantees. The loop waits once for *any* socket to become ready, then does exactly
//! the I/O that will not block — accept until `WouldBlock`, read until the socket is drained, write what
//! the socket takes — and goes back to waiting. One thread holds tens of thousands of peers; an idle peer
//! costs a table entry and its kernel socket, no heap buffer.
//!
//! # What the loop does for you
//! - **Accept** on every listener until `WouldBlock`, at most [`Config::accept_budget`] a turn, so a
//!   connect flood cannot hold one turn while open connections wait. Out of descriptors (EMFILE, ENFILE) or memory
//!   (ENOBUFS, ENOMEM): stop accepting and try again as soon as one of our connections closes, or after
//!   a back-off — never spin. At [`Config::max_connections`], leave peers in the kernel's accept queue
//!   and resume when a slot frees.
//! - **Read** into one buffer shared by all connections and hand the bytes to [`Handler::on_data`]. A
//!   per-turn budget, which counts the bytes read and what their callbacks wrote, parks a flooding
//!   peer until the next turn, so it cannot starve the others. TCP urgent data (`MSG_OOB`) stays out of
//!   band: the bytes around the urgent byte arrive in order, the urgent byte itself is not delivered.
//! - **Write** straight to the socket; queue only what it does not take, and ask for WRITABLE only while
//!   something is queued. Past [`Config::high_watermark`] of queued output, stop reading from that peer
//!   until it drains below [`Config::low_watermark`]: a peer that sends but never reads cannot grow the
//!   server's memory. [`Config::max_output`] is the hard cap per connection.
//! - **Half-close**: on the peer's EOF, flush, shut our sending side, close. A reset or error closes
//!   only that connection, and [`Handler::on_close`] says why.
//! - **Timers** (idle timeouts, the application's own) set the poll timeout.
//! - **Other threads** reach the loop through a [`Handle`]: stop, graceful shutdown, messages.
//! - **Lifecycle lines**, when the log target [`LIFECYCLE_TARGET`] is enabled at `trace` level: one
//!   line per step of each connection (accepted, first byte, back-pressure pause and resume, the
//!   peer's EOF, our FIN, close and its reason, idle timeout) with its id, descriptor and 4-tuple, and
//!   per listener its accept holds. Off, they cost one check when a connection opens.
//!
//! # Tokens and generations
//! Each entry's `mio::Token` packs its slot with a generation. An event that was already in the batch
//! when its connection closed cannot reach a new connection that took the same slot: the generations
//! differ and the event is dropped. [`ConnId`]s carry the same generation, so a stale id held by the
//! application is refused instead of reaching a stranger.
//!
//! # Where things are
//! One readable event goes from `poll` to [`Handler::on_data`] and out as a write through four files,
//! in one direction: `event_loop.rs` → `connection/read.rs` → `context.rs` → `connection/write.rs`.
//!
//! | file | owns |
//! |---|---|
//! | `event_loop.rs` | the turn and its phases: poll, route each event, the ready list, requests from other threads, timers, shutdown |
//! | `core.rs` | the entry table (listeners, connections, UDP sockets, the application's sources) and every counter that follows an insert or a removal |
//! | `connection/` | one stream's whole life, TCP or Unix: `read.rs` (readiness, reads, EOF, connect completion), `write.rs` (send, queue, flush, half-close, close), `state.rs` (its state as one typed value), `mod.rs` (open, idle timeout, close, with the state diagram) |
//! | `listener.rs` | bind and listen, accept until `WouldBlock`, admission at `max_connections`, the EMFILE back-off |
//! | `stream.rs`, `unix_path.rs`, `address.rs` | TCP and Unix sockets behind one type each (`Stream`, `ListenSocket`); a Unix listener's socket file (stale ones replaced, ours removed); the public [`Address`] |
//! | `datagram.rs` | UDP sockets |
//! | `handler.rs`, `context.rs` | the API: what the loop tells the application, and what a callback may ask |
//! | `lifecycle.rs` | the lifecycle log lines, and the names of the traced connections |
//! | `timer.rs`, `token.rs`, `output.rs`, `stats.rs`, `config.rs`, `handle.rs` | timers, generation-tagged ids, the bounded output queue, counters, settings, the cross-thread handle |
//! | `sys/` | the few platform calls the loop itself makes (send and receive flags, urgent-data readiness, non-blocking connect, batched datagram I/O); `sys/mmsg.rs` holds the crate's only `unsafe`, the `recvmmsg`/`sendmmsg` headers |
//!
//! # What the loop guarantees, and what it does not
//! - Every byte a connection reads reaches [`Handler::on_data`] in order; every byte accepted by
//!   [`Context::send`] is written in order or the connection closes with a reason.
//! - Every connection gets exactly one [`Handler::on_close`], whatever ends it.
//! - Memory per connection is bounded: an idle connection holds no buffer, queued output stops reading
//!   at [`Config::high_watermark`] and refuses sends past [`Config::max_output`].
//! - Running out of descriptors never makes the loop spin, and it accepts again by itself.
//! - It does not retry anything on the application's behalf (a refused send, a failed connect), does
//!   not time out anything but idle connections, and does not order callbacks across connections.
//! - Callbacks run on the loop's thread: one that blocks stalls every connection.
//!
//! # What it does not do
//! It does not parse protocols, encrypt, or spread one connection's work over threads. For more than one
//! core, run one loop per core, each with its own SO_REUSEPORT listener on the same port
//! ([`ListenerOptions::reuse_port`]); past one process's descriptor limit, run several processes.
//!
//! # Example: an echo server
//! ```
//! use reactor::{Config, ConnId, Context, EventLoop, Handler, ListenerOptions, Next};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type Message = ();
//!     fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
//!         // Back-pressure keeps the queue below `max_output`, so an echo is never refused.
//!         match ctx.send(conn, data) {
//!             Ok(()) => Next::Continue,
//!             Err(_) => Next::Close,
//!         }
//!     }
//! }
//!
//! let mut event_loop = EventLoop::new(Config::default(), Echo)?;
//! let (_, addr) = event_loop.listen(&ListenerOptions::new("127.0.0.1:0".parse().unwrap()))?;
//! # let handle = event_loop.handle();
//! # let server = std::thread::spawn(move || event_loop.run());
//! # use std::io::{Read, Write};
//! # let mut peer = std::net::TcpStream::connect(addr)?;
//! # peer.write_all(b"hello")?;
//! # let mut reply = [0; 5];
//! # peer.read_exact(&mut reply)?;
//! # assert_eq!(&reply, b"hello");
//! # handle.shutdown(std::time::Duration::from_secs(1))?;
//! # server.join().unwrap()?;
//! // event_loop.run() serves until a Handle stops or shuts it down.
//! # Ok::<(), std::io::Error>(())
//! ```
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]
#![doc(test(attr(deny(warnings))))]

mod address;
mod config;
mod connection;
mod context;
mod core;
mod datagram;
mod event_loop;
mod handle;
mod handler;
mod io_util;
mod lifecycle;
mod listener;
mod output;
mod stats;
mod stream;
mod sys;
mod timer;
mod token;
mod unix_path;

pub use address::{Address, AddressParseError};
pub use config::{Config, ConfigError};
pub use context::Context;
pub use event_loop::{EventLoop, Turn};
pub use handle::Handle;
pub use handler::{AfterEof, CloseKind, CloseReason, ConnectOptions, Handler, Next, Origin};
pub use lifecycle::TARGET as LIFECYCLE_TARGET;
pub use listener::ListenerOptions;
pub use stats::{AcceptErrorKind, Counters};
pub use token::{ConnId, ListenerId, SocketId, SourceId, TimerId, UdpId};

/// The `mio` types that appear in this crate's API (`Interest`, `Event`, `Source`), re-exported so that
/// users need not pin the same `mio` version themselves.
pub use mio;
