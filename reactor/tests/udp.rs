//! UDP through the loop: each datagram answered to its sender, and overflow reported, not hidden.

mod util;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use reactor::{Config, ConnId, Context, EventLoop, Handler, Next, Turn, UdpId};

/// Echoes datagrams back to their senders; counts sends the kernel refused.
#[derive(Default)]
struct DatagramEcho {
    received: u64,
    refused: u64,
}

impl Handler for DatagramEcho {
    type Message = ();
    fn on_data(&mut self, _: &mut Context<'_>, _: ConnId, _: &[u8]) -> Next {
        Next::Continue
    }
    fn on_datagram(&mut self, ctx: &mut Context<'_>, socket: UdpId, data: &[u8], from: SocketAddr) {
        self.received += 1;
        if ctx.send_to(socket, data, from).is_err() {
            self.refused += 1;
        }
    }
}

fn udp_loop() -> (EventLoop<DatagramEcho>, SocketAddr) {
    util::init();
    let mut event_loop = EventLoop::new(Config::default(), DatagramEcho::default()).unwrap();
    let mut ctx = event_loop.context();
    let socket = ctx.bind_udp(util::any_local_address()).unwrap();
    let addr = ctx.local_addr(socket).unwrap();
    (event_loop, addr)
}

fn run_until(event_loop: &mut EventLoop<DatagramEcho>, done: impl Fn(&DatagramEcho) -> bool) {
    for _ in 0..200 {
        if done(event_loop.handler()) {
            return;
        }
        assert_eq!(event_loop.run_once(Some(Duration::from_millis(20))).unwrap(), Turn::Running);
    }
    assert!(done(event_loop.handler()), "not reached within 200 turns");
}

#[test]
fn each_datagram_is_answered_to_its_own_sender() {
    let (mut event_loop, addr) = udp_loop();
    let peers: Vec<UdpSocket> = (0..4).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    for (i, peer) in peers.iter().enumerate() {
        for n in 0..10u8 {
            peer.send_to(&[i as u8, n], addr).unwrap();
        }
    }
    run_until(&mut event_loop, |e| e.received == 40);
    for (i, peer) in peers.iter().enumerate() {
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for n in 0..10u8 {
            let mut reply = [0; 8];
            let (len, from) = peer.recv_from(&mut reply).unwrap();
            assert_eq!(from, addr);
            assert_eq!(&reply[..len], &[i as u8, n], "peer {i} got someone else's datagram");
        }
    }
    let stats = event_loop.stats().clone();
    assert_eq!((stats.datagrams_in, stats.datagrams_out), (40, 40));
}

// The kernel counts the drops in /proc/net/udp.
#[cfg(target_os = "linux")]
#[test]
fn a_burst_larger_than_the_socket_buffer_is_counted_as_dropped() {
    const SENT: u64 = 5_000;
    let (mut event_loop, addr) = udp_loop();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    // The loop does not run while the burst arrives: whatever the receive buffer cannot hold is dropped
    // by the kernel, before the loop could see it.
    for n in 0..SENT {
        let mut datagram = [0u8; 1024];
        datagram[..8].copy_from_slice(&n.to_be_bytes());
        peer.send_to(&datagram, addr).unwrap();
    }
    let drops = hostinfo::udp_drops(addr.port()).unwrap();
    assert!(drops > 0, "{SENT} KiB fit in the receive buffer; the burst proved nothing");
    // Every datagram is either delivered or counted as dropped.
    run_until(&mut event_loop, |e| e.received + drops >= SENT);
    let received = event_loop.handler().received;
    println!("burst of {SENT}: {received} delivered, {drops} dropped by the kernel and reported");
    assert_eq!(received + drops, SENT);
}

/// Echoes every datagram `copies` times; counts what it received.
struct FanOut {
    copies: usize,
    received: u64,
}

impl Handler for FanOut {
    type Message = ();
    fn on_data(&mut self, _: &mut Context<'_>, _: ConnId, _: &[u8]) -> Next {
        Next::Continue
    }
    fn on_datagram(&mut self, ctx: &mut Context<'_>, socket: UdpId, data: &[u8], from: SocketAddr) {
        self.received += 1;
        for copy in 0..self.copies {
            let mut reply = data.to_vec();
            reply.push(copy as u8);
            // Counted by the loop if the kernel refuses it; the test checks the counters.
            let _ = ctx.send_to(socket, &reply, from);
        }
    }
}

