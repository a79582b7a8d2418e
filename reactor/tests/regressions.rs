//! Regressions in the loop's core: reading after a half-close, the linger read, the low watermark, and
//! durations too large to add to an `Instant`.

mod util;

#[allow(dead_code)] // the example's `main` and command line are not used here
#[path = "../examples/forward.rs"]
mod forward;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use forward::Forwarder;
use reactor::{AfterEof, Config, ConnId, Context, EventLoop, Handler, Next, TimerId, Turn};
use testkit::payload;
use util::{Echo, Server};

/// Generous bound on every wait: reached only when the behaviour under test is broken.
const LIMIT: Duration = Duration::from_secs(10);

/// On its first data: pauses, half-closes, and resumes from a timer; counts every byte and the EOF.
#[derive(Debug, Default)]
struct PauseHalfCloseResume {
    conn: Option<ConnId>,
    received: Arc<AtomicUsize>,
    eof: Arc<AtomicBool>,
}

impl Handler for PauseHalfCloseResume {
    type Message = ();

    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        self.received.fetch_add(data.len(), Ordering::Relaxed);
        if self.conn.is_none() {
            self.conn = Some(conn);
            ctx.pause_reading(conn).unwrap();
            ctx.shutdown_write(conn).unwrap();
            ctx.set_timer(Duration::ZERO, 0);
        }
        Next::Continue
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _: TimerId, _: u64) {
        if let Some(conn) = self.conn {
            ctx.resume_reading(conn).unwrap();
        }
    }

    fn on_eof(&mut self, _: &mut Context<'_>, _: ConnId) -> AfterEof {
        self.eof.store(true, Ordering::Relaxed);
        AfterEof::Close
    }
}

#[test]
fn reading_resumes_after_half_close() {
    let handler = PauseHalfCloseResume::default();
    let (received, eof) = (handler.received.clone(), handler.eof.clone());
    let server = Server::start(Config::default(), handler);
    let mut client = TcpStream::connect(server.addr).unwrap();
    client.set_read_timeout(Some(LIMIT)).unwrap();
    client.set_write_timeout(Some(LIMIT)).unwrap();
    client.write_all(b"first").unwrap();
    // The server's FIN: it has paused and half-closed.
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let data = payload(5, 256 * 1024);
    let written = client.write_all(&data);
    client.shutdown(Shutdown::Write).unwrap();
    let complete = testkit::wait_for(LIMIT, || eof.load(Ordering::Relaxed));
    let expected = 5 + data.len();
    assert!(
        written.is_ok() && complete,
        "after pause, shutdown_write, resume_reading: read {} of {expected} bytes, no EOF ({written:?})",
        received.load(Ordering::Relaxed)
    );
    assert_eq!(received.load(Ordering::Relaxed), expected);
    server.finish();
}

/// A forwarder on its own loop, carrying clients to `upstream`.
fn start_forwarder(upstream: SocketAddr) -> Server<Forwarder> {
    Server::start(Config::default(), Forwarder::new(upstream, Duration::from_secs(5)))
}

/// Waits until `progress` has stood still for a while: the writer behind it is held back.
fn wait_for_stall(progress: &AtomicU64) -> u64 {
    let mut last = (0, Instant::now());
    let stalled = testkit::wait_for(Duration::from_secs(30), || {
        let now = progress.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        }
        now > 0 && last.1.elapsed() > Duration::from_millis(300)
    });
    assert!(stalled, "the writer was never held back");
    progress.load(Ordering::Relaxed)
}

