//! The servers under comparison, each run as a child process pinned to the server core.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::BenchResult;
use crate::pin::SERVER_CORE;

/// Listen backlog given to every server, so that none drops SYNs where another would not.
pub const BACKLOG: u32 = 4096;

/// A server implementation under comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// `echo-server --mode reactor`: our reactor, one loop.
    Reactor,
    /// `echo-server --mode blocking`: a thread per connection.
    Blocking,
    /// `tokio-echo --runtime current-thread`.
    TokioCurrentThread,
    /// `tokio-echo --runtime multi-thread` (its workers share the one server core).
    TokioMultiThread,
    /// The C epoll loop of `benches/yardstick/epoll_echo.c`: the cost floor.
    Yardstick,
}

impl ServerKind {
    /// Every kind, in the order benches interleave them.
    pub const ALL: [ServerKind; 5] = [
        ServerKind::Reactor,
        ServerKind::Yardstick,
        ServerKind::TokioCurrentThread,
        ServerKind::TokioMultiThread,
        ServerKind::Blocking,
    ];

    /// The short name used in bench ids, reports and `BENCH_SERVERS`.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Reactor => "reactor",
            ServerKind::Blocking => "blocking",
            ServerKind::TokioCurrentThread => "tokio-ct",
            ServerKind::TokioMultiThread => "tokio-mt",
            ServerKind::Yardstick => "yardstick",
        }
    }

    /// The kind with this [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<ServerKind> {
        ServerKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The program and the arguments that make it listen on a free loopback port.
    pub fn command_line(self) -> BenchResult<(PathBuf, Vec<String>)> {
        let backlog = BACKLOG.to_string();
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Ok(match self {
            ServerKind::Reactor | ServerKind::Blocking => {
                let mode = if self == ServerKind::Reactor { "reactor" } else { "blocking" };
                (
                    built_binary("echo-server")?,
                    args(&["--mode", mode, "--addr", "127.0.0.1:0", "--backlog", &backlog]),
                )
            }
            ServerKind::TokioCurrentThread | ServerKind::TokioMultiThread => {
                let runtime =
                    if self == ServerKind::TokioCurrentThread { "current-thread" } else { "multi-thread" };
                (
                    built_binary("tokio-echo")?,
                    args(&["--runtime", runtime, "--addr", "127.0.0.1:0", "--backlog", &backlog]),
                )
            }
            ServerKind::Yardstick => (yardstick()?, args(&["0", &backlog])),
        })
    }

    /// Whether this server can run here; the note says why not (printed once by the caller).
    pub fn available(self) -> Result<(), String> {
        self.command_line().map(|_| ())
    }
}

/// The directory holding this profile's binaries (`target/release` for `cargo bench`): the parent of
/// the `deps/` directory the bench executable runs from. `BENCH_BIN_DIR` overrides it.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BENCH_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().unwrap_or(Path::new("."));
    if dir.ends_with("deps") { dir.parent().unwrap_or(dir).to_path_buf() } else { dir.to_path_buf() }
}

/// The target directory (`target/`), where reports and the yardstick go.
pub fn target_dir() -> PathBuf {
    let bins = bin_dir();
    bins.parent().map(Path::to_path_buf).unwrap_or(bins)
}

/// A workspace binary of the same profile, or a note saying how to build it.
pub fn built_binary(name: &str) -> BenchResult<PathBuf> {
    let path = bin_dir().join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build it first with `cargo build --release -p echo-server -p stress-client -p benches`",
            path.display()
        ))
    }
}

/// Under `cargo bench`, builds `echo-server` and `stress-client` in this profile (cargo builds only
/// this package's own binaries for its benches), and the C yardstick. `BENCH_NO_BUILD=1` skips it; a
/// failed build is a note, and whatever binaries exist are used.
pub fn ensure_built() {
    let Some(cargo) = std::env::var_os("CARGO") else { return };
    if std::env::var_os("BENCH_NO_BUILD").is_none() {
        build_yardstick();
    }
    if std::env::var_os("BENCH_NO_BUILD").is_some() || !bin_dir().ends_with("release") {
        return;
    }
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "echo-server", "-p", "stress-client"])
        .stdin(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!("note: building echo-server and stress-client failed ({s}); using what is built"),
        Err(e) => eprintln!("note: cannot run cargo to build echo-server and stress-client: {e}"),
    }
}