/// A datagram of `len` bytes carrying `seq` and a pattern derived from it.
fn numbered(seq: u32, len: usize) -> Vec<u8> {
    let mut datagram: Vec<u8> = (0..len).map(|i| (seq as usize * 31 + i) as u8).collect();
    datagram[..4].copy_from_slice(&seq.to_be_bytes());
    datagram
}

#[test]
fn a_burst_is_echoed_exactly_once_each_with_its_own_content() {
    const ROUNDS: u32 = 20;
    // Small enough per round that the kernel's receive buffers at both ends hold a whole round.
    const PER_ROUND: u32 = 100;
    let (mut event_loop, addr) = udp_loop();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut seen = vec![0u32; (ROUNDS * PER_ROUND) as usize];
    for round in 0..ROUNDS {
        for seq in round * PER_ROUND..(round + 1) * PER_ROUND {
            peer.send_to(&numbered(seq, 64), addr).unwrap();
        }
        let expected = u64::from((round + 1) * PER_ROUND);
        run_until(&mut event_loop, |e| e.received == expected);
        for _ in 0..PER_ROUND {
            let mut reply = [0; 128];
            let (len, from) = peer.recv_from(&mut reply).unwrap();
            assert_eq!(from, addr);
            let seq = u32::from_be_bytes(reply[..4].try_into().unwrap());
            assert!(seq < ROUNDS * PER_ROUND, "an echo carries sequence number {seq}, never sent");
            assert_eq!(&reply[..len], &numbered(seq, 64)[..], "the echo of {seq} is not what was sent");
            seen[seq as usize] += 1;
        }
    }
    // Nothing more is on its way: every reply was sent before the loop went idle.
    peer.set_nonblocking(true).unwrap();
    let extra = peer.recv_from(&mut [0; 128]);
    assert!(extra.is_err(), "an echo arrived beyond one per datagram sent");
    let missing: Vec<usize> = seen.iter().enumerate().filter(|(_, n)| **n != 1).map(|(i, _)| i).collect();
    assert!(missing.is_empty(), "datagrams not echoed exactly once: {missing:?}");
    let stats = event_loop.stats().clone();
    let sent = u64::from(ROUNDS * PER_ROUND);
    assert_eq!((stats.datagrams_in, stats.datagrams_out, stats.datagrams_refused), (sent, sent, 0));
}

#[test]
fn sends_made_while_answering_are_all_out_when_the_loop_goes_idle() {
    const DATAGRAMS: u32 = 50;
    // Three replies each: 150 sends, more than one gather holds, so it is flushed early too.
    const COPIES: usize = 3;
    util::init();
    let mut event_loop = EventLoop::new(Config::default(), FanOut { copies: COPIES, received: 0 }).unwrap();
    let mut ctx = event_loop.context();
    let socket = ctx.bind_udp(util::any_local_address()).unwrap();
    let addr = ctx.local_addr(socket).unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    for seq in 0..DATAGRAMS {
        peer.send_to(&numbered(seq, 32), addr).unwrap();
    }
    for _ in 0..200 {
        if event_loop.handler().received == u64::from(DATAGRAMS) {
            break;
        }
        event_loop.run_once(Some(Duration::from_millis(20))).unwrap();
    }
    assert_eq!(event_loop.handler().received, u64::from(DATAGRAMS));
    // The loop does not run again: every reply must already be with the kernel.
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut copies = vec![[0usize; COPIES]; DATAGRAMS as usize];
    for _ in 0..DATAGRAMS as usize * COPIES {
        let mut reply = [0; 64];
        let (len, _) = peer.recv_from(&mut reply).unwrap();
        assert_eq!(len, 33);
        let seq = u32::from_be_bytes(reply[..4].try_into().unwrap());
        copies[seq as usize][reply[32] as usize] += 1;
    }
    assert!(copies.iter().all(|c| c.iter().all(|n| *n == 1)), "a reply is missing or doubled: {copies:?}");
    let stats = event_loop.stats();
    assert_eq!(stats.datagrams_out, u64::from(DATAGRAMS) * COPIES as u64);
}

