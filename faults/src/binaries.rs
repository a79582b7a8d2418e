//! The `echo-server` and `stress-client` executables, found next to the test executable's profile
//! directory (`target/debug`), and built once when they are not there yet.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The profile directory the running test executable was built into (`target/debug`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // Test executables live in `target/<profile>/deps/`.
    let deps = exe.parent().expect("the test executable's directory");
    deps.parent().unwrap_or(deps).to_path_buf()
}

/// Builds both binaries once per test process when either is missing; a failed build fails the test.
fn ensure_built() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = profile_dir();
            if !dir.join("echo-server").exists() || !dir.join("stress-client").exists() {
                let status = Command::new(env!("CARGO"))
                    .args(["build", "-p", "echo-server", "-p", "stress-client"])
                    .status()
                    .expect("run cargo build");
                assert!(status.success(), "cargo build -p echo-server -p stress-client failed");
            }
            dir
        })
        .clone()
}

/// Path of the `echo-server` binary.
pub fn echo_server() -> PathBuf {
    ensure_built().join("echo-server")
}

/// Path of the `stress-client` binary.
pub fn stress_client() -> PathBuf {
    ensure_built().join("stress-client")
}
