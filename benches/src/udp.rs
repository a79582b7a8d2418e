//! UDP echo servers under comparison and a closed-loop datagram load that accounts for every datagram.
//!
//! The load: a few client sockets, each keeping `window` datagrams in flight; every datagram carries
//! its socket's id, a sequence number and a payload derived from both, and every echo is checked. A
//! datagram not back within the loss timeout is counted lost and replaced, so one loss does not stall
//! the window; one that comes back after that is counted late, never as received twice.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::BenchResult;
use crate::servers::{built_binary, spawn_pinned, udp_yardstick};

/// A UDP echo server under comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpServerKind {
    /// `echo-server --udp`: the reactor's datagram path (batched on Linux).
    Reactor,
    /// `udp_echo plain`: C, `recvfrom`/`sendto` on epoll.
    CPlain,
    /// `udp_echo batched`: C, `recvmmsg`/`sendmmsg`, 64 a call.
    CBatched,
    /// `tokio-udp-echo`: tokio's `UdpSocket`, current-thread runtime.
    Tokio,
}

impl UdpServerKind {
    /// Every kind, in the order rounds interleave them.
    pub const ALL: [UdpServerKind; 4] =
        [UdpServerKind::Reactor, UdpServerKind::CPlain, UdpServerKind::CBatched, UdpServerKind::Tokio];

    /// The short name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            UdpServerKind::Reactor => "reactor",
            UdpServerKind::CPlain => "c-plain",
            UdpServerKind::CBatched => "c-batched",
            UdpServerKind::Tokio => "tokio",
        }
    }

    fn command_line(self) -> BenchResult<(PathBuf, Vec<String>)> {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Ok(match self {
            UdpServerKind::Reactor => {
                (built_binary("echo-server")?, args(&["--udp", "--addr", "127.0.0.1:0"]))
            }
            UdpServerKind::CPlain => (udp_yardstick()?, args(&["plain"])),
            UdpServerKind::CBatched => (udp_yardstick()?, args(&["batched"])),
            UdpServerKind::Tokio => (built_binary("tokio-udp-echo")?, args(&["--addr", "127.0.0.1:0"])),
        })
    }

    /// Whether this server can run here; the note says why not.
    pub fn available(self) -> Result<(), String> {
        self.command_line().map(|_| ())
    }
}

/// A running UDP echo server, pinned to the server core; ended when dropped.
#[derive(Debug)]
pub struct UdpServer {
    /// What it is.
    pub kind: UdpServerKind,
    /// Where it answers datagrams.
    pub addr: SocketAddr,
    child: Child,
}

impl UdpServer {
    /// Starts `kind` behind `wrapper` (e.g. callgrind), pinned to the server core.
    pub fn start(kind: UdpServerKind, wrapper: &[String]) -> BenchResult<UdpServer> {
        let (program, args) = kind.command_line()?;
        let name = format!("udp-{}", kind.name());
        let (mut child, line) = spawn_pinned(&program, &args, wrapper, &name)?;
        // `listening on HOST:PORT`, with ` (udp)` after it; echo-server's first line is its TCP
        // listener, whose port its UDP socket shares.
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .map(|rest| rest.trim_end_matches(" (udp)"))
            .and_then(|a| a.parse().ok());
        match addr {
            Some(addr) => Ok(UdpServer { kind, addr, child }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("{name}: expected `listening on HOST:PORT`, got {line:?}"))
            }
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ends the server with SIGTERM (callgrind writes its counts then) and waits up to `limit`.
    pub fn stop(mut self, limit: Duration) {
        self.terminate(limit);
    }

    fn terminate(&mut self, limit: Duration) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate(Duration::from_secs(5));
        }
    }
}

/// The shape of a closed-loop datagram load.
#[derive(Clone, Copy, Debug)]
pub struct UdpLoad {
    /// Client sockets, each its own source port.
    pub sockets: usize,
    /// Datagrams in flight per socket.
    pub window: usize,
    /// Bytes per datagram (at least [`HEADER`]).
    pub size: usize,
    /// A datagram not back within this is counted lost and replaced.
    pub loss_timeout: Duration,
}

/// Socket id and sequence number at the head of each datagram.
pub const HEADER: usize = 12;

