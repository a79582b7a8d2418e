//! Fuzz-style checks of the HTTP example's request parser with seeded random input: no panic, no
//! answer that claims more bytes than it was given, and nothing past the head limit ever buffered as
//! "partial". Each failure names its seed.

#[allow(dead_code)] // the example's `main`, server and command line are not used here
#[path = "../examples/http.rs"]
mod http;

use http::{MAX_BODY, MAX_HEAD, Parsed, Progress, Request, parse, parse_resuming};
use testkit::Rng;

const PIECES: &[&[u8]] = &[
    b"GET",
    b"HEAD",
    b"POST",
    b"get",
    b" ",
    b"  ",
    b"/",
    b"/index",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/2",
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n\r\n",
    b":",
    b"Host: x",
    b"Connection: close",
    b"Connection: keep-alive",
    b"Content-Length: 0",
    b"Content-Length: 5",
    b"Content-Length: 99999999999999999999999",
    b"Content-Length: -1",
    b"Content-Length: 65537",
    b"Content-Length: +5",
    b"Content-Length: \x0b5",
    b"Content-Length: 5, 5",
    b"Connection: close, keep-alive",
    b"Host: a\rb",
    b"Host: y",
    b"\x0b",
    b"\t",
    b"Transfer-Encoding: chunked",
    b"\0",
    b"\xff\xfe",
    b"X-Long: ",
    b"hello",
];

/// Bytes that look like HTTP often enough to reach deep into the parser.
fn request_like(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.between(0, 40) {
        if rng.between(0, 9) == 0 {
            out.extend((0..rng.between(1, 32)).map(|_| rng.between(0, 255) as u8));
        } else {
            out.extend_from_slice(PIECES[rng.between(0, PIECES.len() - 1)]);
        }
    }
    out
}

/// What must hold for any input.
#[track_caller]
fn check(buf: &[u8], seed: u64) {
    match parse(buf) {
        Parsed::Complete(request) => {
            assert!(
                request.len <= buf.len(),
                "seed {seed}: request of {} bytes in {} bytes",
                request.len,
                buf.len()
            );
            assert!(request.len <= MAX_HEAD + MAX_BODY + 4, "seed {seed}: request of {} bytes", request.len);
            // A complete request stays complete, and the same, when more bytes follow it.
            let mut longer = buf.to_vec();
            longer.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            assert_eq!(parse(&longer), Parsed::Complete(request), "seed {seed}");
        }
        Parsed::Partial => {
            // Waiting for more is only allowed while the head could still fit, or a body is due.
            let head_done = buf.windows(4).any(|w| w == b"\r\n\r\n");
            assert!(
                head_done || buf.len() < MAX_HEAD,
                "seed {seed}: {} head bytes still 'partial'",
                buf.len()
            );
            assert!(buf.len() < MAX_HEAD + MAX_BODY + 4, "seed {seed}: {} bytes still 'partial'", buf.len());
        }
        Parsed::Refuse(status) => assert!(status.starts_with(char::is_numeric), "seed {seed}: {status}"),
    }
}

#[test]
fn random_request_like_bytes_never_panic_or_overclaim() {
    for seed in 0..20_000u64 {
        let mut rng = Rng::new(seed);
        let buf = request_like(&mut rng);
        check(&buf, seed);
        // Every prefix, as the bytes would arrive over many reads.
        for cut in (0..buf.len()).step_by(rng.between(1, 7)) {
            check(&buf[..cut], seed);
        }
    }
}

#[test]
fn parsing_as_bytes_arrive_agrees_with_parsing_from_scratch() {
    for seed in 0..20_000u64 {
        let mut rng = Rng::new(seed);
        let mut buf = request_like(&mut rng);
        if rng.between(0, 1) == 0 {
            // A valid head, so that bodies arriving in pieces are covered too.
            let body = rng.between(0, 300);
            let mut request =
                format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {body}\r\n\r\n").into_bytes();
            request.resize(request.len() + body, b'b');
            request.append(&mut buf);
            buf = request;
        }
        // One request after another, each fed in growing prefixes as reads would deliver it.
        let mut progress = Progress::default();
        // Each byte searched at most once (a request's search may run into the next request's bytes).
        let (mut start, mut cut, mut limit) = (0, 0, 0);
        while cut < buf.len() {
            cut = (cut + rng.between(1, 9)).min(buf.len());
            let expected = parse(&buf[start..cut]);
            assert_eq!(
                parse_resuming(&buf[start..cut], &mut progress),
                expected,
                "seed {seed}: {start}..{cut}"
            );
            if expected != Parsed::Partial || cut == buf.len() {
                limit += (cut - start).min(MAX_HEAD);
            }
            match expected {
                Parsed::Partial => {}
                Parsed::Complete(request) => (start, cut) = (start + request.len, start + request.len),
                Parsed::Refuse(_) => break,
            }
        }
        assert!(
            progress.bytes_searched as usize <= limit,
            "seed {seed}: {} bytes searched, at most {limit} expected",
            progress.bytes_searched
        );
    }
}

