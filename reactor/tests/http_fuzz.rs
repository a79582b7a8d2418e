//! Fuzz-style checks of the HTTP example's request parser with seeded random input: no panic, no
//! answer that claims more bytes than it was given, and nothing past the head limit ever buffered as
//! "partial". Each failure names its seed.

#[allow(dead_code)] // the example's `main`, server and command line are not used here
#[path = "../examples/http.rs"]
mod http;

use http::{MAX_BODY, MAX_HEAD, Parsed, parse};
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
