//! Faults of peers: resets, half-closes, peers that never read, idle and trickling peers, churn, a
//! signal storm, tiny socket buffers, and a shutdown in the middle of transfers.

// The suite is Linux only (see the crate docs).
#![cfg(target_os = "linux")]

mod util;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reactor::{CloseKind, CloseReason, Config, ConnId, Context, EventLoop, Handler, ListenerOptions, Next};
use socket2::{Domain, Socket, Type};
use testkit::{EchoRun, echo_jobs, spread_sizes};
use util::{Echo, Server, close_kinds, num, report, rss_kib, run_client, stress_client};

/// Echoes, and notes when each connection closed and why.
#[derive(Debug, Default)]
struct TimedEcho {
    closes: Vec<(CloseKind, Instant)>,
}

impl Handler for TimedEcho {
    type Message = ();
    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        if ctx.send(conn, data).is_err() { Next::Close } else { Next::Continue }
    }
    fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, reason: &CloseReason) {
        self.closes.push((reason.kind(), Instant::now()));
    }
}

/// Connects `count` peers that each send `len` bytes, wait for some of the echo, and then close with
/// SO_LINGER 0 (a reset) while the server is still echoing. Returns when the last reset went out.
fn reset_mid_stream(addr: SocketAddr, count: usize, len: usize) -> Instant {
    let mut peers: Vec<TcpStream> = (0..count).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let data = testkit::payload(7, len);
    for peer in &mut peers {
        peer.set_nonblocking(true).unwrap();
        let mut sent = 0;
        while sent < data.len() {
            match peer.write(&data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("resetting peer: write: {e}"),
            }
        }
    }
    let mut buffer = [0; 1024];
    for peer in &mut peers {
        peer.set_nonblocking(false).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = peer.read(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], &data[..n], "resetting peer: wrong echo before the reset");
    }
    for peer in peers {
        socket2::SockRef::from(&peer).set_linger(Some(Duration::ZERO)).unwrap();
    }
    Instant::now()
}

#[test]
fn reset_mid_stream_frees_those_connections_and_the_others_lose_nothing() {
    let total = faults::scaled("connections", 200usize, 1_000);
    let resets = total / 10;
    let server = Server::start(Config::default(), TimedEcho::default());
    let jobs = echo_jobs(&spread_sizes(total - resets, 1 << 20, 11), false);
    let addr = server.addr;
    let (echoed, reset_at) = std::thread::scope(|s| {
        let load = s.spawn(move || EchoRun { addr, jobs, deadline: Duration::from_secs(60) }.run());
        let reset_at = reset_mid_stream(addr, resets, 1 << 20);
        (load.join().unwrap(), reset_at)
    });
    let echoed = echoed.expect("the connections that were not reset lost bytes");
    let freed = testkit::wait_for(Duration::from_secs(2), || {
        server.stats().closed(CloseKind::Reset) >= resets as u64
    });
    let counters = server.stats();
    let handler = server.finish();
    let latest_reset_close = handler
        .closes
        .iter()
        .filter(|(k, _)| *k == CloseKind::Reset)
        .map(|(_, at)| at.saturating_duration_since(reset_at))
        .max()
        .unwrap_or_default();
    let kinds: Vec<CloseKind> = handler.closes.iter().map(|(k, _)| *k).collect();
    report(
        "reset mid-stream",
        &format!(
            "{resets} of {total} connections (10%) close with SO_LINGER 0 while 1 MiB of theirs is being echoed"
        ),
        &[
            ("bytes verified on the other 90%", echoed.to_string()),
            ("server closes", close_kinds(&kinds)),
            ("last reset connection freed after the reset", format!("{latest_reset_close:?}")),
        ],
    );
    assert!(freed, "only {} of {resets} reset connections were closed", counters.closed(CloseKind::Reset));
    assert_eq!(counters.closed(CloseKind::Reset), resets as u64, "closes: {}", close_kinds(&kinds));
    assert_eq!(counters.closed(CloseKind::Error), 0, "closes: {}", close_kinds(&kinds));
    assert!(
        latest_reset_close < Duration::from_secs(1),
        "a reset connection lived {latest_reset_close:?} on"
    );
}

