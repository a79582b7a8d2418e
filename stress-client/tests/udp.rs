//! `udp`: every datagram sent is accounted for, exactly, against a faithful echo, against a server
//! that drops, duplicates, reorders and corrupts on purpose, and against a receive buffer that
//! overflows; and reports of it merge.

mod util;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::Value;
use util::{ReactorServer, run};

/// A count of the report's `udp` section.
#[track_caller]
fn n(report: &Value, key: &str) -> u64 {
    report["udp"][key].as_u64().unwrap_or_else(|| panic!("no udp.{key}: {report}"))
}

/// The books every `udp` report keeps, checked from its JSON.
#[track_caller]
fn assert_udp_books(r: &Value) {
    assert_eq!(n(r, "sent"), n(r, "received") + n(r, "lost"), "{r}");
    assert!(n(r, "late") <= n(r, "lost"), "{r}");
    assert!(n(r, "reordered") <= n(r, "received"), "{r}");
    assert_eq!(r["messages"].as_u64(), Some(n(r, "received")), "{r}");
    assert_eq!(r["latency_us"]["count"].as_u64(), Some(n(r, "received")), "{r}");
    let books = r["warnings"].as_array().unwrap().iter().filter(|w| w.as_str().unwrap().starts_with("books"));
    assert_eq!(books.count(), 0, "{}", r["warnings"]);
}

/// The workspace's `echo-server`, answering datagrams on the port of its listener.
fn udp_echo_server() -> ReactorServer {
    ReactorServer::start_with_fd_limit(1024, "--udp")
}

#[test]
fn against_the_reactor_s_echo_every_datagram_comes_back() {
    let server = udp_echo_server();
    let out = run(&format!(
        "udp --target {} --sockets 3 --window 8 --duration 0.5 --loss-timeout 2 --json",
        server.addr
    ));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    assert_udp_books(&r);
    assert!(n(&r, "sent") > 0, "{r}");
    assert_eq!(n(&r, "received"), n(&r, "sent"), "{r}");
    for key in ["lost", "late", "duplicated", "reordered", "corrupted", "too_old"] {
        assert_eq!(n(&r, key), 0, "{key}: {r}");
    }
    assert_eq!(r["command"], "udp");
    assert_eq!(n(&r, "sockets"), 3);
    assert!(r["udp"]["jitter_us"].is_f64(), "{r}");
}

