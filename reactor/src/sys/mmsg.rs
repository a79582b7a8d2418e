//! Batched datagram I/O on Linux: `recvmmsg(2)` and `sendmmsg(2)`, one system call for up to [`BATCH`]
//! datagrams each way.
//!
//! Why: on a busy UDP socket the one-at-a-time loop pays a `recvfrom` and a `sendto` per datagram and an
//! extra `recvfrom` that only says `EAGAIN`. A batch pays one `recvmmsg` for up to [`BATCH`] datagrams,
//! knows the socket is drained when fewer come back (no `EAGAIN` call), and one `sendmmsg` for the
//! replies gathered meanwhile.
//!
//! # Why this is the crate's one module with `unsafe`
//! The kernel reads and fills arrays of message headers (`mmsghdr`), each pointing at an `iovec` and an
//! address. Built afresh for every call, as a safe wrapper must build them, they cost more user-space
//! instructions per datagram than everything else on the path together. Here they are built once, point
//! only into memory owned by the same batch (heap allocations made once and never resized, so the
//! pointers stay valid wherever the batch moves), and every call only refreshes what the kernel
//! overwrote. The `unsafe` is the two system calls, the zeroed headers, and the `Send` promise for the
//! raw pointers; each says why it holds.
//!
//! A reply that is a received datagram, answered as it stands, is not copied: its gather entry names the
//! slot, and the `iovec` points there when the gather is sent. The receive buffer is shared (an [`Arc`])
//! with the loop while it answers the batch's socket, and is received into only when nothing else holds
//! it, so a slot cannot change under a reply waiting to go out.
//!
//! Addresses are kept as `sockaddr_in6`, which holds a `sockaddr_in` in its first 16 bytes: the family
//! and port fields coincide, and the IPv4 address sits where `sin6_flowinfo` is (checked at compile
//! time below), so both families are read and written without casts.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use nix::libc;

/// Datagrams per `recvmmsg` and per `sendmmsg`.
pub(crate) const BATCH: usize = 64;

/// The largest datagram a receive slot holds: 64 KiB covers every UDP payload over IPv4 and IPv6
/// (without jumbograms), so by default nothing is cut short; a smaller `Config::read_buffer` makes the
/// slots smaller.
pub(crate) const MAX_DATAGRAM: usize = 64 * 1024;

/// Bytes a socket may copy into its gather for one `sendmmsg`: room for every slot of a batch of
/// typical datagrams, and for any one UDP datagram. Past it, the batch is flushed early. Replies sent
/// from the receive buffer as they stand take none of it.
const GATHER_BYTES: usize = 2 * MAX_DATAGRAM;

/// A socket address as the kernel reads and writes it (see the module docs).
type Name = libc::sockaddr_in6;
const NAME_LEN: libc::socklen_t = size_of::<Name>() as libc::socklen_t;
const V4_LEN: libc::socklen_t = size_of::<libc::sockaddr_in>() as libc::socklen_t;

// The layout that lets one `sockaddr_in6` carry a `sockaddr_in`.
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(libc::sockaddr_in, sin_family) == offset_of!(Name, sin6_family));
    assert!(offset_of!(libc::sockaddr_in, sin_port) == offset_of!(Name, sin6_port));
    assert!(offset_of!(libc::sockaddr_in, sin_addr) == offset_of!(Name, sin6_flowinfo));
    assert!(size_of::<libc::in_addr>() == size_of::<u32>());
    assert!(V4_LEN <= NAME_LEN);
};

fn empty_name() -> Name {
    Name {
        sin6_family: 0,
        sin6_port: 0,
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr { s6_addr: [0; 16] },
        sin6_scope_id: 0,
    }
}

/// The IP address the kernel wrote into `name` (`len` bytes of it); `None` for another family.
#[inline]
fn address_of(name: &Name, len: libc::socklen_t) -> Option<SocketAddr> {
    let port = u16::from_be(name.sin6_port);
    match i32::from(name.sin6_family) {
        // `sin_addr.s_addr`, in network order: its bytes in memory are the address's octets.
        libc::AF_INET if len >= V4_LEN => {
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(name.sin6_flowinfo.to_ne_bytes()), port)))
        }
        libc::AF_INET6 if len >= NAME_LEN => Some(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(name.sin6_addr.s6_addr),
            port,
            // As the standard library converts it: kept as the kernel gives it.
            name.sin6_flowinfo,
            name.sin6_scope_id,
        ))),
        _ => None,
    }
}