#[test]
fn a_head_that_never_ends_is_refused_at_the_limit() {
    let mut rng = Rng::new(9);
    for seed in 0..50u64 {
        let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
        while buf.len() < MAX_HEAD + 1024 {
            buf.extend_from_slice(PIECES[rng.between(0, PIECES.len() - 1)]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                buf.truncate(end); // keep the head open
            }
        }
        assert!(
            matches!(parse(&buf), Parsed::Refuse(s) if s.starts_with("431")),
            "seed {seed}: a {}-byte unfinished head was not refused with 431",
            buf.len()
        );
    }
}

#[test]
fn valid_requests_with_random_bodies_parse_to_their_exact_length() {
    for seed in 0..2_000u64 {
        let mut rng = Rng::new(seed);
        let body = rng.between(0, MAX_BODY);
        let head = format!("POST /{seed} HTTP/1.1\r\nHost: x\r\nContent-Length: {body}\r\n\r\n");
        let mut buf = head.into_bytes();
        let len = buf.len() + body;
        buf.resize(len, b'b');
        assert!(matches!(parse(&buf), Parsed::Complete(r) if r.len == len), "seed {seed}");
        if body > 0 {
            assert_eq!(parse(&buf[..len - 1]), Parsed::Partial, "seed {seed}: one byte short");
        }
    }
}

/// What one header line means for the request that carries it.
#[derive(Clone, Copy, Debug)]
enum Means {
    Host,
    Length(usize),
    Connection {
        close: bool,
        keep_alive: bool,
    },
    Chunked,
    Other,
    /// Refused with 400 wherever it appears.
    Bad,
}

/// Header lines (without their CRLF), valid and not, each with what it means: the framing rules spelled
/// out case by case, apart from the parser.
const HEADERS: &[(&[u8], Means)] = &[
    (b"Host: test", Means::Host),
    (b"host:test", Means::Host),
    (b"HOST: \t example.com:80 \t", Means::Host),
    (b"Host:", Means::Host),
    (b"Host: a\rb", Means::Bad),
    (b"Host: a\x00b", Means::Bad),
    (b"Host: a\x0bb", Means::Bad),
    (b"Content-Length: 5", Means::Length(5)),
    (b"content-length:0", Means::Length(0)),
    (b"Content-Length: 007", Means::Length(7)),
    (b"Content-Length: \t3 ", Means::Length(3)),
    (b"Content-Length: 65537", Means::Length(65537)),
    (b"Content-Length: +5", Means::Bad),
    (b"Content-Length: -1", Means::Bad),
    (b"Content-Length: \x0b5", Means::Bad),
    (b"Content-Length: 5\x0c", Means::Bad),
    ("Content-Length: \u{a0}5".as_bytes(), Means::Bad),
    (b"Content-Length: 5, 5", Means::Bad),
    (b"Content-Length: ", Means::Bad),
    (b"Content-Length: 0x5", Means::Bad),
    (b"Content-Length: 99999999999999999999999", Means::Bad),
    (b"Connection: close", Means::Connection { close: true, keep_alive: false }),
    (b"Connection: keep-alive", Means::Connection { close: false, keep_alive: true }),
    (b"Connection: close, keep-alive", Means::Connection { close: true, keep_alive: true }),
    (b"connection: Keep-Alive ,\tCLOSE", Means::Connection { close: true, keep_alive: true }),
    (b"Connection: upgrade", Means::Connection { close: false, keep_alive: false }),
    (b"Connection: closed", Means::Connection { close: false, keep_alive: false }),
    (b"Connection: close\r", Means::Bad),
    (b"Transfer-Encoding: chunked", Means::Chunked),
    (b"Accept: */*", Means::Other),
    (b"X-Tab:\tvalue\twith tabs", Means::Other),
    (b"X-Empty:", Means::Other),
    (b"Bad Name: x", Means::Bad),
    (b"NoColon", Means::Bad),
    (b" Folded: x", Means::Bad),
    (b"Name : x", Means::Bad),
    (b": no name", Means::Bad),
    (b"X-Nul: a\x00b", Means::Bad),
    (b"X-Del: a\x7fb", Means::Bad),
    (b"X-Bare-Lf: a\nb", Means::Bad),
];

