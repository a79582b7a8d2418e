//! The port forwarder example: bytes intact both ways, half-close passed on, refused upstreams, and
//! memory bounded against a slow client.

mod util;

#[allow(dead_code)] // the example's `main` and command line are not used here
#[path = "../examples/forward.rs"]
mod forward;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use forward::{Forwarder, PAUSE_ABOVE};
use reactor::Config;
use testkit::{EchoJob, EchoRun, Rng, payload};
use util::{Echo, Server};

/// A forwarder on its own loop, carrying clients to `upstream`.
fn start_forwarder(upstream: SocketAddr) -> Server<Forwarder> {
    Server::start(Config::default(), Forwarder::new(upstream, Duration::from_secs(5)))
}

/// A client whose receive buffer is fixed and small, so that the kernel cannot absorb what it does
/// not read (autotuning would otherwise let it take tens of megabytes).
fn small_window_client(addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.into()
}

#[test]
fn hundreds_of_sessions_carry_random_payloads_both_ways() {
    testkit::raise_fd_limit(2_000);
    let upstream = Server::start(Config::default(), Echo::default());
    let forwarder = start_forwarder(upstream.addr);
    let mut rng = Rng::new(11);
    let jobs: Vec<EchoJob> = (0..300)
        .map(|i| {
            let exponent = rng.between(0, 19);
            let len = rng.between(1 << exponent.saturating_sub(1), 1 << exponent);
            EchoJob { payload: payload(1_000 + i, len), half_close: i % 2 == 0 }
        })
        .collect();
    let expected: u64 = jobs.iter().map(|j| j.payload.len() as u64).sum();
    let echoed = EchoRun { addr: forwarder.addr, jobs, deadline: Duration::from_secs(120) }.run().unwrap();
    assert_eq!(echoed, expected);
    // The sessions without half-close end when EchoRun drops its streams; wait for every one.
    assert!(
        testkit::wait_for(Duration::from_secs(20), || forwarder.stats().active == 0),
        "sessions left open: {:?}",
        forwarder.stats()
    );
    let stats = forwarder.finish().stats;
    assert_eq!(stats.sessions, 300);
    assert_eq!(stats.connect_failures, 0);
    assert_eq!(stats.open_sessions, 0);
    assert!(stats.max_queued <= PAUSE_ABOVE + Config::default().read_buffer, "{stats:?}");
    upstream.finish();
}

#[test]
fn half_close_is_passed_on_in_both_directions() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    let service = std::thread::spawn(move || {
        let (mut stream, _) = upstream.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut request = Vec::new();
        // Returns only once the client's EOF has come through the forwarder.
        stream.read_to_end(&mut request).unwrap();
        stream.write_all(format!("got {} bytes after your EOF", request.len()).as_bytes()).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        request
    });
    let forwarder = start_forwarder(upstream_addr);
    let mut client = TcpStream::connect(forwarder.addr).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    client.write_all(b"hello through the forwarder").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut reply = String::new();
    client.read_to_string(&mut reply).unwrap();
    assert_eq!(service.join().unwrap(), b"hello through the forwarder");
    assert_eq!(reply, "got 27 bytes after your EOF");
    assert!(testkit::wait_for(Duration::from_secs(10), || forwarder.stats().active == 0));
    let stats = forwarder.finish().stats;
    assert_eq!((stats.sessions, stats.open_sessions), (1, 0));
}

#[test]
fn a_refused_upstream_closes_the_client_promptly() {
    let closed_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let forwarder = start_forwarder(closed_port);
    let mut client = TcpStream::connect(forwarder.addr).unwrap();
    // Well under the forwarder's 5 s connect timeout: the refusal itself must close the client.
    client.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buffer = [0; 16];
    match client.read(&mut buffer) {
        Ok(0) => {}
        Ok(n) => panic!("{n} bytes from a session without upstream"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    assert!(testkit::wait_for(Duration::from_secs(10), || forwarder.stats().active == 0));
    let stats = forwarder.finish().stats;
    assert_eq!((stats.sessions, stats.connect_failures, stats.open_sessions), (1, 1, 0));
}

#[test]
fn a_slow_client_holds_back_the_upstream_instead_of_growing_memory() {
    const TOTAL: usize = 48 << 20;
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let service = {
        let written = written.clone();
        std::thread::spawn(move || {
            let (mut stream, _) = upstream.accept().unwrap();
            let data = payload(77, TOTAL);
            for chunk in data.chunks(64 * 1024) {
                stream.write_all(chunk).unwrap();
                written.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        })
    };
    let forwarder = start_forwarder(upstream_addr);
    let mut client = small_window_client(forwarder.addr);
    // The client reads nothing: the upstream's writes must stall, well short of the whole payload.
    let mut last = (0, Instant::now());
    let stalled = testkit::wait_for(Duration::from_secs(30), || {
        let now = written.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        }
        now > 0 && last.1.elapsed() > Duration::from_millis(300)
    });
    let held_at = written.load(Ordering::Relaxed);
    assert!(stalled && held_at < TOTAL as u64, "the upstream was never held back ({held_at} B written)");
    // Now read everything: every byte arrives, in order, and then EOF.
    client.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut received = Vec::with_capacity(TOTAL);
    client.read_to_end(&mut received).unwrap();
    service.join().unwrap();
    assert_eq!(received.len(), TOTAL);
    assert!(received == payload(77, TOTAL), "the forwarded bytes differ from what the upstream sent");
    let stats = forwarder.finish().stats;
    let bound = PAUSE_ABOVE + Config::default().read_buffer;
    assert!(stats.max_queued <= bound, "queued {} B, bound {bound} B", stats.max_queued);
}

/// `--addr` names the listening address, as in `echo-server`; `--listen` is still accepted.
#[test]
fn listen_still_names_the_address_as_addr_does() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = upstream.local_addr().unwrap().to_string();
    // Echoes one message; the client's read timeout bounds the test if the forwarder never comes.
    std::thread::spawn(move || {
        let (mut stream, _) = upstream.accept()?;
        let mut message = [0; 4];
        stream.read_exact(&mut message)?;
        stream.write_all(&message)
    });
    let server = util::start_example_with("forward", "--listen", &["--to", &upstream_addr]);
    let mut client = TcpStream::connect(server.addr).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    client.write_all(b"ping").unwrap();
    let mut pong = [0; 4];
    client.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"ping");
}

#[test]
fn sigterm_closes_connections_and_exits_0() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = upstream.local_addr().unwrap().to_string();
    // Echoes one session until its EOF, which the forwarder's shutdown must bring.
    let service = std::thread::spawn(move || {
        let (mut stream, _) = upstream.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buffer = [0; 1024];
        loop {
            match stream.read(&mut buffer)? {
                0 => return Ok::<_, std::io::Error>(()),
                n => stream.write_all(&buffer[..n])?,
            }
        }
    });
    let server = util::start_example("forward", &["--to", &upstream_addr]);
    let mut client = TcpStream::connect(server.addr).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    client.write_all(b"ping").unwrap();
    let mut pong = [0; 4];
    client.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"ping");
    util::sigterm_ends_cleanly(server, vec![client]);
    service.join().unwrap().expect("the upstream saw EOF, not an error");
}
