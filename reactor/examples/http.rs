//! An HTTP/1.1 "hello" responder with keep-alive and pipelining, for reading and for load tests.
//!
//! ```text
//! cargo run --release -p reactor --example http -- --addr 127.0.0.1:8000
//! wrk -c 100 -d 10s http://127.0.0.1:8000/
//! ```
//!
//! What it shows:
//! - **Parsing across partial reads.** A request may arrive in many reads, and one read may hold many
//!   requests (pipelining). Each connection keeps the bytes of an unfinished request in its own buffer;
//!   every complete request in it is answered, in order, and the rest waits for the next read. It also
//!   keeps how far it got ([`Progress`]): a head that arrives a byte at a time is searched once, not
//!   once per byte, and a body that arrives in pieces does not have its head parsed again.
//! - **Bounded buffers.** A request head larger than [`MAX_HEAD`] is refused with 431, a body larger
//!   than [`MAX_BODY`] with 413, anything unparseable with 400; each closes the connection. A client that
//!   pipelines faster than it reads answers is paused once [`PAUSE_ABOVE`] bytes of responses wait, and
//!   its remaining requests are answered as the responses drain.
//! - **Strict framing.** Where two servers in a row could read the same bytes as different requests
//!   (request smuggling), the request is refused with 400: a Content-Length that is not plain digits
//!   or comes twice, a CR outside a CRLF or any other control byte but HTAB, padding other than SP and
//!   HTAB, an HTTP/1.1 request without Host, or any request with two.
//! - **Keep-alive.** HTTP/1.1 keeps the connection unless the request says `Connection: close`;
//!   HTTP/1.0 closes it unless the request says `Connection: keep-alive`. A `close` anywhere in the
//!   field wins.
//!
//! Every request gets `200 OK` with `Hello, world!` (HEAD: the same head, no body).
//!
//! Prints `listening on HOST:PORT` as its first line. SIGINT or SIGTERM shuts it down gracefully:
//! answers already queued are flushed (for at most 5 s) and every connection is closed. Exit codes: 0
//! after that, 1 when it cannot start or the loop fails, 2 for bad command-line input.
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::LazyLock;

use clap::Parser;
use reactor::mio::event::Event;
use reactor::{
    CloseReason, Config, ConnId, Context, EventLoop, Handler, ListenerOptions, Next, Origin, SourceId,
};

#[path = "support/shutdown.rs"]
mod shutdown;

use shutdown::ShutdownSignals;

/// Largest request head (request line and headers, up to the blank line) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Largest request body accepted (and discarded).
pub const MAX_BODY: usize = 64 * 1024;
/// Responses waiting to be written above which the connection's remaining requests wait.
pub const PAUSE_ABOVE: usize = 64 * 1024;
/// Responses gathered before they are handed to the loop in one send.
const BATCH: usize = 16 * 1024;

const BODY: &[u8] = b"Hello, world!\n";

/// HTTP/1.1 "hello" server built on the reactor.
#[derive(Debug, Parser)]
struct Cli {
    /// Address to listen on; port 0 picks a free port (printed on the first line).
    #[arg(long, visible_alias = "listen", default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> io::Result<()> {
    let mut event_loop = EventLoop::new(Config::default(), Hello::default())?;
    let (_, addr) = event_loop.listen(&ListenerOptions::new(cli.addr).backlog(4096))?;
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

/// One parsed request: how many bytes it took, and what its answer depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Bytes of head and body.
    pub len: usize,
    /// A HEAD request: answer without a body.
    pub head_only: bool,
    /// Keep the connection after answering.
    pub keep_alive: bool,
    /// HTTP/1.0 (which needs `Connection: keep-alive` spelled out to keep the connection).
    pub http10: bool,
}

/// What the bytes at the front of a connection's buffer are.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole request.
    Complete(Request),
    /// Not all there yet: read more.
    Partial,
    /// Refuse with this status line, then close.
    Refuse(&'static str),
}

/// The status line of a request refused as malformed.
const BAD_REQUEST: &str = "400 Bad Request";