#[test]
fn a_download_after_the_client_half_closes_arrives_whole() {
    const TOTAL: usize = 16 << 20;
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let service = {
        let written = written.clone();
        std::thread::spawn(move || -> std::io::Result<()> {
            let (mut stream, _) = upstream.accept()?;
            stream.set_read_timeout(Some(LIMIT))?;
            stream.set_write_timeout(Some(Duration::from_secs(30)))?;
            let mut request = Vec::new();
            stream.read_to_end(&mut request)?;
            for chunk in payload(8, TOTAL).chunks(64 * 1024) {
                stream.write_all(chunk)?;
                written.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    let forwarder = start_forwarder(upstream_addr);
    let mut client = TcpStream::connect(forwarder.addr).unwrap();
    client.write_all(b"GET everything").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    // Reading nothing yet makes the forwarder pause the upstream, whose sending side it already shut.
    let held_at = wait_for_stall(&written);
    assert!(held_at < TOTAL as u64, "the upstream was never held back");
    client.set_read_timeout(Some(LIMIT)).unwrap();
    let mut received = Vec::with_capacity(TOTAL);
    let result = client.read_to_end(&mut received);
    assert!(result.is_ok(), "download stopped at {} of {TOTAL} bytes: {result:?}", received.len());
    assert!(received == payload(8, TOTAL), "the forwarded bytes differ from what the upstream sent");
    service.join().unwrap().unwrap();
    forwarder.finish();
}

#[test]
fn an_upload_after_the_upstream_half_closes_arrives_whole() {
    const TOTAL: usize = 16 << 20;
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let service = {
        let written = written.clone();
        std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
            let (mut stream, _) = upstream.accept()?;
            stream.write_all(b"send it all")?;
            stream.shutdown(Shutdown::Write)?;
            // Reading nothing yet makes the forwarder pause the client, whose sending side it shut.
            wait_for_stall(&written);
            stream.set_read_timeout(Some(LIMIT))?;
            let mut upload = Vec::with_capacity(TOTAL);
            match stream.read_to_end(&mut upload) {
                Ok(_) => Ok(upload),
                Err(e) => Err(std::io::Error::new(
                    e.kind(),
                    format!("upload stopped at {} of {TOTAL} bytes: {e}", upload.len()),
                )),
            }
        })
    };
    let forwarder = start_forwarder(upstream_addr);
    let mut client = TcpStream::connect(forwarder.addr).unwrap();
    client.set_read_timeout(Some(LIMIT)).unwrap();
    let mut greeting = Vec::new();
    client.read_to_end(&mut greeting).unwrap();
    assert_eq!(greeting, b"send it all");
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        client.set_write_timeout(Some(Duration::from_secs(30)))?;
        for chunk in payload(9, TOTAL).chunks(64 * 1024) {
            client.write_all(chunk)?;
            written.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        client.shutdown(Shutdown::Write)
    });
    let upload = service.join().unwrap().unwrap();
    assert!(upload == payload(9, TOTAL), "the forwarded bytes differ from what the client sent");
    writer.join().unwrap().unwrap();
    forwarder.finish();
}

/// Closes each connection on its first data, `closes` times over, and answers `then`; says when a
/// shutdown begins.
#[derive(Debug)]
struct CloseOnData {
    closes: usize,
    then: Next,
    shutdown_began: Mutex<Sender<()>>,
}

impl CloseOnData {
    fn new(closes: usize, then: Next) -> (CloseOnData, Receiver<()>) {
        let (shutdown_began, began) = channel();
        (CloseOnData { closes, then, shutdown_began: shutdown_began.into() }, began)
    }
}

impl Handler for CloseOnData {
    type Message = ();

    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: &[u8]) -> Next {
        for _ in 0..self.closes {
            ctx.close(conn).unwrap();
        }
        self.then
    }

    fn on_shutdown(&mut self, _: &mut Context<'_>) {
        let _ = self.shutdown_began.lock().unwrap().send(());
    }
}

/// Sends a word, waits for the server's FIN, then runs `before_reply` and answers with `reply` bytes
/// and its own FIN: what a polite peer does after being closed.
fn reply_after_fin(addr: SocketAddr, reply: usize, before_reply: impl FnOnce()) {
    let mut client = TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(LIMIT)).unwrap();
    client.write_all(b"bye").unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    before_reply();
    client.write_all(&payload(3, reply)).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
}

/// Has the peer answer a close and checks that the server read that answer up to the peer's FIN
/// rather than leaving it unread until the linger timer (and then resetting the connection).
fn assert_linger_reads_to_fin(handler: CloseOnData) {
    const REPLY: usize = 1000;
    let server = Server::start(Config::default(), handler);
    reply_after_fin(server.addr, REPLY, || {});
    assert!(testkit::wait_for(LIMIT, || server.stats().active == 0));
    assert_eq!(server.stats().bytes_discarded, REPLY as u64, "the linger read stopped");
    server.finish();
}

#[test]
fn a_second_close_does_not_stop_the_linger_read() {
    assert_linger_reads_to_fin(CloseOnData::new(2, Next::Continue).0);
}

#[test]
fn a_pause_after_close_does_not_stop_the_linger_read() {
    assert_linger_reads_to_fin(CloseOnData::new(1, Next::Pause).0);
}

