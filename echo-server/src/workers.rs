//! `--workers N`: N processes of this same binary, each with its own loops and SO_REUSEPORT listener on
//! one port, like nginx's workers. The kernel spreads connections among the listeners; each process has
//! its own descriptor limit, which is the way past the per-process cap.
//! Workers end when the supervisor does, however it ends (see `lifeline`).

use std::error::Error;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use log::{error, info, warn};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use signal_hook::consts::{SIGCHLD, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use socket2::{Domain, Protocol, Socket, Type};

use crate::cli::Cli;
use crate::served::{self, SHUTDOWN_GRACE};

/// Starts the workers, prints the listening line once they all listen, forwards SIGINT/SIGTERM, and
/// exits non-zero if any worker dies on its own.
pub fn supervise(cli: &Cli) -> Result<ExitCode, Box<dyn Error>> {
    // Signals first, so that none is missed while workers start.
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGCHLD])?;
    let addr = reserve_port(cli.addr.tcp()?)?;
    let mut workers = Vec::with_capacity(cli.workers as usize);
    let mut udp = None;
    for index in 0..cli.workers {
        match start_worker(cli, addr, index) {
            Ok((worker, udp_addr)) => {
                workers.push(worker);
                udp = udp.or(udp_addr);
            }
            Err(e) => {
                // No listening line yet, so nobody was told to connect: no flush to wait for, only the grace.
                stop_all(&mut workers, SHUTDOWN_GRACE);
                return Err(format!("cannot start worker {index}: {e}").into());
            }
        }
    }
    // The same lines, in the same order, as one process prints.
    served::print_listening(&addr)?;
    if let Some(udp) = udp {
        served::print_listening_udp(udp)?;
    }
    info!("{} worker processes on {addr}", workers.len());

    for signal in signals.forever() {
        if signal == SIGCHLD {
            for (index, worker) in workers.iter_mut().enumerate() {
                if let Ok(Some(status)) = worker.child.try_wait() {
                    // A worker that ends cleanly was told to (Ctrl-C reaches the whole process group);
                    // any other end is a failure that takes the rest down.
                    if !status.success() {
                        error!(
                            "worker {index} (pid {}) exited: {status}; stopping the others",
                            worker.child.id()
                        );
                    }
                    let clean = stop_all(&mut workers, cli.shutdown_timeout + SHUTDOWN_GRACE);
                    return Ok(if clean && status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
                }
            }
            continue;
        }
        info!("signal {signal}: stopping {} workers", workers.len());
        let clean = stop_all(&mut workers, cli.shutdown_timeout + SHUTDOWN_GRACE);
        return Ok(if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    Ok(ExitCode::FAILURE)
}

/// A worker process and the supervisor's ends of its pipes, which live as long as the worker.
#[derive(Debug)]
struct Worker {
    child: Child,
    /// Were it dropped, the pipe would close and the worker's next write to stdout would fail with EPIPE.
    _stdout: BufReader<ChildStdout>,
    /// Never written: where no parent-death signal exists, the worker notices the supervisor's death by
    /// this pipe closing (see `lifeline`).
    _stdin: Option<ChildStdin>,
}

/// Checks that no other server listens on the address, and resolves port 0 to a real port that the
/// workers then share. The socket is bound but never listens, so the kernel routes no connection to it.
fn reserve_port(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    if addr.port() != 0 {
        // Checked once here: each worker's listeners join the group and would fail a later check.
        crate::port::check_unserved(addr)?;
        return Ok(addr);
    }
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    let bound = socket.local_addr()?.as_socket().ok_or_else(|| std::io::Error::other("not an IP socket"))?;
    // Keep the reservation for the life of the process: another program cannot take the port between
    // one worker's exit and a restart.
    std::mem::forget(socket);
    Ok(bound)
}

/// Starts worker `index` and waits until it announces its listener, and its UDP socket when it serves
/// one (returned).
fn start_worker(
    cli: &Cli,
    addr: SocketAddr,
    index: u32,
) -> Result<(Worker, Option<SocketAddr>), Box<dyn Error>> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("--addr")
        .arg(addr.to_string())
        .arg("--backlog")
        .arg(cli.backlog.to_string())
        .arg("--threads")
        .arg(cli.threads.to_string())
        .arg("--shutdown-timeout")
        .arg(cli.shutdown_timeout.as_secs_f64().to_string())
        .arg("--worker-of")
        .arg(std::process::id().to_string());
    if let Some(max) = cli.max_conns {
        command.arg("--max-conns").arg(max.div_ceil(u64::from(cli.workers)).to_string());
    }
    if let Some(idle) = cli.idle_timeout {
        command.arg("--idle-timeout").arg(idle.as_secs_f64().to_string());
    }
    if let Some(stats) = cli.stats {
        command.arg("--stats").arg(stats.as_secs_f64().to_string());
    }
    if cli.udp && index == 0 {
        // One UDP socket per port: the first worker serves datagrams.
        command.arg("--udp");
    }
    if cli.pause_accept {
        command.arg("--pause-accept");
    }
    if cli.trace {
        command.arg("--trace");
    }
    command.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = command.spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout from the worker")?;
    let mut stdout = BufReader::new(stdout);
    let announced = announcement(&mut stdout, "").and_then(|tcp| {
        let udp = if cli.udp && index == 0 { Some(announcement(&mut stdout, " (udp)")?) } else { None };
        Ok((tcp, udp))
    });
    match announced {
        Ok((_, udp)) => {
            let stdin = child.stdin.take();
            Ok((Worker { child, _stdout: stdout, _stdin: stdin }, udp))
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("worker {index} did not start listening: {e}").into())
        }
    }
}

