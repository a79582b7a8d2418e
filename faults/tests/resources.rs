//! Faults of resources: the baseline, running out of descriptors (for real and through the accept
//! seam), a full accept queue, and exhausted ephemeral ports.

// The suite is Linux only (see the crate docs).
#![cfg(target_os = "linux")]

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use nix::libc;
use reactor::{AcceptErrorKind, Config, ConnId, Context, EventLoop, Handler, ListenerOptions, Next, Origin};
use util::{num, report, rss_kib, run_client, stress_client};

/// User-space memory one idle-or-ping-pong connection may add to the server: its table entry, its
/// timer, and now and then a small output queue. The kernel's socket buffers are not in RSS.
const RSS_PER_CONNECTION_KIB: u64 = 4;
/// Fixed allowance on top: allocator arenas, the shared read buffer, the event array.
const RSS_FIXED_KIB: u64 = 8 * 1024;

#[test]
fn baseline_ping_pong_loses_nothing_and_memory_stays_within_the_per_connection_bound() {
    let connections = faults::scaled("connections", 1_000u64, 10_000);
    let seconds = faults::scaled("seconds of load", 3u64, 10);
    let server = util::echo_server(&[]);
    let (rss_start, _) = rss_kib(server.pid());
    let args =
        format!("echo --target {} --connections {connections} --size 1024 --duration {seconds}", server.addr);
    let (code, r) = run_client(stress_client(&args), Duration::from_secs(60 + 3 * seconds));
    let (_, peak) = rss_kib(server.pid());
    let messages = num(&r, "messages");
    assert_eq!(code, Some(0), "stress-client failed: {r}");
    assert_eq!(num(&r, "verify_failures"), 0, "echo mismatches: {}", r["failure"]);
    assert_eq!(num(&r, "established"), connections, "not every connection was made: {}", r["errors"]);
    assert!(messages > connections, "only {messages} messages in {seconds} s");
    assert_eq!(num(&r, "bytes_received"), messages * 1024, "bytes lost between send and echo");
    let growth = peak.saturating_sub(rss_start);
    let bound = RSS_FIXED_KIB + RSS_PER_CONNECTION_KIB * connections;
    report(
        "baseline",
        &format!("stress-client echo: {connections} connections, 1 KiB ping-pong, {seconds} s"),
        &[
            ("connections", connections.to_string()),
            ("messages verified", messages.to_string()),
            ("bytes verified", num(&r, "bytes_received").to_string()),
            ("latency p99", format!("{} us", num(&r, "latency_us.p99"))),
            ("server RSS", format!("{rss_start} KiB at start, peak {peak} KiB (+{growth} KiB)")),
            (
                "RSS per connection",
                format!(
                    "{:.2} KiB (bound {RSS_PER_CONNECTION_KIB} KiB + {RSS_FIXED_KIB} KiB fixed)",
                    growth as f64 / connections as f64
                ),
            ),
        ],
    );
    assert!(
        growth <= bound,
        "server RSS grew {growth} KiB for {connections} connections (bound {bound} KiB)"
    );
}

/// Peers that have had their one-byte echo, out of `peers`; answered peers leave at once when `leave`.
fn collect_answers(peers: &mut [TcpStream], answered: &mut [bool], leave: bool) -> usize {
    for (peer, done) in peers.iter_mut().zip(answered.iter_mut()) {
        let mut byte = [0];
        if !*done && matches!(peer.read(&mut byte), Ok(1)) {
            *done = true;
            if leave {
                let _ = peer.shutdown(Shutdown::Both);
            }
        }
    }
    answered.iter().filter(|d| **d).count()
}

