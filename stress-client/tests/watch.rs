//! `watch`: against a listener this test makes and fills, each sample reports exactly the sockets,
//! accept queue and backlog the test set up, the test process as the listener's server, and the
//! ListenOverflows the test caused; Ctrl-C ends a watch cleanly.

#![cfg(target_os = "linux")]

mod util;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use socket2::{Domain, Socket, Type};
use util::{client, run};

/// Connections the listener accepted (held at both ends by this test).
const ACCEPTED: usize = 3;
/// The listener's backlog; the test fills its queue to backlog + 1.
const BACKLOG: usize = 4;

/// A listener on 127.0.0.1 with [`ACCEPTED`] connections accepted and its accept queue full
/// ([`BACKLOG`] + 1 waiting), every socket held by the returned values.
struct Filled {
    listener: Socket,
    addr: SocketAddr,
    _held: Vec<TcpStream>,
}

fn filled() -> Filled {
    let (listener, addr) = util::non_accepting_listener(BACKLOG as i32);
    let mut held = Vec::new();
    for _ in 0..ACCEPTED {
        held.push(TcpStream::connect(addr).unwrap());
        held.push(listener.accept().unwrap().0.into());
    }
    for _ in 0..=BACKLOG {
        held.push(TcpStream::connect(addr).unwrap());
    }
    // The handshakes' last ACKs may still be on their way through loopback.
    let full = testkit::wait_for(Duration::from_secs(10), || {
        hostinfo::tcp_states(addr.port()).is_ok_and(|s| s.accept_queue == BACKLOG as u64 + 1)
    });
    assert!(full, "the accept queue did not fill");
    Filled { listener, addr, _held: held }
}

/// Both ends of every connection are on this machine: each counts twice.
const ESTABLISHED: u64 = 2 * (ACCEPTED + BACKLOG + 1) as u64;

#[track_caller]
fn assert_sample(s: &Value, filled: &Filled) {
    assert_eq!(s["port"], filled.addr.port(), "{s}");
    assert_eq!(s["states"]["ESTABLISHED"], ESTABLISHED, "{s}");
    assert_eq!(s["states"]["LISTEN"], 1, "{s}");
    assert_eq!(s["states"]["SYN_RECV"], 0, "{s}");
    assert_eq!(s["accept_queue"], BACKLOG + 1, "{s}");
    assert_eq!(s["backlog"], BACKLOG, "{s}");
    assert_eq!(s["process"]["pids"], serde_json::json!([std::process::id()]), "{s}");
    // The listener, the accepted connections and the clients, at least.
    let held = (1 + 2 * ACCEPTED + BACKLOG + 1) as u64;
    assert!(s["process"]["fds"].as_u64().unwrap() >= held, "{s}");
    assert!(s["process"]["threads"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["process"]["rss_kib"].as_u64().unwrap() > 0, "{s}");
}

#[test]
fn each_sample_reports_the_sockets_queue_and_backlog_the_test_set_up() {
    let filled = filled();
    let out = run(&format!("watch --port {} --json --interval 0.05 --duration 0.2", filled.addr.port()));
    assert_eq!(out.code, Some(0), "{out:?}");
    let samples: Vec<Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!samples.is_empty(), "{out:?}");
    for sample in &samples {
        assert_sample(sample, &filled);
    }
    // The same through --target, and in the plain lines.
    let out = run(&format!("watch --target {} --duration 0", filled.addr));
    assert_eq!(out.code, Some(0), "{out:?}");
    let line = out.stdout.lines().next().unwrap_or_default();
    let expected =
        format!("ESTABLISHED {ESTABLISHED}  LISTEN 1 | accept queue {} / backlog {BACKLOG}", BACKLOG + 1);
    assert!(line.contains(&expected), "{line}");
}

/// A SYN to the full queue is dropped, and the watch sees ListenOverflows rise; SIGINT then ends the
/// watch with exit 0 and its picture drawn.
#[test]
fn a_dropped_syn_shows_as_a_listen_overflow_and_ctrl_c_ends_the_watch() {
    let filled = filled();
    let picture = std::env::temp_dir().join(format!("stress-client-watch-{}.svg", std::process::id()));
    let mut command = client();
    command.args(["watch", "--json", "--interval", "0.05", "--port", &filled.addr.port().to_string()]);
    command.arg("--plot").arg(&picture);
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_sample(&first, &filled);
    // One more peer than the queue holds: its SYN is dropped (a non-blocking connect does not wait).
    let extra = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    extra.set_nonblocking(true).unwrap();
    let _ = extra.connect(&filled.addr.into());
    let mut overflowed = false;
    // Bounded: a sample every 50 ms, the SYN dropped at once; 200 samples is 10 s.
    for line in lines.by_ref().take(200) {
        let sample: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if sample["listen_overflows"].as_u64().unwrap() >= 1 {
            overflowed = true;
            break;
        }
    }
    assert!(overflowed, "ListenOverflows did not rise");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let ended = testkit::wait_for(Duration::from_secs(10), || child.try_wait().unwrap().is_some());
    if !ended {
        let _ = child.kill();
    }
    assert!(ended, "the watch did not end on SIGINT");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let svg = std::fs::read_to_string(&picture).expect("the picture is drawn at Ctrl-C");
    let _ = std::fs::remove_file(&picture);
    assert!(svg.contains("ListenOverflows (rise)"));
    drop(filled.listener);
}
