//! A line-based chat: every complete line a peer sends goes to every other peer, prefixed with the
//! sender's address.
//!
//! ```text
//! cargo run -p reactor --example chat -- --listen 127.0.0.1:7000
//! nc 127.0.0.1 7000        # in two or more terminals
//! ```
//!
//! Two things to notice:
//! - **Partial lines.** TCP delivers bytes, not lines: one read may end mid-line and the next finish
//!   it. Each peer keeps the unfinished line in its own buffer, bounded by [`MAX_LINE`]; a peer that
//!   sends a longer line is told so and disconnected.
//! - **A slow peer must not cost memory.** One line fans out to every peer, so a peer that reads less
//!   than the others say would make its output queue grow without end. Here a peer whose queue holds more
//!   than [`SLOW_PEER_QUEUE`] bytes misses lines instead: they are dropped and counted, and once its queue
//!   drains it is told how many it missed. (The other policy, disconnecting it, is one `ctx.close` away.)
//!   The senders are never slowed down by the slowest reader.
//!
//! Prints `listening on HOST:PORT` as its first line. SIGINT or SIGTERM shuts it down gracefully:
//! lines already queued are flushed (for at most 5 s) and every peer is disconnected. Exit codes: 0
//! after that, 1 when it cannot start or the loop fails, 2 for bad command-line input.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use reactor::mio::event::Event;
use reactor::{
    CloseReason, Config, ConnId, Context, EventLoop, Handler, ListenerOptions, Next, Origin, SourceId,
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
    #[arg(long, default_value = "127.0.0.1:7000")]
    listen: SocketAddr,
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
    let (_, addr) = event_loop.listen(&ListenerOptions::new(cli.listen))?;
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

/// One participant.
#[derive(Debug)]
struct Peer {
    /// What others see before each of this peer's lines: `"ADDR: "`.
    prefix: String,
    /// The unfinished line read so far (at most `MAX_LINE` bytes).
    partial: Vec<u8>,
    /// Lines dropped since this peer last caught up.
    missed: u64,
}

/// What the chat has seen, for logs and tests.
#[derive(Debug, Default)]
pub struct ChatStats {
    /// Complete lines received.
    pub lines: u64,
    /// Copies of lines not delivered because the receiver was too slow.
    pub dropped: u64,
    /// Most output ever waiting for one peer.
    pub max_queued: usize,
    /// Peers disconnected for sending a line longer than `MAX_LINE`.
    pub too_long: u64,
}

/// The chat's [`Handler`].
#[derive(Debug, Default)]
pub struct Chat {
    peers: HashMap<ConnId, Peer>,
    /// One outgoing line, reused so that a broadcast allocates nothing.
    message: Vec<u8>,
    /// Counters for logs and tests.
    pub stats: ChatStats,
    /// SIGINT and SIGTERM, once `run` has registered them (never when a test drives the handler).
    signals: Option<ShutdownSignals>,
}

impl Chat {
    /// Sends `self.message` to everyone but `from`, skipping peers whose queue is full.
    fn broadcast(&mut self, ctx: &mut Context<'_>, from: Option<ConnId>) {
        for (&id, peer) in &mut self.peers {
            if Some(id) == from {
                continue;
            }
            let queued = ctx.queued(id).unwrap_or(0);
            if queued + self.message.len() > SLOW_PEER_QUEUE {
                peer.missed += 1;
                self.stats.dropped += 1;
            } else if ctx.send(id, &self.message).is_ok() {
                self.stats.max_queued = self.stats.max_queued.max(queued + self.message.len());
            }
            // A refused send means the peer is already closing; its on_close follows.
        }
    }

    /// Broadcasts one complete line from `from` (its newline included).
    fn say(&mut self, ctx: &mut Context<'_>, from: ConnId, prefix: &str, line: &[u8]) {
        self.stats.lines += 1;
        self.message.clear();
        self.message.extend_from_slice(prefix.as_bytes());
        self.message.extend_from_slice(line);
        self.broadcast(ctx, Some(from));
    }

    fn announce(&mut self, ctx: &mut Context<'_>, from: ConnId, text: std::fmt::Arguments<'_>) {
        self.message.clear();
        let _ = writeln!(self.message, "* {text}");
        self.broadcast(ctx, Some(from));
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
        let peer = Peer { prefix: format!("{name}: "), partial: Vec::new(), missed: 0 };
        self.peers.insert(conn, peer);
    }

    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        let Some(peer) = self.peers.get_mut(&conn) else { return Next::Close };
        // Taken out of the map for the duration, so that broadcasting can walk the map.
        let prefix = std::mem::take(&mut peer.prefix);
        let mut partial = std::mem::take(&mut peer.partial);
        let mut rest = data;
        let mut too_long = false;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (piece, tail) = rest.split_at(end + 1);
            rest = tail;
            if partial.len() + piece.len() > MAX_LINE {
                too_long = true;
                break;
            }
            if partial.is_empty() {
                self.say(ctx, conn, &prefix, piece);
            } else {
                partial.extend_from_slice(piece);
                self.say(ctx, conn, &prefix, &partial);
                partial.clear();
            }
        }
        too_long |= partial.len() + rest.len() > MAX_LINE;
        if too_long {
            partial.clear();
        } else {
            partial.extend_from_slice(rest);
        }
        if let Some(peer) = self.peers.get_mut(&conn) {
            peer.prefix = prefix;
            peer.partial = partial;
        }
        if too_long {
            self.stats.too_long += 1;
            let _ = ctx.send(conn, format!("* lines are limited to {MAX_LINE} bytes: goodbye\n").as_bytes());
            return Next::Close;
        }
        Next::Continue
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