/// Writes `addr` into `name` as the kernel reads it, and returns the length to tell the kernel.
#[inline]
fn write_name(addr: SocketAddr, name: &mut Name) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(v4) => {
            name.sin6_family = libc::AF_INET as libc::sa_family_t;
            name.sin6_port = v4.port().to_be();
            name.sin6_flowinfo = u32::from_ne_bytes(v4.ip().octets());
            // `sin_zero`, which the kernel does not read, is left as it was.
            V4_LEN
        }
        SocketAddr::V6(v6) => {
            *name = Name {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                sin6_scope_id: v6.scope_id(),
            };
            NAME_LEN
        }
    }
}

/// A header with no buffers, flags or addresses: all zeroes, as the kernel reads "none".
fn empty_header() -> libc::mmsghdr {
    // SAFETY: `mmsghdr` is plain data (integers and raw pointers), for which all zeroes is a valid
    // value: null pointers and zero lengths. It is built this way because its padding fields are
    // private on some C libraries.
    unsafe { std::mem::zeroed() }
}

/// An `iovec` naming nothing.
fn empty_iovec() -> libc::iovec {
    libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }
}

/// The receive buffer: [`BATCH`] slots of one size, back to back. Shared with the gathers that answer
/// from it; see [`RecvBatch::receive`].
#[derive(Debug)]
pub(crate) struct Slots {
    /// `BATCH * slot` bytes. Allocated zeroed, so untouched pages cost no memory; never resized, so
    /// the `iovec`s of the receive headers stay valid.
    bytes: Vec<u8>,
}

impl Slots {
    /// Where `data` lies in these slots, if it lies wholly within them.
    #[inline]
    fn offset_of(&self, data: &[u8]) -> Option<usize> {
        let start = self.bytes.as_ptr() as usize;
        let at = data.as_ptr() as usize;
        let offset = at.checked_sub(start)?;
        (offset + data.len() <= self.bytes.len()).then_some(offset)
    }
}

/// The receive side: the slots and the headers that point at them, allocated once per loop.
pub(crate) struct RecvBatch {
    slot: usize,
    slots: Arc<Slots>,
    /// The senders' addresses, one per slot.
    names: Vec<Name>,
    /// One per slot, pointing at it; read only by the kernel, through `headers`.
    #[allow(dead_code)]
    iovecs: Vec<libc::iovec>,
    /// One per slot, pointing at its `iovec` and its name.
    headers: Vec<libc::mmsghdr>,
    /// Datagrams of the last receive.
    count: usize,
    /// Headers whose address length the kernel may have shortened since they were last refreshed.
    touched: usize,
}

// SAFETY: the raw pointers in `iovecs` and `headers` point only into heap allocations owned by this
// batch (`slots`, `names`, `iovecs`), which move with it to another thread and are never resized.
// Nothing else holds them, so there is nothing to race with.
unsafe impl Send for RecvBatch {}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch").field("slot", &self.slot).field("received", &self.count).finish()
    }
}

impl RecvBatch {
    /// A batch whose slots hold datagrams of up to `slot` bytes (at most [`MAX_DATAGRAM`]).
    pub(crate) fn new(slot: usize) -> RecvBatch {
        let slot = slot.clamp(1, MAX_DATAGRAM);
        let mut slots = Slots { bytes: vec![0; slot * BATCH] };
        let mut names = vec![empty_name(); BATCH];
        let mut iovecs = vec![empty_iovec(); BATCH];
        let mut headers = vec![empty_header(); BATCH];
        // `as_mut_ptr` and `wrapping_add` make no reference, so the pointers stay valid alongside the
        // slices later made from these vectors (the `Vec` docs promise this).
        let (base, name, iovec) = (slots.bytes.as_mut_ptr(), names.as_mut_ptr(), iovecs.as_mut_ptr());
        for (i, (header, io)) in headers.iter_mut().zip(iovecs.iter_mut()).enumerate() {
            io.iov_base = base.wrapping_add(i * slot).cast();
            io.iov_len = slot;
            header.msg_hdr.msg_name = name.wrapping_add(i).cast();
            header.msg_hdr.msg_namelen = NAME_LEN;
            header.msg_hdr.msg_iov = iovec.wrapping_add(i);
            header.msg_hdr.msg_iovlen = 1;
        }
        RecvBatch { slot, slots: Arc::new(slots), names, iovecs, headers, count: 0, touched: 0 }
    }

