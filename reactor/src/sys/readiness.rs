//! What the poller can tell about a stream socket beyond "readable", and what the read path may
//! conclude from a short read.
//!
//! TCP urgent data (`send(MSG_OOB)`) puts a mark in the stream, and `recv` stops at that mark even when
//! more bytes are queued behind it (Linux and the BSDs alike). The loop treats a read shorter than its
//! buffer as "drained", which is sound only if it can tell when a mark arrived. epoll reports it as
//! `EPOLLPRI`, so on Linux the loop asks for [`Interest::PRIORITY`] and reads to `WouldBlock` after such
//! an event. kqueue has no such report through mio, so elsewhere every read goes to `WouldBlock`: one
//! more `recv` per wake-up, and never a stranded byte.
//!
//! The urgent byte itself is left out of band (SO_OOBINLINE stays off, as in nearly every program):
//! the bytes before and after it arrive in order, the urgent byte is not delivered.

use mio::Interest;
use mio::event::Event;

/// The interest every connection is registered with (WRITABLE is added while output is queued).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) const STREAM_INTEREST: Interest = Interest::READABLE.add(Interest::PRIORITY);
/// The interest every connection is registered with (WRITABLE is added while output is queued).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) const STREAM_INTEREST: Interest = Interest::READABLE;

/// Whether a read shorter than the buffer may be taken as "the socket is empty" when no urgent data
/// was reported.
pub(crate) const SHORT_READ_DRAINS: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// The event reports urgent data, after which a short read proves nothing.
#[inline]
pub(crate) fn urgent_data(event: &Event) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return event.is_priority();
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = event;
        false
    }
}
