//! The loop as an echo server: every byte back, in order, under concurrency, half-close and
//! back-pressure.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use reactor::{CloseKind, Config};
use testkit::{EchoJob, EchoRun, payload};
use util::{Echo, Server};

#[test]
fn thousand_concurrent_connections_get_every_byte_back() {
    testkit::raise_fd_limit(2_200);
    let server = Server::start(Config::default(), Echo::default());
    let jobs = testkit::echo_jobs(&testkit::spread_sizes(1_000, 1 << 20, 7), false);
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
    let config = Config::default();
    let bound = config.high_watermark + config.read_buffer;
    let server = Server::start(config, Echo::default());
    let handle = server.handle.clone();
    testkit::flood_then_drain(server.addr, 64 << 20, |sent| {
        assert!(handle.stats().bytes_in as usize <= sent);
    })
    .unwrap();
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
    assert!(server.stats().accept_paused_at_cap >= 1);
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
        server.stats().bytes_in > watermark
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

/// TCP urgent data ends a `recv` at the urgent mark with bytes still queued behind it; a loop that took
/// that short read as "drained" would leave them there until the peer happened to send again.
#[cfg(target_os = "linux")]
#[test]
fn urgent_data_strands_no_bytes_behind_the_mark() {
    let server = Server::start(Config::default(), Echo::default());
    let socket = socket2::Socket::from(TcpStream::connect(server.addr).unwrap());
    // Corked, the three sends leave as one segment: "AAAA", the urgent "B", "CCCC".
    socket.set_tcp_cork(true).unwrap();
    assert_eq!(socket.send(b"AAAA").unwrap(), 4);
    assert_eq!(socket.send_out_of_band(b"B").unwrap(), 1);
    assert_eq!(socket.send(b"CCCC").unwrap(), 4);
    socket.set_tcp_cork(false).unwrap();

    let mut stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut echoed = [0; 8];
    let mut got = 0;
    while got < echoed.len() {
        match stream.read(&mut echoed[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => panic!("after {:?}: {e}", String::from_utf8_lossy(&echoed[..got])),
        }
    }
    assert_eq!(&echoed[..got], b"AAAACCCC", "the bytes around the urgent byte come back, in order");
    // The urgent byte stays out of band: after our EOF, nothing else comes back.
    stream.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"", "the urgent byte is not delivered in the stream");
    server.finish();
}