/// The yardsticks' sources, in this repository: the TCP echo loop and the UDP echo (both forms).
const YARDSTICK_SOURCES: [(&str, &str); 2] = [
    ("epoll_echo", concat!(env!("CARGO_MANIFEST_DIR"), "/yardstick/epoll_echo.c")),
    ("udp_echo", concat!(env!("CARGO_MANIFEST_DIR"), "/yardstick/udp_echo.c")),
];

/// Builds the C yardsticks into `target/yardstick/` with `cc -O2`, as `benches/build-yardstick.sh`
/// does, each unless the one there is newer than its source (`YARDSTICK` names another TCP yardstick,
/// which is then not built). Without a C compiler the benches skip them, with a note.
fn build_yardstick() {
    for (name, source) in YARDSTICK_SOURCES {
        if name == "epoll_echo" && std::env::var_os("YARDSTICK").is_some() {
            continue;
        }
        build_c(name, source);
    }
}

fn build_c(name: &str, source: &str) {
    let out = target_dir().join("yardstick").join(name);
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(built), Some(source)) = (modified(&out), modified(Path::new(source)))
        && built >= source
    {
        return;
    }
    if let Some(dir) = out.parent()
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        eprintln!("note: cannot create {}: {e}; the C yardstick {name} is not built", dir.display());
        return;
    }
    let status = Command::new("cc")
        .args(["-O2", "-Wall", "-Wextra", "-o"])
        .arg(&out)
        .arg(source)
        .stdin(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!("note: building the C yardstick {name} failed ({s}); it is skipped"),
        Err(e) => eprintln!("note: no C compiler to build the yardstick {name} ({e}); it is skipped"),
    }
}

/// The C UDP yardstick, `target/yardstick/udp_echo`, as [`ensure_built`] leaves it.
pub fn udp_yardstick() -> BenchResult<PathBuf> {
    let path = target_dir().join("yardstick/udp_echo");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "the C UDP yardstick is not built ({} is absent; run benches/build-yardstick.sh)",
            path.display()
        ))
    }
}

/// The C yardstick: `$YARDSTICK`, else `target/yardstick/epoll_echo`, as the benches'
/// [`ensure_built`] and `benches/build-yardstick.sh` leave it.
fn yardstick() -> BenchResult<PathBuf> {
    let path = match std::env::var_os("YARDSTICK") {
        Some(path) => PathBuf::from(path),
        None => target_dir().join("yardstick/epoll_echo"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "the C yardstick is not built ({} is absent; run benches/build-yardstick.sh or set YARDSTICK)",
            path.display()
        ))
    }
}

/// A running server: pinned to the server core, killed when dropped.
#[derive(Debug)]
pub struct Server {
    /// What it is.
    pub kind: ServerKind,
    /// Where it listens, from its `listening on HOST:PORT` line; the unspecified address `0.0.0.0:0`
    /// for a server on a Unix socket (see [`unix`](Self::unix)).
    pub addr: SocketAddr,
    /// The Unix socket it listens on, from its `listening on unix:PATH` line.
    pub unix: Option<PathBuf>,
    child: Child,
}

impl Server {
    /// Starts `kind` pinned to the server core.
    pub fn start(kind: ServerKind) -> BenchResult<Server> {
        Server::start_with(kind, &[], &[])
    }

    /// Starts the reactor's echo server on the Unix socket `path` (removed first if left over), behind
    /// `wrapper`, pinned to the server core.
    pub fn start_unix(wrapper: &[String], path: &Path) -> BenchResult<Server> {
        let _ = std::fs::remove_file(path);
        Server::launch(ServerKind::Reactor, wrapper, &[], Some(&format!("unix:{}", path.display())))
    }

    /// Starts `kind` with `extra` arguments, behind `wrapper` (e.g. `valgrind --tool=callgrind`), pinned
    /// to the server core. Waits up to a minute for the first line (valgrind starts slowly).
    pub fn start_with(kind: ServerKind, wrapper: &[String], extra: &[&str]) -> BenchResult<Server> {
        Server::launch(kind, wrapper, extra, None)
    }

    /// [`start_with`](Self::start_with), listening on `listen` (`HOST:PORT`) instead of the kind's own
    /// address: a run that must stay off the addresses other runs on this machine use.
    pub fn start_on(kind: ServerKind, listen: &str, extra: &[&str]) -> BenchResult<Server> {
        Server::launch(kind, &[], extra, Some(listen))
    }