#[test]
fn reset_before_accept_closes_only_that_connection() {
    let config = Config { max_connections: 1, ..Config::default() };
    let server = Server::start(config, Echo::default());
    // The first peer holds the only slot, so the next ones wait in the accept queue.
    let mut holder = TcpStream::connect(server.addr).unwrap();
    holder.write_all(b"hold").unwrap();
    let mut reply = [0; 4];
    holder.read_exact(&mut reply).unwrap();
    let doomed = TcpStream::connect(server.addr).unwrap();
    let mut doomed_data = doomed.try_clone().unwrap();
    doomed_data.write_all(b"never echoed").unwrap();
    socket2::SockRef::from(&doomed).set_linger(Some(Duration::ZERO)).unwrap();
    drop((doomed, doomed_data)); // RST while queued
    let mut after = TcpStream::connect(server.addr).unwrap();
    after.write_all(b"served").unwrap();
    drop(holder); // frees the slot: the reset peer is accepted first
    after.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut echo = [0; 6];
    after.read_exact(&mut echo).expect("the peer queued behind the reset one was not served");
    assert_eq!(&echo, b"served");
    drop(after);
    assert!(testkit::wait_for(Duration::from_secs(2), || server.stats().active == 0));
    let counters = server.stats();
    let handler = server.finish();
    report(
        "reset before accept",
        "max_connections 1; a queued peer sends, then resets (SO_LINGER 0) before it is accepted; the slot frees",
        &[
            ("accepted", counters.accepted.to_string()),
            ("accept errors", format!("{:?}", counters.accept_errors)),
            ("server closes", close_kinds(&handler.closed)),
        ],
    );
    let reset = counters.closed(CloseKind::Reset);
    let aborted = counters.accept_errors(reactor::AcceptErrorKind::Econnaborted);
    assert_eq!(reset + aborted, 1, "the reset peer must end as one reset (or one ECONNABORTED accept)");
    assert_eq!(counters.closed(CloseKind::Error), 0);
    assert_eq!(counters.closed(CloseKind::PeerClosed), 2, "the other two peers ended normally");
}

#[test]
fn half_close_returns_exactly_n_bytes_then_eof_and_leaves_no_close_wait() {
    let connections = faults::scaled("connections", 200usize, 2_000);
    testkit::raise_fd_limit(connections as u64 + 100);
    let server = util::echo_server(&[]);
    let base_fds = testkit::open_fds(server.pid());
    let jobs = echo_jobs(&spread_sizes(connections, 1 << 20, 5), true);
    let bytes: usize = jobs.iter().map(|j| j.payload.len()).sum();
    let echoed = EchoRun { addr: server.addr, jobs, deadline: Duration::from_secs(60) }.run().unwrap();
    let started = Instant::now();
    let port = server.addr.port();
    let no_close_wait = testkit::wait_for(Duration::from_secs(2), || {
        hostinfo::tcp_states(port).is_ok_and(|s| s.count("CLOSE_WAIT") == 0)
            && testkit::open_fds(server.pid()) == base_fds
    });
    let states = hostinfo::tcp_states(port).unwrap();
    report(
        "half-close",
        &format!("{connections} connections send 1 B..1 MiB, then shutdown(Write)"),
        &[
            ("bytes verified", format!("{echoed} of {bytes}, each followed by EOF")),
            ("sockets on the port afterwards", format!("{states} (settled in {:?})", started.elapsed())),
            ("server fds", format!("{} (baseline {base_fds})", testkit::open_fds(server.pid()))),
        ],
    );
    assert_eq!(echoed as usize, bytes);
    assert!(no_close_wait, "CLOSE_WAIT or descriptors left 2 s after the last EOF: {states}");
}

