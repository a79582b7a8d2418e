//! Soak: mixed faults and churn for a bounded time, with the server's memory and descriptors sampled
//! throughout.

// The suite is Linux only (see the crate docs).
#![cfg(target_os = "linux")]

mod util;

use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use util::{num, report, rss_kib, run_client, stress_client};

/// Opens peers that misbehave in turn: floods without reading, goes idle past the timeout, resets mid-
/// stream. Runs until `stop`.
fn misbehave(addr: std::net::SocketAddr, stop: &AtomicBool, faults: &AtomicU64) {
    let chunk = testkit::payload(5, 256 * 1024);
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut peers: Vec<TcpStream> = (0..8).filter_map(|_| TcpStream::connect(addr).ok()).collect();
        for (i, peer) in peers.iter_mut().enumerate() {
            let _ = peer.set_nonblocking(true);
            match (round + i as u64) % 3 {
                0 => {
                    // Floods and never reads.
                    for _ in 0..8 {
                        if matches!(peer.write(&chunk), Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
                            break;
                        }
                    }
                }
                1 => {} // idle: the server's idle timeout closes it
                _ => {
                    let _ = peer.write(&chunk[..4096]);
                    let _ = socket2::SockRef::from(&*peer).set_linger(Some(Duration::ZERO));
                }
            }
            faults.fetch_add(1, Ordering::Relaxed);
        }
        // Hold the misbehaving peers for a while (pacing, not synchronisation), then drop them.
        std::thread::sleep(Duration::from_millis(300));
        round += 1;
    }
}

#[test]
fn soak_mixed_faults_and_churn_keep_rss_and_fds_flat() {
    let seconds = faults::scaled("seconds", 12u64, 300);
    let server = util::echo_server(&["--idle-timeout", "1"]);
    let (pid, addr) = (server.pid(), server.addr);
    let base_fds = testkit::open_fds(pid);
    let stop = AtomicBool::new(false);
    let (cycles, misbehaving) = (AtomicU64::new(0), AtomicU64::new(0));
    let mut samples: Vec<(Duration, usize, u64)> = Vec::new();
    let started = Instant::now();
    let load = std::thread::scope(|s| {
        s.spawn(|| misbehave(addr, &stop, &misbehaving));
        for t in 0..2u64 {
            let (stop, cycles) = (&stop, &cycles);
            s.spawn(move || {
                let mut c = t;
                while !stop.load(Ordering::Relaxed) {
                    let source = [127, 0, 0, 20 + (c % 32) as u8];
                    util::churn_cycle(addr, source, c).unwrap_or_else(|e| panic!("churn cycle {c}: {e}"));
                    cycles.fetch_add(1, Ordering::Relaxed);
                    c += 2;
                }
            });
        }
        let echo = s.spawn(|| {
            let args = format!(
                "echo --target {addr} --connections 50 --size 4096 --pipeline 4 --duration {seconds}"
            );
            run_client(stress_client(&args), Duration::from_secs(seconds + 60))
        });
        while started.elapsed() < Duration::from_secs(seconds) {
            std::thread::sleep(Duration::from_secs(1)); // the sampling period
            samples.push((started.elapsed(), testkit::open_fds(pid), rss_kib(pid).0));
        }
        stop.store(true, Ordering::Relaxed);
        echo.join().unwrap()
    });
    let (code, r) = load;
    let settled =
        testkit::wait_for(Duration::from_secs(5), || testkit::open_fds(pid).abs_diff(base_fds) <= 2);
    let end_fds = testkit::open_fds(pid);
    let (end_rss, peak) = rss_kib(pid);
    let third = samples[samples.len() / 3].2;
    report(
        "soak",
        &format!(
            "{seconds} s against echo-server --idle-timeout 1: 2 churn threads (4 close kinds), 50 verified pipelined echo connections, and rounds of 8 peers that flood without reading, idle, or reset"
        ),
        &[
            ("churn cycles verified", cycles.load(Ordering::Relaxed).to_string()),
            ("misbehaving peers", misbehaving.load(Ordering::Relaxed).to_string()),
            ("echo bytes verified", num(&r, "bytes_received").to_string()),
            (
                "server fds",
                format!(
                    "baseline {base_fds}, max during {}, {end_fds} after",
                    samples.iter().map(|s| s.1).max().unwrap_or(0)
                ),
            ),
            (
                "server RSS",
                format!("{third} KiB at a third of the run, {end_rss} KiB at the end, peak {peak} KiB"),
            ),
            (
                "samples (s, fds, RSS KiB)",
                format!("{:?}", samples.iter().map(|(t, f, r)| (t.as_secs(), *f, *r)).collect::<Vec<_>>()),
            ),
        ],
    );
    assert_eq!(code, Some(0), "{r}");
    assert_eq!(num(&r, "verify_failures"), 0, "{}", r["failure"]);
    assert!(settled, "server fds {end_fds} after the soak, baseline {base_fds}");
    assert!(end_rss * 100 <= third * 105 + 100 * 512, "server RSS grew from {third} KiB to {end_rss} KiB");
}
