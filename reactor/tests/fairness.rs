//! One flooding peer cannot starve the others: a per-turn read budget parks it until the next turn.

mod util;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use reactor::{Config, ConnId, Context, EventLoop, Handler, ListenerOptions, Next, Origin};

/// Counts bytes per connection in the order connections were opened.
#[derive(Default)]
struct Sink {
    order: Vec<ConnId>,
    bytes: HashMap<ConnId, usize>,
}

impl Handler for Sink {
    type Message = ();
    fn on_open(&mut self, _: &mut Context<'_>, conn: ConnId, _: Origin) {
        self.order.push(conn);
    }
    fn on_data(&mut self, _: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        *self.bytes.entry(conn).or_default() += data.len();
        Next::Continue
    }
}

impl Sink {
    fn got(&self, index: usize) -> usize {
        self.order.get(index).and_then(|c| self.bytes.get(c)).copied().unwrap_or(0)
    }
}

#[test]
fn a_flooding_peer_is_parked_after_its_budget_and_the_quiet_one_is_served() {
    util::init();
    const FLOOD: usize = 64 * 1024;
    let config = Config {
        read_buffer: 4 * 1024,
        read_budget: 16 * 1024,
        high_watermark: 32 * 1024,
        low_watermark: 8 * 1024,
        ..Config::default()
    };
    let (budget, buffer) = (config.read_budget, config.read_buffer);
    let mut event_loop = EventLoop::new(config, Sink::default()).unwrap();
    let (_, addr) = event_loop.listen(&ListenerOptions::new(util::any_local_address())).unwrap();
    let mut flooder = TcpStream::connect(addr).unwrap();
    let mut quiet = TcpStream::connect(addr).unwrap();
    for _ in 0..50 {
        if event_loop.handler().order.len() == 2 {
            break;
        }
        event_loop.run_once(Some(Duration::from_millis(20))).unwrap();
    }
    assert_eq!(event_loop.handler().order.len(), 2);
    flooder.write_all(&testkit::payload(1, FLOOD)).unwrap();
    quiet.write_all(b"!").unwrap();

    event_loop.run_once(Some(Duration::from_secs(5))).unwrap();
    let first_turn = event_loop.handler().got(0);
    assert!(first_turn > 0, "the flooder was not read at all");
    assert!(first_turn <= budget + buffer, "the flooder got {first_turn} B in one turn, budget {budget} B");
    for _ in 0..100 {
        if event_loop.handler().got(0) == FLOOD && event_loop.handler().got(1) == 1 {
            break;
        }
        event_loop.run_once(Some(Duration::from_millis(20))).unwrap();
    }
    assert_eq!(event_loop.handler().got(1), 1, "the quiet peer was starved");
    assert_eq!(event_loop.handler().got(0), FLOOD, "the parked flooder was not resumed on later turns");
}

/// Answers every byte with `AMPLIFY` bytes: a peer whose data makes the loop write much more than it
/// read, as a chat line fanned out to many peers does.
#[derive(Default)]
struct Amplifier {
    read: usize,
    reads: usize,
}

const AMPLIFY: usize = 4;

impl Handler for Amplifier {
    type Message = ();
    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        self.read += data.len();
        self.reads += 1;
        for _ in 0..AMPLIFY {
            if ctx.send(conn, data).is_err() {
                return Next::Close;
            }
        }
        Next::Continue
    }
}

#[test]
fn the_read_budget_counts_what_the_data_made_the_loop_write() {
    util::init();
    const SENT: usize = 32 * 1024;
    let config = Config {
        read_buffer: 4 * 1024,
        read_budget: 16 * 1024,
        high_watermark: 256 * 1024,
        low_watermark: 64 * 1024,
        ..Config::default()
    };
    let buffer = config.read_buffer;
    let mut event_loop = EventLoop::new(config, Amplifier::default()).unwrap();
    let (_, addr) = event_loop.listen(&ListenerOptions::new(util::any_local_address())).unwrap();
    let mut peer = TcpStream::connect(addr).unwrap();
    peer.write_all(&testkit::payload(2, SENT)).unwrap();
    // Drain the replies on a thread, so that the loop's writes go straight to the socket.
    let reader = std::thread::spawn(move || {
        let mut sink = [0; 64 * 1024];
        let mut total = 0;
        peer.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        while total < SENT * AMPLIFY {
            match std::io::Read::read(&mut peer, &mut sink) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        total
    });

    let mut reads_in_first_turn = None;
    for _ in 0..500 {
        event_loop.run_once(Some(Duration::from_millis(20))).unwrap();
        let handler = event_loop.handler();
        if reads_in_first_turn.is_none() && handler.reads > 0 {
            reads_in_first_turn = Some(handler.reads);
        }
        if handler.read == SENT {
            break;
        }
    }
    // Each 4 KiB read writes 16 KiB: the 16 KiB budget is spent after the first or second read, where
    // counting only the bytes read would allow four.
    let first = reads_in_first_turn.expect("nothing was read");
    assert!(first <= 2, "{first} reads of {buffer} B in one turn, each writing {AMPLIFY}x as much");
    assert_eq!(event_loop.handler().read, SENT, "the parked peer was read to the end on later turns");
    assert_eq!(reader.join().unwrap(), SENT * AMPLIFY);
}

/// Records how many connections each loop turn accepted.
#[derive(Default)]
struct AcceptsPerTurn {
    per_turn: HashMap<u64, usize>,
    accepted: usize,
}

impl Handler for AcceptsPerTurn {
    type Message = ();
    fn on_open(&mut self, ctx: &mut Context<'_>, _: ConnId, _: Origin) {
        *self.per_turn.entry(ctx.stats().turns).or_default() += 1;
        self.accepted += 1;
    }
    fn on_data(&mut self, _: &mut Context<'_>, _: ConnId, _: &[u8]) -> Next {
        Next::Continue
    }
}

#[test]
fn a_connect_flood_is_accepted_a_budget_per_turn() {
    util::init();
    const PEERS: usize = 300;
    testkit::raise_fd_limit(2 * PEERS as u64 + 100);
    let config = Config::default();
    let budget = config.accept_budget;
    assert!(budget < PEERS, "the test needs more peers than one turn's budget");
    let mut event_loop = EventLoop::new(config, AcceptsPerTurn::default()).unwrap();
    let (_, addr) =
        event_loop.listen(&ListenerOptions::new(util::any_local_address()).backlog(1024)).unwrap();
    // Every peer completes its handshake in the kernel and waits in the accept queue before the loop
    // runs at all.
    let peers: Vec<TcpStream> = (0..PEERS).map(|_| TcpStream::connect(addr).unwrap()).collect();
    for _ in 0..500 {
        if event_loop.handler().accepted == PEERS {
            break;
        }
        event_loop.run_once(Some(Duration::from_millis(20))).unwrap();
    }
    let handler = event_loop.handler();
    assert_eq!(handler.accepted, PEERS, "the rest of the queue was accepted on later turns");
    let most = handler.per_turn.values().copied().max().unwrap_or(0);
    assert!(most <= budget, "{most} accepts in one turn, budget {budget}");
    drop(peers);
}
