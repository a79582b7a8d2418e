//! The loop as an echo server: every byte back, in order, under concurrency, half-close and
//! back-pressure.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use reactor::{CloseKind, Config};
use testkit::{EchoJob, EchoRun, Rng, payload};
use util::{Echo, Server};

/// Sizes spread evenly over the powers of two between 1 B and 1 MiB, so tiny and huge both occur.
fn sizes(count: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut sizes: Vec<usize> = (0..count)
        .map(|_| {
            let exponent = rng.between(0, 20);
            rng.between(1 << exponent.saturating_sub(1), 1 << exponent)
        })
        .collect();
    sizes[0] = 1;
    sizes[1] = 1 << 20;
    sizes
}

#[test]
fn thousand_concurrent_connections_get_every_byte_back() {
    testkit::raise_fd_limit(2_200);
    let server = Server::start(Config::default(), Echo::default());
    let jobs = sizes(1_000, 7)
        .into_iter()
        .enumerate()
        .map(|(i, len)| EchoJob { payload: payload(i as u64, len), half_close: false })
        .collect::<Vec<_>>();
    let expected: u64 = jobs.iter().map(|j| j.payload.len() as u64).sum();
    let echoed = EchoRun { addr: server.addr, jobs, deadline: Duration::from_secs(120) }.run().unwrap();
    assert_eq!(echoed, expected);
    let echo = server.finish();
    assert_eq!(echo.refused_sends, 0);
    assert_eq!(echo.closed.len(), 1_000, "every connection is closed exactly once");
}

#[test]
fn half_close_returns_every_byte_then_eof() {
    let server = Server::start(Config::default(), Echo::default());
    let jobs = (0..50)
        .map(|i| EchoJob { payload: payload(i, 1 + (i as usize) * 20_011), half_close: true })
        .collect();
    EchoRun { addr: server.addr, jobs, deadline: Duration::from_secs(60) }.run().unwrap();
    let echo = server.finish();
    assert_eq!(echo.closed.iter().filter(|k| **k == CloseKind::PeerClosed).count(), 50, "{:?}", echo.closed);
}

#[test]
fn a_peer_that_never_reads_is_bounded_and_then_gets_everything_in_order() {
    const TOTAL: usize = 64 << 20;
    let config = Config::default();
    let bound = config.high_watermark + config.read_buffer;
    let server = Server::start(config, Echo::default());
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_nonblocking(true).unwrap();
    let data = payload(99, TOTAL);
    // Send without reading until the server stops taking bytes: its reading is paused.
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stalled_since: Option<Instant> = None;
    while sent < TOTAL && Instant::now() < deadline {
        match stream.write(&data[sent..]) {
            Ok(n) => {
                sent += n;
                stalled_since = None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let since = *stalled_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(300) {
                    break;
                }
                std::thread::yield_now();
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(sent < TOTAL, "the server kept reading 64 MiB from a peer that never read");
    let taken = server.stats.snapshot().bytes_in;
    assert!(taken as usize <= sent);
    // Now read everything back while sending the rest.
    let mut received = Vec::with_capacity(TOTAL);
    let mut buffer = vec![0; 1 << 16];
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.len() < TOTAL {
        assert!(Instant::now() < deadline, "echo stalled at {} of {TOTAL}", received.len());
        if sent < TOTAL {
            match stream.write(&data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("write: {e}"),
            }
        }
        match stream.read(&mut buffer) {
            Ok(0) => panic!("EOF after {} bytes", received.len()),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) => panic!("read: {e}"),
        }
    }
    assert!(received == data, "the echo differs from what was sent");
    drop(stream);
    let echo = server.finish();
    assert!(echo.max_queued <= bound, "queued {} B, bound {bound} B", echo.max_queued);
    assert_eq!(echo.refused_sends, 0);
}

#[test]
fn a_reset_peer_does_not_disturb_the_others() {
    let server = Server::start(Config::default(), Echo::default());
    let resetting: Vec<TcpStream> = (0..10).map(|_| TcpStream::connect(server.addr).unwrap()).collect();
    for mut stream in resetting {
        stream.write_all(&payload(1, 100_000)).unwrap();
        socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).unwrap();
        drop(stream); // RST, with echo still in flight
    }
    let jobs = (0..20).map(|i| EchoJob { payload: payload(i, 300_000), half_close: true }).collect();
    EchoRun { addr: server.addr, jobs, deadline: Duration::from_secs(60) }.run().unwrap();
    let echo = server.finish();
    let resets = echo.closed.iter().filter(|k| **k == CloseKind::Reset).count();
    assert_eq!(resets, 10, "{:?}", echo.closed);
}

#[test]
fn max_connections_leaves_peers_queued_until_a_slot_frees() {
    let config = Config { max_connections: 2, ..Config::default() };
    let server = Server::start(config, Echo::default());
    let mut first = TcpStream::connect(server.addr).unwrap();
    let mut second = TcpStream::connect(server.addr).unwrap();
    for stream in [&mut first, &mut second] {
        stream.write_all(b"ping").unwrap();
        let mut reply = [0; 4];
        stream.read_exact(&mut reply).unwrap();
    }
    let mut third = TcpStream::connect(server.addr).unwrap(); // completes in the kernel's queue
    third.write_all(b"wait").unwrap();
    third.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut reply = [0; 4];
    assert!(third.read_exact(&mut reply).is_err(), "a third connection was served above the cap");
    assert!(server.stats.snapshot().accept_paused_at_cap >= 1);
    first.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    first.read_to_end(&mut rest).unwrap();
    third.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    third.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"wait");
    drop((second, third));
    server.finish();
}

#[test]
fn idle_connections_are_closed_on_time() {
    let config = Config { idle_timeout: Some(Duration::from_millis(200)), ..Config::default() };
    let server = Server::start(config, Echo::default());
    let mut busy_then_idle = TcpStream::connect(server.addr).unwrap();
    busy_then_idle.write_all(b"x").unwrap();
    busy_then_idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rest = Vec::new();
    let started = Instant::now();
    busy_then_idle.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"x");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(150), "closed after {waited:?}, before the timeout");
    let echo = server.finish();
    assert_eq!(echo.closed, [CloseKind::IdleTimeout]);
}

#[test]
fn graceful_shutdown_delivers_queued_output() {
    let config = Config::default();
    let watermark = config.high_watermark as u64;
    let server = Server::start(config, Echo::default());
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_nonblocking(true).unwrap();
    let data = payload(5, 8 << 20);
    let mut sent = 0;
    // Fill until the server has queued past its watermark and stopped reading.
    assert!(testkit::wait_for(Duration::from_secs(20), || {
        if let Ok(n) = stream.write(&data[sent..]) {
            sent += n;
        }
        server.stats.snapshot().bytes_in > watermark
    }));
    server.handle.shutdown(Duration::from_secs(10)).unwrap();
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).unwrap();
    let echo = server.join();
    assert!(received.len() as u64 > watermark, "only {} bytes came back", received.len());
    assert!(received[..] == data[..received.len()], "the flushed echo differs from what was sent");
    assert_eq!(echo.closed, [CloseKind::Shutdown]);
}
