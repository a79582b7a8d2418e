//! The one-host ceiling: holds 100,000, 250,000, 500,000 and 1,000,000 concurrent loopback connections
//! against `echo-server --workers N`, one rung after the other, and reports per rung the server's
//! resident memory per connection, the kernel's share (slab memory and `/proc/net/sockstat`), the time to
//! ramp up, and whether a sample of the held connections still echoes (verified content). A rung that
//! is not reached names what stopped it.
//!
//! Opt-in and long (minutes, gigabytes): run it through `scripts/ladder`, never from the test suite.
//! One process holds at most 20,000 descriptors here, so both sides are split over processes — about
//! 15,000 connections each — and the client binds to 2 source addresses per process so that no address
//! runs short of its ~28,000 ephemeral ports. The server listens on 127.0.2.1 and each rung takes
//! fresh source addresses (127.3.0.x, 127.4.0.x, ...): no rung meets the previous one's TIME_WAIT
//! sockets, and none of it touches 127.0.0.1, which other runs on the machine use.
//!
//! Prints the table and writes `target/bench-report/ladder.json` and `ladder.md`.
#![forbid(unsafe_code)]

mod quiet;
mod rung;

use clap::Parser;
use serde_json::json;

use benches::report;
use rung::{Rung, RungPlan};

/// The ladder's options (the defaults are the documented run).
#[derive(Debug, Parser)]
#[command(about = "Climb 100k → 250k → 500k → 1M concurrent loopback connections; report each rung")]
struct Args {
    /// The rungs, in connections.
    #[arg(long, value_delimiter = ',', default_value = "100000,250000,500000,1000000")]
    rungs: Vec<u64>,
    /// Connections opened per second, over all client processes.
    #[arg(long, default_value_t = 20_000.0)]
    ramp: f64,
    /// Connections per server worker and per client process (each holds at most 20,000 descriptors).
    #[arg(long, default_value_t = 15_000)]
    per_process: u64,
    /// Every Kth connection echoes one verified message at the top of the rung.
    #[arg(long, default_value_t = 1_000)]
    echo_every: u64,
    /// Address the server listens on (port chosen by the kernel).
    #[arg(long, default_value = "127.0.2.1")]
    server: String,
    /// Second octet of the first rung's source addresses (127.N.0.x); each rung takes the next.
    #[arg(long, default_value_t = 3)]
    first_source_net: u8,
    /// Stop at the first rung that is not reached.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    stop_at_failure: bool,
}

fn main() {
    let args = Args::parse();
    // Both sides need both cores: connects and accepts are mostly kernel time, and pinning each side to
    // one core stalls the ramp whenever anything else runs on the machine.
    benches::pin::leave_unpinned();
    if let Err(e) = hostinfo::raise_fd_limit() {
        eprintln!("note: cannot raise the descriptor limit: {e}");
    }
    let mut rungs: Vec<Rung> = Vec::new();
    for (i, &connections) in args.rungs.iter().enumerate() {
        let quiet = quiet::wait_for_quiet();
        let plan = RungPlan {
            connections,
            per_process: args.per_process,
            ramp: args.ramp,
            echo_every: args.echo_every,
            server: args.server.clone(),
            source_net: args.first_source_net.saturating_add(i as u8),
        };
        println!("rung {}: {connections} connections ({quiet})", i + 1);
        let rung = rung::climb(&plan);
        println!("{}", rung.line());
        let reached = rung.reached();
        rungs.push(rung);
        if !reached && args.stop_at_failure {
            println!("the ladder stops here: {}", rungs.last().map_or("", |r| r.note.as_str()));
            break;
        }
    }
    println!("the sockets of the last rung closing: {}", quiet::wait_for_quiet());
    let table = rung::table(&rungs);
    println!("\n{table}");
    let machine = report::machine();
    report::write_markdown("ladder.md", &table);
    report::write_json(
        "ladder.json",
        &json!({ "machine": machine, "ramp": args.ramp, "rungs": rungs.iter().map(Rung::json).collect::<Vec<_>>() }),
    );
}