#[test]
fn a_datagram_longer_than_the_buffer_is_counted_as_truncated_not_delivered() {
    util::init();
    let config = Config { read_buffer: 1024, ..Config::default() };
    let mut event_loop = EventLoop::new(config, DatagramEcho::default()).unwrap();
    let mut ctx = event_loop.context();
    let socket = ctx.bind_udp(util::any_local_address()).unwrap();
    let addr = ctx.local_addr(socket).unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.send_to(&numbered(1, 2000), addr).unwrap();
    peer.send_to(&numbered(2, 1024), addr).unwrap();
    peer.send_to(&numbered(3, 10), addr).unwrap();
    run_until(&mut event_loop, |e| e.received == 2);
    let stats = event_loop.stats().clone();
    assert_eq!((stats.datagrams_in, stats.datagrams_truncated), (2, 1));
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for (seq, len) in [(2, 1024), (3, 10)] {
        let mut reply = [0; 4096];
        let (n, _) = peer.recv_from(&mut reply).unwrap();
        assert_eq!(&reply[..n], &numbered(seq, len)[..], "only whole datagrams are echoed");
    }
}

/// Answers each datagram three ways, in this order: with the received bytes as they stand, with their
/// tail (both may go out from the receive buffer itself), and with a copy marked at the end. After
/// `close_after` datagrams it closes the socket from inside the callback.
struct MixedReplies {
    received: u64,
    close_after: Option<u64>,
}

impl Handler for MixedReplies {
    type Message = ();
    fn on_data(&mut self, _: &mut Context<'_>, _: ConnId, _: &[u8]) -> Next {
        Next::Continue
    }
    fn on_datagram(&mut self, ctx: &mut Context<'_>, socket: UdpId, data: &[u8], from: SocketAddr) {
        self.received += 1;
        let _ = ctx.send_to(socket, data, from);
        let _ = ctx.send_to(socket, &data[4..], from);
        let mut marked = data.to_vec();
        marked.push(0xAA);
        let _ = ctx.send_to(socket, &marked, from);
        if self.close_after == Some(self.received) {
            ctx.close_udp(socket).unwrap();
        }
    }
}

/// The next reply on `peer`, which must come within the read timeout.
fn next_reply(peer: &UdpSocket) -> Vec<u8> {
    let mut reply = [0; 128];
    let (len, _) = peer.recv_from(&mut reply).unwrap();
    reply[..len].to_vec()
}

#[test]
fn replies_from_the_received_bytes_and_copies_go_out_in_order_each_whole() {
    // 40 datagrams, 120 replies: more than one gather holds (64), so replies that point into the receive
    // buffer are also sent by an early flush. Few enough that the peer's receive buffer holds them all.
    const DATAGRAMS: u32 = 40;
    util::init();
    let handler = MixedReplies { received: 0, close_after: None };
    let mut event_loop = EventLoop::new(Config::default(), handler).unwrap();
    let mut ctx = event_loop.context();
    let socket = ctx.bind_udp(util::any_local_address()).unwrap();
    let addr = ctx.local_addr(socket).unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for seq in 0..DATAGRAMS {
        peer.send_to(&numbered(seq, 48), addr).unwrap();
    }
    for _ in 0..200 {
        if event_loop.handler().received == u64::from(DATAGRAMS) {
            break;
        }
        event_loop.run_once(Some(Duration::from_millis(20))).unwrap();
    }
    assert_eq!(event_loop.handler().received, u64::from(DATAGRAMS));
    // One socket, one peer, on loopback: the replies arrive in the order they were gathered.
    for seq in 0..DATAGRAMS {
        let sent = numbered(seq, 48);
        assert_eq!(next_reply(&peer), sent, "the whole echo of {seq}");
        assert_eq!(next_reply(&peer), &sent[4..], "the tail of {seq}");
        let mut marked = sent.clone();
        marked.push(0xAA);
        assert_eq!(next_reply(&peer), marked, "the copy of {seq}");
    }
    let stats = event_loop.stats();
    assert_eq!((stats.datagrams_out, stats.datagrams_failed), (u64::from(DATAGRAMS) * 3, 0));
}

