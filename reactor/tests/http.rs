//! The HTTP example: keep-alive, pipelining, requests split over many reads, and refusals.

mod util;

#[allow(dead_code)] // the example's `main` and command line are not used here
#[path = "../examples/http.rs"]
mod http;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use http::{Hello, MAX_HEAD, Parsed, parse};
use reactor::{Config, EventLoop, ListenerOptions};
use util::Server;

/// A response as the client saw it.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A blocking client that reads responses one by one from a kept-alive connection.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).unwrap())
    }

    /// A client whose receive buffer is small and fixed, so the kernel cannot absorb many responses.
    fn connect_small_window(addr: SocketAddr) -> Client {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(32 * 1024).unwrap();
        socket.connect(&addr.into()).unwrap();
        Client::from_stream(socket.into())
    }

    fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.set_nodelay(true).unwrap();
        Client { writer: stream.try_clone().unwrap(), reader: BufReader::new(stream) }
    }

    /// Reads one response; a HEAD response has no body whatever its Content-Length says.
    #[track_caller]
    fn response(&mut self, head_only: bool) -> Response {
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).unwrap();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3)?.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            let line = line.strip_suffix("\r\n").unwrap_or_else(|| panic!("unterminated header {line:?}"));
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("a header");
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let mut response = Response { status, headers, body: Vec::new() };
        let len: usize = response.header("content-length").expect("Content-Length").parse().unwrap();
        if !head_only {
            response.body = vec![0; len];
            self.reader.read_exact(&mut response.body).unwrap();
        }
        response
    }

    /// True once the server has closed the connection (nothing more to read).
    fn at_eof(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok() && rest.is_empty()
    }
}

#[track_caller]
fn assert_hello(response: &Response) {
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, b"Hello, world!\n");
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let server = Server::start(Config::default(), Hello::default());
    let mut client = Client::connect(server.addr);
    for i in 0..100 {
        write!(client.writer, "GET /{i} HTTP/1.1\r\nHost: test\r\nUser-Agent: t\r\n\r\n").unwrap();
        let response = client.response(false);
        assert_hello(&response);
        assert_eq!(response.header("connection"), None, "HTTP/1.1 keeps the connection by default");
    }
    client.writer.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
    let last = client.response(false);
    assert_hello(&last);
    assert_eq!(last.header("connection"), Some("close"));
    assert!(client.at_eof(), "the server kept the connection after Connection: close");
    drop(client);
    assert_eq!(server.finish().answered, 101);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    const REQUESTS: usize = 5_000;
    let server = Server::start(Config::default(), Hello::default());
    let mut client = Client::connect(server.addr);
    // GET and HEAD alternate: a response in the wrong order would be read with the wrong body length.
    let mut burst = String::new();
    for i in 0..REQUESTS {
        let method = if i % 3 == 0 { "HEAD" } else { "GET" };
        burst.push_str(&format!("{method} /{i} HTTP/1.1\r\nHost: test\r\n\r\n"));
    }
    burst
        .push_str("POST /last HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    // Written from another thread: all of it may not fit in the socket buffers before we read.
    let mut writer = client.writer.try_clone().unwrap();
    let sending = std::thread::spawn(move || writer.write_all(burst.as_bytes()));
    for i in 0..REQUESTS {
        let head_only = i % 3 == 0;
        let response = client.response(head_only);
        assert_eq!(response.status, 200, "request {i}");
        if !head_only {
            assert_hello(&response);
        }
    }
    assert_eq!(client.response(false).header("connection"), Some("close"));
    assert!(client.at_eof());
    sending.join().unwrap().unwrap();
    drop(client);
    assert_eq!(server.finish().answered, REQUESTS as u64 + 1);
}

