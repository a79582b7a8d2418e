//! Unix domain sockets through the same loop as TCP: integrity, half-close, a slow reader, idle
//! timeout, outbound connects, and the socket file's life (stale removed, live refused, ours removed).

mod util;

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use reactor::{
    Address, CloseKind, CloseReason, Config, ConnId, ConnectOptions, Context, EventLoop, Handle, Handler,
    ListenerOptions, Next, Origin,
};
use util::Echo;

const LIMIT: Duration = Duration::from_secs(20);

/// A fresh directory for this test's socket files, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("reactor-unix-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loop serving a Unix listener at `path` on its own thread.
struct UnixServer<H: Handler> {
    handle: Handle<H::Message>,
    thread: JoinHandle<io::Result<H>>,
}

impl<H: Handler + Send + 'static> UnixServer<H> {
    fn start(config: Config, handler: H, path: &Path) -> UnixServer<H> {
        util::init();
        let config = Config { raise_fd_limit: false, ..config };
        let mut event_loop = EventLoop::new(config, handler).unwrap();
        let (_, addr) = event_loop.listen_at(&ListenerOptions::unix(path)).unwrap();
        assert_eq!(addr, Address::Unix(path.to_path_buf()));
        let handle = event_loop.handle();
        let thread = std::thread::spawn(move || event_loop.run().map(|()| event_loop.into_handler()));
        UnixServer { handle, thread }
    }

    fn finish(self) -> H {
        self.handle.shutdown(Duration::from_secs(5)).unwrap();
        self.thread.join().unwrap().unwrap()
    }
}

fn connect(path: &Path) -> UnixStream {
    let stream = UnixStream::connect(path).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream.set_write_timeout(Some(LIMIT)).unwrap();
    stream
}

/// Sends `data` from a second thread while reading the echo here; returns what came back before EOF
/// (after a half-close) or once `data.len()` bytes arrived.
fn echo(stream: UnixStream, data: Vec<u8>, half_close: bool) -> Vec<u8> {
    let mut writer = stream.try_clone().unwrap();
    let len = data.len();
    let sender = std::thread::spawn(move || {
        writer.write_all(&data).unwrap();
        if half_close {
            writer.shutdown(std::net::Shutdown::Write).unwrap();
        }
    });
    let mut reader = stream;
    let mut back = Vec::with_capacity(len);
    if half_close {
        reader.read_to_end(&mut back).unwrap();
    } else {
        back.resize(len, 0);
        reader.read_exact(&mut back).unwrap();
    }
    sender.join().unwrap();
    back
}

#[test]
fn unix_connections_get_every_byte_back() {
    let dir = Dir::new("integrity");
    let path = dir.path("echo.sock");
    let server = UnixServer::start(Config::default(), Echo::default(), &path);
    let sizes = testkit::spread_sizes(64, 1 << 20, 11);
    let clients: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let path = path.clone();
            std::thread::spawn(move || {
                let data = testkit::payload(i as u64, len);
                let back = echo(connect(&path), data.clone(), false);
                assert!(back == data, "connection {i}: {len} B sent, the echo differs");
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    // The handle's counters are published at the end of each loop turn, so the last turn's reads
    // may not show yet while the loop runs; once it has ended they are final.
    let handle = server.handle.clone();
    let echo = server.finish();
    let stats = handle.stats();
    assert_eq!(echo.refused_sends, 0);
    assert_eq!(stats.bytes_in, sizes.iter().sum::<usize>() as u64);
}

#[test]
fn unix_half_close_returns_every_byte_then_eof() {
    let dir = Dir::new("half-close");
    let path = dir.path("echo.sock");
    let server = UnixServer::start(Config::default(), Echo::default(), &path);
    let data = testkit::payload(3, 300_000);
    let back = echo(connect(&path), data.clone(), true);
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the echo differs");
    let echo = server.finish();
    assert_eq!(echo.closed, [CloseKind::PeerClosed]);
}

#[test]
fn a_unix_peer_that_never_reads_is_bounded_and_then_gets_everything_in_order() {
    let dir = Dir::new("slow-reader");
    let path = dir.path("echo.sock");
    let config = Config::default();
    let bound = config.high_watermark + config.read_buffer;
    let server = UnixServer::start(config, Echo::default(), &path);
    let handle = server.handle.clone();
    let stream = UnixStream::connect(&path).unwrap();
    stream.set_nonblocking(true).unwrap();
    let stalled = testkit::flood_then_drain_on(stream, 64 << 20, |sent| {
        assert!(handle.stats().bytes_in as usize <= sent);
    })
    .unwrap();
    let echo = server.finish();
    assert!(stalled < 64 << 20);
    assert!(echo.max_queued <= bound, "queued {} B, bound {bound} B", echo.max_queued);
    assert_eq!(echo.refused_sends, 0);
}

#[test]
fn idle_unix_connections_are_closed() {
    let dir = Dir::new("idle");
    let path = dir.path("echo.sock");
    let config = Config { idle_timeout: Some(Duration::from_millis(100)), ..Config::default() };
    let server = UnixServer::start(config, Echo::default(), &path);
    let mut stream = connect(&path);
    let mut byte = [0];
    assert_eq!(stream.read(&mut byte).unwrap(), 0, "the server closes the idle connection");
    let echo = server.finish();
    assert_eq!(echo.closed, [CloseKind::IdleTimeout]);
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = Dir::new("stale");
    let path = dir.path("echo.sock");
    // std leaves the file behind when a listener is dropped, as a killed server does.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = UnixServer::start(Config::default(), Echo::default(), &path);
    assert_eq!(echo(connect(&path), b"fresh".to_vec(), false), b"fresh");
    server.finish();
}

#[test]
fn a_live_unix_socket_is_refused_as_in_use_and_left_alone() {
    let dir = Dir::new("live");
    let path = dir.path("echo.sock");
    let live = UnixListener::bind(&path).unwrap();
    let mut event_loop = EventLoop::new(Config::default(), Echo::default()).unwrap();
    let error = event_loop.listen_at(&ListenerOptions::unix(&path)).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::AddrInUse, "{error}");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()) && message.contains("in use"), "{message}");
    // The live server still has its socket.
    let _peer = UnixStream::connect(&path).unwrap();
    live.accept().unwrap();
}

