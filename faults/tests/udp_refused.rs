//! A UDP sender the kernel refuses: the loop's socket sends through a veth whose qdisc (tc tbf) holds
//! more than the socket's send buffer, so the buffer fills and the kernel answers `EAGAIN`. Every
//! datagram offered is accounted for — sent, refused or failed — whether it was sent at once or
//! gathered into a `sendmmsg` batch, and the refusal is followed by `on_udp_writable`.

// The suite is Linux only (see the crate docs).
#![cfg(target_os = "linux")]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use reactor::{Config, ConnId, Context, EventLoop, Handler, Next, UdpId};

/// Where the bursts go: the far end of the shaped veth (nothing listens; the kernel drops them there).
const FAR: &str = "10.78.0.2:9";
const BURST: u64 = 400;
const SIZE: usize = 1400;

/// Answers a trigger datagram with a burst of [`BURST`] datagrams to [`FAR`], sent from `on_datagram`
/// and so gathered into batches.
#[derive(Default)]
struct Burster {
    triggers: u64,
    accepted: u64,
    writable: u64,
}

impl Handler for Burster {
    type Message = ();
    fn on_data(&mut self, _: &mut Context<'_>, _: ConnId, _: &[u8]) -> Next {
        Next::Continue
    }
    fn on_datagram(&mut self, ctx: &mut Context<'_>, socket: UdpId, _: &[u8], _: SocketAddr) {
        self.triggers += 1;
        let far: SocketAddr = FAR.parse().unwrap();
        for _ in 0..BURST {
            if ctx.send_to(socket, &[7; SIZE], far).is_ok() {
                self.accepted += 1;
            }
        }
    }
    fn on_udp_writable(&mut self, _: &mut Context<'_>, _: UdpId) {
        self.writable += 1;
    }
}

fn run_until(event_loop: &mut EventLoop<Burster>, what: &str, done: impl Fn(&Burster) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(event_loop.handler()) {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        event_loop.run_once(Some(Duration::from_millis(50))).unwrap();
    }
}

#[test]
fn refused_datagram_sends_are_counted_and_followed_by_a_writable_edge() {
    if faults::skip("udp send refused", faults::namespaces_unavailable()) {
        return;
    }
    let near = faults::Namespace::new("udpsnd");
    let far = faults::Namespace::new("udpfar");
    faults::Namespace::link(&near, "10.78.0.1/24", &far, "10.78.0.2/24");
    // 4 Mbit/s with room for 4 MB: the queue outgrows the send buffer (about 200 KiB), which then
    // refuses; it drains within a second or so, and the socket becomes writable again.
    near.tc(&[
        "qdisc", "add", "dev", "veth0", "root", "tbf", "rate", "4mbit", "burst", "32kbit", "limit", "4000000",
    ]);
    std::thread::scope(|s| {
        s.spawn(|| {
            near.enter();
            let mut event_loop = EventLoop::new(Config::default(), Burster::default()).unwrap();
            let mut ctx = event_loop.context();
            let socket = ctx.bind_udp("0.0.0.0:0".parse().unwrap()).unwrap();
            let port = ctx.local_addr(socket).unwrap().port();
            let far: SocketAddr = FAR.parse().unwrap();

            // Sent at once (outside a receive batch): the first refusal is an error and a count.
            let mut offered = 0u64;
            let refusal = loop {
                assert!(offered < 10_000, "the send buffer never filled");
                offered += 1;
                if let Err(e) = ctx.send_to(socket, &[1; SIZE], far) {
                    break e;
                }
            };
            assert_eq!(refusal.kind(), std::io::ErrorKind::WouldBlock, "{refusal}");
            let stats = event_loop.stats().clone();
            assert_eq!((stats.datagrams_out, stats.datagrams_refused), (offered - 1, 1));
            run_until(&mut event_loop, "writable after a direct refusal", |b| b.writable == 1);

            // Gathered: a trigger datagram makes on_datagram send a burst larger than the buffer.
            let trigger = UdpSocket::bind("127.0.0.1:0").unwrap();
            trigger.send_to(b"go", ("127.0.0.1", port)).unwrap();
            run_until(&mut event_loop, "the trigger", |b| b.triggers == 1);
            let stats = event_loop.stats().clone();
            let handler = event_loop.handler();
            assert_eq!(handler.accepted, BURST, "a gathered send is accepted for its batch");
            let out = stats.datagrams_out - (offered - 1);
            let refused = stats.datagrams_refused - 1;
            println!(
                "udp send refused: direct: {} sent, 1 refused; gathered burst of {BURST}: {out} sent, {refused} refused, {} failed",
                offered - 1,
                stats.datagrams_failed
            );
            assert!(refused > 0, "the burst fit in the send buffer; it proved nothing");
            assert_eq!(out + refused + stats.datagrams_failed, BURST, "every gathered datagram is accounted for");
            run_until(&mut event_loop, "writable after a gathered refusal", |b| b.writable == 2);
        });
    });
}
