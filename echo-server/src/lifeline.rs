//! A worker's tie to its supervisor: when the supervisor dies, even by SIGKILL with no chance to stop
//! anyone, its workers end too instead of serving the port on their own. The platform-specific part of
//! `--workers` lives here and nowhere else.
//!
//! The worker is sent SIGTERM, so it takes the same graceful path as on Ctrl-C: its listeners close at
//! once and its connections get `--shutdown-timeout` to flush.

use std::io;

/// Arranges for this process to receive SIGTERM when `supervisor`, its parent, dies; fails if the
/// supervisor is already gone.
#[cfg(target_os = "linux")]
pub fn follow(supervisor: u32) -> io::Result<()> {
    use nix::sys::signal::Signal;
    // The kernel sends the signal when the thread that forked us exits; the supervisor spawns its workers
    // from its main thread, which lives as long as the supervisor does.
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
    // A supervisor that died before the line above cannot trigger the signal any more: we have already
    // been adopted by another process, so our parent is no longer the pid we were given.
    check_parent(supervisor)
}

/// Arranges for this process to receive SIGTERM when `supervisor`, its parent, dies; fails if the
/// supervisor is already gone.
///
/// Without a parent-death signal, a thread waits on stdin: the supervisor holds the other end of that
/// pipe, and the kernel closes it when the supervisor dies, however it dies.
#[cfg(not(target_os = "linux"))]
pub fn follow(supervisor: u32) -> io::Result<()> {
    use std::io::Read;
    check_parent(supervisor)?;
    std::thread::Builder::new().name("lifeline".into()).spawn(|| {
        let mut sink = [0; 64];
        loop {
            match io::stdin().lock().read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        log::warn!("the supervisor is gone; shutting down");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM);
    })?;
    Ok(())
}

fn check_parent(supervisor: u32) -> io::Result<()> {
    let parent = nix::unistd::getppid().as_raw();
    if u32::try_from(parent).ok() != Some(supervisor) {
        return Err(io::Error::other(format!(
            "started by supervisor {supervisor}, which is gone (parent is now {parent}); not serving alone"
        )));
    }
    Ok(())
}
