//! The two figures that repeat run to run on a shared machine, for every server:
//! - syscalls per echoed message: `strace -c -f -p PID` attached during a counted 64 B ping-pong run
//!   over 50 connections (the floor is ~2.0: one recv, one send, a share of one epoll_wait);
//! - user-space instructions per echoed message: the slope of callgrind's instruction count between a
//!   short and a long run, so that start-up and connection set-up drop out.
//!
//! The reactor is measured twice: over TCP loopback (`reactor`) and over a Unix domain socket
//! (`reactor-unix`), the same echo server and workload on either kind of stream.
//!
//! Writes `target/bench-report/cost.json` and `cost.md`; prints a note and skips a figure when `strace`
//! or `valgrind` is not installed.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use benches::client::EchoClient;
use benches::report::{self, cell, ratio, report_dir};
use benches::{BenchResult, Server, ServerKind, trace};
use serde_json::{Value, json};

const CONNECTIONS: usize = 50;
const SIZE: usize = 64;

fn main() {
    let settings = benches::prepare();
    let traced_messages: u64 = settings.pick(10_000, 30_000);
    let (short, long): (u64, u64) = settings.pick((1_000, 5_000), (2_000, 12_000));
    let strace = trace::tool_present("strace", "--version");
    let valgrind = trace::tool_present("valgrind", "--version");
    if !strace {
        println!("note: strace is not installed: no syscalls per message");
    }
    if !valgrind {
        println!("note: valgrind is not installed: no instructions per message");
    }
    let mut results = BTreeMap::new();
    let mut runs: Vec<Endpoint> = Vec::new();
    for &kind in &settings.servers {
        if let Err(note) = kind.available() {
            println!("note: skipping {}: {note}", kind.name());
            continue;
        }
        runs.push(Endpoint { kind, unix: false });
        if kind == ServerKind::Reactor {
            runs.push(Endpoint { kind, unix: true });
        }
    }
    for run in runs {
        let name = run.name();
        let mut entry = serde_json::Map::new();
        if strace {
            match syscalls_per_message(run, traced_messages) {
                Ok((per_message, breakdown)) => {
                    println!("{name:>12}: {per_message:.3} syscalls per echoed message");
                    entry.insert("syscalls_per_msg".into(), json!(per_message));
                    entry.insert("syscalls_by_name_per_msg".into(), breakdown);
                }
                Err(e) => println!("note: {name}: no syscall count: {e}"),
            }
        }
        if valgrind {
            match instructions_per_message(run, short, long) {
                Ok((slope, counts)) => {
                    println!("{name:>12}: {slope:.0} user-space instructions per echoed message");
                    entry.insert("instructions_per_msg".into(), json!(slope));
                    entry.insert("instructions_total".into(), counts);
                }
                Err(e) => println!("note: {name}: no instruction count: {e}"),
            }
        }
        results.insert(name, Value::Object(entry));
    }
    write_reports(&results, traced_messages, (short, long));
}

/// A server and the kind of stream it is measured over.
#[derive(Clone, Copy, Debug)]
struct Endpoint {
    kind: ServerKind,
    /// Over a Unix domain socket instead of TCP loopback (the reactor only).
    unix: bool,
}

impl Endpoint {
    fn name(self) -> String {
        if self.unix { format!("{}-unix", self.kind.name()) } else { self.kind.name().to_string() }
    }

    /// Starts the server behind `wrapper`, on a Unix socket of its own or on TCP loopback.
    fn start(self, wrapper: &[String]) -> BenchResult<Server> {
        if self.unix {
            let path = std::env::temp_dir().join(format!("bench-echo-{}.sock", std::process::id()));
            Server::start_unix(wrapper, &path)
        } else {
            Server::start_with(self.kind, wrapper, &[])
        }
    }
}

/// Attaches `strace -c -f` to a warmed-up server, times `messages` echoes, and divides.
fn syscalls_per_message(run: Endpoint, messages: u64) -> BenchResult<(f64, Value)> {
    let server = run.start(&[])?;
    let mut client = EchoClient::connect_to(&server, CONNECTIONS)?;
    client.run(2_000, SIZE, 1)?;
    let out = report_dir().join(format!("strace-{}.txt", run.name()));
    let (run, counts) = trace::strace_during(server.pid(), &out, || client.run(messages, SIZE, 1))?;
    run?;
    let total: u64 = counts.values().sum();
    if total == 0 {
        return Err(format!("no syscalls in {}", out.display()));
    }
    let breakdown: serde_json::Map<String, Value> =
        counts.iter().map(|(name, n)| (name.clone(), json!(*n as f64 / messages as f64))).collect();
    Ok((total as f64 / messages as f64, Value::Object(breakdown)))
}

/// Runs the server under callgrind twice (`short` and `long` messages) and returns the slope.
fn instructions_per_message(run: Endpoint, short: u64, long: u64) -> BenchResult<(f64, Value)> {
    let a = instructions(run, short)?;
    let b = instructions(run, long)?;
    let slope = (b as f64 - a as f64) / (long - short) as f64;
    Ok((slope, json!({ short.to_string(): a, long.to_string(): b })))
}

/// Total user-space instructions of one server process that echoed `messages` messages.
fn instructions(run: Endpoint, messages: u64) -> BenchResult<u64> {
    let out = report_dir().join(format!("callgrind-{}-{messages}.out", run.name()));
    let _ = std::fs::remove_file(&out);
    let server = run.start(&trace::callgrind_wrapper(&out))?;
    {
        let mut client = EchoClient::connect_to(&server, CONNECTIONS)?;
        client.run(messages, SIZE, 1)?;
    }
    // Callgrind writes its counts when the process ends, by exit or by SIGTERM.
    server.stop(Duration::from_secs(60));
    trace::callgrind_total(&out)
}

fn write_reports(results: &BTreeMap<String, Value>, traced: u64, (short, long): (u64, u64)) {
    let figure =
        |server: &str, key: &str| results.get(server).and_then(|v| v.get(key)).and_then(Value::as_f64);
    let rows: Vec<Vec<String>> = results
        .keys()
        .map(|name| {
            vec![
                name.clone(),
                cell(figure(name, "syscalls_per_msg"), 3),
                cell(figure(name, "instructions_per_msg"), 0),
                cell(
                    ratio(figure(name, "instructions_per_msg"), figure("yardstick", "instructions_per_msg")),
                    2,
                ),
            ]
        })
        .collect();
    let table =
        report::markdown_table(&["server", "syscalls/msg", "user instructions/msg", "× yardstick"], &rows);
    println!("\ncost per echoed message (64 B ping-pong, {CONNECTIONS} connections):\n{table}");
    report::write_json(
        "cost.json",
        &json!({
            "machine": report::machine(),
            "workload": { "size": SIZE, "connections": CONNECTIONS, "traced_messages": traced, "callgrind_messages": [short, long] },
            "servers": results,
        }),
    );
    report::write_markdown("cost.md", &table);
}