#[test]
fn a_client_that_pipelines_without_reading_pauses_its_connection() {
    // 120k tiny requests (3 MiB) ask for 9 MiB of responses: more than the server's socket send
    // buffer (4 MiB at most) and our small receive window can hold, so the server must pause.
    const REQUESTS: usize = 120_000;
    let server = Server::start(Config::default(), Hello::default());
    let mut client = Client::connect_small_window(server.addr);
    let burst = "GET / HTTP/1.1\r\nHost:t\r\n\r\n".repeat(REQUESTS);
    let mut writer = client.writer.try_clone().unwrap();
    // Nothing is read until every request is written (they wait in the kernel meanwhile), or until a
    // deadline, should the kernel not take them all while the server is paused.
    let sending = std::thread::spawn(move || writer.write_all(burst.as_bytes()));
    testkit::wait_for(Duration::from_secs(10), || sending.is_finished());
    for i in 0..REQUESTS {
        let response = client.response(false);
        assert_eq!(response.status, 200, "request {i}");
    }
    sending.join().unwrap().unwrap();
    drop(client);
    let hello = server.finish();
    assert_eq!(hello.answered, REQUESTS as u64);
    assert!(hello.pauses > 0, "the server never paused a client that did not read");
}

#[test]
fn a_request_split_into_one_byte_writes_is_answered_once() {
    let server = Server::start(Config::default(), Hello::default());
    let mut client = Client::connect(server.addr);
    let request = b"GET /slowly HTTP/1.1\r\nHost: test\r\nAccept: */*\r\n\r\n";
    for _ in 0..2 {
        for byte in request {
            client.writer.write_all(std::slice::from_ref(byte)).unwrap();
        }
        assert_hello(&client.response(false));
    }
    drop(client);
    assert_eq!(server.finish().answered, 2);
}

#[test]
fn malformed_requests_get_400_and_a_close() {
    let server = Server::start(Config::default(), Hello::default());
    let cases: [&[u8]; 8] = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\nX-Smuggled: y\r\n\r\n",
        b"GET / HTTP/2.7\r\n\r\n",
        b"GET / HTTP/1.1\r\nNoColonHere\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: lots\r\n\r\n",
        b"get / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nUser-Agent: no host\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\rX-Smuggled: y\r\n\r\n",
    ];
    for case in cases {
        let mut client = Client::connect(server.addr);
        client.writer.write_all(case).unwrap();
        let response = client.response(false);
        assert_eq!(response.status, 400, "{:?}", String::from_utf8_lossy(case));
        assert_eq!(response.header("connection"), Some("close"));
        assert!(client.at_eof());
    }
    let hello = server.finish();
    assert_eq!((hello.answered, hello.refused), (0, 8));
}

#[test]
fn oversize_headers_get_431_and_a_close() {
    let server = Server::start(Config::default(), Hello::default());
    let mut client = Client::connect(server.addr);
    let header = format!("X-Filler: {}\r\n", "f".repeat(100));
    let mut request = String::from("GET / HTTP/1.1\r\n");
    while request.len() <= MAX_HEAD {
        request.push_str(&header);
    }
    // No blank line: the server must not wait for one past its limit.
    client.writer.write_all(request.as_bytes()).unwrap();
    assert_eq!(client.response(false).status, 431);
    assert!(client.at_eof());
    drop(client);
    assert_eq!(server.finish().refused, 1);
}

#[test]
fn http10_closes_unless_asked_to_keep_alive() {
    let server = Server::start(Config::default(), Hello::default());
    let mut kept = Client::connect(server.addr);
    for _ in 0..2 {
        kept.writer.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
        let response = kept.response(false);
        assert_hello(&response);
        assert_eq!(response.header("connection"), Some("keep-alive"));
    }
    let mut closed = Client::connect(server.addr);
    closed.writer.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert_hello(&closed.response(false));
    assert!(closed.at_eof());
    drop((kept, closed));
    assert_eq!(server.finish().answered, 3);
}

