//! Shared pieces of the workspace's benchmarks: the servers under comparison, run as pinned child
//! processes; lean load clients that time echoed messages over connections opened beforehand; and the
//! reports written to `target/bench-report/`. What they read from `/proc` about a server comes from
//! `hostinfo::process`.
//!
//! # Why the benches are built this way
//! On a 2-core machine, client and server share the cores, and the raw messages per second of any two
//! event loops land within noise of each other. So every server runs pinned to core 0 and every client
//! to core 1, the servers are interleaved round by round, and the reports give medians and ratios next
//! to the two figures that repeat run to run: syscalls per echoed message (`strace -c`) and user-space
//! instructions per echoed message (`callgrind`).
//!
//! # Environment
//! - `BENCH_QUICK=1`: a quick pass (fewer sizes and counts, shorter runs).
//! - `BENCH_SERVERS=reactor,tokio-ct,...`: only these servers (names as in [`ServerKind::name`]).
//! - `YARDSTICK=/path/to/epoll_echo`: another C yardstick. By default the benches build the
//!   repository's, `benches/yardstick/epoll_echo.c`, into `target/yardstick/epoll_echo` with `cc -O2`
//!   (as `benches/build-yardstick.sh` does); without a C compiler it is skipped with a note.
#![forbid(unsafe_code)]

pub mod churn;
pub mod client;
pub mod fail;
pub mod pin;
pub mod report;
pub mod servers;
pub mod settings;
pub mod stress;
pub mod throughput;
pub mod trace;
pub mod udp;

pub use fail::{BenchResult, fail};
pub use servers::{Server, ServerKind};
pub use settings::Settings;

/// What every bench does first: pin this process to the client core, raise the descriptor limit (the
/// servers it starts inherit it), make sure the workspace's binaries of this profile are built, and
/// read the settings.
pub fn prepare() -> Settings {
    pin::pin_client();
    if let Err(e) = hostinfo::raise_fd_limit() {
        eprintln!("note: cannot raise the descriptor limit: {e}");
    }
    servers::ensure_built();
    let settings = Settings::from_env();
    if !pin::taskset_available() {
        eprintln!("note: taskset is not installed; servers run unpinned and figures will be noisier");
    }
    settings
}
