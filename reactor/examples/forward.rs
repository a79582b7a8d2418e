//! A TCP port forwarder: every connection accepted on `--addr` is carried to `--to`.
//!
//! ```text
//! cargo run --release -p reactor --example forward -- --addr 127.0.0.1:8080 --to 127.0.0.1:7878
//! ```
//!
//! One session is two connections on the same loop: the client we accepted and the upstream we
//! connected to without blocking ([`Context::connect`]). Bytes are copied both ways, and each direction
//! has its own back-pressure: once more than [`PAUSE_ABOVE`] bytes wait to be written to one side, the
//! forwarder stops reading from the other side, and reads again when the queue has drained
//! ([`Handler::on_drained`]). A slow reader therefore holds back the fast writer through the kernel's TCP
//! window instead of growing our memory: a session never holds more than about
//! `2 × (PAUSE_ABOVE + read_buffer)` bytes.
//!
//! A half-close is passed on: the client's EOF becomes `shutdown(Write)` on the upstream while the other
//! direction goes on, and the same the other way round. A reset or error on one side aborts the other; a
//! refused or timed-out connect closes the client at once, with a log line naming the upstream.
//!
//! Prints `listening on HOST:PORT` as its first line. SIGINT or SIGTERM shuts it down gracefully:
//! what is queued for either side is flushed (for at most 5 s) and both connections of every session
//! are closed. Exit codes: 0 after that, 1 when it cannot start or the loop fails, 2 for bad
//! command-line input.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use reactor::mio::event::Event;
use reactor::{
    AfterEof, CloseKind, CloseReason, Config, ConnId, Context, EventLoop, Handler, ListenerOptions, Next,
    Origin, SourceId, TimerId,
};
use slab::Slab;

#[path = "support/shutdown.rs"]
mod shutdown;

use shutdown::ShutdownSignals;

/// Queued output on one side above which the forwarder stops reading from the other side. Below the
/// loop's own high watermark minus one read, so the loop's back-pressure never has to step in.
pub const PAUSE_ABOVE: usize = 128 * 1024;

/// TCP port forwarder built on the reactor.
#[derive(Debug, Parser)]
struct Cli {
    /// Address to accept clients on; port 0 picks a free port (printed on the first line).
    #[arg(long, visible_alias = "listen", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// The upstream service every client is carried to.
    #[arg(long)]
    to: SocketAddr,
    /// Seconds an upstream connect may take before the client is closed.
    #[arg(long = "connect-timeout", value_name = "SECS", default_value_t = 5.0)]
    connect_timeout: f64,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("forward: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> io::Result<()> {
    let connect_timeout = Duration::try_from_secs_f64(cli.connect_timeout)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("--connect-timeout: {e}")))?;
    let forwarder = Forwarder::new(cli.to, connect_timeout);
    let mut event_loop = EventLoop::new(Config::default(), forwarder)?;
    let (_, addr) = event_loop.listen(&ListenerOptions::new(cli.addr))?;
    // Before the listening line: whoever signals as soon as it is printed gets a graceful shutdown.
    let signals = ShutdownSignals::register(&mut event_loop.context())?;
    event_loop.handler_mut().signals = Some(signals);
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on {addr}")?;
    stdout.flush()?;
    log::info!("forwarding {addr} to {}", cli.to);
    event_loop.run()?;
    match event_loop.handler_mut().signals.take() {
        Some(signals) => signals.deregister(&mut event_loop.context()),
        None => Ok(()),
    }
}

/// The two connections of a session. Arrays in a [`Session`] are indexed by side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Client = 0,
    Upstream = 1,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Client => Side::Upstream,
            Side::Upstream => Side::Client,
        }
    }
}