/// Peers that send until the server stops taking their bytes and never read. Returns bytes sent each.
fn flood_without_reading(addr: SocketAddr, count: usize, limit: usize) -> (Vec<TcpStream>, Vec<usize>) {
    let chunk = testkit::payload(3, 1 << 20);
    let mut peers: Vec<TcpStream> = (0..count).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut sent = vec![0; count];
    let mut stalled_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    for peer in &peers {
        peer.set_nonblocking(true).unwrap();
    }
    while stalled_since.elapsed() < Duration::from_millis(500) && Instant::now() < deadline {
        for (peer, sent) in peers.iter_mut().zip(&mut sent) {
            if *sent >= limit {
                continue;
            }
            match peer.write(&chunk[..chunk.len().min(limit - *sent)]) {
                Ok(n) => {
                    *sent += n;
                    stalled_since = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("slow reader: write: {e}"),
            }
        }
        std::thread::yield_now();
    }
    (peers, sent)
}

#[test]
fn slow_readers_are_bounded_and_do_not_slow_the_others() {
    let slow = faults::scaled("slow readers", 20usize, 100);
    let control = faults::scaled("control connections", 200u64, 1_000);
    let cap_kib = (Config::default().max_output / 1024) as u64;
    let server = util::echo_server(&[]);
    let control_run = || {
        let args = format!("echo --target {} --connections {control} --size 1024 --duration 3", server.addr);
        let (code, r) = run_client(stress_client(&args), Duration::from_secs(60));
        assert_eq!(code, Some(0), "{r}");
        assert_eq!(num(&r, "verify_failures"), 0, "control connections lost bytes: {}", r["failure"]);
        r
    };
    let baseline = control_run();
    let (rss_before, _) = rss_kib(server.pid());
    let (peers, sent) = flood_without_reading(server.addr, slow, 100 << 20);
    let (rss_stalled, _) = rss_kib(server.pid());
    let loaded = control_run();
    let (_, peak) = rss_kib(server.pid());
    drop(peers);
    let growth = peak.saturating_sub(rss_before);
    let bound = slow as u64 * cap_kib + 16 * 1024;
    let (p99_base, p99_loaded) = (num(&baseline, "latency_us.p99"), num(&loaded, "latency_us.p99"));
    // A shared two-core machine jitters by milliseconds: allow 2x, but never less than 5 ms of slack.
    let allowed = (2 * p99_base).max(p99_base + 5_000);
    report(
        "slow reader",
        &format!(
            "{slow} peers write until the server stops taking bytes (up to 100 MiB) and never read; {control} control connections run 1 KiB ping-pong for 3 s"
        ),
        &[
            (
                "sent by each slow peer before the stall",
                format!(
                    "{} KiB .. {} KiB",
                    sent.iter().min().unwrap() / 1024,
                    sent.iter().max().unwrap() / 1024
                ),
            ),
            (
                "server RSS",
                format!(
                    "{rss_before} KiB before, {rss_stalled} KiB stalled, peak {peak} KiB (+{growth} KiB; bound {slow} x {cap_kib} KiB + 16 MiB = {bound} KiB)"
                ),
            ),
            (
                "control p99",
                format!("{p99_base} us without, {p99_loaded} us with the slow peers (allowed {allowed} us)"),
            ),
            ("control bytes verified", num(&loaded, "bytes_received").to_string()),
        ],
    );
    assert!(sent.iter().all(|s| *s < 100 << 20), "a peer that never reads got 100 MiB taken");
    assert!(growth <= bound, "server RSS grew {growth} KiB with {slow} slow readers (bound {bound} KiB)");
    assert!(p99_loaded <= allowed, "control p99 {p99_loaded} us with slow readers vs {p99_base} us without");
}

#[test]
fn slowloris_and_idle_peers_are_closed_on_time_under_the_connection_cap() {
    let idle = faults::scaled("idle peers", 200usize, 4_000);
    let trickle = faults::scaled("trickling peers", 200usize, 4_000);
    let cap = (idle + trickle) * 3 / 4;
    let timeout = Duration::from_secs(1);
    testkit::raise_fd_limit((idle + trickle) as u64 + 200);
    let server =
        util::echo_server(&["--idle-timeout", "1", "--max-conns", &cap.to_string(), "--backlog", "4096"]);
    let pid = server.pid();
    let base_fds = testkit::open_fds(pid);
    let started = Instant::now();
    let mut peers: Vec<(TcpStream, Option<Duration>)> = (0..idle + trickle)
        .map(|_| {
            let s = TcpStream::connect(server.addr).unwrap();
            s.set_nonblocking(true).unwrap();
            (s, None)
        })
        .collect();
    // Control peers arrive behind the attackers and must still be served.
    let addr = server.addr;
    let control = std::thread::spawn(move || {
        EchoRun {
            addr,
            jobs: echo_jobs(&spread_sizes(50, 4096, 2), false),
            deadline: Duration::from_secs(20),
        }
        .run()
    });
    let mut max_fds = 0;
    let mut next_trickle = Duration::ZERO;
    let mut buffer = [0; 64];
    while started.elapsed() < 4 * timeout + Duration::from_secs(2) && peers.iter().any(|p| p.1.is_none()) {
        if started.elapsed() >= next_trickle {
            // One byte every two idle timeouts (the "1 byte per 10 s" against a shorter timeout).
            for (peer, closed) in peers[idle..].iter_mut() {
                if closed.is_none() {
                    let _ = peer.write(b"x");
                }
            }
            next_trickle += 2 * timeout;
        }
        for (peer, closed) in peers.iter_mut().filter(|p| p.1.is_none()) {
            match peer.read(&mut buffer) {
                Ok(0) => *closed = Some(started.elapsed()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => *closed = Some(started.elapsed()),
            }
        }
        max_fds = max_fds.max(testkit::open_fds(pid));
        std::thread::sleep(Duration::from_millis(10));
    }
    let control = control.join().unwrap();
    let closes: Vec<Duration> = peers.iter().filter_map(|p| p.1).collect();
    let earliest = closes.iter().min().copied().unwrap_or_default();
    let latest = closes.iter().max().copied().unwrap_or_default();
    report(
        "slowloris / idle",
        &format!(
            "echo-server --idle-timeout 1 --max-conns {cap}; {idle} idle peers and {trickle} sending 1 byte every 2 s; 50 control peers behind them"
        ),
        &[
            ("closed by the server", format!("{} of {}", closes.len(), peers.len())),
            (
                "close times after connecting",
                format!(
                    "{earliest:?} .. {latest:?} (timeout {timeout:?}; the last wave waited in the accept queue)"
                ),
            ),
            ("most server fds", format!("{max_fds} (baseline {base_fds}, cap {cap})")),
            ("control bytes verified", format!("{control:?}")),
        ],
    );
    assert_eq!(closes.len(), peers.len(), "some idle or trickling peers were never closed");
    assert!(earliest >= timeout, "a peer was closed after {earliest:?}, before the idle timeout");
    assert!(
        latest <= 3 * timeout + Duration::from_millis(1500),
        "the last idle peer was closed after {latest:?}"
    );
    assert!(max_fds <= base_fds + cap + 2, "the server held {max_fds} fds with a cap of {cap}");
    control.expect("control peers were not served");
}

#[test]
fn churn_leaves_fds_and_memory_at_baseline_and_misroutes_nothing() {
    let cycles = faults::scaled("connect/close cycles", 6_000u64, 200_000);
    const THREADS: u64 = 4;
    let server = util::echo_server(&[]);
    let pid = server.pid();
    let addr = server.addr;
    let run = |first: u64, count: u64| {
        std::thread::scope(|s| {
            for t in 0..THREADS {
                s.spawn(move || {
                    for c in (first + t..first + count).step_by(THREADS as usize) {
                        // Sources 127.0.0.2-17 spread TIME_WAIT over 16 × 28k ports.
                        let source = [127, 0, 0, 2 + (c % 16) as u8];
                        util::churn_cycle(addr, source, c).unwrap_or_else(|e| panic!("cycle {c}: {e}"));
                    }
                });
            }
        })
    };
    let warmup = cycles / 10;
    run(0, warmup);
    let settle = |fds: usize| testkit::wait_for(Duration::from_secs(3), || testkit::open_fds(pid) <= fds);
    let base_fds = testkit::open_fds(server.pid());
    settle(base_fds);
    let (rss_warm, _) = rss_kib(pid);
    let started = Instant::now();
    run(warmup, cycles - warmup);
    let took = started.elapsed();
    let fds_settled =
        testkit::wait_for(Duration::from_secs(3), || testkit::open_fds(pid).abs_diff(base_fds) <= 2);
    let fds = testkit::open_fds(pid);
    let (rss_end, peak) = rss_kib(pid);
    report(
        "churn and leaks",
        &format!(
            "{cycles} connect / echo / close cycles from 4 threads over 16 source addresses; closes rotate: graceful, reset (SO_LINGER 0), half-close, leave unread"
        ),
        &[
            (
                "cycles verified",
                format!("{} ({:.0}/s)", cycles, (cycles - warmup) as f64 / took.as_secs_f64()),
            ),
            ("server fds", format!("{base_fds} after warm-up, {fds} at the end")),
            (
                "server RSS",
                format!("{rss_warm} KiB after warm-up, {rss_end} KiB at the end, peak {peak} KiB"),
            ),
        ],
    );
    assert!(fds_settled, "server fds {fds}, baseline {base_fds}: descriptors leak");
    assert!(
        rss_end * 100 <= rss_warm * 105 + 100 * 64,
        "server RSS grew from {rss_warm} KiB to {rss_end} KiB"
    );
}

static SIGNALS: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_signal(_: nix::libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn eintr_signal_storm_surfaces_no_error_and_loses_nothing() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let connections = faults::scaled("connections", 200usize, 1_000);
    let action = SigAction::new(SigHandler::Handler(count_signal), SaFlags::empty(), SigSet::empty());
    // SAFETY: the handler only bumps an atomic counter, which is async-signal-safe. No SA_RESTART, so
    // every interrupted system call in the loop's thread returns EINTR.
    unsafe { sigaction(Signal::SIGUSR1, &action) }.expect("install the SIGUSR1 handler");
    util::init();
    let mut event_loop =
        EventLoop::new(Config { raise_fd_limit: false, ..Config::default() }, Echo::default()).unwrap();
    let (_, addr) = event_loop.listen(&ListenerOptions::new("127.0.0.1:0".parse().unwrap())).unwrap();
    let handle = event_loop.handle();
    let (thread_tx, thread_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        // As a number: `pthread_t` is an integer on glibc but a pointer (not `Send`) on musl.
        thread_tx.send(nix::sys::pthread::pthread_self() as usize).unwrap();
        event_loop.run().map(|()| event_loop.stats().clone())
    });
    let loop_thread = thread_rx.recv().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let storm = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // 1,000 a second, aimed at the loop's thread.
                let _ = nix::sys::pthread::pthread_kill(
                    loop_thread as nix::sys::pthread::Pthread,
                    Signal::SIGUSR1,
                );
                sent += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            sent
        })
    };
    let started = Instant::now();
    // Rounds of load until the storm has run for two seconds.
    let mut echoed = Ok(0);
    for round in 0.. {
        let jobs = echo_jobs(&spread_sizes(connections, 1 << 20, 9 + round), true);
        echoed =
            EchoRun { addr, jobs, deadline: Duration::from_secs(60) }.run().map(|n| n + echoed.unwrap_or(0));
        if echoed.is_err() || started.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    let flooded = testkit::flood_then_drain(addr, 64 << 20, |_| {});
    stop.store(true, Ordering::Relaxed);
    let sent = storm.join().unwrap();
    handle.shutdown(Duration::from_secs(5)).unwrap();
    let counters = server.join().unwrap().expect("the loop returned an error during the signal storm");
    report(
        "EINTR",
        &format!(
            "SIGUSR1 at ~1,000/s to the loop's thread (handler without SA_RESTART) during rounds of {connections} half-closed echoes and one 64 MiB flood"
        ),
        &[
            (
                "signals",
                format!(
                    "{sent} sent, {} handled in {:?}",
                    SIGNALS.load(Ordering::Relaxed),
                    started.elapsed()
                ),
            ),
            (
                "bytes verified",
                format!("{:?} + 64 MiB flood {}", echoed, if flooded.is_ok() { "ok" } else { "FAILED" }),
            ),
            (
                "server closes",
                format!(
                    "errors {}, resets {}",
                    counters.closed(CloseKind::Error),
                    counters.closed(CloseKind::Reset)
                ),
            ),
        ],
    );
    echoed.expect("bytes lost during the signal storm");
    flooded.expect("the flood lost bytes during the signal storm");
    assert!(sent > 100, "the storm sent only {sent} signals");
    assert_eq!(counters.closed(CloseKind::Error), 0, "an EINTR surfaced as a connection error");
}

