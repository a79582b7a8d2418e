//! Core pinning: the server on core 0, the load on core 1, so neither steals the other's core.

/// The core every server runs on (`taskset -c 0`).
pub const SERVER_CORE: usize = 0;
/// The core every load generator runs on (this bench process, and `taskset -c 1` for child clients).
pub const CLIENT_CORE: usize = 1;

/// Pins the calling thread, and so every thread and process it starts afterwards, to [`CLIENT_CORE`].
/// Call it first in `main`. Prints a note and carries on unpinned when the machine has one core or the
/// kernel refuses.
pub fn pin_client() {
    let mut set = nix::sched::CpuSet::new();
    let pinned = set
        .set(CLIENT_CORE)
        .and_then(|()| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set));
    if let Err(e) = pinned {
        eprintln!("note: cannot pin the load generator to core {CLIENT_CORE} ({e}); figures will be noisier");
    }
}

/// Set by [`leave_unpinned`]: servers and clients started from now on run on any core.
static UNPINNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Servers and clients started from now on are not pinned: for a run whose both sides need both cores
/// (the connection ladder spends them in the kernel's connect and accept paths; one core each starves
/// both when the machine is busy).
pub fn leave_unpinned() {
    UNPINNED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether servers and clients are pinned: `taskset` is installed and [`leave_unpinned`] was not called.
pub fn pinning() -> bool {
    !UNPINNED.load(std::sync::atomic::Ordering::Relaxed) && taskset_available()
}

/// Whether `taskset` is installed, so that servers can be pinned.
pub fn taskset_available() -> bool {
    std::process::Command::new("taskset")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
