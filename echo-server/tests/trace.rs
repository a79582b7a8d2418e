//! `--trace`: the lifecycle lines a scripted connection produces, read from the server's stderr.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Stdio;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use testkit::ServerProcess;

const WAIT: Duration = Duration::from_secs(20);

/// A server started with `args` whose stderr lines arrive on a channel as they are written.
struct Traced {
    server: ServerProcess,
    lines: Receiver<String>,
    /// Lifecycle lines seen so far, in order.
    seen: Vec<String>,
}

impl Traced {
    fn start(args: &[&str]) -> Traced {
        let mut all = vec!["--addr", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut command = util::command(&all);
        command.stderr(Stdio::piped());
        let mut server = ServerProcess::start(command);
        let stderr = server.child.stderr.take().expect("piped stderr");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Traced { server, lines, seen: Vec::new() }
    }

    /// Waits for the next lifecycle line that contains every one of `parts`, and returns it; lifecycle
    /// lines before it are kept in `seen` too.
    #[track_caller]
    fn wait_for(&mut self, parts: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                panic!("no lifecycle line with {parts:?} within {WAIT:?}; seen:\n{}", self.seen.join("\n"));
            };
            if !line.contains(" reactor::lifecycle] ") {
                continue;
            }
            self.seen.push(line.clone());
            if parts.iter().all(|p| line.contains(p)) {
                return line;
            }
        }
    }
}

/// What a connection's lines begin with: `conn ID fd N LOCAL <- PEER: `.
fn prefix(line: &str) -> &str {
    let start = line.find("] ").map_or(0, |i| i + 2);
    let end = line[start..].find(": ").map_or(line.len(), |i| start + i + 2);
    &line[start..end]
}

/// The step a lifecycle line reports, after its prefix.
fn step_of(line: &str) -> &str {
    let prefix = prefix(line);
    &line[line.find(prefix).expect("the prefix") + prefix.len()..]
}

/// The descriptor number a lifecycle line names.
fn fd_of(line: &str) -> u32 {
    let after = line.split(" fd ").nth(1).expect("a descriptor");
    after.split(' ').next().and_then(|n| n.parse().ok()).expect("a descriptor number")
}

/// The inode of the TCP socket between local port `ours` and remote port `theirs`, as the kernel's
/// socket table lists it.
fn socket_inode(ours: u16, theirs: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|row| {
        let fields: Vec<&str> = row.split_whitespace().collect();
        let port = |field: &str| u16::from_str_radix(field.rsplit(':').next()?, 16).ok();
        (port(fields.get(1)?) == Some(ours) && port(fields.get(2)?) == Some(theirs))
            .then(|| fields.get(9).map(|s| s.to_string()))
            .flatten()
    })
}

#[test]
fn a_scripted_connection_is_traced_step_by_step() {
    let mut traced = Traced::start(&["--trace"]);
    let server = traced.server.addr;
    let mut peer = TcpStream::connect(server).unwrap();
    let client = peer.local_addr().unwrap();
    let tuple = format!("{server} <- {client}");
    let accepted = traced.wait_for(&[&tuple, "accepted from the accept queue"]);

    // The descriptor the line names is this connection's socket in the server process.
    let fd = fd_of(&accepted);
    let link = std::fs::read_link(format!("/proc/{}/fd/{fd}", traced.server.pid())).unwrap();
    let inode = socket_inode(server.port(), client.port()).expect("the connection in /proc/net/tcp");
    assert_eq!(link.to_string_lossy(), format!("socket:[{inode}]"), "{accepted}");

    peer.write_all(b"hello").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    let mut echoed = Vec::new();
    peer.read_to_end(&mut echoed).unwrap();
    assert_eq!(echoed, b"hello");
    drop(peer);
    traced.wait_for(&[&tuple, "closed: peer_closed"]);

    let steps: Vec<&str> = traced.seen.iter().filter(|l| l.contains(&tuple)).map(|l| step_of(l)).collect();
    assert_eq!(
        steps,
        [
            "accepted from the accept queue (ESTABLISHED)",
            "first byte (5 B)",
            "peer EOF: its FIN arrived, our side is CLOSE_WAIT",
            "our FIN sent (shutdown write), our side is LAST_ACK",
            "closed: peer_closed",
        ],
        "{}",
        traced.seen.join("\n")
    );
    let prefixes: Vec<&str> = traced.seen.iter().filter(|l| l.contains(&tuple)).map(|l| prefix(l)).collect();
    assert!(prefixes.iter().all(|p| *p == prefixes[0] && p.contains(&format!(" fd {fd} "))), "{prefixes:?}");
}

