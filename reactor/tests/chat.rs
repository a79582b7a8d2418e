//! The chat example: lines fan out to every other peer, partial lines are joined, and a slow peer
//! misses lines instead of growing the server's memory.

mod util;

#[allow(dead_code)] // the example's `main` and command line are not used here
#[path = "../examples/chat.rs"]
mod chat;

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use chat::{Chat, MAX_LINE, SLOW_PEER_QUEUE};
use reactor::Config;
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

#[test]
fn sigterm_closes_connections_and_exits_0() {
    let server = util::start_example("chat", &[]);
    let mut peers = join_all(server.addr, 2);
    let sender = peers[0].addr();
    peers[0].writer.write_all(b"still here\n").unwrap();
    assert_eq!(peers[1].line(), format!("{sender}: still here\n"));
    util::sigterm_ends_cleanly(server, peers.into_iter().map(|p| p.writer).collect());
}
