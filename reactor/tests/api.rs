//! The embedding API: outbound connects, timers, messages, user sources, and the token generation rule.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use reactor::mio::event::Event;
use reactor::mio::{Interest, net::UnixStream};
use reactor::{
    CloseKind, CloseReason, Config, ConnId, Context, EventLoop, Handler, Next, Origin, SourceId, TimerId,
    Turn,
};

/// Records what the loop told it.
#[derive(Debug, Default)]
struct Recorder {
    opened: Vec<(ConnId, Origin)>,
    closed: Vec<(ConnId, String, CloseKind)>,
    timers: Vec<u64>,
    messages: Vec<String>,
    data: Vec<(ConnId, Vec<u8>)>,
}

impl Handler for Recorder {
    type Message = String;
    fn on_data(&mut self, _: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        self.data.push((conn, data.to_vec()));
        Next::Continue
    }
    fn on_open(&mut self, _: &mut Context<'_>, conn: ConnId, origin: Origin) {
        self.opened.push((conn, origin));
    }
    fn on_close(&mut self, _: &mut Context<'_>, conn: ConnId, reason: &CloseReason) {
        let errno = match (reason.kind(), reason.error()) {
            (CloseKind::ConnectFailed | CloseKind::Error, Some(e)) => hostinfo::errno_name(e).to_owned(),
            _ => String::new(),
        };
        self.closed.push((conn, errno, reason.kind()));
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, _: TimerId, tag: u64) {
        self.timers.push(tag);
        if self.timers.len() == 2 {
            ctx.stop();
        }
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, message: String) {
        self.messages.push(message);
        if self.messages.len() == 3 {
            ctx.stop();
        }
    }
}

/// Runs turns until `done` holds, at most `turns` of them.
#[track_caller]
fn turn_until<H: Handler>(event_loop: &mut EventLoop<H>, turns: usize, done: impl Fn(&H) -> bool) {
    for _ in 0..turns {
        if done(event_loop.handler()) {
            return;
        }
        if event_loop.run_once(Some(Duration::from_millis(100))).unwrap() == Turn::Stopped {
            break;
        }
    }
    assert!(done(event_loop.handler()), "condition not reached within {turns} turns");
}

#[test]
fn connect_to_a_closed_port_reports_econnrefused() {
    util::init();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut event_loop = EventLoop::new(Config::default(), Recorder::default()).unwrap();
    let conn = match event_loop.context().connect(closed_port) {
        Ok(conn) => conn,
        Err(e) => panic!("refused at once rather than through the callbacks: {e}"),
    };
    turn_until(&mut event_loop, 50, |r| !r.closed.is_empty());
    let recorder = event_loop.into_handler();
    assert_eq!(recorder.closed, [(conn, "ECONNREFUSED".to_owned(), CloseKind::ConnectFailed)]);
    assert!(recorder.opened.is_empty());
}

#[test]
fn outbound_connect_opens_sends_queued_data_and_reads() {
    util::init();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut event_loop = EventLoop::new(Config::default(), Recorder::default()).unwrap();
    let mut ctx = event_loop.context();
    let conn = ctx.connect(listener.local_addr().unwrap()).unwrap();
    ctx.send(conn, b"queued before connect").unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    turn_until(&mut event_loop, 50, |r| !r.opened.is_empty());
    peer.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = [0; 21];
    // The queued bytes go out as the connect completes.
    for _ in 0..50 {
        if peer.peek(&mut got).map(|n| n == got.len()).unwrap_or(false) {
            break;
        }
        event_loop.run_once(Some(Duration::from_millis(20))).unwrap();
    }
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"queued before connect");
    peer.write_all(b"reply").unwrap();
    turn_until(&mut event_loop, 50, |r| !r.data.is_empty());
    let recorder = event_loop.into_handler();
    assert_eq!(recorder.opened, [(conn, Origin::Connected)]);
    assert_eq!(recorder.data, [(conn, b"reply".to_vec())]);
}

