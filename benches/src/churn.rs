//! Connection churn for the accept-rate bench: connect, echo one byte, close, with a few cycles in
//! flight at once.
//!
//! Each cycle binds a different loopback source address (127.3.0.0/16, round-robin), so that the
//! TIME_WAIT sockets the client's closes leave behind never exhaust one address's ephemeral ports.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Socket, Type};

use crate::BenchResult;
use crate::client::RUN_LIMIT;

/// Cycles in flight at once: enough to keep a server's accept queue busy, few enough to stay far from
/// any limit.
pub const CONCURRENT: usize = 16;

/// A connect → echo one byte → close loop against one server.
#[derive(Debug)]
pub struct Churn {
    target: SocketAddr,
    poll: Poll,
    events: Events,
    slots: Vec<Option<Cycle>>,
    next_source: u32,
}

#[derive(Debug)]
struct Cycle {
    stream: TcpStream,
    sent: bool,
}

impl Churn {
    /// A churn loop against `target`.
    pub fn new(target: SocketAddr) -> BenchResult<Churn> {
        let poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
        Ok(Churn {
            target,
            poll,
            events: Events::with_capacity(256),
            slots: (0..CONCURRENT).map(|_| None).collect(),
            next_source: 0,
        })
    }

    /// Completes `cycles` connect/echo/close cycles and returns the time it took.
    pub fn run(&mut self, cycles: u64) -> BenchResult<Duration> {
        let start = Instant::now();
        let mut started = 0u64;
        let mut done = 0u64;
        for slot in 0..self.slots.len() {
            if started < cycles {
                self.open(slot)?;
                started += 1;
            }
        }
        while done < cycles {
            if start.elapsed() > RUN_LIMIT {
                return Err(format!(
                    "only {done} of {cycles} connect/echo/close cycles within {RUN_LIMIT:?}"
                ));
            }
            self.poll
                .poll(&mut self.events, Some(Duration::from_secs(1)))
                .map_err(|e| format!("poll: {e}"))?;
            let ready: Vec<usize> = self.events.iter().map(|e| e.token().0).collect();
            for slot in ready {
                if self.step(slot)? {
                    done += 1;
                    if started < cycles {
                        self.open(slot)?;
                        started += 1;
                    }
                }
            }
        }
        Ok(start.elapsed())
    }

    /// Starts a non-blocking connect from the next source address in slot `slot`.
    fn open(&mut self, slot: usize) -> BenchResult<()> {
        let index = self.next_source;
        self.next_source = (self.next_source + 1) % 65_000;
        let source = Ipv4Addr::new(127, 3, (index / 250) as u8, (index % 250 + 1) as u8);
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| format!("socket: {e}"))?;
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        socket.set_tcp_nodelay(true).map_err(|e| e.to_string())?;
        socket.bind(&SocketAddrV4::new(source, 0).into()).map_err(|e| format!("bind {source}: {e}"))?;
        match socket.connect(&self.target.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::EINPROGRESS) => {}
            Err(e) => return Err(format!("connect to {}: {e}", self.target)),
        }
        let mut stream = TcpStream::from_std(socket.into());
        self.poll
            .registry()
            .register(&mut stream, Token(slot), Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| format!("register: {e}"))?;
        self.slots[slot] = Some(Cycle { stream, sent: false });
        Ok(())
    }

    /// Moves slot `slot` on; true when its cycle completed (and its connection is closed).
    fn step(&mut self, slot: usize) -> BenchResult<bool> {
        let Some(cycle) = self.slots[slot].as_mut() else { return Ok(false) };
        if !cycle.sent {
            if let Some(e) = cycle.stream.take_error().map_err(|e| e.to_string())? {
                return Err(format!("connect to {}: {e}", self.target));
            }
            match cycle.stream.write(b"x") {
                Ok(_) => cycle.sent = true,
                // Not connected yet: a later WRITABLE event says when.
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::NotConnected =>
                {
                    return Ok(false);
                }
                Err(e) => return Err(format!("send: {e}")),
            }
        }
        let mut byte = [0u8; 1];
        match cycle.stream.read(&mut byte) {
            Ok(1) => {
                if let Some(mut done) = self.slots[slot].take() {
                    let _ = self.poll.registry().deregister(&mut done.stream);
                }
                Ok(true)
            }
            Ok(_) => Err("the server closed before echoing".into()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(format!("receive: {e}")),
        }
    }
}