#[test]
fn the_parser_waits_for_the_whole_body() {
    let request = b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\n\r\nbody";
    for cut in 0..request.len() {
        assert_eq!(parse(&request[..cut]), Parsed::Partial, "cut at {cut}");
    }
    assert!(matches!(parse(request), Parsed::Complete(r) if r.len == request.len() && r.keep_alive));
}

/// What `parse` makes of a whole request: `Ok` with the request, `Err` with the refusal's status code.
fn outcome(request: &[u8]) -> Result<http::Request, u16> {
    match parse(request) {
        Parsed::Complete(r) => Ok(r),
        Parsed::Refuse(status) => Err(status[..3].parse().unwrap()),
        Parsed::Partial => panic!("{:?} is not a whole request", String::from_utf8_lossy(request)),
    }
}

/// A request with `header` among a Host and a five-byte body.
fn with_header(header: &str) -> Vec<u8> {
    format!("POST / HTTP/1.1\r\nHost: test\r\n{header}\r\n\r\nhello").into_bytes()
}

#[test]
fn content_length_is_digits_only() {
    // RFC 9110 §8.6: Content-Length = 1*DIGIT. A sign, a base, a list or a non-ASCII digit is not a length.
    for value in ["+5", "-5", "0x5", "5.0", "5 5", "5,5", "", "\u{0665}", "5e0"] {
        let request = with_header(&format!("Content-Length: {value}"));
        assert_eq!(outcome(&request).map(|r| r.len), Err(400), "Content-Length: {value:?}");
    }
    for value in ["5", "005", " 5", "5 ", "\t5\t"] {
        let request = with_header(&format!("Content-Length:{value}"));
        assert_eq!(outcome(&request).map(|r| r.len), Ok(request.len()), "Content-Length:{value:?}");
    }
}

#[test]
fn only_space_and_tab_pad_a_field_value() {
    // RFC 9110 §5.5: optional whitespace is SP or HTAB; vertical tab, form feed and Unicode spaces are not.
    for pad in ["\x0b", "\x0c", "\u{a0}", "\u{2003}", "\u{3000}"] {
        for value in [format!("{pad}5"), format!("5{pad}")] {
            let request = with_header(&format!("Content-Length: {value}"));
            assert_eq!(outcome(&request).map(|r| r.len), Err(400), "Content-Length: {value:?}");
        }
    }
}

#[test]
fn a_bare_cr_in_the_head_is_refused() {
    // RFC 9112 §2.2: a CR not followed by LF is invalid; taken as a line end it would smuggle a header.
    for header in ["X-A: a\rX-B: b", "X-A: a\r", "X-A:\r", "X\r-A: a"] {
        assert_eq!(outcome(&with_header(header)).map(|r| r.len), Err(400), "{header:?}");
    }
    assert_eq!(outcome(b"GET /a\rb HTTP/1.1\r\nHost: test\r\n\r\n").map(|r| r.len), Err(400));
}

