//! A line-based chat: every complete, non-empty line a peer sends goes to every other peer, prefixed
//! with the sender's address.
//!
//! ```text
//! cargo run -p reactor --example chat -- --addr 127.0.0.1:7000
//! nc 127.0.0.1 7000        # in two or more terminals
//! ```
//!
//! Three things to notice:
//! - **Partial lines.** TCP delivers bytes, not lines: one read may end mid-line and the next finish
//!   it. Each peer keeps the unfinished line in its own buffer, bounded by [`MAX_LINE`]; a peer that
//!   sends a longer line is told so and disconnected.
//! - **A slow peer must not cost memory.** One line fans out to every peer, so a peer that reads less
//!   than the others say would make its output queue grow without end. Here a peer whose queue holds more
//!   than [`SLOW_PEER_QUEUE`] bytes misses lines instead: they are dropped and counted, and once its queue
//!   drains it is told how many it missed. (The other policy, disconnecting it, is one `ctx.close` away.)
//!   The senders are never slowed down by the slowest reader.
//! - **A flooding sender must not hold the loop.** One read can hold tens of thousands of short lines,
//!   and each is a send to every peer. A sender has at most [`FANOUT_PER_TURN`] copies fanned out in
//!   one go; the rest of what it sent waits in its own buffer while reading from it is paused, and is
//!   said share by share on the following loop turns (a zero-delay timer), with every other peer read
//!   in between. Its buffer is bounded by one read plus [`MAX_LINE`], and the kernel's window holds the
//!   sender back meanwhile. Empty lines are not broadcast at all.
//!
//! Prints `listening on HOST:PORT` as its first line. SIGINT or SIGTERM shuts it down gracefully:
//! lines already queued are flushed (for at most 5 s) and every peer is disconnected. Exit codes: 0
//! after that, 1 when it cannot start or the loop fails, 2 for bad command-line input.
#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use reactor::mio::event::Event;
use reactor::{
    CloseReason, Config, ConnId, Context, EventLoop, Handler, ListenerOptions, Next, Origin, SourceId,
    TimerId,
};

#[path = "support/shutdown.rs"]
mod shutdown;

use shutdown::ShutdownSignals;

/// Longest line a peer may send, newline included.
pub const MAX_LINE: usize = 4096;

/// Output a peer may have waiting before lines to it are dropped.
pub const SLOW_PEER_QUEUE: usize = 64 * 1024;

/// Line-based broadcast chat built on the reactor.
#[derive(Debug, Parser)]
struct Cli {
    /// Address to listen on; port 0 picks a free port (printed on the first line).
    #[arg(long, visible_alias = "listen", default_value = "127.0.0.1:7000")]
    addr: SocketAddr,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> io::Result<()> {
    let mut event_loop = EventLoop::new(Config::default(), Chat::default())?;
    let (_, addr) = event_loop.listen(&ListenerOptions::new(cli.addr))?;
    // Before the listening line: whoever signals as soon as it is printed gets a graceful shutdown.
    let signals = ShutdownSignals::register(&mut event_loop.context())?;
    event_loop.handler_mut().signals = Some(signals);
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on {addr}")?;
    stdout.flush()?;
    event_loop.run()?;
    match event_loop.handler_mut().signals.take() {
        Some(signals) => signals.deregister(&mut event_loop.context()),
        None => Ok(()),
    }
}

/// Copies of lines one sender may have fanned out in one go (a line costs one copy per other peer,
/// plus one) before the other peers get their turn. One read can hold tens of thousands of short
/// lines; without a bound, fanning them all out would hold the loop for seconds.
pub const FANOUT_PER_TURN: usize = 4096;

/// One participant.
#[derive(Debug)]
struct Peer {
    /// What others see before each of this peer's lines: `"ADDR: "`.
    prefix: String,
    /// Bytes read from this peer and not yet said: whole lines waiting for their turn, then at most one
    /// unfinished line. Reading pauses while whole lines wait, so this holds at most one read and
    /// `MAX_LINE` bytes.
    input: Vec<u8>,
    /// Where in `input` the bytes not yet said begin.
    said: usize,
    /// Whole lines wait in `input` and this peer is in [`Chat::backlog`].
    behind: bool,
    /// Lines dropped since this peer last caught up.
    missed: u64,
}

/// What is left of a sender's input after its turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Left {
    /// At most an unfinished line: read more.
    Nothing,
    /// Whole lines, for its next turn.
    Lines,
    /// A line longer than `MAX_LINE`.
    TooLong,
}

