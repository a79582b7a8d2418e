//! Running `stress-client` (the workspace's verifying load generator) pinned to the client core, and
//! reading its JSON report.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::BenchResult;
use crate::pin::CLIENT_CORE;
use crate::servers::built_binary;

/// A `stress-client` run in progress.
#[derive(Debug)]
pub struct StressRun {
    child: Child,
    started: Instant,
}

impl StressRun {
    /// Starts `stress-client ARGS --json` pinned to the client core (the bench process is pinned there
    /// already, so children inherit it even without `taskset`).
    pub fn start(args: &[String]) -> BenchResult<StressRun> {
        StressRun::launch(args, Stdio::piped())
    }

    /// [`start`](Self::start), with the client's stderr (its progress lines, and each of its child
    /// processes') written to `log`: a run of minutes over many processes says more than a pipe holds
    /// before the report is read.
    pub fn start_logged(args: &[String], log: &std::path::Path) -> BenchResult<StressRun> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let file = std::fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        StressRun::launch(args, Stdio::from(file))
    }

    fn launch(args: &[String], stderr: Stdio) -> BenchResult<StressRun> {
        let program = built_binary("stress-client")?;
        let mut command = if crate::pin::pinning() {
            let mut c = Command::new("taskset");
            c.args(["-c", &CLIENT_CORE.to_string()]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command.args(args).arg("--json").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr);
        let child = command.spawn().map_err(|e| format!("cannot start stress-client: {e}"))?;
        Ok(StressRun { child, started: Instant::now() })
    }

    /// When the run started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Whether it has ended.
    pub fn finished(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the report, killing the client after `limit`.
    pub fn finish(mut self, limit: Duration) -> BenchResult<Value> {
        let mut stdout = self.child.stdout.take().ok_or("no stdout")?;
        // Absent when it goes to a log.
        let stderr = self.child.stderr.take();
        // Read both pipes on threads, so a chatty client never blocks on a full pipe.
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut stderr) = stderr {
                let _ = stderr.read_to_string(&mut s);
            }
            s
        });
        let deadline = Instant::now() + limit;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!("stress-client did not finish within {limit:?}"));
                }
            }
        };
        let text = out.join().unwrap_or_default();
        let errors = err.join().unwrap_or_default();
        match serde_json::from_str::<Value>(text.trim()) {
            Ok(report) => {
                if !status.success() {
                    eprintln!("note: stress-client exited with {status}: {}", last_line(&errors));
                }
                Ok(report)
            }
            Err(_) => {
                Err(format!("stress-client exited with {status} and no report: {}", last_line(&errors)))
            }
        }
    }
}

/// Runs `stress-client ARGS --json` to completion (at most `limit`) and returns its report.
pub fn run(args: &[String], limit: Duration) -> BenchResult<Value> {
    StressRun::start(args)?.finish(limit)
}

/// Turns `["echo", "--size", "64"]`-like pieces into owned arguments.
pub fn args(pieces: &[&str]) -> Vec<String> {
    pieces.iter().map(|s| s.to_string()).collect()
}

/// A number from a report, by JSON pointer (`/latency_us/p99`).
pub fn number(report: &Value, pointer: &str) -> Option<f64> {
    report.pointer(pointer).and_then(Value::as_f64)
}

fn last_line(text: &str) -> &str {
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("(nothing on stderr)")
}
