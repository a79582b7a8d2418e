//! Test support shared by the workspace's integration tests.
//!
//! The clients here are written directly on `mio`, not on the reactor they test, so that a bug in the
//! reactor cannot hide itself by appearing on both ends. The server side of an in-process test, which
//! *is* the reactor, lives apart in the `server` module, behind the feature of that name.
//!
//! # Feature `server`
//! `testkit::server` runs an event loop of the reactor on its own thread (`Server`) with an echo
//! handler that records how connections ended (`Echo`). Test crates that exercise the reactor in
//! process enable it (`testkit = { workspace = true, features = ["server"] }`); nothing else in this
//! crate may use the reactor.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

#[cfg(feature = "server")]
pub mod server;

/// Deterministic bytes for connection `seed`: cheap to generate again for checking.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A small deterministic generator for sizes and choices in tests.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1)
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: usize, high: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + (self.0 % (high - low + 1) as u64) as usize
    }
}

/// `count` sizes spread evenly over the powers of two from 1 B to `max`, so tiny and huge both occur;
/// the first is always 1 B and the second always `max`.
pub fn spread_sizes(count: usize, max: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let top = max.ilog2() as usize;
    let mut sizes: Vec<usize> = (0..count)
        .map(|_| {
            let exponent = rng.between(0, top);
            rng.between(1 << exponent.saturating_sub(1), (1 << exponent).min(max))
        })
        .collect();
    sizes[..count.min(2)].copy_from_slice(&[1, max][..count.min(2)]);
    sizes
}

/// One job per size, each with its own payload.
pub fn echo_jobs(sizes: &[usize], half_close: bool) -> Vec<EchoJob> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| EchoJob { payload: payload(i as u64, len), half_close })
        .collect()
}

/// Sends `total` bytes to an echo server without reading until the server stops taking them (its
/// back-pressure), calls `while_stalled` with the bytes sent so far, then reads everything back while
/// sending the rest, and checks that the echo is byte-identical. Returns the bytes sent before the
/// stall.
pub fn flood_then_drain(
    addr: SocketAddr,
    total: usize,
    while_stalled: impl FnOnce(usize),
) -> Result<usize, String> {
    let stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream.set_nonblocking(true).map_err(|e| e.to_string())?;
    flood_then_drain_on(stream, total, while_stalled)
}

/// [`flood_then_drain`] on a stream already connected and non-blocking, of any kind (a Unix socket,
/// say).
pub fn flood_then_drain_on(
    mut stream: impl Read + Write,
    total: usize,
    while_stalled: impl FnOnce(usize),
) -> Result<usize, String> {
    let data = payload(99, total);
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stalled_since: Option<Instant> = None;
    while sent < total {
        if Instant::now() > deadline {
            return Err("the server neither took the data nor stalled".into());
        }
        match stream.write(&data[sent..]) {
            Ok(n) => {
                sent += n;
                stalled_since = None;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Stalled for a while: the server has stopped reading.
                if stalled_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_millis(300) {
                    break;
                }
                std::thread::yield_now();
            }
            Err(e) => return Err(format!("write at byte {sent}: {e}")),
        }
    }
    if sent == total {
        return Err(format!("the server read all {total} bytes from a peer that never read"));
    }
    let stalled_at = sent;
    while_stalled(stalled_at);
    let mut received = 0;
    let mut buffer = vec![0; 1 << 16];
    let deadline = Instant::now() + Duration::from_secs(60);
    while received < total {
        if Instant::now() > deadline {
            return Err(format!("echo stalled at {received} of {total} bytes"));
        }
        if sent < total {
            match stream.write(&data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("write at byte {sent}: {e}")),
            }
        }
        match stream.read(&mut buffer) {
            Ok(0) => return Err(format!("EOF after {received} of {total} bytes")),
            Ok(n) => {
                if data[received..received + n] != buffer[..n] {
                    return Err(format!("wrong bytes in the echo after offset {received}"));
                }
                received += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) => return Err(format!("read at byte {received}: {e}")),
        }
    }
    Ok(stalled_at)
}

/// What one connection of an [`EchoRun`] must do.
#[derive(Clone, Debug)]
pub struct EchoJob {
    /// The bytes to send.
    pub payload: Vec<u8>,
    /// Shut our sending side once everything is sent, and require EOF after the echo.
    pub half_close: bool,
}

/// Many concurrent connections, each sending its payload and checking every byte that comes back.
#[derive(Debug)]
pub struct EchoRun {
    /// The server.
    pub addr: SocketAddr,
    /// One job per connection.
    pub jobs: Vec<EchoJob>,
    /// The whole run must end by then.
    pub deadline: Duration,
}

struct Peer {
    stream: mio::net::TcpStream,
    sent: usize,
    received: usize,
    shut: bool,
    eof: bool,
}