/// What the chat has seen, for logs and tests.
#[derive(Debug, Default)]
pub struct ChatStats {
    /// Complete lines said (an empty line is not).
    pub lines: u64,
    /// Copies of lines not delivered because the receiver was too slow.
    pub dropped: u64,
    /// Most output ever waiting for one peer.
    pub max_queued: usize,
    /// Peers disconnected for sending a line longer than `MAX_LINE`.
    pub too_long: u64,
    /// Times a sender had more lines than one turn's [`FANOUT_PER_TURN`] and waited for the next.
    pub deferred: u64,
}

/// The chat's [`Handler`].
#[derive(Debug, Default)]
pub struct Chat {
    peers: HashMap<ConnId, Peer>,
    /// One outgoing line, reused so that a broadcast allocates nothing.
    message: Vec<u8>,
    /// Senders whose whole lines wait for a later turn, in the order they fell behind.
    backlog: VecDeque<ConnId>,
    /// The zero-delay timer that gives `backlog` its next turn is set.
    backlog_timer: bool,
    /// The loop turn (`Counters::turns`) in which `backlog` last had its turn. A zero-delay timer can
    /// fire more than once in one loop turn while other timers are pending; senders get one turn each.
    backlog_turn: u64,
    /// Counters for logs and tests.
    pub stats: ChatStats,
    /// SIGINT and SIGTERM, once `run` has registered them (never when a test drives the handler).
    signals: Option<ShutdownSignals>,
}

impl Chat {
    /// Sends `self.message` to everyone but `from`, skipping peers whose queue is full; returns how many
    /// peers that was.
    fn broadcast(&mut self, ctx: &mut Context<'_>, from: Option<ConnId>) -> usize {
        let mut peers = 0;
        for (&id, peer) in &mut self.peers {
            if Some(id) == from {
                continue;
            }
            peers += 1;
            let queued = ctx.queued(id).unwrap_or(0);
            if queued + self.message.len() > SLOW_PEER_QUEUE {
                peer.missed += 1;
                self.stats.dropped += 1;
            } else if ctx.send(id, &self.message).is_ok() {
                self.stats.max_queued = self.stats.max_queued.max(queued + self.message.len());
            }
            // A refused send means the peer is already closing; its on_close follows.
        }
        peers
    }

    /// Broadcasts one complete line from `from` (its newline included); returns the copies it took.
    fn say(&mut self, ctx: &mut Context<'_>, from: ConnId, prefix: &str, line: &[u8]) -> usize {
        self.stats.lines += 1;
        self.message.clear();
        self.message.extend_from_slice(prefix.as_bytes());
        self.message.extend_from_slice(line);
        self.broadcast(ctx, Some(from))
    }

    fn announce(&mut self, ctx: &mut Context<'_>, from: ConnId, text: std::fmt::Arguments<'_>) {
        self.message.clear();
        let _ = writeln!(self.message, "* {text}");
        self.broadcast(ctx, Some(from));
    }

