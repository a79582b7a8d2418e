//! Helpers shared by the reactor's integration tests: the in-process harness from `testkit`'s `server`
//! feature, and the example binaries run as processes.
#![allow(dead_code, unused_imports)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

pub use testkit::server::{Echo, Server, any_local_address, init};

/// The executable of the example `name`. All examples are built once per test process, in the profile
/// and target directory this test was built in, so that the executable is never older than its source
/// (`cargo test --test NAME` builds no example by itself).
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let examples = BUILT.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test executable's path");
        // Test executables live in `<target>/<profile>/deps/`.
        let profile = exe.parent().and_then(Path::parent).expect("the profile directory");
        let target = profile.parent().expect("the target directory");
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--quiet", "-p", "reactor", "--examples", "--target-dir"]).arg(target);
        match profile.file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                cargo.arg("--release");
            }
            Some(other) => {
                cargo.args(["--profile", other]);
            }
            None => panic!("no profile in {}", exe.display()),
        }
        let status = cargo.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p reactor --examples failed: {status}");
        profile.join("examples")
    });
    examples.join(name)
}

/// Starts the example `name` listening on a free loopback port, with `args` after `--addr`; waits for
/// its `listening on` line.
#[track_caller]
pub fn start_example(name: &str, args: &[&str]) -> testkit::ServerProcess {
    start_example_with(name, "--addr", args)
}

/// [`start_example`] with the listening address given by `flag`: `--addr`, or `--listen`, the name the
/// examples used before, which they still accept.
#[track_caller]
pub fn start_example_with(name: &str, flag: &str, args: &[&str]) -> testkit::ServerProcess {
    let mut command = Command::new(example(name));
    command.args([flag, "127.0.0.1:0"]).args(args).env("RUST_LOG", "warn");
    testkit::ServerProcess::start(command)
}

/// Sends SIGTERM to a started example and waits (boundedly) for it to exit 0. Each of `peers` must
/// read EOF: the shutdown closed it cleanly, flushing first, not with a reset.
#[track_caller]
pub fn sigterm_ends_cleanly(mut server: testkit::ServerProcess, peers: Vec<std::net::TcpStream>) {
    use std::io::Read;
    server.signal(nix::sys::signal::Signal::SIGTERM);
    for (i, mut peer) in peers.into_iter().enumerate() {
        peer.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut rest = Vec::new();
        match peer.read_to_end(&mut rest) {
            Ok(_) => {
                assert!(rest.is_empty(), "peer {i} got {:?} after SIGTERM", String::from_utf8_lossy(&rest))
            }
            Err(e) => panic!("peer {i}: {e} instead of EOF after SIGTERM"),
        }
    }
    let status = server.wait_exit(Duration::from_secs(20)).expect("the example exits after SIGTERM");
    assert!(status.success(), "exit status {status} after SIGTERM");
}
