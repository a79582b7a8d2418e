//! `recv` and `send` on a connected socket, straight to the kernel.
//!
//! Through std, each becomes a call to libc's `recv`/`send`, which are POSIX cancellation points: in a
//! process with more than one thread, glibc wraps every such call in `pthread_enable_asynccancel` and
//! `pthread_disable_asynccancel`, about 60 user-space instructions per echoed message, which is as much
//! as the whole C floor. rustix issues the system calls directly (on Linux) and has no such wrapper.
//! The loop never uses thread cancellation, so it loses nothing.

use std::io;
use std::os::fd::AsFd;

use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags};

/// The flag that keeps a `send` to a closed peer from raising SIGPIPE.
#[cfg(not(target_vendor = "apple"))]
const NO_SIGNAL: SendFlags = SendFlags::NOSIGNAL;
/// Apple's systems have no `MSG_NOSIGNAL`: their sockets carry `SO_NOSIGPIPE` instead.
#[cfg(target_vendor = "apple")]
const NO_SIGNAL: SendFlags = SendFlags::empty();

/// One `recv(2)`: bytes read, 0 at EOF.
#[inline]
pub(crate) fn recv(socket: impl AsFd, buffer: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::net::recv(&socket, &mut *buffer, RecvFlags::empty()) {
            Ok((n, _)) => return Ok(n),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One `send(2)`, without SIGPIPE: a peer that has gone away is an `EPIPE` error, not a signal.
/// `MSG_NOSIGNAL` says so per call where it exists; Apple's systems lack it and rely on each socket's
/// `SO_NOSIGPIPE` instead (see [`no_sigpipe`](super::no_sigpipe)).
#[inline]
pub(crate) fn send(socket: impl AsFd, data: &[u8]) -> io::Result<usize> {
    loop {
        match rustix::net::send(&socket, data, NO_SIGNAL) {
            Ok(n) => return Ok(n),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A socket as an [`io::Write`] whose writes are [`send`]s.
#[derive(Debug)]
pub(crate) struct Sender<'a, S: AsFd>(pub(crate) &'a S);

impl<S: AsFd> io::Write for Sender<'_, S> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        send(self.0, data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn sends_and_receives_and_names_would_block() {
        let (a, b) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        assert_eq!(send(&a, b"ping").unwrap(), 4);
        let mut buffer = [0; 16];
        assert_eq!(recv(&b, &mut buffer).unwrap(), 4);
        assert_eq!(&buffer[..4], b"ping");
        assert_eq!(recv(&b, &mut buffer).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        drop(a);
        assert_eq!(recv(&b, &mut buffer).unwrap(), 0, "EOF once the peer is gone");
    }
}
