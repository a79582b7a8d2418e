//! Faults of the network, between two namespaces joined by a veth pair: a slow shaped link, and a
//! peer that goes silent behind a blackhole route.

// The suite is Linux only (see the crate docs).
#![cfg(target_os = "linux")]

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use testkit::{EchoRun, echo_jobs};
use util::{report, rss_kib};

const SERVER_IP: &str = "10.77.0.1";

/// A server namespace and a client namespace joined by `veth0`, 10.77.0.1 and 10.77.0.2.
fn two_namespaces() -> (faults::Namespace, faults::Namespace) {
    let server = faults::Namespace::new("srv");
    let client = faults::Namespace::new("cli");
    faults::Namespace::link(&server, &format!("{SERVER_IP}/24"), &client, "10.77.0.2/24");
    (server, client)
}

#[test]
fn slow_link_loses_nothing_and_keeps_memory_within_the_slow_reader_bound() {
    if faults::skip("slow link", faults::namespaces_unavailable()) {
        return;
    }
    let connections = faults::scaled("connections", 16usize, 100);
    // 10 Mbit/s carries about 1.2 MB/s each way: the long run's 100 x 128 KiB takes ~11 s, well inside the
    // deadline (100 x 1 MiB would need three minutes at that rate).
    let size = 128 * 1024usize;
    let (server_ns, client_ns) = two_namespaces();
    for ns in [&server_ns, &client_ns] {
        ns.tc(&[
            "qdisc", "add", "dev", "veth0", "root", "tbf", "rate", "10mbit", "burst", "32kbit", "latency",
            "400ms",
        ]);
    }
    let server = util::echo_server_in(&server_ns, &format!("{SERVER_IP}:0"), &[]);
    let (rss_before, _) = rss_kib(server.pid());
    let jobs = echo_jobs(&vec![size; connections], true);
    let bytes: usize = jobs.iter().map(|j| j.payload.len()).sum();
    let addr = server.addr;
    let started = Instant::now();
    let echoed = std::thread::scope(|s| {
        s.spawn(|| {
            client_ns.enter();
            EchoRun { addr, jobs, deadline: Duration::from_secs(120) }.run()
        })
        .join()
        .unwrap()
    });
    let took = started.elapsed();
    let (_, peak) = rss_kib(server.pid());
    let cap_kib = (reactor::Config::default().max_output / 1024) as u64;
    let bound = connections as u64 * cap_kib + 16 * 1024;
    let growth = peak.saturating_sub(rss_before);
    report(
        "slow link",
        &format!(
            "server and client namespaces joined by veth, tc tbf rate 10mbit on both ends; {connections} connections each echo {} KiB and half-close",
            size / 1024
        ),
        &[
            (
                "bytes verified",
                format!(
                    "{echoed:?} of {bytes} in {took:?} ({:.2} Mbit/s each way)",
                    bytes as f64 * 8.0 / took.as_secs_f64() / 1e6
                ),
            ),
            (
                "server RSS",
                format!("{rss_before} KiB before, peak {peak} KiB (+{growth} KiB, bound {bound} KiB)"),
            ),
        ],
    );
    assert_eq!(echoed.expect("bytes lost on the slow link") as usize, bytes);
    assert!(growth <= bound, "server RSS grew {growth} KiB on a slow link (bound {bound} KiB)");
}

#[test]
fn silent_peer_resumes_after_a_blackhole_and_is_freed_past_the_idle_timeout() {
    if faults::skip("silent peer", faults::namespaces_unavailable()) {
        return;
    }
    let silence = Duration::from_secs(5);
    let idle = Duration::from_secs(2);
    let (server_ns, client_ns) = two_namespaces();
    let patient = util::echo_server_in(&server_ns, &format!("{SERVER_IP}:0"), &[]);
    let strict = util::echo_server_in(&server_ns, &format!("{SERVER_IP}:0"), &["--idle-timeout", "2"]);
    let (patient_addr, strict_addr) = (patient.addr, strict.addr);
    let [mut resumes, mut times_out] = std::thread::scope(|s| {
        s.spawn(|| {
            client_ns.enter();
            [TcpStream::connect(patient_addr).unwrap(), TcpStream::connect(strict_addr).unwrap()]
        })
        .join()
        .unwrap()
    });
    for stream in [&mut resumes, &mut times_out] {
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.write_all(b"before").unwrap();
        let mut echo = [0; 6];
        stream.read_exact(&mut echo).unwrap();
        assert_eq!(&echo, b"before");
    }
    let quiet_since = Instant::now();
    let strict_fds = testkit::open_fds(strict.pid());
    // Silence: the client's packets to the server vanish.
    let blackhole = ["route", "add", "blackhole", &format!("{SERVER_IP}/32")];
    client_ns.ip(&blackhole);
    let started = Instant::now();
    resumes.write_all(b"during").unwrap();
    let freed = testkit::wait_for(Duration::from_secs(4), || testkit::open_fds(strict.pid()) < strict_fds);
    let freed_after = quiet_since.elapsed();
    let remaining = silence.saturating_sub(started.elapsed());
    std::thread::sleep(remaining); // the fault's length, not a synchronisation
    client_ns.ip(&["route", "del", "blackhole", &format!("{SERVER_IP}/32")]);
    let lifted = Instant::now();
    let mut echo = [0; 6];
    resumes.read_exact(&mut echo).expect("no echo after the blackhole was lifted");
    let resumed_after = lifted.elapsed();
    assert_eq!(&echo, b"during");
    resumes.write_all(b"after!").unwrap();
    resumes.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"after!");
    report(
        "silent peer",
        &format!(
            "ip route add blackhole {SERVER_IP}/32 in the client's namespace for {silence:?}, then removed; a second server with --idle-timeout 2"
        ),
        &[
            (
                "traffic resumed",
                format!("{resumed_after:?} after the route was removed (the next TCP retransmission)"),
            ),
            (
                "silent peer freed by the idle timeout",
                format!("{freed_after:?} after its last byte (timeout {idle:?})"),
            ),
        ],
    );
    assert!(freed, "the silent peer's descriptor was not freed within 4 s ({idle:?} idle timeout)");
    assert!(freed_after >= idle, "freed after {freed_after:?}, before the idle timeout");
    assert!(freed_after < idle + Duration::from_secs(1), "freed after {freed_after:?}, late");
    assert!(resumed_after < Duration::from_secs(5), "traffic took {resumed_after:?} to resume");
}