#[test]
fn emfile_idles_over_the_limit_and_takes_the_backlog_within_a_second_of_fds_freeing() {
    const LIMIT: u32 = 64;
    const PEERS: usize = 2 * LIMIT as usize;
    let server = util::echo_server_with_fd_limit(LIMIT, &["--backlog", "512"]);
    let pid = server.pid();
    let mut peers: Vec<TcpStream> = (0..PEERS).map(|_| TcpStream::connect(server.addr).unwrap()).collect();
    for peer in &mut peers {
        peer.write_all(b"x").unwrap();
        peer.set_nonblocking(true).unwrap();
    }
    // Wait until the server has taken all it can: the answered count stops moving.
    let mut answered = vec![false; PEERS];
    let mut last = (0, Instant::now());
    let settled = testkit::wait_for(Duration::from_secs(10), || {
        let now = collect_answers(&mut peers, &mut answered, false);
        if now != last.0 {
            last = (now, Instant::now());
        }
        now > 0 && last.1.elapsed() > Duration::from_millis(500)
    });
    let served = last.0;
    assert!(settled && served < PEERS, "served {served} of {PEERS}: the descriptor limit did not bite");
    let fds = testkit::open_fds(pid);
    assert!(fds as u32 >= LIMIT - 2, "the server holds {fds} descriptors, not near its limit of {LIMIT}");

    // Over the limit, with peers waiting in the accept queue: the server must idle, not spin.
    let window = Duration::from_secs(2);
    let before = testkit::proc_cpu_ticks(pid);
    let started = Instant::now();
    std::thread::sleep(window);
    let ticks = testkit::proc_cpu_ticks(pid) - before;
    let cpu = ticks as f64 / 100.0 / started.elapsed().as_secs_f64() * 100.0;

    // Free descriptors without a new connection arriving: the served peers leave.
    let freed_at = Instant::now();
    for (peer, done) in peers.iter_mut().zip(&answered) {
        if *done {
            let _ = peer.shutdown(Shutdown::Both);
        }
    }
    let mut waiting: Vec<TcpStream> =
        peers.into_iter().zip(&answered).filter(|(_, d)| !**d).map(|(p, _)| p).collect();
    let mut answered = vec![false; waiting.len()];
    let first =
        testkit::wait_for(Duration::from_secs(5), || collect_answers(&mut waiting, &mut answered, true) > 0);
    let first_recovery = freed_at.elapsed();
    let all = testkit::wait_for(Duration::from_secs(15), || {
        collect_answers(&mut waiting, &mut answered, true) == answered.len()
    });
    let all_recovery = freed_at.elapsed();
    let later = answered.iter().filter(|d| **d).count();
    report(
        "EMFILE",
        &format!(
            "echo-server under prlimit --nofile={LIMIT}:{LIMIT}, {PEERS} peers each sending 1 byte, then the served ones leave"
        ),
        &[
            ("served before the limit", format!("{served} of {PEERS}; server holds {fds} fds")),
            (
                "CPU while over the limit",
                format!("{ticks} ticks in {:?} ({cpu:.1}% of a core)", started.elapsed()),
            ),
            ("first queued peer served after fds freed", format!("{first_recovery:?}")),
            (
                "all {waiting} queued peers served after",
                format!("{all_recovery:?} ({later} of {})", answered.len()),
            ),
        ],
    );
    assert!(cpu < 5.0, "the server used {cpu:.1}% CPU while out of descriptors: it spins");
    assert!(first, "no queued peer was served after descriptors were freed: accepting stalled");
    assert!(
        first_recovery < Duration::from_secs(1),
        "the first queued peer waited {first_recovery:?} after descriptors freed"
    );
    assert!(all, "only {later} of {} queued peers were served", answered.len());
}

/// Counts opened connections and echoes.
#[derive(Debug, Default)]
struct Opened {
    opened: usize,
}

impl Handler for Opened {
    type Message = ();
    fn on_open(&mut self, _: &mut Context<'_>, _: ConnId, _: Origin) {
        self.opened += 1;
    }
    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        if ctx.send(conn, data).is_err() { Next::Close } else { Next::Continue }
    }
}