/// Sends `len` bytes through a connection whose socket buffers are 4 KiB (when `small`) and checks the
/// echo byte for byte; returns the time it took.
fn echo_through_small_buffers(addr: SocketAddr, len: usize, seed: u64, small: bool) -> Duration {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    if small {
        socket.set_send_buffer_size(4096).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
    }
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    let started = Instant::now();
    let data = Arc::new(testkit::payload(seed, len));
    let mut writer = stream.try_clone().unwrap();
    let to_send = data.clone();
    let sender = std::thread::spawn(move || writer.write_all(&to_send));
    let mut reader = stream;
    reader.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut received = 0;
    let mut buffer = vec![0; 64 * 1024];
    while received < len {
        let n = reader.read(&mut buffer).expect("read the echo");
        assert!(n > 0, "EOF after {received} of {len} bytes");
        assert!(buffer[..n] == data[received..received + n], "echo differs after byte {received}");
        received += n;
    }
    sender.join().unwrap().expect("write 16 MiB");
    started.elapsed()
}

#[test]
fn partial_writes_with_4_kib_socket_buffers_echo_16_mib_byte_for_byte() {
    let messages = faults::scaled("16 MiB messages", 2u64, 8);
    const LEN: usize = 16 << 20;
    let server = util::echo_server(&[]);
    let mut lines = Vec::new();
    let took: Vec<Duration> =
        (0..messages).map(|i| echo_through_small_buffers(server.addr, LEN, i, true)).collect();
    lines.push((
        "client SO_SNDBUF/SO_RCVBUF 4 KiB".to_string(),
        format!("{messages} x 16 MiB identical, {took:?}"),
    ));
    let namespaced = faults::namespaces_unavailable();
    if !faults::skip("partial writes with the server's buffers at 4 KiB too", namespaced) {
        let ns = faults::Namespace::new("tinybuf");
        ns.sysctl("net.ipv4.tcp_rmem", "4096 4096 4096");
        ns.sysctl("net.ipv4.tcp_wmem", "4096 4096 4096");
        let inner = util::echo_server_in(&ns, "127.0.0.1:0", &[]);
        let addr = inner.addr;
        let took: Vec<Duration> = std::thread::scope(|s| {
            s.spawn(|| {
                ns.enter();
                (0..messages).map(|i| echo_through_small_buffers(addr, LEN, 100 + i, false)).collect()
            })
            .join()
            .unwrap()
        });
        lines.push((
            "both ends 4 KiB (namespace tcp_rmem/tcp_wmem)".into(),
            format!("{messages} x 16 MiB identical, {took:?}"),
        ));
    }
    let held: Vec<(&str, String)> = lines.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    report("partial writes", "16 MiB messages through 4 KiB socket buffers", &held);
}

