//! The two repeatable instruments, shared by the cost benches: `strace -c -f -p PID` attached to a
//! running server around a piece of load (system calls by name), and the instruction total callgrind
//! writes when a server run under `valgrind --tool=callgrind` ends.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::BenchResult;

/// Whether `tool arg` runs (e.g. `strace --version`), so that a missing tool is a note, not a failure.
pub fn tool_present(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `load` with `strace -c -f` attached to `pid` (every thread), writing strace's table to `out`;
/// returns what `load` returned and the calls by name.
pub fn strace_during<R>(
    pid: u32,
    out: &Path,
    load: impl FnOnce() -> R,
) -> BenchResult<(R, BTreeMap<String, u64>)> {
    let mut strace = Command::new("strace")
        .args(["-c", "-f", "-p", &pid.to_string(), "-o"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start strace: {e}"))?;
    // strace says "Process N attached" on stderr once it traces every thread.
    let stderr = strace.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let attached =
        rx.recv_timeout(Duration::from_secs(10)).map_err(|_| "strace did not attach within 10 s")?;
    if !attached.contains("attached") {
        let _ = strace.kill();
        return Err(format!("strace: {attached}"));
    }
    let result = load();
    let _ = kill(Pid::from_raw(strace.id() as i32), Signal::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(20);
    while matches!(strace.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = strace.kill();
    let _ = strace.wait();
    let text = std::fs::read_to_string(out).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok((result, parse_strace_summary(&text)))
}

/// Syscall name → calls, from the table `strace -c` prints. Rows are `% seconds usecs calls [errors]
/// name`; the errors column is blank when zero, so a row has five or six fields.
pub fn parse_strace_summary(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let name = *fields.last()?;
            if !(5..=6).contains(&fields.len()) || name == "total" || fields[0].parse::<f64>().is_err() {
                return None;
            }
            Some((name.to_string(), fields[3].parse().ok()?))
        })
        .collect()
}

/// The wrapper that runs a server under callgrind, writing to `out`.
pub fn callgrind_wrapper(out: &Path) -> Vec<String> {
    vec![
        "valgrind".to_string(),
        "--tool=callgrind".to_string(),
        format!("--callgrind-out-file={}", out.display()),
    ]
}

/// The instruction total in a callgrind output file (written when the process ended).
pub fn callgrind_total(out: &Path) -> BenchResult<u64> {
    let text = std::fs::read_to_string(out).map_err(|e| format!("{}: {e}", out.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
        .and_then(|n| n.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no instruction total in {}", out.display()))
}
