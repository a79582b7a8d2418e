//! One flooding peer cannot starve the others: a per-turn read budget parks it until the next turn.

mod util;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use reactor::{Config, ConnId, Context, EventLoop, Handler, ListenerOptions, Next, Origin};

/// Counts bytes per connection in the order connections were opened.
#[derive(Default)]
struct Sink {
    order: Vec<ConnId>,
    bytes: HashMap<ConnId, usize>,
}

impl Handler for Sink {
    type Message = ();
    fn on_open(&mut self, _: &mut Context<'_>, conn: ConnId, _: Origin) {
        self.order.push(conn);
    }
    fn on_data(&mut self, _: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        *self.bytes.entry(conn).or_default() += data.len();
        Next::Continue
    }
}

impl Sink {
    fn got(&self, index: usize) -> usize {
        self.order.get(index).and_then(|c| self.bytes.get(c)).copied().unwrap_or(0)
    }
}

#[test]
fn a_flooding_peer_is_parked_after_its_budget_and_the_quiet_one_is_served() {
    util::init();
    const FLOOD: usize = 64 * 1024;
    let config = Config {
        read_buffer: 4 * 1024,
        read_budget: 16 * 1024,
        high_watermark: 32 * 1024,
        low_watermark: 8 * 1024,
        ..Config::default()
    };
    let (budget, buffer) = (config.read_budget, config.read_buffer);
    let mut event_loop = EventLoop::new(config, Sink::default()).unwrap();
    let (_, addr) = event_loop.listen(&ListenerOptions::new(util::any_local_address())).unwrap();
    let mut flooder = TcpStream::connect(addr).unwrap();
    let mut quiet = TcpStream::connect(addr).unwrap();
    for _ in 0..50 {
        if event_loop.handler().order.len() == 2 {
            break;
        }
        event_loop.run_once(Some(Duration::from_millis(20))).unwrap();
    }
    assert_eq!(event_loop.handler().order.len(), 2);
    flooder.write_all(&testkit::payload(1, FLOOD)).unwrap();
    quiet.write_all(b"!").unwrap();

    event_loop.run_once(Some(Duration::from_secs(5))).unwrap();
    let first_turn = event_loop.handler().got(0);
    assert!(first_turn > 0, "the flooder was not read at all");
    assert!(first_turn <= budget + buffer, "the flooder got {first_turn} B in one turn, budget {budget} B");
    for _ in 0..100 {
        if event_loop.handler().got(0) == FLOOD && event_loop.handler().got(1) == 1 {
            break;
        }
        event_loop.run_once(Some(Duration::from_millis(20))).unwrap();
    }
    assert_eq!(event_loop.handler().got(1), 1, "the quiet peer was starved");
    assert_eq!(event_loop.handler().got(0), FLOOD, "the parked flooder was not resumed on later turns");
}
