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
