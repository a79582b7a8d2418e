//! The chat example: lines fan out to every other peer, partial lines are joined, and a slow peer
//! misses lines instead of growing the server's memory.

mod util;

#[allow(dead_code)] // the example's `main` and command line are not used here
#[path = "../examples/chat.rs"]
mod chat;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use chat::{Chat, FANOUT_PER_TURN, MAX_LINE, SLOW_PEER_QUEUE};
use reactor::{Config, EventLoop, ListenerOptions};
use util::Server;

/// A connected peer that reads whole lines.
struct Peer {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Peer {
    fn join(addr: SocketAddr) -> Peer {
        Peer::from_stream(TcpStream::connect(addr).unwrap())
    }

    fn from_stream(stream: TcpStream) -> Peer {
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.set_nodelay(true).unwrap();
        Peer { writer: stream.try_clone().unwrap(), reader: BufReader::new(stream) }
    }

    #[track_caller]
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("a line within the timeout");
        line
    }

    fn addr(&self) -> String {
        self.writer.local_addr().unwrap().to_string()
    }
}

/// Connects peers one by one, each after every earlier peer has heard it join, so that none misses a
/// line sent afterwards.
fn join_all(addr: SocketAddr, count: usize) -> Vec<Peer> {
    let mut peers: Vec<Peer> = Vec::new();
    for _ in 0..count {
        let peer = Peer::join(addr);
        for earlier in &mut peers {
            assert_eq!(earlier.line(), format!("* {} joined\n", peer.addr()));
        }
        peers.push(peer);
    }
    peers
}

#[test]
fn a_line_reaches_every_other_peer_and_not_its_sender() {
    let server = Server::start(Config::default(), Chat::default());
    let mut peers = join_all(server.addr, 4);
    let sender = peers[0].addr();
    // One line in three pieces: the server must join them.
    for piece in ["hel", "lo, every", "one\nsecond line\n"] {
        peers[0].writer.write_all(piece.as_bytes()).unwrap();
    }
    for peer in &mut peers[1..] {
        assert_eq!(peer.line(), format!("{sender}: hello, everyone\n"));
        assert_eq!(peer.line(), format!("{sender}: second line\n"));
    }
    // The sender's next line is the next thing said, not an echo of its own.
    let other = peers[1].addr();
    peers[1].writer.write_all(b"hi back\n").unwrap();
    assert_eq!(peers[0].line(), format!("{other}: hi back\n"));
    drop(peers);
    let stats = server.finish().stats;
    assert_eq!((stats.lines, stats.dropped), (3, 0));
}

#[test]
fn a_slow_peer_misses_lines_instead_of_growing_memory() {
    const LINES: usize = 24 * 1024;
    const BATCH: usize = 16;
    let server = Server::start(Config::default(), Chat::default());
    let mut peers = join_all(server.addr, 2);
    // A peer with a small fixed receive window that reads nothing until the end.
    let slow = {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(32 * 1024).unwrap();
        socket.connect(&server.addr.into()).unwrap();
        Peer::from_stream(socket.into())
    };
    for earlier in &mut peers {
        assert_eq!(earlier.line(), format!("* {} joined\n", slow.addr()));
    }
    let [sender, fast] = &mut peers[..] else { unreachable!("two peers joined") };
    let body = "x".repeat(1000);
    // The fast peer reads each batch before the next is sent, so only the slow one ever falls behind.
    for batch in 0..LINES / BATCH {
        let text: String = (0..BATCH).map(|i| format!("{:06} {body}\n", batch * BATCH + i)).collect();
        sender.writer.write_all(text.as_bytes()).unwrap();
        for i in 0..BATCH {
            let line = fast.line();
            let expected = format!("{:06} ", batch * BATCH + i);
            assert!(line.contains(&expected), "fast peer got {line:?}, expected line {expected}");
        }
    }
    // Once the slow peer reads, it catches up and is told what it missed.
    let mut slow = slow;
    let mut received = 0;
    let notice = loop {
        let line = slow.line();
        assert!(!line.is_empty(), "EOF before the missed-lines notice");
        if line.starts_with("* you missed") {
            break line;
        }
        received += 1;
        assert!(received <= LINES, "more lines than were sent");
    };
    drop((peers, slow));
    let stats = server.finish().stats;
    assert!(stats.dropped > 0, "nothing was dropped: the test never made the peer slow");
    assert!(notice.contains(&format!(" {} lines", stats.dropped)), "{notice:?} vs {stats:?}");
    assert!(stats.max_queued <= SLOW_PEER_QUEUE, "{stats:?}");
    assert_eq!(received as u64 + stats.dropped, LINES as u64);
}

