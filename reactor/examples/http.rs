//! An HTTP/1.1 "hello" responder with keep-alive and pipelining, for reading and for load tests.
//!
//! ```text
//! cargo run --release -p reactor --example http -- --listen 127.0.0.1:8000
//! wrk -c 100 -d 10s http://127.0.0.1:8000/
//! ```
//!
//! What it shows:
//! - **Parsing across partial reads.** A request may arrive in many reads, and one read may hold many
//!   requests (pipelining). Each connection keeps the bytes of an unfinished request in its own buffer;
//!   every complete request in it is answered, in order, and the rest waits for the next read.
//! - **Bounded buffers.** A request head larger than [`MAX_HEAD`] is refused with 431, a body larger
//!   than [`MAX_BODY`] with 413, anything unparseable with 400; each closes the connection. A client that
//!   pipelines faster than it reads answers is paused once [`PAUSE_ABOVE`] bytes of responses wait, and
//!   its remaining requests are answered as the responses drain.
//! - **Keep-alive.** HTTP/1.1 keeps the connection unless the request says `Connection: close`;
//!   HTTP/1.0 closes it unless the request says `Connection: keep-alive`.
//!
//! Every request gets `200 OK` with `Hello, world!` (HEAD: the same head, no body).
//!
//! Prints `listening on HOST:PORT` as its first line. Exit codes: 1 when it cannot start or the loop
//! fails, 2 for bad command-line input; it serves until killed.
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::LazyLock;

use clap::Parser;
use reactor::{CloseReason, Config, ConnId, Context, EventLoop, Handler, ListenerOptions, Next, Origin};

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
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
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
    let (_, addr) = event_loop.listen(&ListenerOptions::new(cli.listen).backlog(4096))?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on {addr}")?;
    stdout.flush()?;
    event_loop.run()
}

/// One parsed request: how many bytes it took, and what its answer depends on.
#[derive(Debug, PartialEq, Eq)]
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

/// Parses the request at the front of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let Some(end) = head_end(window) else {
        return if buf.len() >= MAX_HEAD {
            Parsed::Refuse("431 Request Header Fields Too Large")
        } else {
            Parsed::Partial
        };
    };
    // The head with its last line's CRLF: every line ends in CRLF, and a bare LF is refused.
    let Ok(head) = std::str::from_utf8(&buf[..end + 2]) else { return Parsed::Refuse("400 Bad Request") };
    let mut lines = head.split_terminator('\n').map(|line| line.strip_suffix('\r'));
    let Some(Some(request_line)) = lines.next() else { return Parsed::Refuse("400 Bad Request") };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Refuse("400 Bad Request");
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Parsed::Refuse("400 Bad Request"),
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) || target.is_empty() {
        return Parsed::Refuse("400 Bad Request");
    }
    let mut keep_alive = !http10;
    let mut body: Option<usize> = None;
    for line in lines {
        let Some((name, value)) = line.and_then(|l| l.split_once(':')) else {
            return Parsed::Refuse("400 Bad Request");
        };
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            return Parsed::Refuse("400 Bad Request");
        }
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            for option in value.split(',').map(str::trim) {
                if option.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if option.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            match value.parse::<usize>() {
                Ok(n) if body.is_none_or(|b| b == n) => body = Some(n),
                _ => return Parsed::Refuse("400 Bad Request"),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Refuse("501 Not Implemented");
        }
    }
    let body = body.unwrap_or(0);
    if body > MAX_BODY {
        return Parsed::Refuse("413 Content Too Large");
    }
    let len = end + 4 + body;
    if buf.len() < len {
        return Parsed::Partial;
    }
    Parsed::Complete(Request { len, head_only: method == "HEAD", keep_alive, http10 })
}

/// The end of the request head (the index of its blank line's CRLF CRLF) within `buf`, if it is there.
fn head_end(buf: &[u8]) -> Option<usize> {
    // Jump from LF to LF (a fast byte search) rather than comparing four bytes at every position.
    let mut from = 0;
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
            let (outcome, used) = self.answer(ctx, conn, data);
            pending.buf.extend_from_slice(&data[used..]);
            return outcome;
        }
        pending.buf.extend_from_slice(data);
        let (outcome, used) = self.answer(ctx, conn, &pending.buf);
        pending.buf.drain(..used);
        outcome
    }

    /// Answers every complete request at the front of `buf`; returns how many bytes they took.
    fn answer(&mut self, ctx: &mut Context<'_>, conn: ConnId, buf: &[u8]) -> (Outcome, usize) {
        let mut used = 0;
        let outcome = loop {
            if self.out.len() >= BATCH && !self.flush(ctx, conn) {
                break Outcome::Close;
            }
            if ctx.queued(conn).unwrap_or(0) > PAUSE_ABOVE {
                break Outcome::Pause;
            }
            match parse(&buf[used..]) {
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