/// The outcome the framing rules give a request with these header lines: the body length and whether
/// the connection stays, or the refusal's status code. The first line that decides, decides.
fn expected(headers: &[Means], http10: bool) -> Result<(usize, bool), u16> {
    let (mut hosts, mut length, mut close, mut keep_alive) = (0, None, false, false);
    for means in headers {
        match *means {
            Means::Host if hosts > 0 => return Err(400),
            Means::Host => hosts += 1,
            Means::Length(_) if length.is_some() => return Err(400),
            Means::Length(n) => length = Some(n),
            Means::Connection { close: c, keep_alive: k } => {
                (close, keep_alive) = (close | c, keep_alive | k)
            }
            Means::Chunked => return Err(501),
            Means::Other => {}
            Means::Bad => return Err(400),
        }
    }
    match length.unwrap_or(0) {
        _ if hosts == 0 && !http10 => Err(400),
        n if n > MAX_BODY => Err(413),
        n => Ok((n, !close && (keep_alive || !http10))),
    }
}

#[test]
fn random_header_sets_follow_the_framing_rules() {
    // Bad lines are drawn less often than the rest, so that most requests get as far as their end.
    let good: Vec<_> = HEADERS.iter().filter(|(_, means)| !matches!(means, Means::Bad)).collect();
    for seed in 0..5_000u64 {
        let mut rng = Rng::new(seed);
        let method = ["GET", "HEAD", "POST"][rng.between(0, 2)];
        let http10 = rng.between(0, 3) == 0;
        let mut buf = format!("{method} /{seed} HTTP/1.{}\r\n", if http10 { 0 } else { 1 }).into_bytes();
        let mut meanings = Vec::new();
        for _ in 0..rng.between(0, 6) {
            // Mostly a Host first, so that the other rules are reached.
            let (line, means) = if meanings.is_empty() && rng.between(0, 2) > 0 {
                HEADERS[0]
            } else if rng.between(0, 7) == 0 {
                HEADERS[rng.between(0, HEADERS.len() - 1)]
            } else {
                *good[rng.between(0, good.len() - 1)]
            };
            buf.extend_from_slice(line);
            buf.extend_from_slice(b"\r\n");
            meanings.push(means);
        }
        buf.extend_from_slice(b"\r\n");
        let head = buf.len();
        let expected = expected(&meanings, http10);
        let len = head + expected.map_or(0, |(body, _)| body);
        buf.resize(len, b'b');
        // A pipelined request after it must change nothing.
        if rng.between(0, 1) == 0 {
            buf.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        }
        let shown = String::from_utf8_lossy(&buf);
        let got = parse(&buf);
        match expected {
            Ok((_, keep_alive)) => {
                let request = Request { len, head_only: method == "HEAD", keep_alive, http10 };
                assert_eq!(got, Parsed::Complete(request), "seed {seed}: {shown:?}");
            }
            Err(status) => assert!(
                matches!(got, Parsed::Refuse(s) if s.starts_with(&status.to_string())),
                "seed {seed}: {shown:?} gave {got:?}, expected {status}"
            ),
        }
        // Before the head ends nothing is decided; after it, only a whole body completes the request.
        for cut in (0..len).step_by(rng.between(1, 13)) {
            let early = parse(&buf[..cut]);
            match expected {
                Err(_) if cut >= head => assert_eq!(early, got, "seed {seed}: cut at {cut} of {shown:?}"),
                _ => assert_eq!(early, Parsed::Partial, "seed {seed}: cut at {cut} of {shown:?}"),
            }
        }
    }
}
