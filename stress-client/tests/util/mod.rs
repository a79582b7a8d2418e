//! Test servers with deliberate faults, and a runner for the stress-client binary.

#![allow(dead_code)] // each test file uses a different part

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// What a test server does with the bytes it receives.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Echo faithfully.
    None,
    /// Flip the lowest bit of the byte at this offset of every connection's stream.
    FlipByteAt(usize),
    /// Echo this many bytes, then close the connection.
    TruncateAfter(usize),
    /// Stop for this long once, after echoing this many bytes.
    StallAfter(usize, Duration),
}

/// A thread-per-connection echo server on 127.0.0.1:0 with an optional fault; stops accepting when
/// dropped (its connection threads end at their peer's EOF).
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server with `fault`.
    pub fn start(fault: Fault) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let acceptor = thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(stream) = stream {
                    thread::spawn(move || serve(stream, fault));
                }
            }
        });
        TestServer { addr, stop, acceptor: Some(acceptor) }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the blocking accept so the acceptor sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn serve(mut stream: TcpStream, fault: Fault) {
    let _ = stream.set_nodelay(true);
    let mut buffer = vec![0; 64 * 1024];
    let mut offset = 0usize;
    let mut stalled = false;
    loop {
        let n = match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let chunk = &mut buffer[..n];
        match fault {
            Fault::None => {}
            Fault::FlipByteAt(at) => {
                if (offset..offset + n).contains(&at) {
                    chunk[at - offset] ^= 1;
                }
            }
            Fault::TruncateAfter(limit) => {
                let keep = limit.saturating_sub(offset).min(n);
                let _ = stream.write_all(&chunk[..keep]);
                if offset + n >= limit {
                    return;
                }
                offset += n;
                continue;
            }
            Fault::StallAfter(after, pause) => {
                if !stalled && offset + n >= after {
                    stalled = true;
                    thread::sleep(pause);
                }
            }
        }
        if stream.write_all(chunk).is_err() {
            return;
        }
        offset += n;
    }
}

/// What a run of the client produced.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: Option<i32>,
    /// Stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
}

impl Run {
    /// Stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// The client binary.
pub fn client() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stress-client"))
}

/// Runs `command` to its end, failing the test if it takes longer than `limit`.
#[track_caller]
pub fn run_within(mut command: Command, limit: Duration) -> Run {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("start stress-client");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("stress-client ran longer than {limit:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let Output { status, stdout, stderr } = child.wait_with_output().expect("collect output");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs the client with `args` (split on whitespace).
#[track_caller]
pub fn run(args: &str) -> Run {
    let mut command = client();
    command.args(args.split_whitespace());
    run_within(command, Duration::from_secs(30))
}

/// Runs the client under `ulimit -n limit` (soft and hard).
#[track_caller]
pub fn run_with_fd_limit(limit: u32, args: &str) -> Run {
    let mut command = Command::new("sh");
    let script = format!("ulimit -n {limit} && exec \"$0\" \"$@\"");
    command.arg("-c").arg(script).arg(env!("CARGO_BIN_EXE_stress-client")).args(args.split_whitespace());
    run_within(command, Duration::from_secs(30))
}

/// The workspace's `echo-server` (reactor mode, one loop) on 127.0.0.1:0, built first if needed;
/// killed when dropped.
#[derive(Debug)]
pub struct ReactorServer {
    /// Where it listens, from its `listening on HOST:PORT` line.
    pub addr: SocketAddr,
    child: std::process::Child,
    /// Kept open: a server that prints more lines (`--udp`) must not find its stdout closed.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl ReactorServer {
    /// Starts the server and waits for its first line.
    pub fn start() -> ReactorServer {
        ReactorServer::spawn(Command::new(echo_server()).args(["--addr", "127.0.0.1:0"]))
    }

    /// Starts the server under `ulimit -n nofile` (soft and hard), with `args` besides the address.
    pub fn start_with_fd_limit(nofile: u32, args: &str) -> ReactorServer {
        let script = format!("ulimit -n {nofile} && exec \"$0\" --addr 127.0.0.1:0 {args}");
        ReactorServer::spawn(Command::new("sh").arg("-c").arg(script).arg(echo_server()))
    }

    fn spawn(command: &mut Command) -> ReactorServer {
        let mut child = command
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start echo-server");
        let mut line = String::new();
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        std::io::BufRead::read_line(&mut stdout, &mut line).expect("first line");
        let addr = line.trim().strip_prefix("listening on ").and_then(|a| a.parse().ok());
        let addr = addr.unwrap_or_else(|| panic!("echo-server's first line is {line:?}"));
        ReactorServer { addr, child, _stdout: stdout }
    }
}

impl Drop for ReactorServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `echo-server` binary of this profile, next to the client's, built once per test process (a
/// build that has nothing to do takes a moment).
fn echo_server() -> std::path::PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    let client = std::path::Path::new(env!("CARGO_BIN_EXE_stress-client"));
    let dir = client.parent().expect("the profile directory");
    BUILT.call_once(|| {
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--quiet", "-p", "echo-server"]);
        if dir.ends_with("release") {
            build.arg("--release");
        }
        assert!(build.status().expect("run cargo build").success(), "cargo build -p echo-server failed");
    });
    dir.join("echo-server")
}

/// Checks a report's books from its JSON, independently of the client's own check: every byte sent
/// came back, was in flight at the end or was lost (and then named); one latency sample per message;
/// every connection made ended one way.
#[track_caller]
pub fn assert_books(r: &serde_json::Value, label: &str) {
    let n = |key: &str| r[key].as_u64().unwrap_or_else(|| panic!("{label}: no {key}: {r}"));
    assert_eq!(
        n("bytes_received") + n("bytes_in_flight_at_end") + n("bytes_lost"),
        n("bytes_sent"),
        "{label}: bytes do not balance: {r}"
    );
    assert_eq!(r["latency_us"]["count"].as_u64(), Some(n("messages")), "{label}: {r}");
    assert_eq!(r["connect_us"]["count"].as_u64(), Some(n("established")), "{label}: {r}");
    assert_eq!(
        n("closed_by_client") + n("closed_by_server") + n("open_at_end"),
        n("established"),
        "{label}: connections do not balance: {r}"
    );
    assert!(n("messages") * n("message_size") <= n("bytes_received"), "{label}: {r}");
    let losses = r["losses"].as_array().unwrap_or_else(|| panic!("{label}: no losses: {r}"));
    let listed: u64 = losses.iter().map(|l| l["bytes"].as_u64().unwrap()).sum();
    if n("losses_not_listed") == 0 {
        assert_eq!(listed, n("bytes_lost"), "{label}: {r}");
    }
    for loss in losses {
        assert!(loss["connection"].is_u64() && loss["offset"].is_u64(), "{label}: {loss}");
        assert!(!loss["why"].as_str().unwrap().is_empty(), "{label}: a loss without a reason: {loss}");
    }
    let books = r["warnings"].as_array().unwrap().iter().filter(|w| w.as_str().unwrap().starts_with("books"));
    assert_eq!(books.count(), 0, "{label}: {}", r["warnings"]);
}

/// A listener on 127.0.0.1 with `backlog` that never accepts: its queue fills as the kernel completes
/// handshakes. Kept open as long as the socket lives.
pub fn non_accepting_listener(backlog: i32) -> (socket2::Socket, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    socket.listen(backlog).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    (socket, addr)
}
