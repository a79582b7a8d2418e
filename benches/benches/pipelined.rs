//! Pipelined echo throughput: 16 messages in flight per connection, so the figure is bound by
//! throughput, not round-trip latency (criterion; summary in `target/bench-report/pipelined.md`).
//!
//! Only 1 and 50 connections and two sizes, 64 B and 16 KiB: at 500 connections × 16 × 64 KiB the data
//! in flight would be the kernel's socket memory, not the server, being measured, and the whole
//! `cargo bench` must stay within its 15 minutes on 2 cores.
#![forbid(unsafe_code)]

use benches::throughput::{self, Plan};

fn main() {
    let settings = benches::prepare();
    let plan = Plan {
        name: "pipelined",
        in_flight: 16,
        sizes: settings.pick(vec![64], vec![64, 16 << 10]),
        connections: settings.pick(vec![50], vec![1, 50]),
    };
    let mut c = settings.criterion();
    throughput::run(&mut c, &settings, &plan);
    c.final_summary();
}