#[test]
fn the_shutdown_pass_does_not_stop_the_linger_read() {
    const REPLY: usize = 1000;
    let (handler, began) = CloseOnData::new(1, Next::Continue);
    let server = Server::start(Config::default(), handler);
    let handle = server.handle.clone();
    reply_after_fin(server.addr, REPLY, || {
        handle.shutdown(LIMIT).unwrap();
        began.recv_timeout(LIMIT).expect("the shutdown never began");
    });
    server.join();
    assert_eq!(handle.stats().bytes_discarded, REPLY as u64, "the linger read stopped");
}

#[test]
fn a_zero_low_watermark_resumes_reading_once_drained() {
    let config = Config { low_watermark: 0, ..Config::default() };
    assert_eq!(config.validate(), Ok(()));
    let server = Server::start(config, Echo::default());
    let result = testkit::flood_then_drain(server.addr, 64 << 20, |_| {});
    assert!(result.is_ok(), "{result:?}");
    server.finish();
}

#[test]
fn a_shutdown_deadline_of_duration_max_does_not_panic() {
    let server = Server::start(Config::default(), Echo::default());
    assert_eq!(testkit::echo_once(server.addr, b"hello", LIMIT).unwrap(), b"hello");
    server.handle.shutdown(Duration::MAX).unwrap();
    server.join();
}

#[test]
fn an_idle_timeout_of_duration_max_does_not_panic() {
    let config = Config { idle_timeout: Some(Duration::MAX), ..Config::default() };
    assert_eq!(config.validate(), Ok(()));
    let server = Server::start(config, Echo::default());
    assert_eq!(testkit::echo_once(server.addr, b"hello", LIMIT).unwrap(), b"hello");
    server.finish();
}

/// Counts timer firings.
#[derive(Debug, Default)]
struct Timers {
    fired: usize,
}

impl Handler for Timers {
    type Message = ();

    fn on_data(&mut self, _: &mut Context<'_>, _: ConnId, _: &[u8]) -> Next {
        Next::Continue
    }

    fn on_timer(&mut self, _: &mut Context<'_>, _: TimerId, _: u64) {
        self.fired += 1;
    }
}

#[test]
fn a_timer_of_duration_max_does_not_panic() {
    util::init();
    let mut event_loop = EventLoop::new(Config::default(), Timers::default()).unwrap();
    let never = event_loop.context().set_timer(Duration::MAX, 1);
    event_loop.context().set_timer(Duration::ZERO, 2);
    let turn = event_loop.run_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(turn, Turn::Running);
    assert_eq!(event_loop.handler().fired, 1, "only the zero-length timer is due");
    assert!(event_loop.context().cancel_timer(never), "the far timer is still pending");
}

/// Re-arms a zero-delay timer from its own callback and counts how often it fires in each turn.
#[derive(Debug, Default)]
struct Rearm {
    fired: u32,
    most_in_one_turn: u32,
    this_turn: (u64, u32),
}

impl Handler for Rearm {
    type Message = ();

    fn on_data(&mut self, _: &mut Context<'_>, _: ConnId, _: &[u8]) -> Next {
        Next::Continue
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _: TimerId, _: u64) {
        let turn = ctx.stats().turns;
        self.this_turn = if self.this_turn.0 == turn { (turn, self.this_turn.1 + 1) } else { (turn, 1) };
        self.most_in_one_turn = self.most_in_one_turn.max(self.this_turn.1);
        self.fired += 1;
        if self.fired < 20 {
            ctx.set_timer(Duration::ZERO, 0);
        } else {
            ctx.stop();
        }
    }
}

#[test]
fn a_zero_delay_timer_rearmed_from_its_callback_fires_once_a_turn() {
    util::init();
    let mut event_loop = EventLoop::new(Config::default(), Rearm::default()).unwrap();
    let mut ctx = event_loop.context();
    // Timers far off, so that the firing phase has room for many rounds if nothing stops it.
    for tag in 1..=50 {
        ctx.set_timer(Duration::from_secs(3600), tag);
    }
    ctx.set_timer(Duration::ZERO, 0);
    for _ in 0..1_000 {
        if event_loop.run_once(Some(LIMIT)).unwrap() == Turn::Stopped {
            break;
        }
    }
    let rearm = event_loop.handler();
    assert_eq!(rearm.fired, 20);
    assert_eq!(rearm.most_in_one_turn, 1, "a timer set while timers fire waits for the next turn");
}
