//! Runs a tested document's blocks: foreground commands to completion within a time limit, background
//! jobs until the block ends, every promised line looked for in what they printed.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::{Action, Block, Step, bind_request, matches, substitute};

/// How long one foreground command may run.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);
/// How long to wait for a background job's promised line, its listening line, or its exit.
const BACKGROUND_LIMIT: Duration = Duration::from_secs(20);

/// Where commands run: `bin` first on PATH, so that the document names our binaries as a reader who
/// installed them would.
#[derive(Debug)]
pub struct Runner {
    pub bin: PathBuf,
}

/// A background job: its process group, and the lines it has printed so far.
struct Job {
    child: Child,
    lines: Vec<String>,
    /// Lines before this one are matched already.
    seen: usize,
}

/// One block's run: its jobs, and one channel on which all of them report their lines.
struct Session<'a> {
    runner: &'a Runner,
    jobs: Vec<Job>,
    sender: Sender<(usize, String)>,
    receiver: Receiver<(usize, String)>,
}

impl Runner {
    /// Runs every block; the first broken promise ends the run with a message that says where.
    pub fn run(&self, blocks: &[Block]) -> Result<(), String> {
        // Ports map across blocks: a later block may talk to a port named earlier only after starting
        // its own server on it, and the mapping follows the latest start.
        let mut ports = Vec::new();
        for block in blocks {
            let (sender, receiver) = mpsc::channel();
            let mut session = Session { runner: self, jobs: Vec::new(), sender, receiver };
            let result = block.steps.iter().try_for_each(|step| session.step(step, &mut ports));
            session.end();
            result.map_err(|e| format!("block at line {}: {e}", block.line))?;
        }
        Ok(())
    }

    fn shell(&self, command: &str) -> Command {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![self.bin.clone()];
        paths.extend(std::env::split_paths(&path));
        let mut shell = Command::new("sh");
        // One stream, as on a terminal; a process group of its own, so that stopping it stops what
        // it started.
        shell
            .arg("-c")
            .arg(format!("exec 2>&1; {command}"))
            .env("PATH", std::env::join_paths(paths).expect("a PATH"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0);
        shell
    }
}

impl Session<'_> {
    fn step(&mut self, step: &Step, ports: &mut Vec<(u16, u16)>) -> Result<(), String> {
        let at = |e: String| format!("line {}: {e}", step.line);
        let output = match &step.action {
            Action::Run { command, exit } => self.run(&substitute(command, ports), *exit).map_err(at)?,
            Action::Background { command } => {
                self.start(command, ports).map_err(at)?;
                Vec::new()
            }
            Action::Kill { jobs } => {
                jobs.iter().try_for_each(|job| self.kill(*job)).map_err(at)?;
                Vec::new()
            }
        };
        let mut seen = 0;
        for pattern in &step.expect {
            let pattern = substitute(pattern, ports);
            match output[seen..].iter().position(|line| matches(&pattern, line)) {
                Some(i) => seen += i + 1,
                None => self.await_line(&pattern).map_err(|e| {
                    at(format!(
                        "{e}\ncommand output:\n{}\nbackground output:\n{}",
                        output.join("\n"),
                        self.shown()
                    ))
                })?,
            }
        }
        Ok(())
    }