/// Reads one `listening on HOST:PORT{suffix}` line from a worker and returns the address.
fn announcement(stdout: &mut BufReader<ChildStdout>, suffix: &str) -> Result<SocketAddr, String> {
    let mut line = String::new();
    stdout.read_line(&mut line).map_err(|e| format!("cannot read its stdout: {e}"))?;
    line.trim_end()
        .strip_prefix("listening on ")
        .and_then(|rest| rest.strip_suffix(suffix))
        .and_then(|addr| addr.parse().ok())
        .ok_or_else(|| format!("expected 'listening on HOST:PORT{suffix}', it said {:?}", line.trim()))
}

/// SIGTERM to every worker still running, then wait for them; SIGKILL to any still running after `limit`. True when
/// every worker exited with status 0.
fn stop_all(workers: &mut [Worker], limit: Duration) -> bool {
    let mut children: Vec<&mut Child> = workers.iter_mut().map(|w| &mut w.child).collect();
    stop_children(&mut children, limit, |pid| {
        let _ = kill(pid, Signal::SIGTERM);
    })
}

/// [`stop_all`] with the signal left to `terminate`, which gets the pid of each child to stop.
fn stop_children(children: &mut [&mut Child], limit: Duration, mut terminate: impl FnMut(Pid)) -> bool {
    for child in children.iter_mut() {
        // Only a child not yet waited for: the pid of one already reaped (as the SIGCHLD path in
        // `supervise` does) may belong to an unrelated process by now. A child that exits after this
        // check stays a zombie, holding its pid, until we wait for it below: nothing else reaps here.
        if let Ok(None) = child.try_wait()
            && let Ok(pid) = i32::try_from(child.id())
        {
            terminate(Pid::from_raw(pid));
        }
    }
    let deadline = Instant::now() + limit;
    let mut clean = true;
    for child in children.iter_mut() {
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => break None,
            }
        };
        match status {
            Some(status) if status.success() => {}
            Some(status) => {
                warn!("worker pid {} exited: {status}", child.id());
                clean = false;
            }
            None => {
                warn!("worker pid {} did not stop in time; killing it", child.id());
                let _ = child.kill();
                let _ = child.wait();
                clean = false;
            }
        }
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When a worker dies, the supervisor reaps it (`try_wait`) and then stops the others. The reaped
    /// worker's pid is free for the kernel to give to any new process, so it must not be signalled.
    #[test]
    fn a_reaped_worker_is_never_signalled() {
        let mut reaped = Command::new("true").spawn().expect("run true");
        reaped.wait().expect("reap it");
        let mut running = Command::new("sleep").arg("30").spawn().expect("run sleep");
        let (reaped_pid, running_pid) = (reaped.id() as i32, running.id() as i32);
        let mut signalled = Vec::new();
        stop_children(&mut [&mut reaped, &mut running], Duration::from_secs(10), |pid| {
            signalled.push(pid.as_raw());
            let _ = kill(pid, Signal::SIGTERM);
        });
        assert_eq!(signalled, [running_pid], "pid {reaped_pid} was reaped before the stop");
        assert!(running.try_wait().expect("status").is_some(), "the running one was stopped");
    }
}
