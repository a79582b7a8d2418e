//! Micro-benchmarks of the reactor's hot pieces, through its public API (the pieces themselves are
//! private to the crate):
//! - `timers`: set and cancel 100,000 timers (the timer queue's insert and cancel);
//! - `lookup`: a call on a live connection and on a stale id (the token table's generation check);
//! - `send`: a 64 B send that goes straight to the socket, and one that joins the queue of a peer that
//!   does not read (queued-output handling).
#![forbid(unsafe_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpStream as StdStream};
use std::time::{Duration, Instant};

use benches::fail::OrFail;
use std::hint::black_box;

use criterion::{Criterion, Throughput};
use reactor::{Config, ConnId, Context, EventLoop, Handler, ListenerOptions, Next, Origin};

const TIMERS: u64 = 100_000;
const CONNECTIONS: usize = 1_000;

/// Keeps the id of every connection it accepts, and never reads on its own.
#[derive(Debug, Default)]
struct Keeper {
    open: Vec<ConnId>,
}

impl Handler for Keeper {
    type Message = ();
    fn on_data(&mut self, _: &mut Context<'_>, _: ConnId, _: &[u8]) -> Next {
        Next::Continue
    }
    fn on_open(&mut self, _: &mut Context<'_>, conn: ConnId, _: Origin) {
        self.open.push(conn);
    }
}

fn main() {
    let settings = benches::prepare();
    let mut c = settings.criterion();
    timers(&mut c);
    lookup(&mut c);
    send(&mut c);
    c.final_summary();
}

fn timers(c: &mut Criterion) {
    let mut event_loop = EventLoop::new(quiet_config(), Keeper::default()).or_fail();
    let mut group = c.benchmark_group("reactor_internals/timers");
    group.throughput(Throughput::Elements(TIMERS));
    group.bench_function("set_then_cancel_100k", |b| {
        b.iter_custom(|rounds| {
            let mut ctx = event_loop.context();
            let mut ids = Vec::with_capacity(TIMERS as usize);
            let start = Instant::now();
            for _ in 0..rounds {
                // Spread deadlines over a minute, in an order that is not sorted.
                for i in 0..TIMERS {
                    let ms = (i * 7_919) % 60_000;
                    ids.push(ctx.set_timer(Duration::from_millis(ms + 1_000), i));
                }
                for id in ids.drain(..) {
                    black_box(ctx.cancel_timer(id));
                }
            }
            start.elapsed()
        })
    });
    group.finish();
}

/// A loop with `count` accepted connections, the client ends of them, and the listener's address.
fn loop_with_connections(count: usize) -> (EventLoop<Keeper>, Vec<StdStream>, SocketAddr) {
    let mut event_loop = EventLoop::new(quiet_config(), Keeper::default()).or_fail();
    let (_, addr) = event_loop.listen(&ListenerOptions::new("127.0.0.1:0".parse().or_fail())).or_fail();
    let peers = (0..count).map(|_| accept_one(&mut event_loop, addr)).collect();
    (event_loop, peers, addr)
}

/// Connects to the loop's listener and turns the loop until it has accepted the connection.
fn accept_one(event_loop: &mut EventLoop<Keeper>, addr: SocketAddr) -> StdStream {
    let before = event_loop.handler().open.len();
    let peer = StdStream::connect(addr).or_fail();
    let deadline = Instant::now() + Duration::from_secs(10);
    while event_loop.handler().open.len() == before {
        if Instant::now() > deadline {
            benches::fail("the loop accepted no connection within 10 s");
        }
        event_loop.run_once(Some(Duration::from_millis(10))).or_fail();
    }
    peer
}

fn lookup(c: &mut Criterion) {
    let (mut event_loop, _peers, _) = loop_with_connections(CONNECTIONS);
    let ids = event_loop.handler().open.clone();
    // A stale id: its connection closed and its slot went to a newer connection.
    let stale = ids[0];
    event_loop.context().abort(stale).or_fail();
    event_loop.run_once(Some(Duration::ZERO)).or_fail();
    let mut group = c.benchmark_group("reactor_internals/lookup");
    group.throughput(Throughput::Elements(ids.len() as u64));
    group.bench_function("live_ids_1000", |b| {
        b.iter(|| {
            let mut ctx = event_loop.context();
            for &id in &ids[1..] {
                black_box(ctx.queued(id).ok());
            }
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("stale_id", |b| {
        b.iter(|| black_box(event_loop.context().queued(black_box(stale)).is_err()))
    });
    group.finish();
}

fn send(c: &mut Criterion) {
    let (mut event_loop, mut peers, addr) = loop_with_connections(1);
    let reading = event_loop.handler().open[0];
    // The reading peer drains on its own thread, so the direct path never finds the socket full.
    let mut reader = peers.remove(0);
    std::thread::spawn(move || {
        let mut sink = vec![0u8; 1 << 16];
        while reader.read(&mut sink).is_ok_and(|n| n > 0) {}
    });
    let message = [7u8; 64];
    let mut group = c.benchmark_group("reactor_internals/send");
    group.throughput(Throughput::Bytes(64));
    group.bench_function("direct_64B", |b| {
        b.iter(|| event_loop.context().send(reading, black_box(&message)).or_fail())
    });
    group.bench_function("queued_64B", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                // A fresh connection whose peer never reads, filled (untimed) until sends queue; then
                // a timed batch that stays under the per-connection cap; then it is aborted.
                let _peer = accept_one(&mut event_loop, addr);
                let full = *event_loop.handler().open.last().ok_or("no connection").or_fail();
                let mut ctx = event_loop.context();
                while ctx.queued(full).or_fail() == 0 {
                    ctx.send(full, &[0u8; 16 << 10]).or_fail();
                }
                let room = (Config::default().max_output - ctx.queued(full).or_fail()) / 64;
                let batch = left.min(room as u64 - 1);
                let start = Instant::now();
                for _ in 0..batch {
                    black_box(ctx.send(full, &message).is_ok());
                }
                spent += start.elapsed();
                left -= batch;
                ctx.abort(full).or_fail();
                event_loop.run_once(Some(Duration::ZERO)).or_fail();
            }
            spent
        })
    });
    group.finish();
}

fn quiet_config() -> Config {
    Config { raise_fd_limit: false, ..Config::default() }
}