    /// Runs a command to its end and checks its exit status; returns what it printed.
    fn run(&mut self, command: &str, exit: i32) -> Result<Vec<String>, String> {
        let mut child = self.runner.shell(command).spawn().map_err(|e| format!("cannot run sh: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let reader =
            std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect());
        let deadline = Instant::now() + COMMAND_LIMIT;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if Instant::now() > deadline {
                stop_group(&mut child, Signal::SIGKILL);
                return Err(format!("`{command}` ran longer than {COMMAND_LIMIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let output: Vec<String> = reader.join().expect("the output reader");
        if status.code() != Some(exit) {
            return Err(format!(
                "`{command}` exited with {status}, not {exit}; it printed:\n{}",
                output.join("\n")
            ));
        }
        Ok(output)
    }

    /// Starts a background job; if it binds a port, waits for its `listening on` line and maps the
    /// document's port to the one it got.
    fn start(&mut self, command: &str, ports: &mut Vec<(u16, u16)>) -> Result<(), String> {
        let bind = bind_request(command);
        let text = bind.as_ref().map_or(command, |(_, rewritten)| rewritten);
        // `exec`, so that the job is the server itself and waiting for it waits for the server; a
        // subshell, `( ... && exec server )`, does its own.
        let text = substitute(text, ports);
        let text = if text.starts_with('(') { text } else { format!("exec {text}") };
        let mut child = self.runner.shell(&text).spawn().map_err(|e| format!("cannot run sh: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (index, sender) = (self.jobs.len(), self.sender.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send((index, line)).is_err() {
                    break;
                }
            }
        });
        self.jobs.push(Job { child, lines: Vec::new(), seen: 0 });
        let Some((doc_port, _)) = bind else { return Ok(()) };
        let deadline = Instant::now() + BACKGROUND_LIMIT;
        loop {
            let job = &self.jobs[index];
            let port = job.lines.iter().find_map(|line| {
                let addr = line.strip_prefix("listening on ")?.split_whitespace().next()?;
                addr.parse::<std::net::SocketAddr>().ok().map(|a| a.port())
            });
            if let Some(port) = port {
                ports.retain(|(doc, _)| *doc != doc_port);
                ports.push((doc_port, port));
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.receive(left) {
                return Err(format!("`{text}` printed no `listening on` line:\n{}", self.shown()));
            }
        }
    }

    /// Takes one line from the background jobs, waiting up to `limit`; false if none came.
    fn receive(&mut self, limit: Duration) -> bool {
        match self.receiver.recv_timeout(limit) {
            Ok((index, line)) => {
                self.jobs[index].lines.push(line);
                true
            }
            Err(_) => false,
        }
    }

    /// Waits for a background job to print a line that shows `pattern`, after the lines already
    /// matched in that job.
    fn await_line(&mut self, pattern: &str) -> Result<(), String> {
        if self.jobs.is_empty() {
            return Err(format!("no line shows `{pattern}`"));
        }
        let deadline = Instant::now() + BACKGROUND_LIMIT;
        loop {
            for job in &mut self.jobs {
                if let Some(i) = job.lines[job.seen..].iter().position(|line| matches(pattern, line)) {
                    job.seen += i + 1;
                    return Ok(());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.receive(left) {
                return Err(format!("no line shows `{pattern}`"));
            }
        }
    }

    /// Stops background job `number` (from 1) with SIGTERM and waits for it to exit.
    fn kill(&mut self, number: usize) -> Result<(), String> {
        let job = self.jobs.get_mut(number - 1).ok_or_else(|| format!("there is no job %{number}"))?;
        stop_group(&mut job.child, Signal::SIGTERM);
        let deadline = Instant::now() + BACKGROUND_LIMIT;
        while job.child.try_wait().map_err(|e| e.to_string())?.is_none() {
            if Instant::now() > deadline {
                stop_group(&mut job.child, Signal::SIGKILL);
                return Err(format!("job %{number} did not exit within {BACKGROUND_LIMIT:?} of SIGTERM"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Every background line so far, for a failure's message.
    fn shown(&mut self) -> String {
        while self.receive(Duration::ZERO) {}
        let mut text = String::new();
        for (index, job) in self.jobs.iter().enumerate() {
            for line in &job.lines {
                text.push_str(&format!("%{} {line}\n", index + 1));
            }
        }
        text
    }

    /// The block is over: whatever still runs is stopped.
    fn end(&mut self) {
        for job in &mut self.jobs {
            if job.child.try_wait().ok().flatten().is_none() {
                stop_group(&mut job.child, Signal::SIGKILL);
            }
            let _ = job.child.wait();
        }
    }
}

/// Signals the process group a command leads (it was started as one of its own).
fn stop_group(child: &mut Child, signal: Signal) {
    let _ = killpg(Pid::from_raw(child.id() as i32), signal);
}