/// How far parsing the request at the front of a connection's buffer has come, kept between reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Bytes at the front already searched for the end of the head (which is not among them).
    searched: usize,
    /// The request whose head is parsed, while its body is still arriving.
    waiting: Option<Request>,
    /// Bytes searched for the end of a head, over every request parsed with this `Progress`: each byte
    /// of a head should be searched once, however it arrives.
    pub bytes_searched: u64,
}

/// Parses the request at the front of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    parse_resuming(buf, &mut Progress::default())
}

/// Parses the request at the front of `buf`, which starts with the bytes the last call with `progress`
/// saw: only what arrived since is searched for the end of the head, and a body arriving in pieces
/// does not have its head parsed again. A head arriving a byte at a time therefore costs its length,
/// not its length squared. `progress` starts afresh after a complete or refused request.
pub fn parse_resuming(buf: &[u8], progress: &mut Progress) -> Parsed {
    let parsed = match progress.waiting {
        Some(request) if buf.len() < request.len => return Parsed::Partial,
        Some(request) => Parsed::Complete(request),
        None => {
            let window = &buf[..buf.len().min(MAX_HEAD)];
            let from = progress.searched.min(window.len());
            progress.bytes_searched += (window.len() - from) as u64;
            match head_end(window, from) {
                None if buf.len() >= MAX_HEAD => Parsed::Refuse("431 Request Header Fields Too Large"),
                None => {
                    progress.searched = window.len();
                    return Parsed::Partial;
                }
                // The head with its last line's CRLF: every line ends in CRLF.
                Some(end) => match parse_head(&buf[..end + 2]) {
                    Ok(request) if buf.len() < request.len => {
                        progress.waiting = Some(request);
                        return Parsed::Partial;
                    }
                    Ok(request) => Parsed::Complete(request),
                    Err(status) => Parsed::Refuse(status),
                },
            }
        }
    };
    (progress.searched, progress.waiting) = (0, None);
    parsed
}

/// Parses a request head (its lines with their CRLFs, without the blank line that ends it) into the
/// request it starts, or the status to refuse it with. The rules are RFC 9112's, strictly: where two
/// servers in a row could frame the same bytes differently, the request is refused.
fn parse_head(head: &[u8]) -> Result<Request, &'static str> {
    let mut rest = head;
    let request_line = take_line(&mut rest)?;
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD_REQUEST);
    };
    let http10 = match version {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        _ => return Err(BAD_REQUEST),
    };
    if method.is_empty()
        || !method.iter().all(u8::is_ascii_uppercase)
        || target.is_empty()
        || !target.iter().all(u8::is_ascii_graphic)
    {
        return Err(BAD_REQUEST);
    }
    let (mut host, mut body, mut close, mut keep_alive) = (false, None, false, false);
    while !rest.is_empty() {
        let line = take_line(&mut rest)?;
        let colon = line.iter().position(|&b| b == b':').ok_or(BAD_REQUEST)?;
        let (name, value) = (&line[..colon], trim_whitespace(&line[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| TOKEN[b as usize]) {
            return Err(BAD_REQUEST);
        }
        if name.eq_ignore_ascii_case(b"host") {
            // RFC 9112 §3.2: a second Host is as bad as none.
            if host {
                return Err(BAD_REQUEST);
            }
            host = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            // Any `close` ends the connection, whatever else is listed (RFC 9112 §9.6).
            for option in value.split(|&b| b == b',').map(trim_whitespace) {
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // A second length, even an equal one, is refused rather than trusted to match downstream.
            if body.is_some() {
                return Err(BAD_REQUEST);
            }
            body = Some(content_length(value).ok_or(BAD_REQUEST)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err("501 Not Implemented");
        }
    }
    if !host && !http10 {
        return Err(BAD_REQUEST);
    }
    let body = body.unwrap_or(0);
    if body > MAX_BODY {
        return Err("413 Content Too Large");
    }
    Ok(Request {
        len: head.len() + 2 + body,
        head_only: method == b"HEAD",
        keep_alive: !close && (keep_alive || !http10),
        http10,
    })
}

/// Takes the first line off `rest`, without its CRLF. Refuses a CR that is not part of a CRLF (RFC
/// 9112 §2.2), a bare LF, and every other control byte but HTAB; bytes above 0x7F (obs-text) pass.
fn take_line<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], &'static str> {
    let mut from = 0;
    loop {
        let at = from + rest[from..].iter().position(|&b| b < 0x20 || b == 0x7f).ok_or(BAD_REQUEST)?;
        match rest[at] {
            b'\t' => from = at + 1,
            b'\r' if rest.get(at + 1) == Some(&b'\n') => {
                let line = &rest[..at];
                *rest = &rest[at + 2..];
                return Ok(line);
            }
            _ => return Err(BAD_REQUEST),
        }
    }
}

/// `value` without the optional whitespace around it: SP and HTAB only (RFC 9110 §5.6.3), not the
/// vertical tabs, form feeds and Unicode spaces that `str::trim` would also take.
fn trim_whitespace(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// A Content-Length value: one or more ASCII digits and nothing else (RFC 9110 §8.6), no sign, within
/// `usize`.
fn content_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0usize, |n, &b| match b {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(usize::from(b - b'0')),
        _ => None,
    })
}