#[test]
fn enfile_enobufs_enomem_econnaborted_are_backed_off_or_retried_through_the_accept_seam() {
    util::init();
    let backoff = Duration::from_millis(50);
    let config = Config { accept_backoff: backoff, raise_fd_limit: false, ..Config::default() };
    let mut event_loop = EventLoop::new(config, Opened::default()).unwrap();
    let (listener, addr) = event_loop.listen(&ListenerOptions::new("127.0.0.1:0".parse().unwrap())).unwrap();
    let mut peers = Vec::new();
    let mut lines = Vec::new();
    let mut expected = [0u64; 6];
    for (errno, kind) in [
        (libc::ENFILE, AcceptErrorKind::Enfile),
        (libc::ENOBUFS, AcceptErrorKind::Enobufs),
        (libc::ENOMEM, AcceptErrorKind::Enomem),
        (libc::EMFILE, AcceptErrorKind::Emfile),
    ] {
        let mut peer = TcpStream::connect(addr).unwrap();
        let opened = event_loop.handler().opened;
        // Two failures in a row: the loop must wait one back-off, then twice that, then accept.
        event_loop.context().inject_accept_errors(listener, &[errno, errno]).unwrap();
        let started = Instant::now();
        let mut turns = 0;
        while event_loop.handler().opened == opened && started.elapsed() < Duration::from_secs(3) {
            event_loop.run_once(Some(Duration::from_millis(500))).unwrap();
            turns += 1;
        }
        let waited = started.elapsed();
        expected[kind as usize] += 2;
        assert_eq!(
            event_loop.handler().opened,
            opened + 1,
            "{}: the queued peer was never accepted",
            kind.name()
        );
        assert!(waited >= backoff * 3, "{}: accepted after {waited:?}, without backing off", kind.name());
        assert!(turns <= 10, "{}: {turns} loop turns during the back-off: it spins", kind.name());
        peer.write_all(b"ping").unwrap();
        peer.set_nonblocking(true).unwrap();
        let mut reply = [0; 4];
        let echoed = started.elapsed() + Duration::from_secs(3);
        while peer.read(&mut reply).map(|n| n == 0).unwrap_or(true) {
            assert!(started.elapsed() < echoed, "{}: no echo on the accepted connection", kind.name());
            event_loop.run_once(Some(Duration::from_millis(100))).unwrap();
        }
        assert_eq!(&reply, b"ping");
        lines.push((kind.name(), format!("2 injected; accepted after {waited:?} in {turns} turns; echo ok")));
        peers.push(peer);
    }
    // ECONNABORTED (the peer gave up while queued) and EINTR: carry on at once, in the same turn.
    let _peer = TcpStream::connect(addr).unwrap();
    let opened = event_loop.handler().opened;
    event_loop
        .context()
        .inject_accept_errors(
            listener,
            &[libc::ECONNABORTED, libc::EINTR, libc::ECONNABORTED, libc::ECONNABORTED],
        )
        .unwrap();
    event_loop.run_once(Some(Duration::from_millis(500))).unwrap();
    assert_eq!(event_loop.handler().opened, opened + 1, "ECONNABORTED/EINTR stopped accepting");
    expected[AcceptErrorKind::Econnaborted as usize] += 3;
    lines.push(("ECONNABORTED, EINTR", "3 + 1 injected; the queued peer accepted in the same turn".into()));

    let counters = event_loop.stats().clone();
    assert_eq!(counters.accept_errors, expected, "accept error counters");
    assert_eq!(counters.accepted, 5);
    let held: Vec<(&str, String)> = lines.into_iter().collect();
    report(
        "ENFILE / ENOBUFS / ENOMEM / ECONNABORTED",
        "Context::inject_accept_errors (feature fault-injection): scripted errnos through the kernel-error path",
        &[
            held.as_slice(),
            &[(
                "counters",
                AcceptErrorKind::ALL
                    .iter()
                    .map(|k| format!("{}={}", k.name(), counters.accept_errors(*k)))
                    .collect::<Vec<_>>()
                    .join(" "),
            )],
        ]
        .concat(),
    );
}

#[test]
fn backlog_overflow_is_measured_and_reported() {
    const BACKLOG: u32 = 8;
    let server = util::echo_server(&["--pause-accept", "--backlog", &BACKLOG.to_string()]);
    let args =
        format!("backlog --target {} --backlog {BACKLOG} --max 200 --connect-timeout 300", server.addr);
    let (code, r) = run_client(stress_client(&args), Duration::from_secs(60));
    assert_eq!(code, Some(0), "{r}");
    let completed = num(&r, "completed");
    report(
        "backlog overflow (paused listener)",
        &format!(
            "echo-server --pause-accept --backlog {BACKLOG}; stress-client backlog connects until the kernel stops completing"
        ),
        &[
            ("completed while nobody accepted", completed.to_string()),
            ("effective backlog", r["effective_backlog"].to_string()),
            ("stopped by", r["stopped_by"].to_string()),
            ("ListenOverflows rise (/proc/net/netstat)", r["listen_overflows"].to_string()),
            ("explanation", r["explanation"].to_string()),
        ],
    );
    assert!(
        (u64::from(BACKLOG)..=u64::from(BACKLOG) + 1).contains(&completed),
        "{completed} connections completed with a backlog of {BACKLOG}"
    );
    assert!(num(&r, "listen_overflows") > 0, "the overflow was not seen in /proc/net/netstat: {r}");
}

