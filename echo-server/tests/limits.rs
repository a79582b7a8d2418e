//! Resource limits: out of descriptors, and the connection cap.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How many of `peers` have had their one-byte echo, after waiting up to `limit` for `wanted` of them.
/// With `leave`, each answered peer disconnects at once, handing its server descriptor back.
fn answered(
    peers: &mut [TcpStream],
    done: &mut [bool],
    wanted: usize,
    limit: Duration,
    leave: bool,
) -> usize {
    testkit::wait_for(limit, || {
        for (peer, done) in peers.iter_mut().zip(done.iter_mut()) {
            let mut byte = [0];
            if !*done && matches!(peer.read(&mut byte), Ok(1)) {
                *done = true;
                if leave {
                    let _ = peer.shutdown(std::net::Shutdown::Both);
                }
            }
        }
        done.iter().filter(|d| **d).count() >= wanted
    });
    done.iter().filter(|d| **d).count()
}

// Reads the server's descriptors and CPU time from /proc.
#[cfg(target_os = "linux")]
#[test]
fn out_of_descriptors_the_server_idles_then_recovers_without_a_new_connection() {
    const LIMIT: u32 = 48;
    const PEERS: usize = 2 * LIMIT as usize;
    let server = util::start_with_fd_limit(LIMIT, &["--backlog", "256"]);
    let pid = server.pid();
    println!("server runs with RLIMIT_NOFILE {LIMIT}; {PEERS} peers connect");
    let mut peers: Vec<TcpStream> = (0..PEERS).map(|_| TcpStream::connect(server.addr).unwrap()).collect();
    for peer in &mut peers {
        peer.write_all(b"x").unwrap();
        peer.set_nonblocking(true).unwrap();
    }
    let mut done = vec![false; PEERS];
    // Everyone the server could take has been answered; the rest wait in the backlog.
    let served = answered(&mut peers, &mut done, PEERS, Duration::from_secs(3), false);
    assert!(served > 0 && served < PEERS, "served {served} of {PEERS}: the limit did not bite");
    let fds = testkit::open_fds(pid);
    assert!(fds as u32 >= LIMIT - 1, "the server holds {fds} descriptors, not near its limit");

    // Over the limit with peers waiting: the server must not spin.
    let before = testkit::proc_cpu_ticks(pid);
    let window = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let used = testkit::proc_cpu_ticks(pid) - before;
    println!("CPU over the limit: {used} ticks in {:?}", window.elapsed());
    assert!(used < 30, "the server used {used} ticks of CPU in a second while out of descriptors");

    // Free descriptors: the served peers leave, and so does each waiting peer once answered. All must be
    // taken with no new connection arriving to raise a fresh edge.
    for (peer, done) in peers.iter_mut().zip(&done) {
        if *done {
            let _ = peer.shutdown(std::net::Shutdown::Both);
        }
    }
    let mut waiting: Vec<TcpStream> =
        peers.into_iter().zip(&done).filter(|(_, d)| !**d).map(|(p, _)| p).collect();
    let left = waiting.len();
    let mut done = vec![false; left];
    let later = answered(&mut waiting, &mut done, left, Duration::from_secs(10), true);
    assert_eq!(later, left, "only {later} of {left} waiting peers were served after descriptors freed");
}

#[test]
fn max_conns_holds_the_rest_in_the_backlog() {
    let server = util::start(&["--max-conns", "3"]);
    let mut peers: Vec<TcpStream> = (0..6).map(|_| TcpStream::connect(server.addr).unwrap()).collect();
    for peer in &mut peers {
        peer.write_all(b"x").unwrap();
        peer.set_nonblocking(true).unwrap();
    }
    let mut done = vec![false; 6];
    let first = answered(&mut peers, &mut done, 6, Duration::from_millis(500), false);
    assert_eq!(first, 3, "served {first} with --max-conns 3");
    for (peer, done) in peers.iter_mut().zip(&done) {
        if *done {
            let _ = peer.shutdown(std::net::Shutdown::Both);
        }
    }
    let all = answered(&mut peers, &mut done, 6, Duration::from_secs(10), false);
    assert_eq!(all, 6);
}