/// What one run accounted for: `sent == echoed + lost` holds at its end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpRun {
    /// Datagrams sent.
    pub sent: u64,
    /// Echoes received intact, each datagram at most once, within the loss timeout.
    pub echoed: u64,
    /// Not back within the loss timeout.
    pub lost: u64,
    /// Back after being counted lost (not counted in `echoed`).
    pub late: u64,
    /// A second echo of a datagram already received.
    pub duplicated: u64,
    /// An echo whose bytes are not what was sent (or that names no datagram sent).
    pub corrupted: u64,
    /// From the first send to the last echo or loss.
    pub elapsed: Duration,
}

/// One client socket's books.
struct Flow {
    socket: mio::net::UdpSocket,
    id: u32,
    /// Sequence numbers from `base` on: the send time of each still in flight, `None` once settled.
    pending: VecDeque<Option<Instant>>,
    base: u64,
    in_flight: usize,
    /// Counted lost, in case they come back late.
    lost: HashSet<u64>,
}

impl UdpLoad {
    /// Runs until `datagrams` datagrams are settled (echoed or lost), against the echo at `server`.
    pub fn run(&self, server: SocketAddr, datagrams: u64) -> BenchResult<UdpRun> {
        self.run_inner(server, datagrams).map_err(|e| format!("udp load against {server}: {e}"))
    }

    fn run_inner(&self, server: SocketAddr, datagrams: u64) -> io::Result<UdpRun> {
        let size = self.size.max(HEADER);
        let mut poll = Poll::new()?;
        let mut flows = Vec::with_capacity(self.sockets);
        for id in 0..self.sockets {
            let socket = UdpSocket::bind("127.0.0.1:0")?;
            socket.connect(server)?;
            socket.set_nonblocking(true)?;
            let mut socket = mio::net::UdpSocket::from_std(socket);
            poll.registry().register(&mut socket, Token(id), Interest::READABLE)?;
            flows.push(Flow {
                socket,
                id: id as u32,
                pending: VecDeque::new(),
                base: 0,
                in_flight: 0,
                lost: HashSet::new(),
            });
        }
        let mut run = UdpRun::default();
        let mut datagram = vec![0u8; size];
        let mut reply = vec![0u8; size + 64];
        let started = Instant::now();
        // Fill every window.
        for flow in &mut flows {
            for _ in 0..self.window {
                if run.sent < datagrams {
                    send_next(flow, &mut datagram, &mut run)?;
                }
            }
        }
        let deadline = started + Duration::from_secs(120) + self.loss_timeout;
        let mut events = Events::with_capacity(64);
        while run.echoed + run.lost < run.sent || run.sent < datagrams {
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("unsettled after 2 minutes: {run:?}"),
                ));
            }
            poll.poll(&mut events, Some(Duration::from_millis(10)))?;
            for event in events.iter() {
                let flow = &mut flows[event.token().0];
                loop {
                    let n = match flow.socket.recv(&mut reply) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        // ECONNREFUSED: the server is not there (yet); the loss timeout settles it.
                        Err(_) => break,
                    };
                    if settle(flow, &reply[..n], size, &mut run) && run.sent < datagrams {
                        send_next(flow, &mut datagram, &mut run)?;
                    }
                }
            }
            let now = Instant::now();
            for flow in &mut flows {
                for _ in expire(flow, now, self.loss_timeout, &mut run) {
                    if run.sent < datagrams {
                        send_next(flow, &mut datagram, &mut run)?;
                    }
                }
            }
        }
        run.elapsed = started.elapsed();
        Ok(run)
    }
}

/// Fills `datagram` for (`id`, `seq`): the header, then bytes derived from both.
fn fill(datagram: &mut [u8], id: u32, seq: u64) {
    datagram[..4].copy_from_slice(&id.to_be_bytes());
    datagram[4..HEADER].copy_from_slice(&seq.to_be_bytes());
    let seed = seq.wrapping_mul(31).wrapping_add(u64::from(id));
    for (i, byte) in datagram[HEADER..].iter_mut().enumerate() {
        *byte = seed.wrapping_add(i as u64) as u8;
    }
}