    /// One `recvmmsg`: receives up to [`BATCH`] datagrams and returns how many. Fewer than [`BATCH`]
    /// means the socket was drained. `WouldBlock` when none was waiting.
    ///
    /// Fails without receiving while the slots are still held elsewhere (see [`RecvBatch::slots`]):
    /// their bytes must not change before the replies gathered from them are sent, and the loop sends
    /// those and lets go of the slots first.
    pub(crate) fn receive(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        self.count = 0;
        if Arc::get_mut(&mut self.slots).is_none() {
            return Err(io::Error::other("the receive buffer is still held by a gather that was not sent"));
        }
        for header in &mut self.headers[..self.touched] {
            header.msg_hdr.msg_namelen = NAME_LEN;
        }
        // SAFETY: `headers` holds `BATCH` initialised headers. Each points at its own name
        // (`NAME_LEN` bytes) and its own `iovec`, which points at its own `slot`-byte slot; all of them
        // are allocations owned by `self`, alive and never resized (see `new`), and nothing else
        // reads or writes them during the call: the slots are not shared (checked above) and the
        // names are read only through `&self` after it.
        let received = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                0,
                std::ptr::null_mut(),
            )
        };
        // The kernel may have written an address length even into a call that failed.
        self.touched = usize::try_from(received).map_or(1, |n| n.clamp(1, BATCH));
        if received < 0 {
            return Err(io::Error::last_os_error());
        }
        self.count = usize::try_from(received).map_or(0, |n| n.min(BATCH));
        Ok(self.count)
    }

    /// Datagram `index` of the last batch: its bytes, its sender (`None` if the kernel gave an address
    /// that is not IP) and whether it was cut short (`MSG_TRUNC`).
    #[inline]
    pub(crate) fn get(&self, index: usize) -> Option<(&[u8], Option<SocketAddr>, bool)> {
        if index >= self.count {
            return None;
        }
        let header = self.headers.get(index)?;
        let len = (header.msg_len as usize).min(self.slot);
        let start = index * self.slot;
        let data = self.slots.bytes.get(start..start + len)?;
        let from = address_of(self.names.get(index)?, header.msg_hdr.msg_namelen);
        Some((data, from, header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0))
    }

    /// The slots, for the socket that answers this batch (see [`SendBatch::push`]).
    pub(crate) fn slots(&self) -> Arc<Slots> {
        Arc::clone(&self.slots)
    }
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

/// Where a gathered datagram's bytes are.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// Copied into the gather's own bytes, at this offset.
    Copied(usize),
    /// In the receive slots being answered, at this offset.
    Received(usize),
}

/// The send side, one per loop: datagrams gathered while the loop delivers a socket's receive batch, sent with
/// one `sendmmsg` when the batch ends or when this one is full.
pub(crate) struct SendBatch {
    /// Datagrams gathered.
    len: usize,
    /// Copied datagrams, back to back; at most [`GATHER_BYTES`].
    copies: Vec<u8>,
    /// Where each gathered datagram's bytes are.
    sources: Box<[Source; BATCH]>,
    /// Destinations, one per header.
    names: Box<[Name; BATCH]>,
    /// One per header; each points at its datagram's bytes once the batch is flushed.
    iovecs: Box<[libc::iovec; BATCH]>,
    /// One per gathered datagram, pointing at its `iovec` and its name.
    headers: Box<[libc::mmsghdr; BATCH]>,
}

// SAFETY: the raw pointers in `headers` point only into `names` and `iovecs`, heap allocations owned by
// this batch that move with it and are never replaced; those in `iovecs` are written just before a
// `sendmmsg`, from memory borrowed for that call. Nothing else holds them.
unsafe impl Send for SendBatch {}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch").field("datagrams", &self.len).field("copied", &self.copies.len()).finish()
    }
}

