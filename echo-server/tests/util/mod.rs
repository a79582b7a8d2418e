//! Running the real `echo-server` binary in tests.
#![allow(dead_code)] // each test file uses its own subset

use std::process::{Command, Output};

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

/// Runs the server to completion (for invocations that must fail at once).
pub fn run(args: &[&str]) -> Output {
    command(args).output().expect("run echo-server")
}