    /// [`start_with`](Self::start_with), listening on `listen` instead of the kind's own address.
    fn launch(
        kind: ServerKind,
        wrapper: &[String],
        extra: &[&str],
        listen: Option<&str>,
    ) -> BenchResult<Server> {
        let (program, mut args) = kind.command_line()?;
        if let Some(listen) = listen {
            let at =
                args.iter().position(|a| a == "--addr").ok_or(format!("{} takes no --addr", kind.name()))?;
            args[at + 1] = listen.to_owned();
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let (mut child, line) = spawn_pinned(&program, &args, wrapper, kind.name())?;
        match line.trim().strip_prefix("listening on ").and_then(parse_listening) {
            Some((addr, unix)) => Ok(Server { kind, addr, unix, child }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("{}: expected `listening on HOST:PORT`, got {line:?}", kind.name()))
            }
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the server to end (SIGTERM) and waits up to `limit`; kills it after that. Returns its exit
    /// status if it ended by itself.
    pub fn stop(mut self, limit: Duration) -> Option<ExitStatus> {
        self.terminate(limit)
    }

    fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate(Duration::from_secs(5));
        }
    }
}

/// The address in a `listening on` line: `HOST:PORT`, or `unix:PATH` (with the unspecified address).
fn parse_listening(text: &str) -> Option<(SocketAddr, Option<PathBuf>)> {
    match text.strip_prefix("unix:") {
        Some(path) => Some((SocketAddr::from(([0, 0, 0, 0], 0)), Some(PathBuf::from(path)))),
        None => text.parse().ok().map(|addr| (addr, None)),
    }
}

/// Where a server's stderr goes: `target/bench-report/logs/NAME.stderr`.
pub fn log_path(kind: ServerKind) -> PathBuf {
    named_log_path(kind.name())
}

fn named_log_path(name: &str) -> PathBuf {
    crate::report::report_dir().join("logs").join(format!("{name}.stderr"))
}

fn log_file(name: &str) -> Option<File> {
    let path = named_log_path(name);
    std::fs::create_dir_all(path.parent()?).ok()?;
    File::create(path).ok()
}

/// Starts `program` with `args` behind `wrapper` (e.g. `valgrind --tool=callgrind`), pinned to the
/// server core, its stderr in the log named `name`; returns it with the first line it printed (waiting
/// up to a minute: valgrind starts slowly). Every server of the benches is started this way.
pub fn spawn_pinned(
    program: &Path,
    args: &[String],
    wrapper: &[String],
    name: &str,
) -> BenchResult<(Child, String)> {
    let mut command = if crate::pin::pinning() {
        let mut c = Command::new("taskset");
        c.args(["-c", &SERVER_CORE.to_string()]);
        c.args(wrapper);
        c.arg(program);
        c
    } else {
        let mut c = Command::new(wrapper.first().map(PathBuf::from).unwrap_or(program.to_path_buf()));
        if !wrapper.is_empty() {
            c.args(&wrapper[1..]).arg(program);
        }
        c
    };
    command.args(args).env("RUST_LOG", "warn").stdin(Stdio::null()).stdout(Stdio::piped());
    command.stderr(log_file(name).map(Stdio::from).unwrap_or(Stdio::null()));
    let mut child = command.spawn().map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    match first_line(stdout, Duration::from_secs(60)) {
        Some(line) => Ok((child, line)),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("{name} printed no address within a minute (see {})", named_log_path(name).display()))
        }
    }
}

/// The child's first stdout line, or `None` if none came within `limit`. The reader thread ends when
/// the child closes its stdout.
fn first_line(stdout: std::process::ChildStdout, limit: Duration) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Keep draining, so that a server that prints more never blocks on a full pipe.
        let mut sink = String::new();
        while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    rx.recv_timeout(limit).ok().filter(|l| !l.is_empty())
}

/// Starts every available server in `kinds`, printing a note for each one that cannot run.
pub fn start_all(kinds: &[ServerKind]) -> Vec<Server> {
    let mut servers = Vec::new();
    for &kind in kinds {
        match kind.available().and_then(|()| Server::start(kind)) {
            Ok(server) => servers.push(server),
            Err(note) => eprintln!("note: skipping {}: {note}", kind.name()),
        }
    }
    servers
}
