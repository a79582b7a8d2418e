//! The `echo-server` and `stress-client` executables the suite runs, built by `cargo build` once per
//! test process before their first use.
//!
//! `cargo test -p faults` compiles this suite but not those binaries (they are not its dependencies),
//! so a binary found on disk may predate the sources: testing it would test old code. Cargo knows when
//! a binary is stale and does nothing when it is fresh, so the suite always asks it, for the target
//! directory and profile its own executable was built into, and runs what that build leaves there.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The packages whose binaries the suite runs.
const PACKAGES: [&str; 2] = ["echo-server", "stress-client"];

/// Where a build must go so that its binaries land next to the running test executable.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Build {
    /// The cargo target directory (`CARGO_TARGET_DIR`, `--target-dir`, or the workspace's `target`).
    target_dir: PathBuf,
    /// The profile directory inside it, where the binaries land (`target/debug`).
    bin_dir: PathBuf,
    /// The cargo profile that builds into `bin_dir` (`dev` for `debug`).
    profile: String,
}

impl Build {
    /// The build for a test executable at `exe`, which cargo puts in `<target>/<profile dir>/deps/`.
    fn for_test_executable(exe: &Path) -> Build {
        let deps = exe.parent().expect("the test executable's directory");
        let bin_dir = deps.parent().unwrap_or(deps).to_path_buf();
        let target_dir = bin_dir.parent().unwrap_or(&bin_dir).to_path_buf();
        let dir_name = bin_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // `dev` and `test` build into `debug`, `release` and `bench` into `release`, a custom profile
        // into a directory of its own name.
        let profile = match dir_name.as_str() {
            "debug" => "dev".to_owned(),
            _ => dir_name,
        };
        Build { target_dir, bin_dir, profile }
    }

    /// The arguments of the `cargo` invocation that builds both binaries into `bin_dir`.
    fn cargo_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["build".into(), "--quiet".into()];
        args.extend(["--profile".into(), self.profile.clone().into()]);
        args.extend(["--target-dir".into(), self.target_dir.clone().into_os_string()]);
        for package in PACKAGES {
            args.extend(["-p".into(), package.into()]);
        }
        args
    }

    /// Brings both binaries up to date: `cargo build` rebuilds what is stale and does nothing when they
    /// are fresh. A failed build fails the test that needed them, with cargo's errors above it.
    fn ensure_fresh(&self) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let status = Command::new(&cargo)
            .args(self.cargo_args())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", Path::new(&cargo).display()));
        assert!(status.success(), "`cargo {}` failed ({status})", self.describe());
    }

    fn describe(&self) -> String {
        self.cargo_args().iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
    }
}

/// Builds both binaries once per test process and returns the directory they are in.
fn built() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let build = Build::for_test_executable(&std::env::current_exe().expect("the test executable"));
            build.ensure_fresh();
            build.bin_dir
        })
        .clone()
}

/// Path of the `echo-server` binary, as fresh as its sources.
pub fn echo_server() -> PathBuf {
    built().join("echo-server")
}

/// Path of the `stress-client` binary, as fresh as its sources.
pub fn stress_client() -> PathBuf {
    built().join("stress-client")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn builds_for_the_test_executables_target_dir_and_profile() {
        let cases = [
            ("/w/target/debug/deps/peers-1a2b", "/w/target", "dev"),
            ("/w/target/release/deps/peers-1a2b", "/w/target", "release"),
            ("/elsewhere/t/profiling/deps/peers-1a2b", "/elsewhere/t", "profiling"),
        ];
        for (exe, target_dir, profile) in cases {
            let build = Build::for_test_executable(Path::new(exe));
            assert_eq!(build.target_dir, Path::new(target_dir), "{exe}");
            assert_eq!(build.bin_dir, Path::new(exe).parent().unwrap().parent().unwrap(), "{exe}");
            assert_eq!(build.profile, profile, "{exe}");
        }
        let build = Build::for_test_executable(Path::new("/w/target/debug/deps/peers-1a2b"));
        assert_eq!(
            build.describe(),
            "build --quiet --profile dev --target-dir /w/target -p echo-server -p stress-client"
        );
    }

    fn modified(path: &Path) -> SystemTime {
        std::fs::metadata(path).and_then(|m| m.modified()).unwrap()
    }

    /// Makes the binary older than every source it is built from, the way it looks after the sources
    /// changed, then asks for it: the suite must run a rebuilt binary, not the stale one. Cargo then
    /// leaves a fresh binary as it is.
    #[test]
    fn a_stale_binary_is_rebuilt_before_use() {
        let server = echo_server();
        let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        std::fs::File::options().write(true).open(&server).unwrap().set_modified(long_ago).unwrap();
        let build = Build::for_test_executable(&std::env::current_exe().unwrap());
        build.ensure_fresh();
        let rebuilt = modified(&build.bin_dir.join("echo-server"));
        assert!(rebuilt > long_ago, "echo-server was not rebuilt: still dated {rebuilt:?}");
        build.ensure_fresh();
        assert_eq!(modified(&build.bin_dir.join("echo-server")), rebuilt, "a fresh binary was rebuilt");
    }
}
