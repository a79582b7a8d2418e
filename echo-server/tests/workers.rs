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