#[test]
fn timers_fire_in_order_and_cancelled_ones_do_not() {
    util::init();
    let mut event_loop = EventLoop::new(Config::default(), Recorder::default()).unwrap();
    let mut ctx = event_loop.context();
    ctx.set_timer(Duration::from_millis(30), 2);
    let cancelled = ctx.set_timer(Duration::from_millis(5), 99);
    ctx.set_timer(Duration::from_millis(10), 1);
    assert!(ctx.cancel_timer(cancelled));
    event_loop.run().unwrap();
    assert_eq!(event_loop.handler().timers, [1, 2]);
}

#[test]
fn messages_from_other_threads_arrive_in_order() {
    util::init();
    let mut event_loop = EventLoop::new(Config::default(), Recorder::default()).unwrap();
    let handle = event_loop.handle();
    let sender = std::thread::spawn(move || {
        for word in ["one", "two", "three"] {
            handle.send(word.to_owned()).unwrap();
        }
    });
    event_loop.run().unwrap();
    sender.join().unwrap();
    assert_eq!(event_loop.handler().messages, ["one", "two", "three"]);
}

#[test]
fn a_full_message_queue_refuses_instead_of_growing() {
    let config = Config { message_capacity: 2, ..Config::default() };
    let event_loop = EventLoop::new(config, Recorder::default()).unwrap();
    let handle = event_loop.handle();
    handle.send("a".into()).unwrap();
    handle.send("b".into()).unwrap();
    assert!(matches!(handle.send("c".into()), Err(std::sync::mpsc::TrySendError::Full(_))));
}

/// Closes the other connection when one has data, and in that close registers a source, which takes
/// the freed slot. The closed connection's event, still in the batch, must not reach the source.
#[derive(Default)]
struct SlotThief {
    conns: Vec<ConnId>,
    pipe: Option<(UnixStream, UnixStream)>,
    source: Option<SourceId>,
    stolen_slot: bool,
    wrong_events: usize,
    handled_first: bool,
}

impl Handler for SlotThief {
    type Message = ();
    fn on_open(&mut self, _: &mut Context<'_>, conn: ConnId, _: Origin) {
        self.conns.push(conn);
    }
    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: &[u8]) -> Next {
        if !self.handled_first {
            self.handled_first = true;
            let other = *self.conns.iter().find(|c| **c != conn).unwrap();
            ctx.abort(other).unwrap();
        }
        Next::Continue
    }
    fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: &CloseReason) {
        if self.source.is_some() {
            return;
        }
        let (mut quiet, peer) = UnixStream::pair().unwrap();
        let source = ctx.register(&mut quiet, Interest::READABLE).unwrap();
        // Same slot, new generation: the index repeats, the full identifier does not.
        self.stolen_slot = source.index() == conn.index() && source.as_u64() != conn.as_u64();
        self.source = Some(source);
        self.pipe = Some((quiet, peer));
    }
    fn on_source_ready(&mut self, _: &mut Context<'_>, _: SourceId, _: &Event) {
        // Nothing was ever written to the pipe: any readiness here is the closed connection's event.
        self.wrong_events += 1;
    }
}

#[test]
fn closed_token_reused_in_same_batch() {
    util::init();
    const ROUNDS: usize = 1_000;
    let mut in_batch = 0;
    for round in 0..ROUNDS {
        let mut event_loop = EventLoop::new(Config::default(), SlotThief::default()).unwrap();
        let (_, addr) = event_loop.listen(&reactor::ListenerOptions::new(util::any_local_address())).unwrap();
        let mut a = TcpStream::connect(addr).unwrap();
        let mut b = TcpStream::connect(addr).unwrap();
        turn_until(&mut event_loop, 50, |t| t.conns.len() == 2);
        // Both become readable before the next poll, so both events land in one batch.
        a.write_all(b"a").unwrap();
        b.write_all(b"b").unwrap();
        let stale_before = event_loop.stats().clone().stale_events;
        turn_until(&mut event_loop, 5, |t| t.source.is_some());
        // A few more turns: a misdelivered event would show up by now at the latest.
        for _ in 0..3 {
            event_loop.run_once(Some(Duration::ZERO)).unwrap();
        }
        let thief = event_loop.handler();
        assert!(thief.stolen_slot, "round {round}: the source did not take the closed connection's slot");
        assert_eq!(
            thief.wrong_events, 0,
            "round {round}: a closed connection's event reached the new source"
        );
        if event_loop.stats().clone().stale_events > stale_before {
            in_batch += 1;
        }
    }
    println!(
        "the closed connection's event was in the same batch (and dropped) in {in_batch} of {ROUNDS} rounds"
    );
    assert!(
        in_batch * 10 >= ROUNDS * 9,
        "only {in_batch} of {ROUNDS} rounds had the stale event in the batch"
    );
}