#[test]
fn graceful_shutdown_mid_transfer_delivers_queued_data_and_closes_every_peer_cleanly() {
    let connections = faults::scaled("connections", 200usize, 1_000);
    testkit::raise_fd_limit(connections as u64 + 100);
    const LEN: usize = 1 << 20;
    let mut command = util::echo_server_command(&["--addr", "127.0.0.1:0", "--shutdown-timeout", "5"]);
    command.env("RUST_LOG", "info").stderr(std::process::Stdio::piped());
    let mut server = testkit::ServerProcess::start(command);
    let mut poll = mio::Poll::new().unwrap();
    let mut events = mio::Events::with_capacity(1024);
    struct Peer {
        stream: mio::net::TcpStream,
        data: Vec<u8>,
        sent: usize,
        received: usize,
        end: Option<Result<(), String>>,
    }
    let mut peers: Vec<Peer> = (0..connections)
        .map(|i| {
            let s = TcpStream::connect(server.addr).unwrap();
            s.set_nonblocking(true).unwrap();
            let mut stream = mio::net::TcpStream::from_std(s);
            poll.registry()
                .register(&mut stream, mio::Token(i), mio::Interest::READABLE | mio::Interest::WRITABLE)
                .unwrap();
            Peer { stream, data: testkit::payload(i as u64, LEN), sent: 0, received: 0, end: None }
        })
        .collect();
    let mut buffer = vec![0; 64 * 1024];
    let mut signalled: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while peers.iter().any(|p| p.end.is_none()) && Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_millis(50))).unwrap();
        // Every peer mid-transfer (some echo back, much still to send): ask the server to stop.
        if signalled.is_none() && peers.iter().all(|p| p.received > 0 && p.sent < LEN) {
            server.signal(nix::sys::signal::Signal::SIGTERM);
            signalled = Some(Instant::now());
        }
        for event in events.iter() {
            let peer = &mut peers[event.token().0];
            if peer.end.is_some() {
                continue;
            }
            while peer.sent < LEN {
                match peer.stream.write(&peer.data[peer.sent..(peer.sent + 16 * 1024).min(LEN)]) {
                    Ok(n) => peer.sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        peer.end = Some(Err(format!("write: {e}")));
                        break;
                    }
                }
                if signalled.is_none() {
                    break; // trickle before the signal so that every peer is still mid-transfer
                }
            }
            loop {
                match peer.stream.read(&mut buffer) {
                    Ok(0) => {
                        // The conversation is over: close our side too, as a real client would.
                        peer.end.get_or_insert(Ok(()));
                        let _ = peer.stream.shutdown(Shutdown::Both);
                        break;
                    }
                    Ok(n) => {
                        if buffer[..n] != peer.data[peer.received..peer.received + n] {
                            peer.end = Some(Err(format!("wrong echo at byte {}", peer.received)));
                            break;
                        }
                        peer.received += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        peer.end.get_or_insert(Err(format!("read: {e}")));
                        break;
                    }
                }
            }
        }
    }
    let signalled = signalled.expect("the peers never got mid-transfer");
    let status = server.wait_exit(Duration::from_secs(10));
    let exited_after = signalled.elapsed();
    let mut log = String::new();
    let _ = server.child.stderr.take().map(|mut e| e.read_to_string(&mut log));
    let stopped = log.lines().find(|l| l.contains("stopped:")).unwrap_or("").to_string();
    let received: usize = peers.iter().map(|p| p.received).sum();
    let failures: Vec<String> = peers
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match &p.end {
            Some(Ok(())) => None,
            Some(Err(e)) => Some(format!("#{i}: {e}")),
            None => Some(format!("#{i}: no EOF")),
        })
        .collect();
    report(
        "graceful shutdown",
        &format!(
            "SIGTERM to echo-server --shutdown-timeout 5 while {connections} peers are each mid-way through a 1 MiB echo"
        ),
        &[
            ("exit", format!("{status:?} {exited_after:?} after SIGTERM")),
            (
                "peers closed cleanly (EOF, verified prefix)",
                format!("{} of {connections}", connections - failures.len()),
            ),
            ("bytes verified", received.to_string()),
            ("server's last line", stopped.clone()),
        ],
    );
    assert!(
        failures.is_empty(),
        "{} peers did not end cleanly: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(status.and_then(|s| s.code()), Some(0), "exit status");
    assert!(exited_after < Duration::from_secs(7), "exit took {exited_after:?}");
    // Everything the server wrote reached the peers (its counter is in MB, to one decimal). Its "in"
    // is larger: after SIGTERM it reads and discards until each peer's FIN, rather than reset them.
    let out = stopped.split(" out ").nth(1).and_then(|r| r.split(' ').next()).map(str::to_string);
    assert_eq!(out, Some(format!("{:.1}", received as f64 / 1e6)), "{stopped}");
}