#[test]
fn a_line_longer_than_the_limit_disconnects_its_sender() {
    let server = Server::start(Config::default(), Chat::default());
    let mut peers = join_all(server.addr, 2);
    let sender = peers[0].addr();
    // Sent in pieces with no newline: the bound must hold for a partial line too.
    for _ in 0..MAX_LINE / 1000 + 1 {
        peers[0].writer.write_all(&[b'y'; 1000]).unwrap();
    }
    assert!(peers[0].line().starts_with("* lines are limited to"));
    assert_eq!(peers[0].line(), "", "the sender was not disconnected");
    peers[0].writer.shutdown(Shutdown::Write).unwrap(); // completes the server's close without its linger
    let left = peers[1].line();
    assert!(left.starts_with(&format!("* {sender} left")), "{left:?}");
    drop(peers);
    assert_eq!(server.finish().stats.too_long, 1);
}

/// `--addr` names the listening address, as in `echo-server`; `--listen` is still accepted.
#[test]
fn listen_still_names_the_address_as_addr_does() {
    let server = util::start_example_with("chat", "--listen", &[]);
    let mut peers = join_all(server.addr, 2);
    let sender = peers[0].addr();
    peers[0].writer.write_all(b"by either name\n").unwrap();
    assert_eq!(peers[1].line(), format!("{sender}: by either name\n"));
}

#[test]
fn sigterm_closes_connections_and_exits_0() {
    let server = util::start_example("chat", &[]);
    let mut peers = join_all(server.addr, 2);
    let sender = peers[0].addr();
    peers[0].writer.write_all(b"still here\n").unwrap();
    assert_eq!(peers[1].line(), format!("{sender}: still here\n"));
    util::sigterm_ends_cleanly(server, peers.into_iter().map(|p| p.writer).collect());
}