#[test]
fn http11_needs_exactly_one_host() {
    // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, and for any request with two.
    assert_eq!(outcome(b"GET / HTTP/1.1\r\n\r\n").map(|r| r.len), Err(400));
    assert_eq!(outcome(b"GET / HTTP/1.1\r\nUser-Agent: t\r\n\r\n").map(|r| r.len), Err(400));
    assert_eq!(outcome(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n").map(|r| r.len), Err(400));
    assert_eq!(outcome(b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n").map(|r| r.len), Err(400));
    // HTTP/1.0 may leave it out; an empty Host is a valid one.
    assert!(outcome(b"GET / HTTP/1.0\r\n\r\n").is_ok());
    assert!(outcome(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").is_ok());
}

#[test]
fn close_wins_over_keep_alive() {
    // RFC 9112 §9.6: a close option ends the connection, whatever else the field lists.
    for (version, connection) in [
        ("1.1", "Connection: close, keep-alive"),
        ("1.1", "Connection: keep-alive,CLOSE"),
        ("1.1", "Connection: keep-alive\r\nConnection: close"),
        ("1.1", "Connection: close\r\nConnection: keep-alive"),
        ("1.0", "Connection: close, keep-alive"),
        ("1.0", "Connection: keep-alive \t, close"),
    ] {
        let request = format!("GET / HTTP/{version}\r\nHost: test\r\n{connection}\r\n\r\n");
        let keep = outcome(request.as_bytes()).map(|r| r.keep_alive);
        assert_eq!(keep, Ok(false), "{request:?}");
    }
    let request = b"GET / HTTP/1.0\r\nConnection: upgrade, Keep-Alive\r\n\r\n";
    assert_eq!(outcome(request).map(|r| r.keep_alive), Ok(true));
}

#[test]
fn a_second_content_length_is_refused() {
    // Two lengths, equal or not, are how a request gets framed differently by two servers in a row.
    for headers in ["Content-Length: 5\r\nContent-Length: 5", "Content-Length: 5\r\ncontent-length: 0"] {
        assert_eq!(outcome(&with_header(headers)).map(|r| r.len), Err(400), "{headers:?}");
    }
}

#[test]
fn the_server_closes_after_close_with_keep_alive() {
    let server = Server::start(Config::default(), Hello::default());
    let mut client = Client::connect(server.addr);
    client.writer.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close, keep-alive\r\n\r\n").unwrap();
    let response = client.response(false);
    assert_hello(&response);
    assert_eq!(response.header("connection"), Some("close"));
    assert!(client.at_eof(), "the server kept the connection after Connection: close, keep-alive");
    drop(client);
    assert_eq!(server.finish().answered, 1);
}

#[test]
fn a_head_arriving_a_byte_at_a_time_is_searched_once() {
    util::init();
    // The loop runs on this thread, one turn per byte, so that every read holds exactly one byte.
    let mut event_loop = EventLoop::new(Config::default(), Hello::default()).unwrap();
    let (_, addr) = event_loop.listen(&ListenerOptions::new(util::any_local_address())).unwrap();
    let mut client = Client::connect(addr);
    let mut head = String::from("POST /slowly HTTP/1.1\r\nHost: test\r\n");
    for i in 0..100 {
        head.push_str(&format!("X-Filler-{i:03}: {}\r\n", "f".repeat(24)));
    }
    head.push_str("Content-Length: 1000\r\n\r\n");
    let mut request = head.clone().into_bytes();
    request.resize(head.len() + 1000, b'b');
    for (sent, byte) in request.iter().enumerate() {
        client.writer.write_all(std::slice::from_ref(byte)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while event_loop.context().stats().bytes_in <= sent as u64 {
            assert!(Instant::now() < deadline, "byte {sent} did not reach the server");
            event_loop.run_once(Some(Duration::from_millis(100))).unwrap();
        }
    }
    assert_hello(&client.response(false));
    let hello = event_loop.handler();
    assert_eq!(hello.answered, 1);
    // Searching the whole buffer again on every read costs about head² / 2 (over 5 million here).
    assert!(
        hello.head_bytes_searched <= head.len() as u64,
        "{} bytes searched for the end of a {}-byte head",
        hello.head_bytes_searched,
        head.len()
    );
}

/// `--addr` names the listening address, as in `echo-server`; `--listen` is still accepted.
#[test]
fn listen_still_names_the_address_as_addr_does() {
    let server = util::start_example_with("http", "--listen", &[]);
    let mut client = Client::connect(server.addr);
    client.writer.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    assert_hello(&client.response(false));
}

#[test]
fn sigterm_closes_connections_and_exits_0() {
    let server = util::start_example("http", &[]);
    let mut client = Client::connect(server.addr);
    client.writer.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    assert_hello(&client.response(false));
    // One descriptor for the connection, so that dropping it after EOF closes it.
    drop(client.writer);
    util::sigterm_ends_cleanly(server, vec![client.reader.into_inner()]);
}
