//! The echo server binary in both modes: every byte back, half-close, back-pressure, clean exits.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use nix::sys::signal::Signal;
use testkit::{EchoRun, echo_jobs, spread_sizes};

fn thousand_connections(args: &[&str]) {
    testkit::raise_fd_limit(2_200);
    let mut server = util::start(args);
    let jobs = echo_jobs(&spread_sizes(1_000, 1 << 20, 11), true);
    let expected: u64 = jobs.iter().map(|j| j.payload.len() as u64).sum();
    let echoed = EchoRun { addr: server.addr, jobs, deadline: Duration::from_secs(120) }.run().unwrap();
    assert_eq!(echoed, expected);
    server.signal(Signal::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(10)).expect("the server exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn reactor_mode_echoes_a_thousand_concurrent_connections() {
    thousand_connections(&["--mode", "reactor"]);
}

#[test]
fn blocking_mode_echoes_a_thousand_concurrent_connections() {
    thousand_connections(&["--mode", "blocking"]);
}

#[test]
fn several_loops_share_the_port() {
    thousand_connections(&["--threads", "2"]);
}

#[test]
fn worker_processes_share_the_port() {
    thousand_connections(&["--workers", "2"]);
}

#[test]
fn a_worker_that_dies_takes_the_server_down_with_a_failure() {
    let mut server = util::start(&["--workers", "2"]);
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", server.pid())).unwrap();
    let worker: i32 = children.split_whitespace().next().expect("a worker process").parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker), Signal::SIGKILL).unwrap();
    let status = server.wait_exit(Duration::from_secs(15)).expect("the parent exits when a worker dies");
    assert!(!status.success());
}

// Reads the server's RSS from /proc.
#[cfg(target_os = "linux")]
#[test]
fn a_peer_that_never_reads_keeps_server_memory_bounded() {
    let server = util::start(&[]);
    let pid = server.pid();
    let mut rss_while_stalled = 0;
    testkit::flood_then_drain(server.addr, 64 << 20, |_| {
        rss_while_stalled = testkit::proc_status(pid, "VmRSS")
    })
    .unwrap();
    println!("server RSS with a peer that never reads: {rss_while_stalled} kB");
    assert!(rss_while_stalled < 48 * 1024, "RSS {rss_while_stalled} kB");
}

#[test]
fn sigterm_flushes_queued_output_then_exits_zero() {
    let mut server = util::start(&[]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_nonblocking(true).unwrap();
    let data = testkit::payload(3, 64 << 20);
    let mut sent = 0;
    // Keep writing, never reading, until the server stops taking bytes.
    let mut idle_rounds = 0;
    assert!(testkit::wait_for(Duration::from_secs(20), || {
        match stream.write(&data[sent..]) {
            Ok(n) => {
                sent += n;
                idle_rounds = 0;
            }
            Err(_) => idle_rounds += 1,
        }
        assert!(sent < data.len(), "the server read 64 MiB from a peer that never read");
        idle_rounds > 40
    }));
    server.signal(Signal::SIGTERM);
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).unwrap();
    assert!(received.len() > 64 * 1024, "only {} bytes came back", received.len());
    assert!(received[..] == data[..received.len()], "the flushed echo differs from what was sent");
    drop(stream);
    let status = server.wait_exit(Duration::from_secs(15)).expect("exit after SIGTERM");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn pause_accept_leaves_peers_in_the_backlog() {
    let server = util::start(&["--pause-accept", "--backlog", "4"]);
    let mut peer = TcpStream::connect(server.addr).expect("the kernel completes the handshake");
    peer.write_all(b"anyone?").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut reply = [0; 7];
    assert!(peer.read_exact(&mut reply).is_err(), "a paused server answered");
}

#[test]
fn idle_timeout_closes_quiet_connections() {
    let server = util::start(&["--idle-timeout", "0.2"]);
    let mut peer = TcpStream::connect(server.addr).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).expect("closed by the server, not by the read timeout");
    assert!(rest.is_empty());
}

#[test]
fn udp_datagrams_are_echoed_to_their_senders_on_the_same_port() {
    let mut server = util::start(&["--udp"]);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut server.stdout, &mut line).unwrap();
    assert_eq!(line.trim(), format!("listening on {} (udp)", server.addr));
    let peers: Vec<std::net::UdpSocket> =
        (0..3).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    for (i, peer) in peers.iter().enumerate() {
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let message = testkit::payload(i as u64, 512);
        peer.send_to(&message, server.addr).unwrap();
        let mut reply = [0; 1024];
        let (len, from) = peer.recv_from(&mut reply).unwrap();
        assert_eq!(from, server.addr);
        assert!(reply[..len] == message[..], "peer {i} got a different datagram");
    }
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).is_some_and(|s| s.success()));
}
