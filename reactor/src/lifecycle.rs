//! The lifecycle log: one line per step in the life of each connection and listener, under the log
//! target [`TARGET`] at `trace` level, so that the socket lifecycle can be watched as it happens.
//!
//! A connection's line names it three ways, because each answers a different question: its id (which
//! callback saw it), its descriptor (what `ls -l /proc/PID/fd` and `lsof` show) and its 4-tuple (what
//! `ss` shows). For example:
//!
//! ```text
//! conn 1.3 fd 10 127.0.0.1:7878 <- 127.0.0.1:43512: accepted from the accept queue (ESTABLISHED)
//! conn 1.3 fd 10 127.0.0.1:7878 <- 127.0.0.1:43512: first byte (6 B)
//! conn 1.3 fd 10 127.0.0.1:7878 <- 127.0.0.1:43512: peer EOF: its FIN arrived, our side is CLOSE_WAIT
//! conn 1.3 fd 10 127.0.0.1:7878 <- 127.0.0.1:43512: our FIN sent (shutdown write), our side is LAST_ACK
//! conn 1.3 fd 10 127.0.0.1:7878 <- 127.0.0.1:43512: closed: peer_closed
//! ```
//!
//! Free when off: whether the target is enabled is asked once per connection, when it opens; a traced
//! connection then carries its names ([`Traced`]) and every later step looks only at that. The one
//! per-read step, the first byte, rides on a check the read loop makes anyway (see
//! `State::short_read_drains`), so an untraced connection's reads cost nothing more.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd};

use crate::stream::{ListenSocket, Stream};
use crate::{Address, ConnId, ListenerId};

/// The log target of the lifecycle lines: `RUST_LOG=reactor::lifecycle=trace` (or the application's
/// own logger configuration) turns them on. Re-exported as [`LIFECYCLE_TARGET`](crate::LIFECYCLE_TARGET).
pub const TARGET: &str = "reactor::lifecycle";

/// Whether lifecycle lines are wanted now: asked when a connection opens, and at a listener's rare
/// steps (holds and resumptions).
#[inline]
pub(crate) fn enabled() -> bool {
    log::log_enabled!(target: TARGET, log::Level::Trace)
}

/// A traced connection's names, taken when it opens: the peer's address may be unreadable by the time
/// the connection closes (after a reset, `getpeername` says ENOTCONN).
#[derive(Debug)]
pub(crate) struct Traced {
    id: ConnId,
    fd: i32,
    local: Address,
    peer: Address,
}

impl Traced {
    /// The names of `stream`, if lifecycle lines are wanted; `peer` as the accept returned it, or
    /// `None` to read it from the socket (an outbound connect, once connected).
    #[cold]
    pub(crate) fn open(id: ConnId, stream: &Stream, peer: Option<&Address>) -> Option<Box<Traced>> {
        if !enabled() {
            return None;
        }
        let local = stream.local_address().unwrap_or(Address::UnixUnnamed);
        let peer = match peer {
            Some(peer) => peer.clone(),
            None => stream.peer_address().unwrap_or(Address::UnixUnnamed),
        };
        Some(Box::new(Traced { id, fd: stream.as_fd().as_raw_fd(), local, peer }))
    }

    /// Logs one step of this connection's life.
    #[cold]
    #[inline(never)]
    pub(crate) fn step(&self, what: fmt::Arguments<'_>) {
        log::trace!(target: TARGET, "{} fd {} {} <- {}: {what}", self.id, self.fd, self.local, self.peer);
    }
}

/// Logs one step of a listener's life (accept held or resumed), if lifecycle lines are wanted.
#[cold]
#[inline(never)]
pub(crate) fn listener_step(id: ListenerId, socket: &ListenSocket, what: fmt::Arguments<'_>) {
    if !enabled() {
        return;
    }
    let fd = match socket {
        ListenSocket::Tcp(l) => l.as_fd().as_raw_fd(),
        ListenSocket::Unix(l, _) => l.as_fd().as_raw_fd(),
    };
    let local = socket.local_address().map_or_else(|e| format!("({e})"), |a| a.to_string());
    log::trace!(target: TARGET, "{id} fd {fd} {local}: {what}");
}