#[test]
fn back_pressure_pauses_and_resumes_reading() {
    let mut traced = Traced::start(&["--trace"]);
    let addr = traced.server.addr;
    let (found, seen) = std::sync::mpsc::channel();
    let result = testkit::flood_then_drain(addr, 64 << 20, |_| {
        let _ = found.send(traced.wait_for(&["paused reading: back-pressure"]));
    });
    result.unwrap();
    let paused = seen.recv().unwrap();
    let resumed = traced.wait_for(&["resumed reading"]);
    assert_eq!(prefix(&paused), prefix(&resumed), "the same connection");
}

#[test]
fn an_idle_connection_is_traced_to_its_timeout() {
    let mut traced = Traced::start(&["--trace", "--idle-timeout", "0.2"]);
    let peer = TcpStream::connect(traced.server.addr).unwrap();
    let tuple = format!("{} <- {}", traced.server.addr, peer.local_addr().unwrap());
    traced.wait_for(&[&tuple, "accepted"]);
    traced.wait_for(&[&tuple, "idle timeout: no byte moved for"]);
    traced.wait_for(&[&tuple, "closed: idle_timeout"]);
}

#[test]
fn a_listener_at_max_conns_is_traced_pausing_and_resuming() {
    let mut traced = Traced::start(&["--trace", "--max-conns", "1"]);
    let addr: SocketAddr = traced.server.addr;
    let first = TcpStream::connect(addr).unwrap();
    traced.wait_for(&["accepted"]);
    let second = TcpStream::connect(addr).unwrap();
    let paused = traced.wait_for(&[&format!("{addr}: accept paused: at max_connections (1)")]);
    assert!(prefix(&paused).starts_with("listener ") && paused.contains(" fd "), "{paused}");
    drop(first);
    traced.wait_for(&[&format!("{addr}: accept resumed: a connection closed")]);
    traced.wait_for(&[&format!("{addr} <- {}", second.local_addr().unwrap()), "accepted"]);
}

/// Off by default: RUST_LOG=debug shows each connection's debug lines, and still no lifecycle line.
#[test]
fn without_trace_there_are_no_lifecycle_lines() {
    let mut command = util::command(&["--addr", "127.0.0.1:0", "--idle-timeout", "0.1"]);
    command.env("RUST_LOG", "debug").stderr(Stdio::piped());
    let mut server = ServerProcess::start(command);
    let stderr = server.child.stderr.take().unwrap();
    let mut peer = TcpStream::connect(server.addr).unwrap();
    peer.write_all(b"x").unwrap();
    // The idle timeout closes it: the server has been through accept, first byte and close.
    let mut rest = Vec::new();
    let _ = peer.read_to_end(&mut rest);
    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(server.wait_exit(WAIT).is_some_and(|s| s.success()));
    let mut text = String::new();
    BufReader::new(stderr).read_to_string(&mut text).unwrap();
    assert!(text.contains("accepted from"), "RUST_LOG=debug shows each connection: {text}");
    assert!(!text.contains("reactor::lifecycle"), "{text}");
}

/// The blocking model has no loop to trace: asking for both is bad usage.
#[test]
fn trace_with_the_blocking_model_is_refused() {
    let (status, stderr) = util::run_within(&["--mode", "blocking", "--trace"], WAIT);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("'--trace' cannot be used with '--mode blocking'"), "{stderr}");
}
