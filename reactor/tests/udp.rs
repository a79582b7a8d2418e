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