#[test]
fn replies_gathered_before_a_close_in_the_same_callback_are_sent() {
    util::init();
    let handler = MixedReplies { received: 0, close_after: Some(2) };
    let mut event_loop = EventLoop::new(Config::default(), handler).unwrap();
    let mut ctx = event_loop.context();
    let socket = ctx.bind_udp(util::any_local_address()).unwrap();
    let addr = ctx.local_addr(socket).unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for seq in 0..5 {
        peer.send_to(&numbered(seq, 40), addr).unwrap();
    }
    for _ in 0..200 {
        if event_loop.handler().received >= 2 {
            break;
        }
        event_loop.run_once(Some(Duration::from_millis(20))).unwrap();
    }
    // The loop still turns after the close, and the rest of the batch is not delivered.
    event_loop.run_once(Some(Duration::from_millis(0))).unwrap();
    assert_eq!(event_loop.handler().received, 2);
    for seq in 0..2 {
        let sent = numbered(seq, 40);
        assert_eq!(next_reply(&peer), sent);
        assert_eq!(next_reply(&peer), &sent[4..]);
        assert_eq!(next_reply(&peer).len(), 41);
    }
    peer.set_nonblocking(true).unwrap();
    assert!(peer.recv_from(&mut [0; 128]).is_err(), "a reply arrived for a datagram after the close");
    assert_eq!(event_loop.stats().datagrams_out, 6);
}

/// Answers each datagram on the socket it came in on, and also through `other`.
struct TwoSockets {
    other: Option<UdpId>,
    received: u64,
}

impl Handler for TwoSockets {
    type Message = ();
    fn on_data(&mut self, _: &mut Context<'_>, _: ConnId, _: &[u8]) -> Next {
        Next::Continue
    }
    fn on_datagram(&mut self, ctx: &mut Context<'_>, socket: UdpId, data: &[u8], from: SocketAddr) {
        self.received += 1;
        ctx.send_to(socket, data, from).unwrap();
        if let Some(other) = self.other.filter(|o| *o != socket) {
            ctx.send_to(other, data, from).unwrap();
        }
    }
}

#[test]
fn a_send_on_another_socket_while_answering_goes_out_from_that_socket() {
    util::init();
    let handler = TwoSockets { other: None, received: 0 };
    let mut event_loop = EventLoop::new(Config::default(), handler).unwrap();
    let mut ctx = event_loop.context();
    let first = ctx.bind_udp(util::any_local_address()).unwrap();
    let second = ctx.bind_udp(util::any_local_address()).unwrap();
    let (first_addr, second_addr) = (ctx.local_addr(first).unwrap(), ctx.local_addr(second).unwrap());
    event_loop.handler_mut().other = Some(second);
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for seq in 0..10 {
        peer.send_to(&numbered(seq, 20), first_addr).unwrap();
    }
    for _ in 0..200 {
        if event_loop.handler().received == 10 {
            break;
        }
        event_loop.run_once(Some(Duration::from_millis(20))).unwrap();
    }
    assert_eq!(event_loop.handler().received, 10);
    let mut from_first = Vec::new();
    let mut from_second = Vec::new();
    for _ in 0..20 {
        let mut reply = [0; 64];
        let (len, from) = peer.recv_from(&mut reply).unwrap();
        let seq = u32::from_be_bytes(reply[..4].try_into().unwrap());
        assert_eq!(&reply[..len], &numbered(seq, 20)[..]);
        match from {
            a if a == first_addr => from_first.push(seq),
            a if a == second_addr => from_second.push(seq),
            other => panic!("a reply from {other}"),
        }
    }
    // Each socket's replies in order; the second socket's went out at once, not with the first's gather.
    assert_eq!(from_first, (0..10).collect::<Vec<_>>());
    assert_eq!(from_second, (0..10).collect::<Vec<_>>());
    assert_eq!(event_loop.stats().datagrams_out, 20);
}