/// How one client of a crowded server ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Outcome {
    /// Its message came back intact.
    Served,
    /// The connect did not complete (SYNs dropped by the full queue).
    ConnectTimedOut,
    /// Refused or reset.
    Refused,
    /// Connected, but no echo arrived in time.
    NoEcho,
}

fn crowd_client(addr: SocketAddr, id: u64) -> (Outcome, Duration) {
    let started = Instant::now();
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(10)) else {
        return (Outcome::ConnectTimedOut, started.elapsed());
    };
    let data = testkit::payload(id, 4096);
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    if stream.write_all(&data).is_err() {
        return (Outcome::Refused, started.elapsed());
    }
    let mut echo = vec![0; data.len()];
    match stream.read_exact(&mut echo) {
        Ok(()) => {
            assert_eq!(echo, data, "client {id}: the echo differs from what was sent");
            (Outcome::Served, started.elapsed())
        }
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            (Outcome::NoEcho, started.elapsed())
        }
        Err(_) => (Outcome::Refused, started.elapsed()),
    }
}

#[test]
fn backlog_overflow_every_client_outcome_is_classified_and_accepted_ones_lose_nothing() {
    const CLIENTS: u64 = 48;
    let server = util::echo_server(&["--max-conns", "4", "--backlog", "4"]);
    let before = hostinfo::listen_counters();
    let addr = server.addr;
    let outcomes: Vec<(Outcome, Duration)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..CLIENTS).map(|id| s.spawn(move || crowd_client(addr, id))).collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let after = hostinfo::listen_counters();
    let overflows = match (before, after) {
        (Some(b), Some(a)) => format!("{}", a.overflows.saturating_sub(b.overflows)),
        _ => "unavailable".into(),
    };
    let mut classes = std::collections::BTreeMap::new();
    for (outcome, took) in &outcomes {
        let entry = classes.entry(*outcome).or_insert((0, Duration::ZERO));
        entry.0 += 1;
        entry.1 = entry.1.max(*took);
    }
    let served = classes.get(&Outcome::Served).map_or(0, |c| c.0);
    report(
        "backlog overflow (busy server)",
        &format!(
            "echo-server --max-conns 4 --backlog 4; {CLIENTS} clients at once, each echoing 4 KiB then leaving"
        ),
        &[
            ("outcomes", format!("{classes:?} (count, slowest)")),
            ("bytes verified", format!("{}", served * 4096)),
            ("ListenOverflows rise (/proc/net/netstat, system-wide)", overflows),
        ],
    );
    assert_eq!(outcomes.len() as u64, CLIENTS);
    assert!(served >= 8, "only {served} clients served: the accepted ones should have been");
}