#[test]
fn a_path_that_is_not_a_socket_is_refused_and_left_alone() {
    let dir = Dir::new("not-socket");
    let path = dir.path("data.txt");
    std::fs::write(&path, b"keep me").unwrap();
    let mut event_loop = EventLoop::new(Config::default(), Echo::default()).unwrap();
    let error = event_loop.listen_at(&ListenerOptions::unix(&path)).unwrap_err();
    assert!(error.to_string().contains("not a socket"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
}

#[test]
fn the_socket_file_is_removed_when_the_listener_closes_or_the_loop_is_dropped() {
    let dir = Dir::new("removed");
    let (first, second) = (dir.path("a.sock"), dir.path("b.sock"));
    let mut event_loop = EventLoop::new(Config::default(), Echo::default()).unwrap();
    let (a, _) = event_loop.listen_at(&ListenerOptions::unix(&first)).unwrap();
    event_loop.listen_at(&ListenerOptions::unix(&second)).unwrap();
    assert!(first.exists() && second.exists());
    event_loop.context().close_listener(a).unwrap();
    assert!(!first.exists(), "closing the listener left {}", first.display());
    drop(event_loop);
    assert!(!second.exists(), "dropping the loop left {}", second.display());
}

#[test]
fn tcp_only_calls_say_so_for_unix_sockets() {
    let dir = Dir::new("tcp-only");
    let path = dir.path("echo.sock");
    let mut event_loop = EventLoop::new(Config::default(), Echo::default()).unwrap();
    let error = event_loop.listen(&ListenerOptions::unix(&path)).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
    assert!(!path.exists(), "a refused listen opened the socket anyway");
    let (listener, _) = event_loop.listen_at(&ListenerOptions::unix(&path)).unwrap();
    let mut ctx = event_loop.context();
    let error = ctx.local_addr(listener).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::Unsupported, "{error}");
    assert_eq!(ctx.local_address(listener).unwrap(), Address::Unix(path.clone()));
    let options = ConnectOptions { bind: Some(util::any_local_address()), ..ConnectOptions::unix(&path) };
    assert_eq!(ctx.connect_with(&options).unwrap_err().kind(), io::ErrorKind::InvalidInput);
}

/// Connects to a Unix listener in the same loop, says hello, records what each side saw.
#[derive(Default)]
struct Loopback {
    path: PathBuf,
    seen: Vec<String>,
    answer: Vec<u8>,
    outbound: Option<ConnId>,
}

impl Handler for Loopback {
    type Message = ();

    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, origin: Origin) {
        let peer = ctx.peer_address(conn).unwrap();
        let local = ctx.local_address(conn).unwrap();
        let side = if origin == Origin::Connected { "connected" } else { "accepted" };
        self.seen.push(format!("{side}: local {local}, peer {peer}"));
        if origin == Origin::Connected {
            assert_eq!(peer, Address::Unix(self.path.clone()));
            ctx.send(conn, b"hello").unwrap();
            ctx.shutdown_write(conn).unwrap();
        }
    }

    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        if Some(conn) == self.outbound {
            self.answer.extend_from_slice(data);
        } else {
            ctx.send(conn, data).unwrap();
        }
        Next::Continue
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _: reactor::TimerId, _: u64) {
        self.seen.push("deadline".into());
        ctx.stop();
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, reason: &CloseReason) {
        if Some(conn) == self.outbound {
            self.seen.push(format!("outbound closed: {}", reason.kind().name()));
            ctx.stop();
        }
    }
}

#[test]
fn an_outbound_unix_connection_opens_echoes_and_half_closes() {
    let dir = Dir::new("outbound");
    let path = dir.path("echo.sock");
    let handler = Loopback { path: path.clone(), ..Loopback::default() };
    let config = Config { raise_fd_limit: false, ..Config::default() };
    let mut event_loop = EventLoop::new(config, handler).unwrap();
    event_loop.listen_at(&ListenerOptions::unix(&path)).unwrap();
    let conn = event_loop.context().connect_with(&ConnectOptions::unix(&path)).unwrap();
    event_loop.handler_mut().outbound = Some(conn);
    // A deadline, so that a connection that never closes fails the test instead of hanging it.
    event_loop.context().set_timer(LIMIT, 0);
    event_loop.run().unwrap();
    let loopback = event_loop.handler();
    assert_eq!(loopback.answer, b"hello", "{:?}", loopback.seen);
    assert!(
        loopback
            .seen
            .iter()
            .any(|s| s.starts_with("accepted: local unix:") && s.ends_with("peer unix:(unnamed)")),
        "{:?}",
        loopback.seen
    );
    assert!(loopback.seen.iter().any(|s| s == "outbound closed: peer_closed"), "{:?}", loopback.seen);
}

#[test]
fn a_refused_unix_connect_is_an_error_at_once() {
    let dir = Dir::new("refused");
    let path = dir.path("nobody.sock");
    let mut event_loop = EventLoop::new(Config::default(), Echo::default()).unwrap();
    let error = event_loop.context().connect_with(&ConnectOptions::unix(&path)).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(nix::libc::ENOENT), "{error}");
}
