//! Ping-pong echo throughput: one message in flight per connection, for every message size and
//! connection count, against every server (criterion; medians and ratios in
//! `target/bench-report/echo_throughput.md`).
#![forbid(unsafe_code)]

use benches::throughput::{self, Plan};

fn main() {
    let settings = benches::prepare();
    let plan = Plan {
        name: "echo_throughput",
        in_flight: 1,
        sizes: settings.pick(vec![64, 16 << 10], vec![64, 1 << 10, 16 << 10, 64 << 10]),
        connections: settings.pick(vec![1, 50], vec![1, 50, 500]),
    };
    let mut c = settings.criterion();
    throughput::run(&mut c, &settings, &plan);
    c.final_summary();
}
