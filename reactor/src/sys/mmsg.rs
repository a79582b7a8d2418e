//! Batched datagram I/O on Linux: `recvmmsg(2)` and `sendmmsg(2)`, one system call for up to [`BATCH`]
//! datagrams each way, through nix's safe wrappers.
//!
//! Why: on a busy UDP socket the one-at-a-time loop pays a `recvfrom` and a `sendto` per datagram and an
//! extra `recvfrom` that only says `EAGAIN`. A batch pays one `recvmmsg` for up to [`BATCH`] datagrams,
//! knows the socket is drained when fewer come back (no `EAGAIN` call), and one `sendmmsg` for the
//! replies gathered meanwhile.
//!
//! Both buffers are bounded and allocated once: [`RecvBatch`] once per loop, at the first datagram, and
//! [`SendBatch`] once per socket, at its first gathered send. The message headers the kernel reads and
//! fills (nix's `MultiHeaders`, which hold raw pointers and so cannot travel with a loop moved to
//! another thread) are kept once per thread, and reused by every call made on it.

use std::cell::RefCell;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrLike, SockaddrStorage, recvmmsg, sendmmsg};

/// Datagrams per `recvmmsg` and per `sendmmsg`.
pub(crate) const BATCH: usize = 64;

/// The largest datagram a receive slot holds: 64 KiB covers every UDP payload over IPv4 and IPv6
/// (without jumbograms), so by default nothing is cut short; a smaller `Config::read_buffer` makes the
/// slots smaller.
pub(crate) const MAX_DATAGRAM: usize = 64 * 1024;

/// Bytes a socket may gather for one `sendmmsg`: room for every slot of a batch of typical datagrams,
/// and for any one UDP datagram. Past it, the batch is flushed early.
const GATHER_BYTES: usize = 2 * MAX_DATAGRAM;

thread_local! {
    /// Headers for `recvmmsg` on this thread.
    static RECV_HEADERS: RefCell<MultiHeaders<SockaddrStorage>> =
        RefCell::new(MultiHeaders::preallocate(BATCH, None));
    /// Headers for `sendmmsg` on this thread.
    static SEND_HEADERS: RefCell<MultiHeaders<SockaddrStorage>> =
        RefCell::new(MultiHeaders::preallocate(BATCH, None));
}

/// One datagram of the last receive batch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Received {
    /// Bytes in its slot.
    pub(crate) len: usize,
    /// Its sender; `None` only if the kernel reported an address family that is not IP.
    pub(crate) from: Option<SocketAddr>,
    /// The datagram was longer than its slot and was cut short (`MSG_TRUNC`).
    pub(crate) truncated: bool,
}

/// The receive side: [`BATCH`] slots of one size and their headers, allocated once per loop.
pub(crate) struct RecvBatch {
    slot: usize,
    /// `BATCH * slot` bytes. Allocated zeroed, so untouched pages cost no memory.
    buffer: Box<[u8]>,
    received: Vec<Received>,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch").field("slot", &self.slot).field("received", &self.received.len()).finish()
    }
}

impl RecvBatch {
    /// A batch whose slots hold datagrams of up to `slot` bytes (at most [`MAX_DATAGRAM`]).
    pub(crate) fn new(slot: usize) -> RecvBatch {
        let slot = slot.clamp(1, MAX_DATAGRAM);
        RecvBatch {
            slot,
            buffer: vec![0; slot * BATCH].into_boxed_slice(),
            received: Vec::with_capacity(BATCH),
        }
    }

    /// One `recvmmsg`: receives up to [`BATCH`] datagrams and returns how many. Fewer than [`BATCH`]
    /// means the socket was drained. `WouldBlock` when none was waiting.
    pub(crate) fn receive(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        self.received.clear();
        let (received, buffer, slot) = (&mut self.received, &mut self.buffer, self.slot);
        RECV_HEADERS.with(|headers| {
            // Never borrowed twice: nothing in here calls back into the loop.
            let Ok(mut headers) = headers.try_borrow_mut() else {
                return Err(io::Error::other("recvmmsg headers in use"));
            };
            // Rebuilt per call: nix ties the slices' lifetime to the headers' borrow.
            let mut slots = buffer.chunks_mut(slot);
            let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
                std::array::from_fn(|_| [IoSliceMut::new(slots.next().unwrap_or_default())]);
            let results =
                recvmmsg(socket.as_raw_fd(), &mut headers, iovs.iter_mut(), MsgFlags::empty(), None)
                    .map_err(io::Error::from)?;
            for message in results {
                received.push(Received {
                    len: message.bytes,
                    from: message.address.as_ref().and_then(socket_addr),
                    truncated: message.flags.contains(MsgFlags::MSG_TRUNC),
                });
            }
            Ok(received.len())
        })
    }

    /// Datagram `index` of the last batch: its bytes and what the kernel said about it.
    #[inline]
    pub(crate) fn get(&self, index: usize) -> Option<(&[u8], Received)> {
        let received = *self.received.get(index)?;
        let start = index * self.slot;
        let data = self.buffer.get(start..start + received.len.min(self.slot))?;
        Some((data, received))
    }
}