impl Default for SendBatch {
    fn default() -> SendBatch {
        let mut names = Box::new([empty_name(); BATCH]);
        let mut iovecs = Box::new([empty_iovec(); BATCH]);
        let mut headers = Box::new([empty_header(); BATCH]);
        let (name, iovec) = (names.as_mut_ptr(), iovecs.as_mut_ptr());
        for (i, header) in headers.iter_mut().enumerate() {
            header.msg_hdr.msg_name = name.wrapping_add(i).cast();
            header.msg_hdr.msg_iov = iovec.wrapping_add(i);
            header.msg_hdr.msg_iovlen = 1;
        }
        SendBatch {
            len: 0,
            copies: Vec::new(),
            sources: Box::new([Source::Copied(0); BATCH]),
            names,
            iovecs,
            headers,
        }
    }
}

impl SendBatch {
    /// Nothing is gathered.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A datagram of `len` bytes fits in the batch as it is (counting it as copied, the worst case).
    #[inline]
    pub(crate) fn fits(&self, len: usize) -> bool {
        self.len < BATCH && self.copies.len() + len <= GATHER_BYTES
    }

    /// Gathers a datagram; false if it does not [`fit`](Self::fits). If `data` lies in the receive
    /// slots `received`, it is sent from there, and the flush must be given the same slots; otherwise
    /// it is copied.
    // Inlined into the send path: a call here costs about as much as the work.
    #[inline(always)]
    pub(crate) fn push(&mut self, data: &[u8], to: SocketAddr, received: &Slots) -> bool {
        let i = self.len;
        if !self.fits(data.len()) || i >= BATCH {
            return false;
        }
        self.headers[i].msg_hdr.msg_namelen = write_name(to, &mut self.names[i]);
        self.iovecs[i].iov_len = data.len();
        self.sources[i] = match received.offset_of(data) {
            Some(offset) => Source::Received(offset),
            None => {
                if self.copies.capacity() == 0 {
                    self.copies.reserve_exact(GATHER_BYTES);
                }
                let offset = self.copies.len();
                self.copies.extend_from_slice(data);
                Source::Copied(offset)
            }
        };
        self.len = i + 1;
        true
    }

    /// Hands every gathered datagram to the kernel, with as few `sendmmsg` calls as it allows, and
    /// empties the batch whatever happened. `received` are the slots given to [`push`](Self::push).
    /// A partial `sendmmsg` is followed by another from the first datagram not taken; a refusal drops
    /// the rest of the batch; another error drops only the datagram it names.
    pub(crate) fn flush(&mut self, socket: &impl AsRawFd, received: &Slots) -> Flushed {
        let flushed = self.send(socket, received);
        self.copies.clear();
        self.len = 0;
        flushed
    }

    /// Empties the batch without sending, counting every datagram in it as failed.
    pub(crate) fn discard(&mut self) -> Flushed {
        let failed = self.len as u64;
        self.copies.clear();
        self.len = 0;
        Flushed { failed, ..Flushed::default() }
    }

    /// Points each `iovec` at its datagram's bytes; false (and nothing to send) if one is not where
    /// its source says, which only slots other than those given to [`push`](Self::push) could cause.
    fn aim(&mut self, received: &Slots) -> bool {
        let count = self.len.min(BATCH);
        for (source, iovec) in self.sources[..count].iter().zip(self.iovecs[..count].iter_mut()) {
            let (bytes, offset) = match *source {
                Source::Copied(offset) => (self.copies.as_slice(), offset),
                Source::Received(offset) => (received.bytes.as_slice(), offset),
            };
            let Some(data) = bytes.get(offset..offset + iovec.iov_len) else { return false };
            // The kernel only reads through it.
            iovec.iov_base = data.as_ptr().cast_mut().cast();
        }
        true
    }

