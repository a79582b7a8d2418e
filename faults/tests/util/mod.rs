//! Helpers shared by the fault suite's test targets: the binaries under test, the one-line reports
//! every case prints, and (from `testkit`'s `server` feature) the in-process server.
#![allow(dead_code, unused_imports)] // each test target uses its own subset

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};

use socket2::{Domain, Socket, Type};
use std::time::{Duration, Instant};

use reactor::CloseKind;
use testkit::ServerProcess;
pub use testkit::server::{Echo, Server, init};

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
