//! Running the real `echo-server` binary in tests.
#![allow(dead_code)] // each test file uses its own subset

use std::io::BufRead;
use std::process::Command;
use std::time::Duration;

use testkit::ServerProcess;

/// The binary under test.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_echo-server"));
    command.args(args).env("RUST_LOG", "warn");
    command
}

/// Starts the server on a free loopback port with extra `args`.
#[track_caller]
pub fn start(args: &[&str]) -> ServerProcess {
    let mut all = vec!["--addr", "127.0.0.1:0"];
    all.extend_from_slice(args);
    ServerProcess::start(command(&all))
}

/// Starts the server under a lowered descriptor limit (soft and hard), through the shell's `ulimit`.
#[track_caller]
pub fn start_with_fd_limit(limit: u32, args: &[&str]) -> ServerProcess {
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" --addr 127.0.0.1:0 \"$@\""))
        .arg(env!("CARGO_BIN_EXE_echo-server"))
        .args(args)
        .env("RUST_LOG", "warn");
    ServerProcess::start(shell)
}

/// The server's next line on stdout. If none arrives within `limit`, the server is killed (which ends
/// the read) and the test fails, instead of waiting forever on a server that went quiet.
#[track_caller]
pub fn next_line(server: &mut ServerProcess, limit: Duration) -> String {
    let pid = nix::unistd::Pid::from_raw(server.pid() as i32);
    let (done, watched) = std::sync::mpsc::channel::<()>();
    let line = std::thread::scope(|s| {
        s.spawn(move || {
            if watched.recv_timeout(limit) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        });
        let mut line = String::new();
        let _ = server.stdout.read_line(&mut line);
        let _ = done.send(());
        line
    });
    assert!(
        !line.is_empty(),
        "the server printed no further line (it exited, or was killed after {limit:?})"
    );
    line
}

/// Runs the server and expects it to exit within `limit`; one that is still running then is killed, so
/// the test fails on its exit status instead of hanging. Returns the exit status and stderr.
pub fn run_within(args: &[&str], limit: Duration) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let mut child = command(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start echo-server");
    // Read stderr on the side: a full pipe would stall the server, and processes the server started
    // could keep the pipe open after it exits.
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (chunks, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0; 4096];
        while let Ok(n @ 1..) = stderr.read(&mut buffer) {
            if chunks.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let exited = testkit::wait_for(limit, || child.try_wait().ok().flatten().is_some());
    if !exited {
        let _ = child.kill();
    }
    let status = child.wait().expect("wait for echo-server");
    let mut text = Vec::new();
    while let Ok(chunk) = received.recv_timeout(Duration::from_secs(2)) {
        text.extend(chunk);
    }
    (status, String::from_utf8_lossy(&text).into_owned())
}
