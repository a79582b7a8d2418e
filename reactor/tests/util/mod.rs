//! Helpers shared by the reactor's integration tests.
#![allow(dead_code)] // each test file uses its own subset

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::Duration;

use reactor::{
    CloseKind, CloseReason, Config, ConnId, Context, EventLoop, Handle, Handler, ListenerOptions, Next,
};

/// The loopback address with a port the kernel picks.
pub fn any_local_address() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Logs to the test output when RUST_LOG asks for it.
pub fn init() {
    let _ = env_logger::builder().is_test(true).try_init();
}

/// An event loop serving on its own thread.
pub struct Server<H: Handler> {
    pub addr: SocketAddr,
    pub handle: Handle<H::Message>,
    pub stats: std::sync::Arc<reactor::Stats>,
    thread: JoinHandle<io::Result<H>>,
}

impl<H: Handler + Send + 'static> Server<H> {
    /// Starts a loop with one listener on loopback.
    #[track_caller]
    pub fn start(config: Config, handler: H) -> Server<H> {
        Self::start_with(config, handler, ListenerOptions::new(any_local_address()))
    }

    #[track_caller]
    pub fn start_with(config: Config, handler: H, listener: ListenerOptions) -> Server<H> {
        init();
        let mut event_loop = EventLoop::new(config, handler).expect("create the loop");
        let (_, addr) = event_loop.listen(&listener).expect("listen");
        let handle = event_loop.handle();
        let stats = event_loop.stats();
        let thread = std::thread::spawn(move || event_loop.run().map(|()| event_loop.into_handler()));
        Server { addr, handle, stats, thread }
    }

    /// Shuts the loop down gracefully and returns its handler.
    #[track_caller]
    pub fn finish(self) -> H {
        self.handle.shutdown(Duration::from_secs(5)).expect("wake the loop");
        self.join()
    }

    /// Waits for the loop to end by itself and returns its handler.
    #[track_caller]
    pub fn join(self) -> H {
        self.thread.join().expect("the loop thread panicked").expect("the loop failed")
    }
}

/// Echoes everything and remembers how connections ended and how much output was ever queued.
#[derive(Debug, Default)]
pub struct Echo {
    pub closed: Vec<CloseKind>,
    pub max_queued: usize,
    pub refused_sends: usize,
}

impl Handler for Echo {
    type Message = ();

    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        if ctx.send(conn, data).is_err() {
            self.refused_sends += 1;
            return Next::Close;
        }
        self.max_queued = self.max_queued.max(ctx.queued(conn).unwrap_or(0));
        Next::Continue
    }

    fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, reason: &CloseReason) {
        self.closed.push(reason.kind());
    }
}

/// The executable of the example `name`. All examples are built once per test process, in the profile
/// and target directory this test was built in, so that the executable is never older than its source
/// (`cargo test --test NAME` builds no example by itself).
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let examples = BUILT.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test executable's path");
        // Test executables live in `<target>/<profile>/deps/`.
        let profile = exe.parent().and_then(Path::parent).expect("the profile directory");
        let target = profile.parent().expect("the target directory");
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--quiet", "-p", "reactor", "--examples", "--target-dir"]).arg(target);
        match profile.file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                cargo.arg("--release");
            }
            Some(other) => {
                cargo.args(["--profile", other]);
            }
            None => panic!("no profile in {}", exe.display()),
        }
        let status = cargo.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p reactor --examples failed: {status}");
        profile.join("examples")
    });
    examples.join(name)
}

/// Starts the example `name` listening on a free loopback port, with `args` after `--listen`; waits for
/// its `listening on` line.
#[track_caller]
pub fn start_example(name: &str, args: &[&str]) -> testkit::ServerProcess {
    let mut command = Command::new(example(name));
    command.args(["--listen", "127.0.0.1:0"]).args(args).env("RUST_LOG", "warn");
    testkit::ServerProcess::start(command)
}

/// Sends SIGTERM to a started example and waits (boundedly) for it to exit 0. Each of `peers` must
/// read EOF: the shutdown closed it cleanly, flushing first, not with a reset.
#[track_caller]
pub fn sigterm_ends_cleanly(mut server: testkit::ServerProcess, peers: Vec<std::net::TcpStream>) {
    use std::io::Read;
    server.signal(nix::sys::signal::Signal::SIGTERM);
    for (i, mut peer) in peers.into_iter().enumerate() {
        peer.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut rest = Vec::new();
        match peer.read_to_end(&mut rest) {
            Ok(_) => {
                assert!(rest.is_empty(), "peer {i} got {:?} after SIGTERM", String::from_utf8_lossy(&rest))
            }
            Err(e) => panic!("peer {i}: {e} instead of EOF after SIGTERM"),
        }
    }
    let status = server.wait_exit(Duration::from_secs(20)).expect("the example exits after SIGTERM");
    assert!(status.success(), "exit status {status} after SIGTERM");
}
