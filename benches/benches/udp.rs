//! UDP echo: the same closed-loop datagram load (2 client sockets × 64 datagrams in flight, 64 B each)
//! against our `echo-server --udp`, the C yardstick in both forms (`recvfrom`/`sendto` and
//! `recvmmsg`/`sendmmsg`) and tokio's `UdpSocket`, each pinned to the server core with the load on the
//! other. For every server:
//! - datagrams per second and server CPU per datagram (utime + stime from `/proc/PID/stat` over the
//!   run), the median of 5 rounds interleaved across the servers;
//! - syscalls per echoed datagram, `strace -c -f -p PID` attached during a counted run;
//! - user-space instructions per echoed datagram, the slope of callgrind's count between a short and a
//!   long run, so that start-up drops out.
//!
//! Every run accounts for each datagram (echoed, lost, late, duplicated, corrupted); losses are
//! reported next to the figures. On loopback the kernel's share dominates the CPU figure; the syscall
//! and instruction counts are the ones that repeat.
//!
//! `BENCH_UDP_SERVERS=reactor,c-plain,...` picks servers. Writes `target/bench-report/udp.json` and
//! `udp.md`.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use benches::report::{self, cell, median, ratio, report_dir};
use benches::trace;
use benches::udp::{UdpLoad, UdpRun, UdpServer, UdpServerKind};
use benches::{BenchResult, fail};
use serde_json::{Value, json};

const LOAD: UdpLoad = UdpLoad { sockets: 2, window: 64, size: 64, loss_timeout: Duration::from_millis(200) };
const ROUNDS: usize = 5;

fn main() {
    let settings = benches::prepare();
    let per_round: u64 = settings.pick(50_000, 200_000);
    let traced: u64 = settings.pick(20_000, 50_000);
    let (short, long): (u64, u64) = settings.pick((3_000, 10_000), (5_000, 25_000));
    let kinds = kinds();
    let mut results: BTreeMap<&str, serde_json::Map<String, Value>> = BTreeMap::new();

    // Datagrams per second and CPU per datagram: every server up at once, rounds interleaved.
    let mut servers = Vec::new();
    for &kind in &kinds {
        match UdpServer::start(kind, &[]).and_then(|s| LOAD.run(s.addr, 10_000).map(|_| s)) {
            Ok(server) => servers.push(server),
            Err(note) => println!("note: skipping {}: {note}", kind.name()),
        }
    }
    let mut rates: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut cpu: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut books: BTreeMap<&str, UdpRun> = BTreeMap::new();
    for round in 0..ROUNDS {
        for server in &servers {
            let name = server.kind.name();
            match cpu_round(server, per_round) {
                Ok((run, seconds)) => {
                    let rate = run.echoed as f64 / run.elapsed.as_secs_f64();
                    let us = seconds * 1e6 / run.echoed as f64;
                    println!(
                        "round {round}: {name:>10}: {rate:>9.0} datagrams/s, {us:.2} µs server CPU per datagram, {} lost",
                        run.lost
                    );
                    rates.entry(name).or_default().push(rate);
                    cpu.entry(name).or_default().push(us);
                    add(books.entry(name).or_default(), &run);
                }
                Err(e) => println!("note: {name}: round {round}: {e}"),
            }
        }
    }
    drop(servers);
    for (name, runs) in &books {
        let entry = results.entry(name).or_default();
        entry.insert("datagrams_per_s".into(), json!(median(&rates[name])));
        entry.insert("cpu_us_per_datagram".into(), json!(median(&cpu[name])));
        entry.insert("cpu_us_rounds".into(), json!(cpu[name]));
        entry.insert(
            "accounting".into(),
            json!({ "sent": runs.sent, "echoed": runs.echoed, "lost": runs.lost, "late": runs.late,
                    "duplicated": runs.duplicated, "corrupted": runs.corrupted }),
        );
    }

    if trace::tool_present("strace", "--version") {
        for &kind in &kinds {
            match syscalls_per_datagram(kind, traced) {
                Ok((per, breakdown)) => {
                    println!("{:>10}: {per:.3} syscalls per echoed datagram", kind.name());
                    let entry = results.entry(kind.name()).or_default();
                    entry.insert("syscalls_per_datagram".into(), json!(per));
                    entry.insert("syscalls_by_name_per_datagram".into(), breakdown);
                }
                Err(e) => println!("note: {}: no syscall count: {e}", kind.name()),
            }
        }
    } else {
        println!("note: strace is not installed: no syscalls per datagram");
    }
    if trace::tool_present("valgrind", "--version") {
        for &kind in &kinds {
            match instructions_per_datagram(kind, short, long) {
                Ok(slope) => {
                    println!("{:>10}: {slope:.0} user-space instructions per echoed datagram", kind.name());
                    results
                        .entry(kind.name())
                        .or_default()
                        .insert("instructions_per_datagram".into(), json!(slope));
                }
                Err(e) => println!("note: {}: no instruction count: {e}", kind.name()),
            }
        }
    } else {
        println!("note: valgrind is not installed: no instructions per datagram");
    }
    write_reports(&results, per_round, traced, (short, long));
}