/// The bytes a field name may hold (RFC 9110 §5.6.2 `tchar`), as a table: a name is checked byte by
/// byte on every request.
const TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric()
            || matches!(
                b as u8,
                b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            );
        b += 1;
    }
    table
};

/// The end of the request head (the index of its blank line's CRLF CRLF) within `buf`, if it is there,
/// searching from `from`: no LF before it ends the head.
fn head_end(buf: &[u8], mut from: usize) -> Option<usize> {
    // Jump from LF to LF (a fast byte search) rather than comparing four bytes at every position.
    while let Some(lf) = buf[from..].iter().position(|&b| b == b'\n') {
        let at = from + lf;
        if at >= 3 && &buf[at - 3..=at] == b"\r\n\r\n" {
            return Some(at - 3);
        }
        from = at + 1;
    }
    None
}

/// Appends the answer to `request` to `out`.
fn respond(out: &mut Vec<u8>, request: &Request) {
    // The three possible heads, formatted once.
    static HEADS: LazyLock<[Vec<u8>; 3]> = LazyLock::new(|| {
        ["", "Connection: close\r\n", "Connection: keep-alive\r\n"].map(|connection| {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{connection}\r\n",
                BODY.len()
            )
            .into_bytes()
        })
    });
    let head = match (request.keep_alive, request.http10) {
        (true, false) => 0,
        (false, _) => 1,
        (true, true) => 2,
    };
    out.extend_from_slice(&HEADS[head]);
    if !request.head_only {
        out.extend_from_slice(BODY);
    }
}

/// What to do with a connection after answering what its buffer holds.
enum Outcome {
    /// Read more requests.
    Continue,
    /// Too many responses wait: stop reading until they drain.
    Pause,
    /// Answered a request that ends the connection.
    Close,
}

/// Requests read but not yet answered on one connection.
#[derive(Debug, Default)]
struct Pending {
    /// At most `MAX_HEAD + MAX_BODY` plus one read.
    buf: Vec<u8>,
    /// How far the request at the front of `buf` has been parsed.
    progress: Progress,
    /// Reading is paused until the responses drain.
    paused: bool,
}

/// The server's [`Handler`]: per connection, the bytes of requests not yet answered.
#[derive(Debug, Default)]
pub struct Hello {
    /// At each connection's [`ConnId::index`]: the loop's slots are dense, so a `Vec` serves without
    /// hashing on every request.
    pending: Vec<Pending>,
    /// Responses being gathered for one send.
    out: Vec<u8>,
    /// Requests answered with 200, for tests.
    pub answered: u64,
    /// Requests refused (4xx/5xx), for tests.
    pub refused: u64,
    /// Times a connection was paused until its responses drained, for tests.
    pub pauses: u64,
    /// Bytes searched for the end of a request head, for tests: about one per head byte received.
    pub head_bytes_searched: u64,
    /// SIGINT and SIGTERM, once `run` has registered them (never when a test drives the handler).
    signals: Option<ShutdownSignals>,
}

