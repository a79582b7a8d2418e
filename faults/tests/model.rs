//! The reactor against a model: random sequences of peer actions with invariants checked after every
//! step. (The token-reuse rule is `reactor/tests/api.rs`'s `closed_token_reused_in_same_batch`.)

// The suite is Linux only (see the crate docs).
#![cfg(target_os = "linux")]

mod util;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use reactor::{
    CloseKind, CloseReason, Config, ConnId, Context, EventLoop, Handler, ListenerOptions, Next, Origin,
};
use testkit::Rng;
use util::report;

/// Echoes, and keeps the server's view of every connection by its peer's port.
#[derive(Debug, Default)]
struct Tracker {
    by_port: HashMap<u16, ConnId>,
    ports: HashMap<ConnId, u16>,
    closes: Vec<(u16, CloseKind)>,
}

impl Handler for Tracker {
    type Message = ();
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: Origin) {
        let port = ctx.peer_addr(conn).map(|a| a.port()).unwrap_or(0);
        self.by_port.insert(port, conn);
        self.ports.insert(conn, port);
    }
    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        if ctx.send(conn, data).is_err() { Next::Close } else { Next::Continue }
    }
    fn on_close(&mut self, _: &mut Context<'_>, conn: ConnId, reason: &CloseReason) {
        let port = self.ports.remove(&conn).unwrap_or(0);
        self.by_port.remove(&port);
        self.closes.push((port, reason.kind()));
    }
}

/// What the model knows about one peer.
#[derive(Debug)]
struct Peer {
    /// Gone once the peer reset the connection.
    stream: Option<TcpStream>,
    port: u16,
    sent: Vec<u8>,
    received: usize,
    half_closed: bool,
    reset: bool,
    paused: bool,
    eof: bool,
}

impl Peer {
    fn active(&self) -> bool {
        !self.reset && !self.eof
    }
    /// The server must still hold this peer's connection.
    fn open_on_server(&self) -> bool {
        !self.reset && !self.eof
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Connect,
    Send(usize, usize),
    HalfClose(usize),
    Reset(usize),
    Pause(usize),
    Resume(usize),
}

struct Model {
    event_loop: EventLoop<Tracker>,
    addr: SocketAddr,
    peers: Vec<Peer>,
    log: Vec<Op>,
    seed: u64,
    bytes: u64,
}

impl Model {
    fn new(seed: u64) -> Model {
        let config = Config { raise_fd_limit: false, ..Config::default() };
        let mut event_loop = EventLoop::new(config, Tracker::default()).unwrap();
        let (_, addr) = event_loop.listen(&ListenerOptions::new("127.0.0.1:0".parse().unwrap())).unwrap();
        Model { event_loop, addr, peers: Vec::new(), log: Vec::new(), seed, bytes: 0 }
    }

    #[track_caller]
    fn fail(&self, what: String) -> ! {
        panic!(
            "seed {}: after step {} ({:?}): {what}\nsteps: {:?}\nreproduce with FAULTS_MODEL_SEED={}",
            self.seed,
            self.log.len(),
            self.log.last(),
            self.log,
            self.seed
        );
    }