    fn send(&mut self, socket: &impl AsRawFd, received: &Slots) -> Flushed {
        let count = self.len.min(BATCH);
        let mut flushed = Flushed::default();
        if count == 0 {
            return flushed;
        }
        if !self.aim(received) {
            flushed.failed = count as u64;
            return flushed;
        }
        let mut start = 0;
        // Each call sends at least one datagram, fails one, or ends the flush; interruptions are retried
        // a bounded number of times.
        let mut interruptions = 0;
        while start < count {
            let headers = &mut self.headers[start..count];
            // SAFETY: `headers` are `count - start` initialised headers, each pointing at its own name
            // (written by `push`, its length in `msg_namelen`) and its own `iovec`, which `aim` pointed
            // at `iov_len` bytes inside `copies` or `received`. `self` is borrowed mutably and
            // `received` shared for the whole call, so none of them can change or be freed during it;
            // the kernel only reads the bytes and writes `msg_len`.
            let sent = unsafe {
                libc::sendmmsg(socket.as_raw_fd(), headers.as_mut_ptr(), headers.len() as libc::c_uint, 0)
            };
            match usize::try_from(sent) {
                Ok(0) => {
                    // Nothing taken and no error: say so rather than try forever.
                    flushed.refused += (count - start) as u64;
                    break;
                }
                Ok(sent) => {
                    let sent = sent.min(count - start);
                    flushed.bytes += headers[..sent].iter().map(|h| u64::from(h.msg_len)).sum::<u64>();
                    flushed.sent += sent as u64;
                    start += sent;
                }
                Err(_) => {
                    let error = io::Error::last_os_error();
                    match error.raw_os_error() {
                        Some(libc::EINTR) if interruptions < BATCH => interruptions += 1,
                        Some(code @ (libc::EAGAIN | libc::ENOBUFS)) => {
                            flushed.refused += (count - start) as u64;
                            flushed.would_block |= code == libc::EAGAIN;
                            break;
                        }
                        _ => {
                            log::debug!("sendmmsg: {error}");
                            flushed.failed += 1;
                            start += 1;
                        }
                    }
                }
            }
        }
        flushed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_both_families_both_ways() {
        for addr in ["192.0.2.7:4242", "[2001:db8::1]:53", "[fe80::1%3]:9"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut name = empty_name();
            let len = write_name(addr, &mut name);
            assert_eq!(address_of(&name, len), Some(addr), "{addr}");
        }
        // A name the kernel cut short, or of another family, is no IP address.
        let mut name = empty_name();
        let len = write_name("192.0.2.7:1".parse().unwrap(), &mut name);
        assert_eq!(address_of(&name, len - 1), None);
        name.sin6_family = libc::AF_UNIX as libc::sa_family_t;
        assert_eq!(address_of(&name, NAME_LEN), None);
    }

    #[test]
    fn a_held_receive_buffer_is_not_received_into() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let mut batch = RecvBatch::new(64);
        let held = batch.slots();
        assert!(batch.receive(&socket).unwrap_err().to_string().contains("still held"));
        drop(held);
        assert_eq!(batch.receive(&socket).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn replies_from_the_slots_are_not_copied_and_go_out_whole() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        for i in 0..3u8 {
            client.send_to(&[i; 10], server.local_addr().unwrap()).unwrap();
        }
        let mut batch = RecvBatch::new(64);
        let mut received = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        server.set_nonblocking(true).unwrap();
        let mut gather = SendBatch::default();
        while received < 3 && std::time::Instant::now() < deadline {
            let Ok(n) = batch.receive(&server) else { continue };
            let slots = batch.slots();
            for i in 0..n {
                let (data, from, _) = batch.get(i).unwrap();
                assert!(gather.push(data, from.unwrap(), &slots));
                assert!(gather.push(b"copied", from.unwrap(), &slots));
            }
            received += n;
            assert_eq!(gather.copies.len(), 6 * n, "only the copied replies take gather bytes");
            let flushed = gather.flush(&server, &slots);
            assert_eq!((flushed.sent, flushed.bytes), (2 * n as u64, 16 * n as u64));
        }
        let mut replies = Vec::new();
        let mut buffer = [0; 64];
        for _ in 0..6 {
            let (len, _) = client.recv_from(&mut buffer).unwrap();
            replies.push(buffer[..len].to_vec());
        }
        for i in 0..3u8 {
            assert!(replies.contains(&vec![i; 10]), "reply {i} in {replies:?}");
        }
        assert_eq!(replies.iter().filter(|r| r.as_slice() == b"copied").count(), 3);
    }
}
