//! Out of descriptors on a Unix listener: the loop stops accepting instead of spinning, and takes the
//! waiting peers by itself once descriptors free. Alone in its test binary, because it lowers the
//! process's own descriptor limit, which parallel tests would feel.

// Lowers RLIMIT_NOFILE through nix's Linux types; the behaviour under test is the same elsewhere.
#![cfg(target_os = "linux")]

mod util;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use reactor::{AcceptErrorKind, Config, EventLoop, ListenerOptions};
use util::Echo;

const PEERS: usize = 64;
/// Descriptors the server may still open once the peers are connected.
const ROOM: u64 = 8;

/// Marks the peers whose one-byte echo has arrived; answered peers leave at once when `leave`.
fn collect_answers(peers: &mut [UnixStream], answered: &mut [bool], leave: bool) -> usize {
    for (peer, done) in peers.iter_mut().zip(answered.iter_mut()) {
        let mut byte = [0];
        if !*done && matches!(peer.read(&mut byte), Ok(1)) {
            *done = true;
            if leave {
                let _ = peer.shutdown(std::net::Shutdown::Both);
            }
        }
    }
    answered.iter().filter(|d| **d).count()
}

#[test]
fn out_of_descriptors_a_unix_listener_holds_then_takes_the_waiting_peers() {
    util::init();
    let dir = std::env::temp_dir().join(format!("reactor-unix-emfile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let config = Config {
        raise_fd_limit: false,
        accept_backoff: Duration::from_millis(10),
        accept_backoff_max: Duration::from_millis(100),
        ..Config::default()
    };
    let mut event_loop = EventLoop::new(config, Echo::default()).unwrap();
    event_loop.listen_at(&ListenerOptions::unix(&path).backlog(256)).unwrap();
    // Every peer connects (into the backlog) and sends its byte before the limit comes down.
    let mut peers: Vec<UnixStream> = (0..PEERS).map(|_| UnixStream::connect(&path).unwrap()).collect();
    for peer in &mut peers {
        peer.write_all(b"x").unwrap();
        peer.set_nonblocking(true).unwrap();
    }
    let lowest_free = std::fs::File::open("/dev/null").unwrap().as_raw_fd() as u64;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, lowest_free + ROOM, hard).unwrap();

    let handle = event_loop.handle();
    let server = std::thread::spawn(move || event_loop.run().map(|()| event_loop.into_handler()));
    let mut answered = vec![false; PEERS];
    // Wait until the server has taken all it can and has met EMFILE.
    let limited = testkit::wait_for(Duration::from_secs(10), || {
        collect_answers(&mut peers, &mut answered, false);
        handle.stats().accept_errors[AcceptErrorKind::Emfile as usize] > 0
    });
    let served = collect_answers(&mut peers, &mut answered, false);
    let stats = handle.stats();
    assert!(limited && served < PEERS, "served {served} of {PEERS}: the descriptor limit did not bite");

    // The served peers leave: descriptors free with no new connection arriving to raise an edge.
    for (peer, done) in peers.iter_mut().zip(&answered) {
        if *done {
            let _ = peer.shutdown(std::net::Shutdown::Both);
        }
    }
    let mut waiting: Vec<UnixStream> =
        peers.into_iter().zip(&answered).filter(|(_, d)| !**d).map(|(p, _)| p).collect();
    let mut answered = vec![false; waiting.len()];
    let all = testkit::wait_for(Duration::from_secs(15), || {
        collect_answers(&mut waiting, &mut answered, true) == answered.len()
    });
    let later = answered.iter().filter(|d| **d).count();
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    let after = handle.stats();
    handle.shutdown(Duration::from_secs(5)).unwrap();
    server.join().unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "served {served} of {PEERS} under the limit ({} EMFILE), then the other {later}; {} EMFILE in all",
        stats.accept_errors[AcceptErrorKind::Emfile as usize],
        after.accept_errors[AcceptErrorKind::Emfile as usize]
    );
    assert!(all, "only {later} of {} waiting peers were served after descriptors freed", answered.len());
    // Backing off, not spinning: a handful of retries, not one per turn.
    let emfile = after.accept_errors[AcceptErrorKind::Emfile as usize];
    assert!(emfile < 1_000, "{emfile} EMFILE accepts: the loop spun on the accept queue");
}