/// The IP address in a socket address the kernel filled in.
fn socket_addr(storage: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = storage.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    storage.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

/// What one flush of a [`SendBatch`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flushed {
    /// Datagrams the kernel took.
    pub(crate) sent: u64,
    /// Their bytes.
    pub(crate) bytes: u64,
    /// Datagrams refused with `EAGAIN` or `ENOBUFS` (nothing sent; the rest of the batch is dropped).
    pub(crate) refused: u64,
    /// Datagrams failed with another error (each dropped; the rest of the batch is still sent).
    pub(crate) failed: u64,
    /// A refusal was `EAGAIN`: the kernel will say when it has room again (a writable edge).
    pub(crate) would_block: bool,
}

/// The send side of one socket: datagrams gathered while the loop delivers a receive batch, sent with
/// one `sendmmsg` when the batch ends or when this one is full.
pub(crate) struct SendBatch {
    /// The gathered datagrams, back to back; at most [`GATHER_BYTES`].
    data: Vec<u8>,
    /// Where each datagram ends in `data`; at most [`BATCH`].
    ends: Vec<usize>,
    /// Each datagram's destination.
    to: Vec<Option<SockaddrStorage>>,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("datagrams", &self.ends.len())
            .field("bytes", &self.data.len())
            .finish()
    }
}

impl Default for SendBatch {
    fn default() -> SendBatch {
        SendBatch { data: Vec::new(), ends: Vec::with_capacity(BATCH), to: Vec::with_capacity(BATCH) }
    }
}

impl SendBatch {
    /// Nothing is gathered.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// A datagram of `len` bytes fits in the batch as it is.
    #[inline]
    pub(crate) fn fits(&self, len: usize) -> bool {
        self.ends.len() < BATCH && self.data.len() + len <= GATHER_BYTES
    }

    /// Gathers a datagram (the caller checked that it [`fits`](Self::fits)).
    #[inline]
    pub(crate) fn push(&mut self, data: &[u8], to: SocketAddr) {
        self.data.extend_from_slice(data);
        self.ends.push(self.data.len());
        self.to.push(Some(SockaddrStorage::from(to)));
    }

    /// Hands every gathered datagram to the kernel, with as few `sendmmsg` calls as it allows, and
    /// empties the batch whatever happened. A partial `sendmmsg` is followed by another from the first
    /// datagram not taken; a refusal drops the rest of the batch; another error drops only the
    /// datagram it names.
    pub(crate) fn flush(&mut self, socket: &impl AsRawFd) -> Flushed {
        let flushed = SEND_HEADERS.with(|headers| match headers.try_borrow_mut() {
            Ok(mut headers) => self.send(socket, &mut headers),
            // Never borrowed twice: nothing in `send` calls back into the loop.
            Err(_) => Flushed { failed: self.ends.len() as u64, ..Flushed::default() },
        });
        self.data.clear();
        self.ends.clear();
        self.to.clear();
        flushed
    }

    fn send(&self, socket: &impl AsRawFd, headers: &mut MultiHeaders<SockaddrStorage>) -> Flushed {
        let count = self.ends.len();
        let mut flushed = Flushed::default();
        let mut start = 0;
        // Each call sends at least one datagram, fails one, or ends the flush; interruptions are retried
        // a bounded number of times.
        let mut interruptions = 0;
        while start < count {
            let (data, ends) = (&self.data, &self.ends);
            let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|i| {
                let j = start + i;
                // Slots past the gathered datagrams stay empty; `to[start..count]` bounds the call.
                let bytes = match ends.get(j) {
                    Some(&end) => &data[if j == 0 { 0 } else { ends[j - 1] }..end],
                    None => &[],
                };
                [IoSlice::new(bytes)]
            });
            let no_control: [nix::sys::socket::ControlMessage<'_>; 0] = [];
            match sendmmsg(
                socket.as_raw_fd(),
                headers,
                iovs.iter(),
                &self.to[start..count],
                no_control,
                MsgFlags::empty(),
            ) {
                Ok(results) => {
                    let mut sent = 0;
                    for message in results {
                        sent += 1;
                        flushed.bytes += message.bytes as u64;
                    }
                    flushed.sent += sent as u64;
                    start += sent;
                    if sent == 0 {
                        // Nothing taken and no error: say so rather than try forever.
                        flushed.refused += (count - start) as u64;
                        break;
                    }
                }
                Err(Errno::EINTR) if interruptions < BATCH => interruptions += 1,
                Err(e @ (Errno::EAGAIN | Errno::ENOBUFS)) => {
                    flushed.refused += (count - start) as u64;
                    flushed.would_block |= e == Errno::EAGAIN;
                    break;
                }
                Err(e) => {
                    log::debug!("sendmmsg to {:?}: {e}", self.to[start].as_ref().map(|a| a.family()));
                    flushed.failed += 1;
                    start += 1;
                }
            }
        }
        flushed
    }
}