#[test]
fn backlog_overflow_under_a_lowered_somaxconn_in_a_namespace() {
    if faults::skip("backlog overflow under somaxconn", faults::namespaces_unavailable()) {
        return;
    }
    const SOMAXCONN: u32 = 4;
    let ns = faults::Namespace::new("somaxconn");
    ns.sysctl("net.core.somaxconn", &SOMAXCONN.to_string());
    let server = util::echo_server_in(&ns, "127.0.0.1:0", &["--pause-accept", "--backlog", "1024"]);
    let mut command = ns.command(faults::stress_client());
    command.args(["backlog", "--target", &server.addr.to_string(), "--backlog", "1024", "--max", "100"]);
    command.args(["--connect-timeout", "300"]);
    let (code, r) = run_client(command, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{r}");
    let completed = num(&r, "completed");
    report(
        "backlog overflow (lowered somaxconn)",
        &format!(
            "namespace {} with net.core.somaxconn={SOMAXCONN}; echo-server --pause-accept --backlog 1024; stress-client backlog",
            ns.name
        ),
        &[
            ("completed", completed.to_string()),
            ("effective backlog", r["effective_backlog"].to_string()),
            ("ListenOverflows rise (namespace's own)", r["listen_overflows"].to_string()),
            ("explanation", r["explanation"].to_string()),
        ],
    );
    assert!(
        (u64::from(SOMAXCONN)..=u64::from(SOMAXCONN) + 1).contains(&completed),
        "{completed} completed: somaxconn {SOMAXCONN} should cap the backlog of 1024"
    );
    assert!(num(&r, "listen_overflows") > 0, "no overflow counted: {r}");
}

#[test]
fn ephemeral_port_exhaustion_is_counted_and_source_ips_get_past_it() {
    if faults::skip("ephemeral-port exhaustion", faults::namespaces_unavailable()) {
        return;
    }
    const PORTS: u64 = 50;
    const CONNECTIONS: u64 = 150;
    // Each run gets a fresh namespace: the ports an earlier run left in TIME_WAIT would skew the next.
    let in_namespace = |what: &str, args: Vec<String>| {
        let ns = faults::Namespace::new(what);
        ns.sysctl("net.ipv4.ip_local_port_range", &format!("40000 {}", 40000 + PORTS - 1));
        ns.sysctl("net.ipv4.tcp_tw_reuse", "0");
        let server = util::echo_server_in(&ns, "127.0.0.1:0", &[]);
        let mut command = ns.command(faults::stress_client());
        command.args(&args).args(["--target", &server.addr.to_string()]);
        run_client(command, Duration::from_secs(60)).1
    };
    let connect = |extra: &[&str]| {
        let mut args: Vec<String> = ["connect", "--hold", "0.5", "--connections"].map(String::from).to_vec();
        args.push(CONNECTIONS.to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let narrow = in_namespace("ports1", connect(&[]));
    let wide = in_namespace("ports4", connect(&["--source-ips", "127.0.0.1-127.0.0.4"]));
    let churned =
        in_namespace("churn", ["churn", "--connections", "8", "--duration", "1"].map(String::from).to_vec());
    let explained = narrow["diagnosis"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|d| d.as_str().is_some_and(|d| d.contains("EADDRNOTAVAIL")));
    report(
        "ephemeral-port exhaustion",
        &format!(
            "namespace with ip_local_port_range of {PORTS} ports and tcp_tw_reuse=0; stress-client connect --connections {CONNECTIONS}, then with --source-ips 127.0.0.1-127.0.0.4; churn for 1 s"
        ),
        &[
            (
                "one source address",
                format!(
                    "{} established, EADDRNOTAVAIL {}",
                    num(&narrow, "established"),
                    num(&narrow, "errors.EADDRNOTAVAIL")
                ),
            ),
            (
                "four source addresses",
                format!(
                    "{} established, EADDRNOTAVAIL {}",
                    num(&wide, "established"),
                    num(&wide, "errors.EADDRNOTAVAIL")
                ),
            ),
            (
                "churn, one source",
                format!(
                    "{} cycles, EADDRNOTAVAIL {}",
                    num(&churned, "established"),
                    num(&churned, "errors.EADDRNOTAVAIL")
                ),
            ),
            ("diagnosis", narrow["diagnosis"].to_string()),
        ],
    );
    assert!(num(&narrow, "established") <= PORTS, "more connections than ports: {narrow}");
    assert!(num(&narrow, "errors.EADDRNOTAVAIL") > 0, "EADDRNOTAVAIL not counted: {narrow}");
    assert!(explained, "EADDRNOTAVAIL not explained in the diagnosis: {}", narrow["diagnosis"]);
    assert_eq!(
        num(&wide, "established"),
        CONNECTIONS,
        "--source-ips did not get past the port limit: {wide}"
    );
    assert_eq!(num(&wide, "errors.EADDRNOTAVAIL"), 0);
    assert!(
        num(&churned, "errors.EADDRNOTAVAIL") > 0,
        "churn through {PORTS} ports never ran out: {churned}"
    );
}