/// One forwarded connection: a client and its upstream.
#[derive(Debug)]
struct Session {
    conns: [ConnId; 2],
    /// Which sides have closed (their ids are dead).
    closed: [bool; 2],
    /// Bytes that `Context::send` refused for a side (its queue was at `max_output`), sent from
    /// `on_drained`. Empty unless the loop's output cap is set below `PAUSE_ABOVE + read_buffer`; at most
    /// one read's worth, since reading from the other side pauses at once.
    stash: [Vec<u8>; 2],
    /// Reading from this side is paused because the other side's queue is long.
    paused: [bool; 2],
    /// This side sent EOF; the other side's `shutdown(Write)` waits until its stash is sent.
    eof: [bool; 2],
    /// Closes the client if the upstream connect takes too long.
    connect_timer: Option<TimerId>,
}

/// What a forwarder has seen, for logs and tests.
#[derive(Debug, Default)]
pub struct ForwardStats {
    /// Clients accepted.
    pub sessions: u64,
    /// Upstream connects that failed or timed out.
    pub connect_failures: u64,
    /// Most bytes ever waiting for one connection (its queue plus its stash).
    pub max_queued: usize,
    /// Sessions still open.
    pub open_sessions: usize,
}

/// The forwarder's [`Handler`]: sessions by slot, and which session and side each connection is.
#[derive(Debug)]
pub struct Forwarder {
    upstream: SocketAddr,
    connect_timeout: Duration,
    sessions: Slab<Session>,
    sides: HashMap<ConnId, (usize, Side)>,
    /// Counters for logs and tests.
    pub stats: ForwardStats,
    /// SIGINT and SIGTERM, once `run` has registered them (never when a test drives the handler).
    signals: Option<ShutdownSignals>,
}

impl Forwarder {
    /// A forwarder to `upstream` that gives each connect `connect_timeout` to complete.
    pub fn new(upstream: SocketAddr, connect_timeout: Duration) -> Forwarder {
        Forwarder {
            upstream,
            connect_timeout,
            sessions: Slab::new(),
            sides: HashMap::new(),
            stats: ForwardStats::default(),
            signals: None,
        }
    }

    fn start_session(&mut self, ctx: &mut Context<'_>, client: ConnId) {
        self.stats.sessions += 1;
        let upstream = match ctx.connect(self.upstream) {
            Ok(upstream) => upstream,
            Err(e) => {
                self.stats.connect_failures += 1;
                log::warn!("{client}: cannot connect to {}: {e}", self.upstream);
                let _ = ctx.close(client);
                return;
            }
        };
        let key = self.sessions.insert(Session {
            conns: [client, upstream],
            closed: [false; 2],
            stash: [Vec::new(), Vec::new()],
            paused: [false; 2],
            eof: [false; 2],
            connect_timer: None,
        });
        self.sessions[key].connect_timer = Some(ctx.set_timer(self.connect_timeout, key as u64));
        self.sides.insert(client, (key, Side::Client));
        self.sides.insert(upstream, (key, Side::Upstream));
        self.stats.open_sessions += 1;
    }

    /// Sends `data` to side `to`, stashing what its full queue refuses; says whether to keep reading
    /// from the side the data came from.
    fn forward(&mut self, ctx: &mut Context<'_>, key: usize, to: Side, data: &[u8]) -> Next {
        let session = &mut self.sessions[key];
        let dst = session.conns[to as usize];
        if session.stash[to as usize].is_empty() {
            match ctx.send(dst, data) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    session.stash[to as usize].extend_from_slice(data)
                }
                // The destination is closing; its on_close ends the session.
                Err(_) => return Next::Close,
            }
        } else {
            session.stash[to as usize].extend_from_slice(data);
        }
        let waiting = ctx.queued(dst).unwrap_or(0) + session.stash[to as usize].len();
        self.stats.max_queued = self.stats.max_queued.max(waiting);
        if waiting > PAUSE_ABOVE {
            session.paused[to.other() as usize] = true;
            Next::Pause
        } else {
            Next::Continue
        }
    }

    /// Passes side `from`'s EOF on to the other side, once nothing is left to send it.
    fn pass_eof(ctx: &mut Context<'_>, session: &Session, from: Side) {
        let to = from.other() as usize;
        if session.eof[from as usize] && session.stash[to].is_empty() && !session.closed[to] {
            let _ = ctx.shutdown_write(session.conns[to]);
        }
    }
}

