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
//! Free when off: whether the target is enabled is asked once per connection, when it opens, and kept
//! as one bit of its state; an untraced connection carries nothing else (not even a pointer: a table
//! entry per idle connection is about 100 bytes, and a field there would be paid by every connection,
//! traced or not). A traced connection's names are kept aside, by descriptor, from its first step to
//! its last: the peer's address must be taken early, as the kernel forgets it once both sides have
//! shut down (`getpeername` says ENOTCONN). The one per-read step, the first byte, rides
//! on a check the read loop makes anyway (see `State::short_read_drains`), so an untraced connection's
//! reads cost nothing more.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Mutex;

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

/// The local and peer addresses of the traced connections, by descriptor (unique while the socket is
/// open, across every loop of the process). Touched only while tracing; an entry a connection left
/// behind is replaced by the next traced connection on that descriptor.
static NAMES: Mutex<BTreeMap<RawFd, (String, String)>> = Mutex::new(BTreeMap::new());

fn names() -> std::sync::MutexGuard<'static, BTreeMap<RawFd, (String, String)>> {
    // A panic elsewhere while holding the lock leaves the map as it was: still usable.
    NAMES.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn name(address: io::Result<Address>) -> String {
    address.map_or_else(|_| "?".to_owned(), |a| a.to_string())
}

/// Starts tracing a connection: takes its names, `peer` as the accept returned it, or `None` to read
/// it from the socket (an outbound connect, once connected).
#[cold]
#[inline(never)]
pub(crate) fn open(stream: &Stream, peer: Option<&Address>) {
    let local = name(stream.local_address());
    let peer = peer.map_or_else(|| name(stream.peer_address()), Address::to_string);
    names().insert(stream.as_fd().as_raw_fd(), (local, peer));
}

/// Logs one step in the life of connection `id`; its last step (`last`) also forgets its names.
#[cold]
#[inline(never)]
pub(crate) fn step(id: ConnId, stream: &Stream, last: bool, what: fmt::Arguments<'_>) {
    let fd = stream.as_fd().as_raw_fd();
    let mut names = names();
    let (local, peer) = match names.get(&fd) {
        Some((local, peer)) => (local.clone(), peer.clone()),
        None => (name(stream.local_address()), name(stream.peer_address())),
    };
    if last {
        names.remove(&fd);
    }
    drop(names);
    log::trace!(target: TARGET, "{id} fd {fd} {local} <- {peer}: {what}");
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
