//! A connection's unwritten output: the part of each send that the socket did not take at once.

use std::io::{self, Write};

/// Capacity kept after the queue drains; anything larger is released, so an idle connection that once
/// queued a lot costs no heap.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Bytes waiting to be written, oldest first. Empty costs no heap.
#[derive(Debug, Default)]
pub(crate) struct OutputQueue {
    bytes: Vec<u8>,
    /// Bytes before this offset were written already.
    head: usize,
}

/// What [`OutputQueue::flush_to`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flush {
    /// Everything was written.
    Drained,
    /// The socket is full; the rest waits for the next writable event.
    Blocked,
}

impl OutputQueue {
    pub(crate) fn len(&self) -> usize {
        self.bytes.len() - self.head
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head == self.bytes.len()
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        // Reclaim the written prefix before growing, so the buffer never holds more than twice what waits.
        if self.head > 0 && self.bytes.len() + data.len() > self.bytes.capacity() {
            self.bytes.drain(..self.head);
            self.head = 0;
        }
        self.bytes.extend_from_slice(data);
    }

    /// Writes until the queue is empty or the socket would block; returns bytes written alongside.
    pub(crate) fn flush_to(&mut self, sink: &mut impl Write) -> (usize, io::Result<Flush>) {
        let mut written = 0;
        while !self.is_empty() {
            match sink.write(&self.bytes[self.head..]) {
                Ok(0) => return (written, Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.head += n;
                    written += n;
                }
                Err(e) if crate::io_util::interrupted(&e) => {}
                Err(e) if crate::io_util::would_block(&e) => return (written, Ok(Flush::Blocked)),
                Err(e) => return (written, Err(e)),
            }
        }
        self.clear();
        (written, Ok(Flush::Drained))
    }

    pub(crate) fn clear(&mut self) {
        if self.bytes.capacity() > KEEP_CAPACITY {
            self.bytes = Vec::new();
        } else {
            self.bytes.clear();
        }
        self.head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket stand-in that accepts `room` bytes, then would block.
    struct Sink {
        taken: Vec<u8>,
        room: usize,
    }

    impl Write for Sink {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = data.len().min(self.room).min(3);
            self.room -= n;
            self.taken.extend_from_slice(&data[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn keeps_order_across_partial_writes() {
        let mut queue = OutputQueue::default();
        let mut sink = Sink { taken: Vec::new(), room: 5 };
        queue.push(b"hello ");
        queue.push(b"world");
        assert!(matches!(queue.flush_to(&mut sink), (5, Ok(Flush::Blocked))));
        assert_eq!(queue.len(), 6);
        queue.push(b"!");
        sink.room = 100;
        assert!(matches!(queue.flush_to(&mut sink), (7, Ok(Flush::Drained))));
        assert_eq!(sink.taken, b"hello world!");
        assert!(queue.is_empty());
    }

    #[test]
    fn releases_large_buffers_once_drained() {
        let mut queue = OutputQueue::default();
        queue.push(&vec![7; KEEP_CAPACITY * 4]);
        let mut sink = Sink { taken: Vec::new(), room: usize::MAX };
        let _ = queue.flush_to(&mut sink);
        assert_eq!(queue.bytes.capacity(), 0);
    }
}