/// The bytes after the header are what [`fill`] put there for (`id`, `seq`).
fn intact(datagram: &[u8], id: u32, seq: u64) -> bool {
    let seed = seq.wrapping_mul(31).wrapping_add(u64::from(id));
    datagram[HEADER..].iter().enumerate().all(|(i, byte)| *byte == seed.wrapping_add(i as u64) as u8)
}

fn send_next(flow: &mut Flow, datagram: &mut [u8], run: &mut UdpRun) -> io::Result<()> {
    let seq = flow.base + flow.pending.len() as u64;
    fill(datagram, flow.id, seq);
    flow.pending.push_back(Some(Instant::now()));
    flow.in_flight += 1;
    run.sent += 1;
    match flow.socket.send(datagram) {
        Ok(_) => Ok(()),
        // Refused by our own kernel: it never left; the loss timeout settles it like any other loss.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
        Err(e) => Err(e),
    }
}

/// Books one echo; true when it settled a datagram in flight (so the window has room for another).
fn settle(flow: &mut Flow, reply: &[u8], size: usize, run: &mut UdpRun) -> bool {
    if reply.len() != size {
        run.corrupted += 1;
        return false;
    }
    let id = u32::from_be_bytes(reply[..4].try_into().unwrap_or_default());
    let seq = u64::from_be_bytes(reply[4..HEADER].try_into().unwrap_or_default());
    if id != flow.id {
        run.corrupted += 1;
        return false;
    }
    if !intact(reply, id, seq) {
        run.corrupted += 1;
        return false;
    }
    let index = seq.checked_sub(flow.base).map(|i| i as usize);
    match index.and_then(|i| flow.pending.get_mut(i)) {
        Some(slot @ Some(_)) => {
            *slot = None;
            flow.in_flight -= 1;
            run.echoed += 1;
            while flow.pending.front().is_some_and(Option::is_none) {
                flow.pending.pop_front();
                flow.base += 1;
            }
            true
        }
        _ if flow.lost.remove(&seq) => {
            run.late += 1;
            false
        }
        Some(None) => {
            run.duplicated += 1;
            false
        }
        None if seq < flow.base => {
            run.duplicated += 1;
            false
        }
        // Beyond anything sent.
        None => {
            run.corrupted += 1;
            false
        }
    }
}

/// Counts as lost every datagram in flight longer than `timeout`; returns how many (each to be
/// replaced).
fn expire(flow: &mut Flow, now: Instant, timeout: Duration, run: &mut UdpRun) -> std::ops::Range<u64> {
    let mut expired = 0;
    for (i, slot) in flow.pending.iter_mut().enumerate() {
        match slot {
            Some(sent) if now.duration_since(*sent) > timeout => {
                *slot = None;
                flow.lost.insert(flow.base + i as u64);
                flow.in_flight -= 1;
                run.lost += 1;
                expired += 1;
            }
            // Sent in order: the rest are younger.
            Some(_) => break,
            None => {}
        }
    }
    while flow.pending.front().is_some_and(Option::is_none) {
        flow.pending.pop_front();
        flow.base += 1;
    }
    0..expired
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_datagram_is_accounted_for_when_the_echo_drops_and_duplicates() {
        let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = echo.local_addr().unwrap();
        echo.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        // Drops the 10th datagram it sees and answers the 20th twice.
        let server = std::thread::spawn(move || {
            let mut buffer = [0u8; 256];
            let mut seen = 0;
            while let Ok((n, from)) = echo.recv_from(&mut buffer) {
                seen += 1;
                if seen == 10 {
                    continue;
                }
                echo.send_to(&buffer[..n], from).unwrap();
                if seen == 20 {
                    echo.send_to(&buffer[..n], from).unwrap();
                }
            }
        });
        let load = UdpLoad { sockets: 2, window: 4, size: 64, loss_timeout: Duration::from_millis(200) };
        let run = load.run(addr, 500).unwrap();
        server.join().unwrap();
        assert_eq!(run.sent, 500);
        assert_eq!(run.sent, run.echoed + run.lost, "{run:?}");
        assert_eq!((run.lost, run.duplicated, run.corrupted), (1, 1, 0), "{run:?}");
    }
}