impl EchoRun {
    /// Runs every job at once; returns the bytes echoed, or what went wrong, naming connection and byte
    /// offset.
    pub fn run(self) -> Result<u64, String> {
        let started = Instant::now();
        let mut poll = Poll::new().map_err(|e| e.to_string())?;
        let mut peers = Vec::with_capacity(self.jobs.len());
        for (i, _) in self.jobs.iter().enumerate() {
            let stream =
                TcpStream::connect(self.addr).map_err(|e| format!("connection {i}: connect: {e}"))?;
            stream.set_nonblocking(true).map_err(|e| e.to_string())?;
            let mut stream = mio::net::TcpStream::from_std(stream);
            poll.registry()
                .register(&mut stream, Token(i), Interest::READABLE | Interest::WRITABLE)
                .map_err(|e| e.to_string())?;
            peers.push(Peer { stream, sent: 0, received: 0, shut: false, eof: false });
        }
        let mut events = Events::with_capacity(1024);
        let mut buffer = vec![0; 256 * 1024];
        let mut done = 0;
        let mut total = 0u64;
        let is_done = |p: &Peer, job: &EchoJob| p.received == job.payload.len() && (!job.half_close || p.eof);
        while done < peers.len() {
            let left = self.deadline.checked_sub(started.elapsed()).ok_or_else(|| {
                let stuck: Vec<String> = peers
                    .iter()
                    .zip(&self.jobs)
                    .enumerate()
                    .filter(|(_, (p, j))| !is_done(p, j))
                    .take(5)
                    .map(|(i, (p, j))| {
                        format!("#{i} sent {}/{} got {} eof {}", p.sent, j.payload.len(), p.received, p.eof)
                    })
                    .collect();
                format!("deadline passed with {} of {} connections done; e.g. {stuck:?}", done, peers.len())
            })?;
            poll.poll(&mut events, Some(left)).map_err(|e| e.to_string())?;
            for event in events.iter() {
                let i = event.token().0;
                let (peer, job) = (&mut peers[i], &self.jobs[i]);
                if is_done(peer, job) {
                    continue;
                }
                while peer.sent < job.payload.len() {
                    match peer.stream.write(&job.payload[peer.sent..]) {
                        Ok(n) => peer.sent += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(format!("connection {i}: write at byte {}: {e}", peer.sent)),
                    }
                }
                if peer.sent == job.payload.len() && job.half_close && !peer.shut {
                    peer.stream
                        .shutdown(Shutdown::Write)
                        .map_err(|e| format!("connection {i}: shutdown: {e}"))?;
                    peer.shut = true;
                }
                loop {
                    match peer.stream.read(&mut buffer) {
                        Ok(0) => {
                            if peer.received < job.payload.len() {
                                return Err(format!(
                                    "connection {i}: EOF after {} of {} bytes",
                                    peer.received,
                                    job.payload.len()
                                ));
                            }
                            peer.eof = true;
                            break;
                        }
                        Ok(n) => {
                            let expected = job.payload.get(peer.received..peer.received + n);
                            if expected != Some(&buffer[..n]) {
                                let offset = (0..n)
                                    .find(|k| job.payload.get(peer.received + k) != Some(&buffer[*k]))
                                    .unwrap_or(0);
                                return Err(format!(
                                    "connection {i}: wrong byte at offset {}",
                                    peer.received + offset
                                ));
                            }
                            peer.received += n;
                            total += n as u64;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            return Err(format!("connection {i}: read at byte {}: {e}", peer.received));
                        }
                    }
                }
                if is_done(peer, job) {
                    done += 1;
                }
            }
        }
        Ok(total)
    }
}

/// A server binary run as a child process; killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    /// The child.
    pub child: Child,
    /// The address from its `listening on` line.
    pub addr: SocketAddr,
    /// Its stdout after the first line.
    pub stdout: BufReader<std::process::ChildStdout>,
}

impl ServerProcess {
    /// Starts `command` with stdout piped and waits (up to 20 s) for its `listening on HOST:PORT` line.
    pub fn start(mut command: Command) -> ServerProcess {
        command.stdout(Stdio::piped()).stdin(Stdio::null());
        let mut child = command.spawn().expect("start the server");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let line = read_line_within(&mut stdout, Duration::from_secs(20));
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("expected 'listening on HOST:PORT', got {line:?}"));
        ServerProcess { child, addr, stdout }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), signal)
            .expect("signal the server");
    }

    /// Waits up to `limit` for the child to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one line, failing the test if none arrives within `limit`.
fn read_line_within(reader: &mut BufReader<std::process::ChildStdout>, limit: Duration) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
        });
        rx.recv_timeout(limit).expect("the server printed nothing in time")
    })
}

/// Polls `condition` every few milliseconds until it holds or `limit` passes; returns whether it held.
pub fn wait_for(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A line of `/proc/PID/status` (e.g. "VmRSS", "Threads") as a number (kB for sizes); fails the test
/// if the process is gone or has no such line.
#[cfg(target_os = "linux")]
pub fn proc_status(pid: u32, field: &str) -> u64 {
    hostinfo::process::status_field(pid, field)
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status (is the process gone?)"))
}

/// User plus system CPU time of a process, in clock ticks (usually 1/100 s); fails the test if the
/// process is gone.
#[cfg(target_os = "linux")]
pub fn proc_cpu_ticks(pid: u32) -> u64 {
    hostinfo::process::cpu_ticks(pid).unwrap_or_else(|| panic!("cannot read /proc/{pid}/stat"))
}

/// Descriptors a process holds open (0 if it is gone).
#[cfg(target_os = "linux")]
pub fn open_fds(pid: u32) -> usize {
    hostinfo::process::open_fds(pid)
}

/// Raises this test process's soft descriptor limit to the hard one when it is below `needed`, and
/// says so in the test output; fails the test when even the hard limit is below `needed`.
pub fn raise_fd_limit(needed: u64) {
    let hostinfo::FdLimit { soft, hard } = hostinfo::fd_limit().expect("getrlimit");
    if soft < needed {
        hostinfo::raise_fd_limit().expect("setrlimit");
        println!("raised this test's descriptor limit from {soft} to {hard} (needs {needed})");
    }
    assert!(hard >= needed, "this test needs {needed} descriptors; the hard limit is {hard}");
}

/// Connects and counts, per connection, how many bytes come back until EOF; a blocking helper for
/// small checks.
pub fn echo_once(addr: SocketAddr, data: &[u8], limit: Duration) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(limit))?;
    stream.write_all(data)?;
    let mut reply = vec![0; data.len()];
    stream.read_exact(&mut reply)?;
    Ok(reply)
}
