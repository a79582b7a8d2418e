//! Blocking mode: the model the reactor replaces. `accept` blocks until a peer arrives; each peer gets a
//! thread that blocks in `read` until bytes arrive and in `write` until the peer takes them. Simple to
//! read; every idle peer costs a thread.

use std::error::Error;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

use log::{debug, info, warn};
use socket2::{Domain, Protocol, Socket, Type};

use crate::cli::Cli;
use crate::served::{self, Event};

/// Stack for each connection's thread: the echo loop needs its 16 KiB buffer and little else, and a
/// smaller stack lets one process hold more threads before the address space or memory runs out.
const STACK: usize = 128 * 1024;
const BUFFER: usize = 16 * 1024;

/// Counts live connection threads, and lets the accept loop wait below `--max-conns`.
#[derive(Default)]
struct Slots {
    active: Mutex<usize>,
    freed: Condvar,
}

/// Serves until SIGINT/SIGTERM, then exits at once: blocked threads cannot be interrupted, so the
/// kernel closes their sockets as the process ends.
pub fn serve(cli: &Cli) -> Result<ExitCode, Box<dyn Error>> {
    // Signal handlers before the listening line, as in the reactor mode.
    let (events, waiting) = mpsc::channel();
    crate::signals::forward_to(events.clone())?;
    let addr = cli.addr.tcp()?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into()).map_err(|e| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))?;
    socket.listen(i32::try_from(cli.backlog).unwrap_or(i32::MAX))?;
    let listener: TcpListener = socket.into();
    let addr = listener.local_addr()?;
    served::print_listening(&addr)?;
    info!("blocking mode on {addr}: one thread per connection, backlog {}", cli.backlog);

    if !cli.pause_accept {
        let (max, idle) = (thread_cap(cli.max_conns()), cli.idle_timeout);
        std::thread::Builder::new().name("accept".into()).spawn(move || {
            let result = accept_forever(&listener, max, idle);
            let _ = events.send(Event::Ended { index: 0, result });
        })?;
    }
    match waiting.recv() {
        Ok(Event::Signal(signal)) => {
            info!("signal {signal}: exiting");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Event::Ended { result: Err(e), .. }) => Err(e.into()),
        _ => Ok(ExitCode::FAILURE),
    }
}

/// How many connection threads to allow. Every thread maps a stack and a signal stack, each with a guard
/// page, and the kernel caps a process's mappings (vm.max_map_count); when a new thread cannot map its
/// signal stack, the Rust runtime aborts the whole process instead of failing the spawn. So the accept
/// loop stays below that ceiling, and peers beyond it wait in the backlog as with `--max-conns`.
fn thread_cap(asked: Option<usize>) -> usize {
    let ceiling = map_count_limit().map_or(usize::MAX, |maps| (maps.saturating_sub(4096) / 4) as usize);
    match asked {
        Some(max) if max <= ceiling => max,
        _ => {
            if ceiling != usize::MAX {
                warn!(
                    "blocking mode holds at most {ceiling} connections here: each needs a thread, and \
                     vm.max_map_count allows about that many; further peers wait in the accept queue"
                );
            }
            ceiling
        }
    }
}

#[cfg(target_os = "linux")]
fn map_count_limit() -> Option<u64> {
    hostinfo::sysctl_u64("vm.max_map_count")
}

#[cfg(not(target_os = "linux"))]
fn map_count_limit() -> Option<u64> {
    None
}

fn accept_forever(listener: &TcpListener, max: usize, idle: Option<Duration>) -> io::Result<()> {
    let slots = Arc::new(Slots::default());
    let mut backoff = Duration::from_millis(10);
    loop {
        {
            let mut active = slots.active.lock().map_err(|_| io::Error::other("slot counter poisoned"))?;
            while *active >= max {
                active = slots.freed.wait(active).map_err(|_| io::Error::other("slot counter poisoned"))?;
            }
        }
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => {
                continue;
            }
            Err(e) => {
                // Out of descriptors or memory: in this model a sleeping accept thread is the back-off.
                warn!("accept failed: {e} ({}); retrying in {backoff:?}", hostinfo::errno_name(&e));
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(10);
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(idle);
        if let Ok(mut active) = slots.active.lock() {
            *active += 1;
        }
        let thread_slots = slots.clone();
        let spawned = std::thread::Builder::new().stack_size(STACK).spawn(move || {
            if let Err(e) = echo(stream) {
                debug!("{peer}: {e}");
            }
            if let Ok(mut active) = thread_slots.active.lock() {
                *active -= 1;
            }
            thread_slots.freed.notify_one();
        });
        if let Err(e) = spawned {
            // The closure, and with it the stream, is dropped: the peer sees the connection close.
            warn!("cannot start a thread for {peer}: {e}; refusing that connection");
            if let Ok(mut active) = slots.active.lock() {
                *active -= 1;
            }
        }
    }
}

/// Reads until EOF and writes every byte back; then half-closes so the peer reads EOF after the echo.
fn echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buffer = [0; BUFFER];
    loop {
        let n = match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stream.write_all(&buffer[..n])?;
    }
    stream.shutdown(std::net::Shutdown::Write)
}
