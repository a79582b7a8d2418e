//! A lean load client for timing: connections opened beforehand, then a counted number of messages
//! echoed over them, ping-pong or with several in flight per connection. It checks byte counts, not
//! contents (`stress-client` verifies every byte; here the client's own cost must stay small so that it
//! is not what is measured).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::path::Path;
use std::time::{Duration, Instant};

use mio::net::{TcpStream, UnixStream};
use mio::{Events, Interest, Poll, Token};

use crate::BenchResult;

/// The longest one timed run may take before it counts as a stalled server.
pub const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Open connections to one server, ready to time echoed messages.
#[derive(Debug)]
pub struct EchoClient {
    poll: Poll,
    events: Events,
    conns: Vec<Conn>,
    scratch: Vec<u8>,
    pattern: Vec<u8>,
}

#[derive(Debug)]
struct Conn {
    stream: Stream,
    /// Bytes written and read in the current run, and the run's total for this connection.
    sent: u64,
    received: u64,
    goal: u64,
}

/// A client connection over TCP or a Unix socket.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(data),
            Stream::Unix(s) => s.write(data),
        }
    }

    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buffer),
            Stream::Unix(s) => s.read(buffer),
        }
    }
}

impl EchoClient {
    /// Opens `count` connections to `addr` with TCP_NODELAY.
    pub fn connect(addr: SocketAddr, count: usize) -> BenchResult<EchoClient> {
        EchoClient::open(count, |i| {
            let std = StdStream::connect_timeout(&addr, Duration::from_secs(5))
                .map_err(|e| format!("connection {i} to {addr}: {e}"))?;
            std.set_nodelay(true).and_then(|()| std.set_nonblocking(true)).map_err(|e| e.to_string())?;
            Ok(Stream::Tcp(TcpStream::from_std(std)))
        })
    }

    /// Opens `count` connections to the Unix socket at `path`.
    pub fn connect_unix(path: &Path, count: usize) -> BenchResult<EchoClient> {
        EchoClient::open(count, |i| {
            let std = std::os::unix::net::UnixStream::connect(path)
                .map_err(|e| format!("connection {i} to unix:{}: {e}", path.display()))?;
            std.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok(Stream::Unix(UnixStream::from_std(std)))
        })
    }

    /// Opens `count` connections to `server`, over TCP or its Unix socket.
    pub fn connect_to(server: &crate::Server, count: usize) -> BenchResult<EchoClient> {
        match &server.unix {
            Some(path) => EchoClient::connect_unix(path, count),
            None => EchoClient::connect(server.addr, count),
        }
    }

    fn open(count: usize, mut connect: impl FnMut(usize) -> BenchResult<Stream>) -> BenchResult<EchoClient> {
        let poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
        let mut conns = Vec::with_capacity(count);
        for i in 0..count {
            let mut stream = connect(i)?;
            let interest = Interest::READABLE | Interest::WRITABLE;
            match &mut stream {
                Stream::Tcp(s) => poll.registry().register(s, Token(i), interest),
                Stream::Unix(s) => poll.registry().register(s, Token(i), interest),
            }
            .map_err(|e| format!("register: {e}"))?;
            conns.push(Conn { stream, sent: 0, received: 0, goal: 0 });
        }
        Ok(EchoClient {
            poll,
            events: Events::with_capacity(1024),
            conns,
            scratch: vec![0; 256 << 10],
            pattern: Vec::new(),
        })
    }

    /// Connections held.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no connection is held.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Echoes `messages` messages of `size` bytes in total, spread evenly over the connections, with at
    /// most `in_flight` unanswered messages per connection (1: ping-pong), and returns the time it took.
    pub fn run(&mut self, messages: u64, size: usize, in_flight: u32) -> BenchResult<Duration> {
        if self.conns.is_empty() || messages == 0 {
            return Ok(Duration::ZERO);
        }
        if self.pattern.len() != size {
            self.pattern = (0..size).map(|i| (i % 251) as u8).collect();
        }
        let n = self.conns.len() as u64;
        for (i, c) in self.conns.iter_mut().enumerate() {
            let share = messages / n + u64::from((i as u64) < messages % n);
            c.sent = 0;
            c.received = 0;
            c.goal = share * size as u64;
        }
        let window = u64::from(in_flight) * size as u64;
        let start = Instant::now();
        let mut unfinished = self.conns.iter().filter(|c| c.goal > 0).count();
        for c in &mut self.conns {
            c.write_some(&self.pattern, window).map_err(|e| format!("send: {e}"))?;
        }
        while unfinished > 0 {
            if start.elapsed() > RUN_LIMIT {
                return Err(format!("the server echoed too little within {RUN_LIMIT:?}: stalled"));
            }
            self.poll
                .poll(&mut self.events, Some(Duration::from_secs(1)))
                .map_err(|e| format!("poll: {e}"))?;
            for event in self.events.iter() {
                let c = &mut self.conns[event.token().0];
                if c.goal == 0 || c.received == c.goal {
                    continue;
                }
                if event.is_readable() || event.is_read_closed() {
                    c.read_some(&mut self.scratch).map_err(|e| format!("receive: {e}"))?;
                }
                c.write_some(&self.pattern, window).map_err(|e| format!("send: {e}"))?;
                if c.received == c.goal {
                    unfinished -= 1;
                }
            }
        }
        Ok(start.elapsed())
    }
}

impl Conn {
    /// Writes until the window is full, the goal is reached, or the socket is full.
    fn write_some(&mut self, pattern: &[u8], window: u64) -> io::Result<()> {
        let size = pattern.len() as u64;
        let limit = self.goal.min(self.received + window);
        while self.sent < limit {
            // One message (or the rest of one) per write: what a request/response peer does.
            let at = (self.sent % size) as usize;
            let len = (pattern.len() - at).min((limit - self.sent) as usize);
            match self.stream.write(&pattern[at..at + len]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads until drained (a short read counts as drained: readiness is edge-triggered).
    fn read_some(&mut self, scratch: &mut [u8]) -> io::Result<()> {
        loop {
            match self.stream.read(scratch) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ));
                }
                Ok(n) => {
                    self.received += n as u64;
                    if self.received > self.sent {
                        return Err(io::Error::other("the server sent more than it was sent"));
                    }
                    if n < scratch.len() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}