    fn pick(&self, rng: &mut Rng, ok: impl Fn(&Peer) -> bool) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.peers.len()).filter(|i| ok(&self.peers[*i])).collect();
        (!candidates.is_empty()).then(|| candidates[rng.between(0, candidates.len() - 1)])
    }

    fn choose(&self, rng: &mut Rng) -> Op {
        let live = self.peers.iter().filter(|p| p.active()).count();
        loop {
            let op = match rng.between(0, 9) {
                0 | 1 if live < 24 => Some(Op::Connect),
                2..=5 => self.pick(rng, |p| p.active() && !p.half_closed).map(|i| {
                    let bits = rng.between(0, 17);
                    Op::Send(i, rng.between(1, 1 << bits))
                }),
                6 => self.pick(rng, |p| p.active() && !p.half_closed).map(Op::HalfClose),
                7 => self.pick(rng, |p| p.active()).map(Op::Reset),
                8 => self.pick(rng, |p| p.active() && !p.paused).map(Op::Pause),
                9 => self.pick(rng, |p| p.active() && p.paused).map(Op::Resume),
                _ => None,
            };
            if let Some(op) = op {
                return op;
            }
            if live == 0 {
                return Op::Connect;
            }
        }
    }

    fn conn(&self, i: usize) -> Option<ConnId> {
        self.event_loop.handler().by_port.get(&self.peers[i].port).copied()
    }

    fn apply(&mut self, op: Op) {
        self.log.push(op);
        match op {
            Op::Connect => {
                let stream = TcpStream::connect(self.addr).unwrap();
                stream.set_nonblocking(true).unwrap();
                let port = stream.local_addr().unwrap().port();
                self.peers.push(Peer {
                    stream: Some(stream),
                    port,
                    sent: Vec::new(),
                    received: 0,
                    half_closed: false,
                    reset: false,
                    paused: false,
                    eof: false,
                });
            }
            Op::Send(i, len) => {
                let data = testkit::payload(self.seed ^ (self.log.len() as u64) << 20, len);
                let peer = &mut self.peers[i];
                let Some(stream) = peer.stream.as_mut() else { return };
                match stream.write(&data) {
                    Ok(n) => peer.sent.extend_from_slice(&data[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => self.fail(format!("peer {i}: write: {e}")),
                }
            }
            Op::HalfClose(i) => {
                if let Some(stream) = &self.peers[i].stream {
                    stream.shutdown(Shutdown::Write).unwrap();
                }
                self.peers[i].half_closed = true;
            }
            Op::Reset(i) => {
                let peer = &mut self.peers[i];
                if let Some(stream) = peer.stream.take() {
                    socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).unwrap();
                }
                peer.reset = true;
            }
            Op::Pause(i) => {
                self.settle_open(i);
                let Some(conn) = self.conn(i) else {
                    self.fail(format!("peer {i} has no server connection"))
                };
                self.event_loop.context().pause_reading(conn).unwrap();
                self.peers[i].paused = true;
            }
            Op::Resume(i) => {
                let Some(conn) = self.conn(i) else {
                    self.fail(format!("peer {i} has no server connection"))
                };
                self.event_loop.context().resume_reading(conn).unwrap();
                self.peers[i].paused = false;
            }
        }
    }

    /// Runs the loop until peer `i` is known to the server.
    fn settle_open(&mut self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.conn(i).is_none() && Instant::now() < deadline {
            self.event_loop.run_once(Some(Duration::from_millis(5))).unwrap();
        }
    }

    /// Reads what every peer has waiting, checking it is the next part of what it sent.
    fn read_all(&mut self) {
        let mut buffer = vec![0; 256 * 1024];
        for i in 0..self.peers.len() {
            let peer = &mut self.peers[i];
            let Some(stream) = peer.stream.as_mut().filter(|_| !peer.eof) else { continue };
            loop {
                match stream.read(&mut buffer) {
                    Ok(0) => {
                        peer.eof = true;
                        break;
                    }
                    Ok(n) => {
                        let expected = peer.sent.get(peer.received..peer.received + n);
                        if expected != Some(&buffer[..n]) {
                            let at = peer.received;
                            self.fail(format!("peer {i}: echo differs from what it sent at byte {at}"));
                        }
                        peer.received += n;
                        self.bytes += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => self.fail(format!("peer {i}: read: {e}")),
                }
            }
        }
    }

    /// Whether the system has reached what the model expects.
    fn settled(&self) -> bool {
        let server = &self.event_loop.handler().by_port;
        self.peers.iter().all(|p| {
            let echoed = p.paused || p.reset || p.received == p.sent.len();
            let ended = !p.half_closed || p.paused || p.reset || p.eof;
            let server_state = server.contains_key(&p.port) == p.open_on_server() || (p.eof && p.paused);
            echoed && ended && server_state
        })
    }

    /// Drives loop and peers until the model's expectations hold, then checks the invariants.
    fn settle(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            self.event_loop.run_once(Some(Duration::from_millis(1))).unwrap();
            self.read_all();
            if self.settled() {
                break;
            }
            if Instant::now() > deadline {
                let stuck: Vec<String> = self
                    .peers
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| !p.reset)
                    .map(|(i, p)| {
                        format!(
                            "#{i} sent {} got {} half {} paused {} eof {} on-server {}",
                            p.sent.len(),
                            p.received,
                            p.half_closed,
                            p.paused,
                            p.eof,
                            self.event_loop.handler().by_port.contains_key(&p.port)
                        )
                    })
                    .collect();
                self.fail(format!("did not settle within 5 s: {stuck:?}"));
            }
        }
        let counters = self.event_loop.stats().clone();
        let handler = self.event_loop.handler();
        if counters.active != handler.by_port.len() as u64 {
            self.fail(format!(
                "stats say {} active, the handler sees {}",
                counters.active,
                handler.by_port.len()
            ));
        }
        if counters.closed_total() != handler.closes.len() as u64 {
            self.fail(format!(
                "stats count {} closes, the handler saw {}",
                counters.closed_total(),
                handler.closes.len()
            ));
        }
        if counters.accepted != self.peers.len() as u64 {
            self.fail(format!("{} accepted for {} connects", counters.accepted, self.peers.len()));
        }
        for (port, kind) in &handler.closes {
            let Some(peer) = self.peers.iter().find(|p| p.port == *port) else { continue };
            let allowed: &[CloseKind] =
                if peer.reset { &[CloseKind::Reset] } else { &[CloseKind::PeerClosed] };
            if !allowed.contains(kind) {
                self.fail(format!(
                    "peer on port {port} closed as {} (reset by peer: {})",
                    kind.name(),
                    peer.reset
                ));
            }
        }
    }
}

fn run_model(seed: u64, steps: usize) -> (u64, usize) {
    let mut model = Model::new(seed);
    let mut rng = Rng::new(seed);
    for _ in 0..steps {
        let op = model.choose(&mut rng);
        model.apply(op);
        model.settle();
    }
    (model.bytes, model.peers.len())
}

#[test]
fn randomized_model_every_byte_comes_back_and_no_entry_outlives_its_socket() {
    util::init();
    let seeds: Vec<u64> = match std::env::var("FAULTS_MODEL_SEED") {
        Ok(seed) => vec![seed.parse().expect("FAULTS_MODEL_SEED is a number")],
        Err(_) => (1..=faults::scaled("seeds", 200u64, 2_000)).collect(),
    };
    let steps = faults::scaled("steps per seed", 100usize, 300);
    let started = Instant::now();
    let (mut bytes, mut peers) = (0, 0);
    for &seed in &seeds {
        let (b, p) = run_model(seed, steps);
        bytes += b;
        peers += p;
    }
    report(
        "randomized model",
        "seeded random connect / send (1 B..128 KiB) / half-close / reset / pause / resume against an in-process loop; invariants after every step",
        &[
            ("seeds x steps", format!("{} x {steps} in {:?}", seeds.len(), started.elapsed())),
            ("connections", peers.to_string()),
            ("bytes verified", bytes.to_string()),
            ("invariants", "echo is an exact prefix; unpaused peers get everything back; half-closed get EOF; server entries == live peers; stats == handler's view; close reasons match".into()),
        ],
    );
}