impl Handler for Forwarder {
    type Message = ();

    fn on_source_ready(&mut self, ctx: &mut Context<'_>, source: SourceId, _: &Event) {
        if let Some(signals) = &mut self.signals {
            signals.on_ready(ctx, source);
        }
    }

    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, origin: Origin) {
        match origin {
            Origin::Accepted(_) => self.start_session(ctx, conn),
            Origin::Connected => {
                let Some(&(key, _)) = self.sides.get(&conn) else { return };
                if let Some(timer) = self.sessions[key].connect_timer.take() {
                    ctx.cancel_timer(timer);
                }
            }
        }
    }

    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        match self.sides.get(&conn) {
            Some(&(key, side)) => self.forward(ctx, key, side.other(), data),
            None => Next::Close,
        }
    }

    fn on_eof(&mut self, ctx: &mut Context<'_>, conn: ConnId) -> AfterEof {
        let Some(&(key, side)) = self.sides.get(&conn) else { return AfterEof::Close };
        let session = &mut self.sessions[key];
        session.eof[side as usize] = true;
        Self::pass_eof(ctx, session, side);
        // Our sending side stays open for what the other side still has to say; the loop closes this
        // connection once we have shut it too.
        AfterEof::KeepOpen
    }

    fn on_drained(&mut self, ctx: &mut Context<'_>, conn: ConnId) {
        let Some(&(key, side)) = self.sides.get(&conn) else { return };
        let session = &mut self.sessions[key];
        let stash = std::mem::take(&mut session.stash[side as usize]);
        if !stash.is_empty() {
            match ctx.send(conn, &stash) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => session.stash[side as usize] = stash,
                Err(_) => return,
            }
        }
        let source = side.other() as usize;
        let waiting = ctx.queued(conn).unwrap_or(0) + session.stash[side as usize].len();
        if session.paused[source] && waiting <= PAUSE_ABOVE && !session.closed[source] {
            session.paused[source] = false;
            let _ = ctx.resume_reading(session.conns[source]);
        }
        Self::pass_eof(ctx, session, side.other());
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, reason: &CloseReason) {
        let Some((key, side)) = self.sides.remove(&conn) else { return };
        let session = &mut self.sessions[key];
        session.closed[side as usize] = true;
        let other = side.other();
        if reason.kind() == CloseKind::ConnectFailed {
            self.stats.connect_failures += 1;
            log::warn!(
                "{}: cannot connect to {}: {reason}",
                session.conns[Side::Client as usize],
                self.upstream
            );
        }
        if !session.closed[other as usize] {
            let peer = session.conns[other as usize];
            match reason.kind() {
                // The other side reached EOF too and ends by itself once its queue and stash are out.
                CloseKind::PeerClosed if !session.stash[other as usize].is_empty() => {}
                CloseKind::Reset | CloseKind::Error => {
                    log::debug!("{conn} ended with {reason}: aborting {peer}");
                    let _ = ctx.abort(peer);
                }
                _ => {
                    let _ = ctx.close(peer);
                }
            }
            return;
        }
        if let Some(timer) = session.connect_timer.take() {
            ctx.cancel_timer(timer);
        }
        self.sessions.remove(key);
        self.stats.open_sessions -= 1;
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _: TimerId, tag: u64) {
        let Some(session) = self.sessions.get_mut(tag as usize) else { return };
        if session.connect_timer.take().is_some() {
            let (client, upstream) = (session.conns[0], session.conns[1]);
            log::warn!("{client}: connect to {} timed out after {:?}", self.upstream, self.connect_timeout);
            self.stats.connect_failures += 1;
            let _ = ctx.abort(upstream);
        }
    }
}