/// The servers `BENCH_UDP_SERVERS` names, or all; the ones that cannot run here are left out with a note.
fn kinds() -> Vec<UdpServerKind> {
    let chosen: Vec<UdpServerKind> = match std::env::var("BENCH_UDP_SERVERS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|name| {
                UdpServerKind::ALL.into_iter().find(|k| k.name() == name.trim()).unwrap_or_else(|| {
                    fail(format!(
                        "BENCH_UDP_SERVERS: unknown server {name:?}; known: {}",
                        UdpServerKind::ALL.map(UdpServerKind::name).join(", ")
                    ))
                })
            })
            .collect(),
        _ => UdpServerKind::ALL.to_vec(),
    };
    chosen
        .into_iter()
        .filter(|k| match k.available() {
            Ok(()) => true,
            Err(note) => {
                println!("note: skipping {}: {note}", k.name());
                false
            }
        })
        .collect()
}

/// One counted run, with the server's CPU seconds over it.
fn cpu_round(server: &UdpServer, datagrams: u64) -> BenchResult<(UdpRun, f64)> {
    let before = hostinfo::process::cpu_seconds(server.pid()).ok_or("cannot read the server's CPU time")?;
    let run = LOAD.run(server.addr, datagrams)?;
    let after = hostinfo::process::cpu_seconds(server.pid()).ok_or("cannot read the server's CPU time")?;
    Ok((run, after - before))
}

fn add(total: &mut UdpRun, run: &UdpRun) {
    total.sent += run.sent;
    total.echoed += run.echoed;
    total.lost += run.lost;
    total.late += run.late;
    total.duplicated += run.duplicated;
    total.corrupted += run.corrupted;
    total.elapsed += run.elapsed;
}

/// Attaches `strace -c -f` to a warmed-up server, runs `datagrams`, and divides by those echoed.
fn syscalls_per_datagram(kind: UdpServerKind, datagrams: u64) -> BenchResult<(f64, Value)> {
    let server = UdpServer::start(kind, &[])?;
    LOAD.run(server.addr, 5_000)?;
    let out = report_dir().join(format!("strace-udp-{}.txt", kind.name()));
    let (run, counts) = trace::strace_during(server.pid(), &out, || LOAD.run(server.addr, datagrams))?;
    let run = run?;
    let total: u64 = counts.values().sum();
    if total == 0 || run.echoed == 0 {
        return Err(format!("no syscalls in {}", out.display()));
    }
    let per = |n: u64| n as f64 / run.echoed as f64;
    let breakdown: serde_json::Map<String, Value> =
        counts.iter().map(|(name, n)| (name.clone(), json!(per(*n)))).collect();
    Ok((per(total), Value::Object(breakdown)))
}

/// The slope of callgrind's instruction total between a short and a long run.
fn instructions_per_datagram(kind: UdpServerKind, short: u64, long: u64) -> BenchResult<f64> {
    let (a, echoed_a) = instructions(kind, short)?;
    let (b, echoed_b) = instructions(kind, long)?;
    Ok((b as f64 - a as f64) / (echoed_b as f64 - echoed_a as f64))
}

/// Total user-space instructions of one server process, and the datagrams it echoed.
fn instructions(kind: UdpServerKind, datagrams: u64) -> BenchResult<(u64, u64)> {
    let out = report_dir().join(format!("callgrind-udp-{}-{datagrams}.out", kind.name()));
    let _ = std::fs::remove_file(&out);
    let server = UdpServer::start(kind, &trace::callgrind_wrapper(&out))?;
    // Under callgrind the server is tens of times slower: a longer loss timeout.
    let load = UdpLoad { loss_timeout: Duration::from_secs(5), ..LOAD };
    let run = load.run(server.addr, datagrams)?;
    server.stop(Duration::from_secs(60));
    Ok((trace::callgrind_total(&out)?, run.echoed))
}

fn write_reports(
    results: &BTreeMap<&str, serde_json::Map<String, Value>>,
    per_round: u64,
    traced: u64,
    (short, long): (u64, u64),
) {
    let figure =
        |server: &str, key: &str| results.get(server).and_then(|v| v.get(key)).and_then(Value::as_f64);
    let rows: Vec<Vec<String>> = UdpServerKind::ALL
        .iter()
        .map(|k| k.name())
        .filter(|name| results.contains_key(name))
        .map(|name| {
            let lost = results[name].get("accounting").and_then(|a| a.get("lost")).and_then(Value::as_u64);
            vec![
                name.to_string(),
                cell(figure(name, "datagrams_per_s"), 0),
                cell(figure(name, "cpu_us_per_datagram"), 2),
                cell(ratio(figure(name, "cpu_us_per_datagram"), figure("c-plain", "cpu_us_per_datagram")), 2),
                cell(figure(name, "syscalls_per_datagram"), 3),
                cell(figure(name, "instructions_per_datagram"), 0),
                cell(
                    ratio(
                        figure(name, "instructions_per_datagram"),
                        figure("c-batched", "instructions_per_datagram"),
                    ),
                    2,
                ),
                lost.map_or("–".into(), |l| l.to_string()),
            ]
        })
        .collect();
    let table = report::markdown_table(
        &[
            "server",
            "datagrams/s",
            "server CPU µs/datagram",
            "× c-plain",
            "syscalls/datagram",
            "user instructions/datagram",
            "× c-batched",
            "lost",
        ],
        &rows,
    );
    println!(
        "\nUDP echo, {} sockets × {} in flight, {} B (CPU: median of {ROUNDS} interleaved rounds of {per_round}):\n{table}",
        LOAD.sockets, LOAD.window, LOAD.size
    );
    report::write_json(
        "udp.json",
        &json!({
            "machine": report::machine(),
            "workload": { "sockets": LOAD.sockets, "window": LOAD.window, "size": LOAD.size,
                          "per_round": per_round, "rounds": ROUNDS, "traced": traced, "callgrind": [short, long] },
            "servers": results,
        }),
    );
    report::write_markdown("udp.md", &table);
}
