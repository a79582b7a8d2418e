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
