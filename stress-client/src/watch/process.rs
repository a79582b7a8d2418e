//! The server's descriptors, threads and memory, read from `/proc/PID` (Linux only).

use std::io;

use super::sample::ProcessSample;

/// The figures of `pids`, added up over those still running; an error once none is.
#[cfg(target_os = "linux")]
pub fn sample(pids: &[u32]) -> io::Result<ProcessSample> {
    use hostinfo::process;
    let alive: Vec<u32> = pids.iter().copied().filter(|&pid| process::threads(pid).is_some()).collect();
    if alive.is_empty() {
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("the server process ({}) is gone", pids.join(", ")),
        ));
    }
    let sum = |read: fn(u32) -> Option<u64>| alive.iter().map(|&pid| read(pid)).sum::<Option<u64>>();
    Ok(ProcessSample {
        fds: Some(alive.iter().map(|&pid| process::open_fds(pid) as u64).sum()),
        threads: sum(process::threads),
        rss_kib: sum(process::rss_kib),
        pids: alive,
        nofile_soft: None,
    })
}

/// Elsewhere another process's figures have no source here.
#[cfg(not(target_os = "linux"))]
pub fn sample(_pids: &[u32]) -> io::Result<ProcessSample> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "a process's descriptors, threads and memory (/proc/PID): not available on this OS",
    ))
}