#[test]
fn a_run_longer_than_two_seconds_reports_progress_on_stderr() {
    let server = udp_echo_server();
    let out = run(&format!(
        "udp --target {} --sockets 2 --window 4 --duration 3.5 --warmup 0 --loss-timeout 2 --json",
        server.addr
    ));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    // Piped, the line is printed once a second from the third second on, never in the report.
    let lines: Vec<&str> = out.stderr.lines().filter(|l| l.contains("datagrams/s back")).collect();
    assert!(!lines.is_empty(), "no progress line in {:?}", out.stderr);
    for line in &lines {
        assert!(line.contains("sockets 2 "), "{line}");
        assert!(line.contains("lost 0  errors 0"), "{line}");
    }
    // What it shows was received by then: no more than the report's total.
    let last: u64 =
        lines.last().unwrap().split("received ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(last > 0 && last <= n(&r, "received"), "{last} against {r}");
}

#[test]
fn split_over_processes_and_at_a_fixed_rate_the_books_still_balance() {
    let server = udp_echo_server();
    let out = run(&format!(
        "udp --target {} --sockets 4 --processes 2 --threads 2 --rate 2000 --duration 0.5 --warmup 0.1 \
         --loss-timeout 2 --allow-loss --json",
        server.addr
    ));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    assert_udp_books(&r);
    assert_eq!(n(&r, "sockets"), 4);
    assert_eq!(r["client"]["processes"], 2);
    // A server starved of CPU may drop some (allowed here): the books above hold either way.
    assert!(n(&r, "received") > 0, "{r}");
    // 4 sockets at 500/s each for the 0.4 s measured: the schedule sends no more than that (to a
    // datagram per socket at the edges), however late the loop runs.
    assert!((1..=804).contains(&n(&r, "sent")), "{r}");
}

/// What the misbehaving server did, to compare with what the client counted.
#[derive(Debug, Default)]
struct Done {
    arrived: u64,
    dropped: u64,
    duplicated: u64,
    corrupted: u64,
    reordered: u64,
}

/// A UDP echo on 127.0.0.1 that, of the datagrams it gets (counted from 1), drops every 10th,
/// echoes the 3rd of every ten twice, flips a payload byte of the 5th, and holds the 7th back until
/// the 8th has been echoed. Runs until `stop`.
fn misbehaving_server(stop: Arc<AtomicBool>) -> (SocketAddr, Arc<Mutex<Done>>, thread::JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let addr = socket.local_addr().unwrap();
    let done = Arc::new(Mutex::new(Done::default()));
    let record = done.clone();
    let thread = thread::spawn(move || {
        let mut buffer = [0u8; 2048];
        let mut held: Option<(Vec<u8>, SocketAddr)> = None;
        while !stop.load(Ordering::Relaxed) {
            let (len, from) = match socket.recv_from(&mut buffer) {
                Ok(got) => got,
                Err(_) => {
                    // Nothing came after the held datagram: it goes back in order after all.
                    if let Some((data, to)) = held.take() {
                        socket.send_to(&data, to).unwrap();
                    }
                    continue;
                }
            };
            let mut d = record.lock().unwrap();
            d.arrived += 1;
            let data = &mut buffer[..len];
            match d.arrived % 10 {
                0 => d.dropped += 1,
                3 => {
                    socket.send_to(data, from).unwrap();
                    socket.send_to(data, from).unwrap();
                    d.duplicated += 1;
                }
                5 => {
                    data[len - 1] ^= 0x01;
                    socket.send_to(data, from).unwrap();
                    d.corrupted += 1;
                }
                7 => held = Some((data.to_vec(), from)),
                _ => {
                    socket.send_to(data, from).unwrap();
                    if let Some((late, to)) = held.take() {
                        socket.send_to(&late, to).unwrap();
                        d.reordered += 1;
                    }
                }
            }
        }
    });
    (addr, done, thread)
}

#[test]
fn drops_duplicates_reorders_and_corruptions_are_each_counted_exactly() {
    let stop = Arc::new(AtomicBool::new(false));
    let (addr, done, server) = misbehaving_server(stop.clone());
    let out = run(&format!("udp --target {addr} --rate 2000 --duration 0.5 --loss-timeout 1 --json"));
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    let d = done.lock().unwrap();
    // Loss, duplication and reordering fail the run unless allowed; corruption always does.
    assert_eq!(out.code, Some(3), "{out:?}");
    let r = out.json();
    assert_udp_books(&r);
    assert!(d.dropped >= 10 && d.reordered >= 10 && d.corrupted >= 10, "{d:?}");
    // What the kernel dropped at the server's socket (if a starved server thread let it fill) never
    // reached the server's rules, and is lost too; the echoes all reached the client.
    let kernel = &r["udp"]["kernel"];
    assert_eq!(kernel["client_socket_drops"], 0, "{r}");
    let at_server = kernel["server_socket_drops"].as_u64().unwrap();
    assert_eq!(n(&r, "sent"), d.arrived + at_server, "{d:?} {r}");
    // A datagram that only came back corrupted is lost; its copy is counted as corrupted.
    assert_eq!(n(&r, "lost"), d.dropped + d.corrupted + at_server, "{d:?} {r}");
    assert_eq!(n(&r, "duplicated"), d.duplicated, "{d:?} {r}");
    assert_eq!(n(&r, "reordered"), d.reordered, "{d:?} {r}");
    assert_eq!(n(&r, "corrupted"), d.corrupted, "{d:?} {r}");
    assert_eq!(n(&r, "late"), 0, "{r}");
    assert_eq!(
        r["verify_failures"].as_u64(),
        Some(n(&r, "lost") + d.corrupted + d.duplicated + d.reordered),
        "{r}"
    );
    let failure = r["failure"].as_str().unwrap();
    assert!(failure.contains("byte") && failure.contains("expected"), "{failure}");
    // The readable summary says it too.
    let summary = run(&format!("udp --target {addr} --rate 100 --duration 0.05 --loss-timeout 0.05"));
    assert!(summary.stdout.contains("udp against"), "{summary:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn an_overflowing_receive_buffer_is_where_the_kernel_says_the_datagrams_went() {
    use socket2::{Domain, Protocol, Socket, Type};
    // A server socket with the smallest receive buffer, not reading until the kernel has dropped
    // datagrams at it; then echoing everything.
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    socket.set_recv_buffer_size(1).unwrap();
    socket.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let addr = socket.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let server = thread::spawn(move || {
        let overflowed =
            testkit::wait_for(Duration::from_secs(10), || hostinfo::udp_drops(addr.port()).unwrap() >= 50);
        let mut buffer = [0u8; 2048];
        while !stopping.load(Ordering::Relaxed) {
            if let Ok((len, from)) = socket.recv_from(&mut buffer) {
                let _ = socket.send_to(&buffer[..len], from);
            }
        }
        overflowed
    });
    let out = run(&format!("udp --target {addr} --rate 5000 --duration 0.5 --loss-timeout 2 --json"));
    stop.store(true, Ordering::Relaxed);
    assert!(server.join().unwrap(), "the server's receive buffer never overflowed");
    assert_eq!(out.code, Some(3), "{out:?}");
    let r = out.json();
    assert_udp_books(&r);
    let kernel = &r["udp"]["kernel"];
    let at_server = kernel["server_socket_drops"].as_u64().unwrap();
    let at_client = kernel["client_socket_drops"].as_u64().unwrap();
    assert!(at_server >= 50, "{r}");
    assert_eq!(n(&r, "lost"), at_server + at_client, "{r}");
    let note =
        r["diagnosis"].as_array().unwrap().iter().find_map(|d| d.as_str().filter(|d| d.contains("lost")));
    let note = note.unwrap_or_else(|| panic!("no note on the loss: {r}"));
    assert!(note.contains(&format!("at the server's socket: {at_server}")), "{note}");
}

#[test]
fn udp_reports_merge_exactly() {
    let server = udp_echo_server();
    let dir = std::env::temp_dir().join(format!("stress-client-udp-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths = Vec::new();
    let mut reports = Vec::new();
    for (name, sockets) in [("a", 1), ("b", 2)] {
        let out = run(&format!(
            "udp --target {} --sockets {sockets} --window 4 --duration 0.3 --loss-timeout 2 --json",
            server.addr
        ));
        assert_eq!(out.code, Some(0), "{out:?}");
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, &out.stdout).unwrap();
        reports.push(out.json());
        paths.push(path.display().to_string());
    }
    let out = run(&format!("merge {} {} --json", paths[0], paths[1]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let merged = out.json();
    assert_udp_books(&merged);
    for key in
        ["sockets", "sent", "received", "lost", "duplicated", "reordered", "corrupted", "jitter_sockets"]
    {
        assert_eq!(n(&merged, key), n(&reports[0], key) + n(&reports[1], key), "{key}: {merged}");
    }
    let count = |r: &Value| r["latency_us"]["count"].as_u64().unwrap();
    assert_eq!(count(&merged), count(&reports[0]) + count(&reports[1]));
    let max = |r: &Value| r["latency_us"]["max"].as_u64().unwrap();
    assert_eq!(max(&merged), max(&reports[0]).max(max(&reports[1])));
    let sum = |r: &Value| r["udp"]["jitter_sum_us"].as_f64().unwrap();
    assert_eq!(sum(&merged), sum(&reports[0]) + sum(&reports[1]));
    // A udp report does not add up with an echo report.
    let summary = run(&format!("merge {} {}", paths[0], paths[1]));
    assert!(summary.stdout.contains("datagrams:"), "{summary:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn with_start_at_only_the_datagrams_sent_from_then_are_counted() {
    let server = udp_echo_server();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let start_at = now + 1.0;
    let out = run(&format!(
        "udp --target {} --rate 1000 --duration 0.5 --start-at {start_at:.3} --loss-timeout 2 --json",
        server.addr
    ));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    assert_udp_books(&r);
    let start = r["interval_start"].as_f64().unwrap();
    assert!(start >= start_at - 0.05, "interval_start {start} is before --start-at {start_at}");
    // About a second of warm-up was sent before it, and is in no count: only the 0.5 s at 1000/s
    // from it (a datagram more at the edges), however late the loop runs.
    assert!((1..=501).contains(&n(&r, "sent")), "{r}");
    assert_eq!(n(&r, "received"), n(&r, "sent"), "{r}");
}