/// Runs turns of a loop driven by this thread until `done` holds; fails after a generous deadline.
#[track_caller]
fn run_until(
    event_loop: &mut EventLoop<Chat>,
    what: &str,
    mut done: impl FnMut(&mut EventLoop<Chat>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(event_loop) {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        event_loop.run_once(Some(Duration::from_millis(10))).unwrap();
    }
}

/// A peer read without blocking, between the turns of a loop driven by the same thread.
struct Observer {
    stream: TcpStream,
    unfinished: Vec<u8>,
}

impl Observer {
    fn new(stream: TcpStream) -> Observer {
        stream.set_nonblocking(true).unwrap();
        Observer { stream, unfinished: Vec::new() }
    }

    /// The whole lines that have arrived since the last call.
    fn lines(&mut self) -> Vec<String> {
        let mut buffer = [0; 64 * 1024];
        loop {
            match self.stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => self.unfinished.extend_from_slice(&buffer[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("observer: {e}"),
            }
        }
        let end = self.unfinished.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let lines: Vec<u8> = self.unfinished.drain(..end).collect();
        String::from_utf8(lines).unwrap().lines().map(str::to_owned).collect()
    }
}

#[test]
fn a_flood_of_short_lines_does_not_hold_back_another_peers_line() {
    flood_with_a_quiet_line(Config::default());
}

#[test]
fn a_flood_gets_one_share_a_turn_while_other_timers_are_pending() {
    // An idle timer per connection: the backlog's zero-delay timer is then due more than once a turn.
    flood_with_a_quiet_line(Config { idle_timeout: Some(Duration::from_secs(600)), ..Config::default() });
}

/// 50 listeners, a flooder of 32,768 short lines, a quiet peer with one line, and an observer: the
/// quiet line must reach the observer after no more than a few turns' shares of the flood.
fn flood_with_a_quiet_line(config: Config) {
    const LISTENERS: usize = 50;
    const FLOOD_LINES: usize = 32 * 1024;
    util::init();
    let mut event_loop = EventLoop::new(config, Chat::default()).unwrap();
    let (_, addr) = event_loop.listen(&ListenerOptions::new(util::any_local_address())).unwrap();
    // Listeners that never read (each line costs a send or a drop for each of them), a flooder, a quiet
    // peer and an observer that reads everything between turns.
    let listeners: Vec<TcpStream> = (0..LISTENERS).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut flooder = TcpStream::connect(addr).unwrap();
    let mut quiet = TcpStream::connect(addr).unwrap();
    let mut observer = Observer::new(TcpStream::connect(addr).unwrap());
    run_until(&mut event_loop, "every peer joined", |l| l.context().connections() == LISTENERS + 3);
    let flood_prefix = format!("{}: ", flooder.local_addr().unwrap());
    let quiet_line = format!("{}: a line in the flood", quiet.local_addr().unwrap());

    // 64 KiB of short lines, in the kernel before the loop reads any; then the flood's fan-out starts.
    flooder.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    flooder.write_all("f\n".repeat(FLOOD_LINES).as_bytes()).expect("the kernel takes 64 KiB");
    run_until(&mut event_loop, "the flood is fanned out", |l| l.handler().stats.lines > 0);
    quiet.write_all(b"a line in the flood\n").unwrap();

    // Measured in flood lines the observer receives before the quiet peer's line: the fan-out of the
    // rest of the flood must not come first.
    let (mut flood_before, mut flood_seen, mut heard, mut missed) = (0, 0, false, false);
    run_until(&mut event_loop, "the observer hears the quiet peer", |l| {
        for line in observer.lines() {
            flood_seen += usize::from(line.starts_with(&flood_prefix));
            flood_before += usize::from(line.starts_with(&flood_prefix) && !heard);
            heard |= line == quiet_line;
            missed |= line.starts_with("* you missed");
        }
        heard || missed || l.handler().stats.lines == FLOOD_LINES as u64 + 1
    });
    assert!(
        heard && !missed,
        "the quiet peer's line was dropped for the observer ({flood_before} flood lines came)"
    );
    // A share is what one turn's FANOUT_PER_TURN buys with 52 other peers. The flooder gets at most two
    // shares a turn (one as it is read, one from its backlog), over the turn that started the flood and
    // the one that read the quiet line.
    let share = FANOUT_PER_TURN.div_ceil(LISTENERS + 3);
    assert!(
        flood_before <= 4 * share,
        "{flood_before} of {FLOOD_LINES} flood lines came before the quiet line (a share is {share})"
    );

    // The rest of the flood still arrives, all of it, to a peer that keeps reading.
    run_until(&mut event_loop, "the observer has the whole flood", |_| {
        flood_seen += observer.lines().iter().filter(|line| line.starts_with(&flood_prefix)).count();
        flood_seen == FLOOD_LINES
    });
    let stats = &event_loop.handler().stats;
    println!("{flood_before} flood lines before the quiet line; {stats:?}");
    assert_eq!(stats.lines, FLOOD_LINES as u64 + 1);
    assert!(stats.deferred > 0, "{stats:?}");
    drop(listeners);
}

#[test]
fn empty_lines_are_not_broadcast() {
    let server = Server::start(Config::default(), Chat::default());
    let mut peers = join_all(server.addr, 2);
    let sender = peers[0].addr();
    peers[0].writer.write_all(b"\n\r\n\nsomething\n\n").unwrap();
    assert_eq!(peers[1].line(), format!("{sender}: something\n"));
    peers[0].writer.write_all(b"\r\nand more\n").unwrap();
    assert_eq!(peers[1].line(), format!("{sender}: and more\n"));
    drop(peers);
    assert_eq!(server.finish().stats.lines, 2);
}