    /// Gives `conn` one turn: says the whole lines of its input, then of `data`, until they or the
    /// turn's [`FANOUT_PER_TURN`] run out, and keeps the rest.
    fn take_turn(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Left {
        let Some(peer) = self.peers.get_mut(&conn) else { return Left::Nothing };
        // Taken out of the map for the duration, so that broadcasting can walk the map.
        let prefix = std::mem::take(&mut peer.prefix);
        let mut input = std::mem::take(&mut peer.input);
        let mut said = peer.said;
        let left = if input.is_empty() {
            // The common case: say the lines where they lie, and keep only what is left of them.
            let (used, left) = self.say_lines(ctx, conn, &prefix, data);
            input.extend_from_slice(&data[used..]);
            said = 0;
            left
        } else {
            input.extend_from_slice(data);
            let (used, left) = self.say_lines(ctx, conn, &prefix, &input[said..]);
            said += used;
            left
        };
        if left != Left::Lines {
            // At most an unfinished line is left: move it to the front, and give back a flood's buffer.
            input.drain(..said);
            said = 0;
            if input.capacity() > 2 * MAX_LINE {
                input.shrink_to(MAX_LINE);
            }
        }
        if let Some(peer) = self.peers.get_mut(&conn) {
            (peer.prefix, peer.input, peer.said) = (prefix, input, said);
        }
        left
    }

    /// Says the whole lines at the front of `bytes` until they or one turn's [`FANOUT_PER_TURN`] run
    /// out; returns how many bytes that used and what is left.
    fn say_lines(
        &mut self,
        ctx: &mut Context<'_>,
        from: ConnId,
        prefix: &str,
        bytes: &[u8],
    ) -> (usize, Left) {
        let (mut used, mut budget) = (0, FANOUT_PER_TURN);
        while let Some(end) = bytes[used..].iter().position(|&b| b == b'\n') {
            let line = &bytes[used..=used + end];
            if line.len() > MAX_LINE {
                return (used, Left::TooLong);
            }
            if budget == 0 {
                return (used, Left::Lines);
            }
            used += line.len();
            // An empty line says nothing: it is not worth a copy for every peer.
            let copies = if line == b"\n" || line == b"\r\n" { 0 } else { self.say(ctx, from, prefix, line) };
            budget = budget.saturating_sub(1 + copies);
        }
        (used, if bytes.len() - used > MAX_LINE { Left::TooLong } else { Left::Nothing })
    }

    /// Leaves the rest of `conn`'s lines for a later turn, after every other peer has been read.
    fn fall_behind(&mut self, ctx: &mut Context<'_>, conn: ConnId) {
        let Some(peer) = self.peers.get_mut(&conn) else { return };
        self.stats.deferred += 1;
        if !peer.behind {
            peer.behind = true;
            self.backlog.push_back(conn);
        }
        self.arm_backlog_timer(ctx);
    }

    /// Sets the timer that gives `backlog` its next turn, unless it is set.
    fn arm_backlog_timer(&mut self, ctx: &mut Context<'_>) {
        if !self.backlog_timer {
            // A zero delay fires after this turn's events, and the loop does not wait in its poll while
            // it is due, so the backlog goes on as soon as every other peer has been read.
            ctx.set_timer(Duration::ZERO, 0);
            self.backlog_timer = true;
        }
    }

    /// Says goodbye to a peer that sent a line longer than `MAX_LINE`; the caller closes it.
    fn too_long(&mut self, ctx: &mut Context<'_>, conn: ConnId) {
        self.stats.too_long += 1;
        let _ = ctx.send(conn, format!("* lines are limited to {MAX_LINE} bytes: goodbye\n").as_bytes());
    }
}

impl Handler for Chat {
    type Message = ();

    fn on_source_ready(&mut self, ctx: &mut Context<'_>, source: SourceId, _: &Event) {
        if let Some(signals) = &mut self.signals {
            signals.on_ready(ctx, source);
        }
    }

    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: Origin) {
        let name = ctx.peer_addr(conn).map_or_else(|_| conn.to_string(), |a| a.to_string());
        self.announce(ctx, conn, format_args!("{name} joined"));
        let peer = Peer { prefix: format!("{name}: "), input: Vec::new(), said: 0, behind: false, missed: 0 };
        self.peers.insert(conn, peer);
    }

    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        if !self.peers.contains_key(&conn) {
            return Next::Close;
        }
        match self.take_turn(ctx, conn, data) {
            Left::Nothing => Next::Continue,
            Left::Lines => {
                // Stop reading until the lines already read are said: they are the sender's backlog.
                self.fall_behind(ctx, conn);
                Next::Pause
            }
            Left::TooLong => {
                self.too_long(ctx, conn);
                Next::Close
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _: TimerId, _: u64) {
        self.backlog_timer = false;
        let turn = ctx.stats().turns;
        if turn == self.backlog_turn {
            self.arm_backlog_timer(ctx);
            return;
        }
        self.backlog_turn = turn;
        // One turn for each sender that was behind; those still behind wait for the next.
        for _ in 0..self.backlog.len() {
            let Some(conn) = self.backlog.pop_front() else { break };
            if let Some(peer) = self.peers.get_mut(&conn) {
                peer.behind = false;
            }
            match self.take_turn(ctx, conn, &[]) {
                Left::Nothing => {
                    let _ = ctx.resume_reading(conn);
                }
                Left::Lines => self.fall_behind(ctx, conn),
                Left::TooLong => {
                    self.too_long(ctx, conn);
                    let _ = ctx.close(conn);
                }
            }
        }
    }

    fn on_shutdown(&mut self, _: &mut Context<'_>) {
        // Every peer is closing and takes no more lines: what senders still had to say goes unsaid.
        self.backlog.clear();
    }

    fn on_drained(&mut self, ctx: &mut Context<'_>, conn: ConnId) {
        // The peer has caught up: tell it what it missed while it was slow.
        if let Some(peer) = self.peers.get_mut(&conn)
            && peer.missed > 0
        {
            let notice = format!("* you missed {} lines while reading too slowly\n", peer.missed);
            if ctx.send(conn, notice.as_bytes()).is_ok() {
                peer.missed = 0;
            }
        }
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, reason: &CloseReason) {
        if let Some(peer) = self.peers.remove(&conn) {
            let name = peer.prefix.trim_end_matches(": ").to_owned();
            self.announce(ctx, conn, format_args!("{name} left ({reason})"));
        }
    }
}
