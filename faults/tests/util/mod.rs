//! Helpers shared by the fault suite's test targets: the binaries under test, an in-process server,
//! and the one-line reports every case prints.
#![allow(dead_code)] // each test target uses its own subset

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;

use socket2::{Domain, Socket, Type};
use std::time::{Duration, Instant};

use reactor::{
    CloseKind, CloseReason, Config, ConnId, Context, EventLoop, Handle, Handler, ListenerOptions, Next,
};
use testkit::ServerProcess;

/// Logs to the test output when RUST_LOG asks for it.
pub fn init() {
    let _ = env_logger::builder().is_test(true).try_init();
}

/// Prints what a case did and what held, in one block the reliability table is made from.
pub fn report(fault: &str, how: &str, held: &[(&str, String)]) {
    println!("FAULT {fault}");
    println!("  produced by: {how}");
    for (name, value) in held {
        println!("  {name}: {value}");
    }
}

/// The echo server command with `args`, logging warnings only.
pub fn echo_server_command(args: &[&str]) -> Command {
    let mut command = Command::new(faults::echo_server());
    command.args(args).env("RUST_LOG", "warn");
    command
}

/// Starts `echo-server --addr 127.0.0.1:0 ARGS`.
#[track_caller]
pub fn echo_server(args: &[&str]) -> ServerProcess {
    let mut all = vec!["--addr", "127.0.0.1:0"];
    all.extend_from_slice(args);
    ServerProcess::start(echo_server_command(&all))
}

/// Starts the echo server under `prlimit --nofile=LIMIT:LIMIT` (soft and hard, so the server cannot
/// raise it back).
#[track_caller]
pub fn echo_server_with_fd_limit(limit: u32, args: &[&str]) -> ServerProcess {
    let mut command = Command::new("prlimit");
    command
        .arg(format!("--nofile={limit}:{limit}"))
        .arg(faults::echo_server())
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "warn");
    ServerProcess::start(command)
}

/// Starts the echo server inside a namespace, listening on `addr` (port 0 picks one).
#[track_caller]
pub fn echo_server_in(ns: &faults::Namespace, addr: &str, args: &[&str]) -> ServerProcess {
    let mut command = ns.command(faults::echo_server());
    command.args(["--addr", addr]).args(args).env("RUST_LOG", "warn");
    ServerProcess::start(command)
}

/// Runs a prepared stress-client command with `--json` to its end (failing the test after `limit`),
/// and returns its exit code and report.
#[track_caller]
pub fn run_client(mut command: Command, limit: Duration) -> (Option<i32>, serde_json::Value) {
    command.arg("--json").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("start stress-client");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait for stress-client").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("stress-client ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("collect stress-client output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("stress-client printed no report ({e}): {stdout} / {}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code(), json)
}

/// `stress-client ARGS` (split on whitespace).
pub fn stress_client(args: &str) -> Command {
    let mut command = Command::new(faults::stress_client());
    command.args(args.split_whitespace()).env("RUST_LOG", "error");
    command
}

/// A number from a stress-client report, 0 where absent.
pub fn num(report: &serde_json::Value, path: &str) -> u64 {
    path.split('.').fold(report, |v, key| &v[key]).as_u64().unwrap_or(0)
}

/// A float from a stress-client report, 0 where absent.
pub fn float(report: &serde_json::Value, path: &str) -> f64 {
    path.split('.').fold(report, |v, key| &v[key]).as_f64().unwrap_or(0.0)
}

/// Resident and peak resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    (testkit::proc_status(pid, "VmRSS"), testkit::proc_status(pid, "VmHWM"))
}

/// An event loop serving on its own thread in this process.
pub struct Server<H: Handler> {
    pub addr: SocketAddr,
    pub handle: Handle<H::Message>,
    pub stats: std::sync::Arc<reactor::Stats>,
    thread: JoinHandle<io::Result<H>>,
}

impl<H: Handler + Send + 'static> Server<H> {
    /// Starts a loop with one loopback listener.
    #[track_caller]
    pub fn start(config: Config, handler: H) -> Server<H> {
        Self::start_with(config, handler, ListenerOptions::new("127.0.0.1:0".parse().unwrap()))
    }

    /// Starts a loop with a listener made from `listener`.
    #[track_caller]
    pub fn start_with(config: Config, handler: H, listener: ListenerOptions) -> Server<H> {
        init();
        let config = Config { raise_fd_limit: false, ..config };
        let mut event_loop = EventLoop::new(config, handler).expect("create the loop");
        let (_, addr) = event_loop.listen(&listener).expect("listen");
        let handle = event_loop.handle();
        let stats = event_loop.stats();
        let thread = std::thread::spawn(move || event_loop.run().map(|()| event_loop.into_handler()));
        Server { addr, handle, stats, thread }
    }

    /// Shuts the loop down gracefully and returns its handler.
    #[track_caller]
    pub fn finish(self) -> H {
        self.handle.shutdown(Duration::from_secs(5)).expect("wake the loop");
        self.thread.join().expect("the loop thread panicked").expect("the loop failed")
    }
}

/// Echoes everything; remembers how connections ended and the most output ever queued on one.
#[derive(Debug, Default)]
pub struct Echo {
    pub closed: Vec<CloseKind>,
    pub max_queued: usize,
}

impl Handler for Echo {
    type Message = ();

    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        if ctx.send(conn, data).is_err() {
            return Next::Close;
        }
        self.max_queued = self.max_queued.max(ctx.queued(conn).unwrap_or(0));
        Next::Continue
    }

    fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, reason: &CloseReason) {
        self.closed.push(reason.kind());
    }
}

/// Counts of close kinds, for reports.
pub fn close_kinds(closed: &[CloseKind]) -> String {
    CloseKind::ALL
        .iter()
        .filter_map(|k| {
            let n = closed.iter().filter(|c| *c == k).count();
            (n > 0).then(|| format!("{}={n}", k.name()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One connect / echo / close cycle ending in the way `kind` says; checks every echoed byte.
pub fn churn_cycle(server: SocketAddr, source: [u8; 4], cycle: u64) -> io::Result<()> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((source, 0)).into())?;
    socket.connect(&server.into())?;
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let data = testkit::payload(cycle, 64 + (cycle as usize * 37) % 2000);
    stream.write_all(&data)?;
    let read_echo = |stream: &mut TcpStream| -> io::Result<()> {
        let mut echo = vec![0; data.len()];
        stream.read_exact(&mut echo)?;
        assert!(echo == data, "cycle {cycle}: misrouted or corrupted bytes in the echo");
        Ok(())
    };
    match cycle % 4 {
        0 => read_echo(&mut stream),
        1 => {
            read_echo(&mut stream)?;
            socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))
        }
        2 => {
            stream.shutdown(Shutdown::Write)?;
            read_echo(&mut stream)?;
            let mut rest = [0; 1];
            assert_eq!(stream.read(&mut rest)?, 0, "cycle {cycle}: bytes after the echo");
            Ok(())
        }
        _ => Ok(()), // leave without reading the echo
    }
}