/// Sends until refused to a peer that never reads, and records how each refusal was worded.
#[derive(Default)]
struct Producer {
    sent: usize,
    refusals: Vec<std::io::ErrorKind>,
    drained: bool,
}

impl Handler for Producer {
    type Message = ();
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: Origin) {
        let too_big = vec![0; Config::default().max_output + 1];
        self.refusals.push(ctx.send(conn, &too_big).unwrap_err().kind());
        let chunk = vec![1; 64 * 1024];
        loop {
            match ctx.send(conn, &chunk) {
                Ok(()) => self.sent += chunk.len(),
                Err(e) => {
                    self.refusals.push(e.kind());
                    break;
                }
            }
        }
        assert!(ctx.queued(conn).unwrap() <= Config::default().max_output);
    }
    fn on_data(&mut self, _: &mut Context<'_>, _: ConnId, _: &[u8]) -> Next {
        Next::Continue
    }
    fn on_drained(&mut self, ctx: &mut Context<'_>, _: ConnId) {
        self.drained = true;
        ctx.stop();
    }
}

#[test]
fn send_refuses_past_the_output_cap_and_says_when_to_retry() {
    util::init();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut event_loop = EventLoop::new(Config::default(), Producer::default()).unwrap();
    event_loop.context().connect(listener.local_addr().unwrap()).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    turn_until(&mut event_loop, 50, |p| !p.refusals.is_empty());
    assert_eq!(
        event_loop.handler().refusals,
        [std::io::ErrorKind::InvalidInput, std::io::ErrorKind::WouldBlock],
        "too big for the cap, then full"
    );
    let sent = event_loop.handler().sent;
    let reader = std::thread::spawn(move || {
        let mut buffer = vec![0; 1 << 16];
        let mut total = 0;
        while total < sent {
            total += peer.read(&mut buffer).unwrap();
        }
        total
    });
    turn_until(&mut event_loop, 10_000, |p| p.drained);
    assert_eq!(reader.join().unwrap(), sent, "every accepted byte arrives");
}

/// Closes every connection on its first data, and remembers what it was given.
#[derive(Default)]
struct CloseOnFirstData {
    received: usize,
    closed: bool,
}

impl Handler for CloseOnFirstData {
    type Message = ();
    fn on_data(&mut self, _: &mut Context<'_>, _: ConnId, data: &[u8]) -> Next {
        self.received += data.len();
        Next::Close
    }
    fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, _: &CloseReason) {
        self.closed = true;
    }
}

/// After the loop closes a connection it reads on until the peer's FIN; what arrives then is counted as
/// discarded, not as input the application had.
#[test]
fn bytes_read_after_our_close_are_counted_as_discarded() {
    util::init();
    let mut event_loop = EventLoop::new(Config::default(), CloseOnFirstData::default()).unwrap();
    let (_, addr) = event_loop.listen(&reactor::ListenerOptions::new(util::any_local_address())).unwrap();
    let mut peer = TcpStream::connect(addr).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    peer.write_all(&[1; 100]).unwrap();
    turn_until(&mut event_loop, 50, |h| h.received > 0);
    // The loop's FIN: our side is shut, the connection lingers for ours.
    assert_eq!(peer.read(&mut [0; 16]).unwrap(), 0);
    peer.write_all(&[2; 300]).unwrap();
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    turn_until(&mut event_loop, 50, |h| h.closed);
    let counters = event_loop.stats().clone();
    assert_eq!(event_loop.handler().received, 100);
    assert_eq!((counters.bytes_in, counters.bytes_discarded), (100, 300));
}
