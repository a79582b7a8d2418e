//! `--workers N`: the supervisor and its worker processes, seen from outside.

mod util;

use std::time::Duration;

use nix::sys::signal::Signal;

/// Every start must announce both sockets (as one process does), serve both, and stop cleanly: worker 0
/// prints two lines, and a supervisor that stopped reading after the first made it fail now and then.
#[test]
fn workers_with_udp_announce_and_serve_both_sockets_every_time() {
    for round in 0..20 {
        let mut server = util::start(&["--workers", "2", "--udp"]);
        let line = util::next_line(&mut server, Duration::from_secs(20));
        assert_eq!(line.trim(), format!("listening on {} (udp)", server.addr), "round {round}");

        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let datagram = testkit::payload(round, 256);
        peer.send_to(&datagram, server.addr).unwrap();
        let mut reply = [0; 512];
        let (len, from) = peer.recv_from(&mut reply).expect("a datagram echoed");
        assert_eq!(from, server.addr);
        assert!(reply[..len] == datagram[..], "round {round}: a different datagram came back");

        let data = testkit::payload(round + 100, 4096);
        let echoed = testkit::echo_once(server.addr, &data, Duration::from_secs(5)).expect("a TCP echo");
        assert!(echoed == data, "round {round}: a different echo came back");

        server.signal(Signal::SIGTERM);
        let status = server.wait_exit(Duration::from_secs(15)).expect("exit after SIGTERM");
        assert!(status.success(), "round {round}: exit status {status}");
    }
}

/// Whether process `pid` has ended: gone from /proc, or a zombie waiting for whoever adopted it.
fn ended(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rfind(')').and_then(|end| stat[end + 1..].split_whitespace().next()) == Some("Z"),
        Err(_) => true,
    }
}

/// A supervisor killed outright (no chance to stop its workers) must not leave them serving its port.
#[test]
fn workers_end_when_their_supervisor_is_killed() {
    let mut server = util::start(&["--workers", "2"]);
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", server.pid())).unwrap();
    let workers: Vec<i32> = children.split_whitespace().map(|pid| pid.parse().unwrap()).collect();
    assert_eq!(workers.len(), 2, "worker pids: {children:?}");
    testkit::echo_once(server.addr, b"before", Duration::from_secs(5)).expect("served before the kill");

    server.signal(Signal::SIGKILL);
    server.wait_exit(Duration::from_secs(10)).expect("the supervisor dies of SIGKILL");
    let all_ended = testkit::wait_for(Duration::from_secs(15), || workers.iter().all(|&pid| ended(pid)));
    let survivors: Vec<i32> = workers.iter().copied().filter(|&pid| !ended(pid)).collect();
    for &pid in &survivors {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
    assert!(all_ended, "workers {survivors:?} outlived their supervisor");
    let refused = std::net::TcpStream::connect(server.addr).map_err(|e| e.kind());
    assert_eq!(refused.err(), Some(std::io::ErrorKind::ConnectionRefused), "something still listens");
}