impl Hello {
    /// The state of `conn`.
    fn pending(&mut self, conn: ConnId) -> &mut Pending {
        let at = conn.index();
        if at >= self.pending.len() {
            self.pending.resize_with(at + 1, Pending::default);
        }
        &mut self.pending[at]
    }

    /// Answers the requests in `data` and in what was kept of earlier reads, keeping any partial one.
    fn answer_data(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        pending: &mut Pending,
        data: &[u8],
    ) -> Outcome {
        if pending.buf.is_empty() {
            // The common case, a read that holds whole requests: answer them where they lie.
            let (outcome, used) = self.answer(ctx, conn, data, &mut pending.progress);
            pending.buf.extend_from_slice(&data[used..]);
            return outcome;
        }
        pending.buf.extend_from_slice(data);
        let (outcome, used) = self.answer(ctx, conn, &pending.buf, &mut pending.progress);
        pending.buf.drain(..used);
        outcome
    }

    /// Answers every complete request at the front of `buf`; returns how many bytes they took.
    /// `progress` is how far the request at the front of `buf` was parsed before, and is left saying
    /// how far the partial one that remains was.
    fn answer(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        buf: &[u8],
        progress: &mut Progress,
    ) -> (Outcome, usize) {
        let mut used = 0;
        let outcome = loop {
            if self.out.len() >= BATCH && !self.flush(ctx, conn) {
                break Outcome::Close;
            }
            if ctx.queued(conn).unwrap_or(0) > PAUSE_ABOVE {
                break Outcome::Pause;
            }
            let searched = progress.bytes_searched;
            let parsed = parse_resuming(&buf[used..], progress);
            self.head_bytes_searched += progress.bytes_searched - searched;
            match parsed {
                Parsed::Partial => break Outcome::Continue,
                Parsed::Complete(request) => {
                    used += request.len;
                    self.answered += 1;
                    respond(&mut self.out, &request);
                    if !request.keep_alive {
                        break Outcome::Close;
                    }
                }
                Parsed::Refuse(status) => {
                    self.refused += 1;
                    let _ = write!(
                        self.out,
                        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    break Outcome::Close;
                }
            }
        };
        if !self.flush(ctx, conn) {
            return (Outcome::Close, used);
        }
        (outcome, used)
    }

    /// Hands the gathered responses to the loop; false if the connection cannot take them.
    fn flush(&mut self, ctx: &mut Context<'_>, conn: ConnId) -> bool {
        let sent = self.out.is_empty() || ctx.send(conn, &self.out).is_ok();
        self.out.clear();
        sent
    }
}

impl Handler for Hello {
    type Message = ();

    fn on_source_ready(&mut self, ctx: &mut Context<'_>, source: SourceId, _: &Event) {
        if let Some(signals) = &mut self.signals {
            signals.on_ready(ctx, source);
        }
    }

    fn on_open(&mut self, _: &mut Context<'_>, conn: ConnId, _: Origin) {
        *self.pending(conn) = Pending::default();
    }

    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        // Taken out while answering, which needs `self` too.
        let mut pending = std::mem::take(self.pending(conn));
        let next = match self.answer_data(ctx, conn, &mut pending, data) {
            Outcome::Continue => Next::Continue,
            Outcome::Pause => {
                pending.paused = true;
                self.pauses += 1;
                Next::Pause
            }
            Outcome::Close => Next::Close,
        };
        *self.pending(conn) = pending;
        next
    }

    fn on_drained(&mut self, ctx: &mut Context<'_>, conn: ConnId) {
        // Requests that waited while responses drained.
        if !self.pending(conn).paused {
            return;
        }
        let mut pending = std::mem::take(self.pending(conn));
        match self.answer_data(ctx, conn, &mut pending, &[]) {
            Outcome::Continue => {
                pending.paused = false;
                let _ = ctx.resume_reading(conn);
            }
            Outcome::Pause => {}
            Outcome::Close => {
                let _ = ctx.close(conn);
            }
        }
        *self.pending(conn) = pending;
    }

    fn on_close(&mut self, _: &mut Context<'_>, conn: ConnId, _: &CloseReason) {
        // Frees the buffer; the slot's next connection starts afresh in on_open.
        *self.pending(conn) = Pending::default();
    }
}
