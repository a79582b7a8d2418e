//! Peaks and tails, 64 B messages over 50 connections, servers interleaved round by round:
//! 1. rounds of ping-pong and of pipelined (16 in flight) runs with the lean client; medians and the
//!    ratios of the reactor against the C yardstick and tokio;
//! 2. each server's peak through `stress-client echo` (closed loop), then fixed-rate runs
//!    (`stress-client echo --rate`) at 50% and 90% of that peak: p50/p99/p99.9 latency, measured from
//!    each message's intended send time;
//! 3. server CPU time per echoed message at one offered rate below every server's saturation, from the
//!    server's `/proc/PID/stat`.
//!
//! Writes `target/bench-report/latency.json` and `latency.md`.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use benches::client::EchoClient;
use benches::fail::OrFail;
use benches::report::{self, cell, median, ratio};
use benches::servers::start_all;
use benches::stress::{self, number};
use benches::{BenchResult, Server};
use hostinfo::process;
use serde_json::{Value, json};

const CONNECTIONS: usize = 50;
const SIZE: usize = 64;
/// The offered rate for CPU per message, unless a server peaks below twice this.
const CPU_RATE: f64 = 20_000.0;

fn main() {
    let settings = benches::prepare();
    let servers = start_all(&settings.servers);
    let rounds = settings.pick(3, 5);
    let seconds = settings.pick(1.5, 2.5);

    let (ping, piped, peak_runs) = interleaved_rounds(
        &servers,
        rounds,
        settings.pick(10_000, 30_000),
        settings.pick(20_000, 60_000),
        seconds,
    );
    let mut peaks = BTreeMap::new();
    let mut latency = BTreeMap::new();
    for server in &servers {
        let name = server.kind.name();
        match peak_runs.get(name).and_then(|runs| median(runs)).ok_or("every peak run failed") {
            Ok(p) => {
                println!("{name:>10}: stress-client peak (median of rounds) {:.1} kmsg/s", p / 1e3);
                peaks.insert(name, p);
                let mut at = serde_json::Map::new();
                for share in [0.5, 0.9] {
                    match fixed_rate(server, share * p, seconds) {
                        Ok(report) => {
                            print_latency(name, share, &report);
                            at.insert(format!("{}%", (share * 100.0) as u32), report);
                        }
                        Err(e) => println!("note: {name} at {share}: {e}"),
                    }
                }
                latency.insert(name, Value::Object(at));
            }
            Err(e) => println!("note: {name}: no peak: {e}"),
        }
    }
    let lowest = peaks.values().copied().fold(f64::INFINITY, f64::min);
    let cpu_rate = CPU_RATE.min(lowest / 2.0).floor();
    let mut cpu = BTreeMap::new();
    for server in &servers {
        match cpu_per_message(server, cpu_rate, seconds.max(3.0)) {
            Ok(us) => {
                println!("{:>10}: {us:.2} µs server CPU per message at {cpu_rate} msg/s", server.kind.name());
                cpu.insert(server.kind.name(), us);
            }
            Err(e) => println!("note: {}: no CPU figure: {e}", server.kind.name()),
        }
    }
    write_reports(&servers, rounds, &ping, &piped, &peaks, &latency, cpu_rate, &cpu);
}

type Rates = BTreeMap<&'static str, Vec<f64>>;

/// Each round runs every server once (lean ping-pong, lean pipelined, then the verifying client's
/// closed-loop peak), starting one further along the list each time, so that no server always follows
/// the same neighbour.
fn interleaved_rounds(
    servers: &[Server],
    rounds: usize,
    ping_msgs: u64,
    piped_msgs: u64,
    seconds: f64,
) -> (Rates, Rates, Rates) {
    let mut clients: Vec<EchoClient> =
        servers.iter().map(|s| EchoClient::connect(s.addr, CONNECTIONS).or_fail()).collect();
    let (mut ping, mut piped, mut peaks) = (Rates::new(), Rates::new(), Rates::new());
    for round in 0..rounds {
        for i in 0..servers.len() {
            let at = (i + round) % servers.len();
            let name = servers[at].kind.name();
            let client = &mut clients[at];
            client.run(1_000, SIZE, 1).or_fail();
            let t = client.run(ping_msgs, SIZE, 1).or_fail();
            ping.entry(name).or_default().push(ping_msgs as f64 / t.as_secs_f64());
            let t = client.run(piped_msgs, SIZE, 16).or_fail();
            piped.entry(name).or_default().push(piped_msgs as f64 / t.as_secs_f64());
            match peak(&servers[at], seconds) {
                Ok(p) => peaks.entry(name).or_default().push(p),
                Err(e) => println!("note: {name}: no peak this round: {e}"),
            }
        }
        println!("round {} of {rounds} done", round + 1);
    }
    (ping, piped, peaks)
}

fn echo_args(server: &Server, seconds: f64, warmup: f64) -> Vec<String> {
    stress::args(&[
        "echo",
        "--target",
        &server.addr.to_string(),
        "--connections",
        &CONNECTIONS.to_string(),
        "--size",
        &SIZE.to_string(),
        "--duration",
        &seconds.to_string(),
        "--warmup",
        &warmup.to_string(),
    ])
}

/// Closed-loop peak through the verifying client.
fn peak(server: &Server, seconds: f64) -> BenchResult<f64> {
    let report =
        stress::run(&echo_args(server, seconds + 0.5, 0.5), Duration::from_secs_f64(seconds + 30.0))?;
    number(&report, "/msgs_per_sec").filter(|r| *r > 0.0).ok_or_else(|| "no messages echoed".into())
}

/// An open-loop run at `rate` messages per second; the report's figures that matter here.
fn fixed_rate(server: &Server, rate: f64, seconds: f64) -> BenchResult<Value> {
    let mut args = echo_args(server, seconds + 0.5, 0.5);
    args.extend(stress::args(&["--rate", &format!("{rate:.0}")]));
    let report = stress::run(&args, Duration::from_secs_f64(seconds + 30.0))?;
    Ok(json!({
        "rate_requested": rate,
        "rate_achieved": number(&report, "/msgs_per_sec"),
        "p50_us": number(&report, "/latency_us/p50"),
        "p99_us": number(&report, "/latency_us/p99"),
        "p999_us": number(&report, "/latency_us/p999"),
        "max_us": number(&report, "/latency_us/max"),
        "verify_failures": number(&report, "/verify_failures"),
    }))
}

fn print_latency(name: &str, share: f64, r: &Value) {
    let f = |k: &str| r.get(k).and_then(Value::as_f64);
    println!(
        "{name:>10} at {:.0}% of peak ({} msg/s achieved): p50 {} µs, p99 {} µs, p99.9 {} µs",
        share * 100.0,
        cell(f("rate_achieved"), 0),
        cell(f("p50_us"), 0),
        cell(f("p99_us"), 0),
        cell(f("p999_us"), 0)
    );
}

/// Server CPU seconds over a fixed-rate run (no warm-up, so every counted message is in the window),
/// per echoed message, in µs.
fn cpu_per_message(server: &Server, rate: f64, seconds: f64) -> BenchResult<f64> {
    let before = process::cpu_seconds(server.pid()).ok_or("server gone")?;
    let mut args = echo_args(server, seconds, 0.0);
    args.extend(stress::args(&["--rate", &format!("{rate:.0}")]));
    let report = stress::run(&args, Duration::from_secs_f64(seconds + 30.0))?;
    let after = process::cpu_seconds(server.pid()).ok_or("server gone")?;
    let messages = number(&report, "/messages").filter(|m| *m > 0.0).ok_or("no messages echoed")?;
    Ok((after - before) * 1e6 / messages)
}

#[allow(clippy::too_many_arguments)]
fn write_reports(
    servers: &[Server],
    rounds: usize,
    ping: &Rates,
    piped: &Rates,
    peaks: &BTreeMap<&str, f64>,
    latency: &BTreeMap<&str, Value>,
    cpu_rate: f64,
    cpu: &BTreeMap<&str, f64>,
) {
    let med = |rates: &Rates, name: &str| rates.get(name).and_then(|v| median(v));
    let mut rows = Vec::new();
    let mut per_server = serde_json::Map::new();
    for server in servers {
        let name = server.kind.name();
        let at = |share: &str, key: &str| {
            latency.get(name).and_then(|v| v.pointer(&format!("/{share}/{key}"))).and_then(Value::as_f64)
        };
        rows.push(vec![
            name.to_string(),
            cell(med(ping, name).map(|r| r / 1e3), 1),
            cell(ratio(med(ping, name), med(ping, "yardstick")), 2),
            cell(ratio(med(ping, name), med(ping, "tokio-ct")), 2),
            cell(med(piped, name).map(|r| r / 1e3), 1),
            cell(ratio(med(piped, name), med(piped, "yardstick")), 2),
            cell(peaks.get(name).map(|r| r / 1e3), 1),
            format!(
                "{} / {} / {}",
                cell(at("50%", "p50_us"), 0),
                cell(at("50%", "p99_us"), 0),
                cell(at("50%", "p999_us"), 0)
            ),
            format!(
                "{} / {} / {}",
                cell(at("90%", "p50_us"), 0),
                cell(at("90%", "p99_us"), 0),
                cell(at("90%", "p999_us"), 0)
            ),
            cell(cpu.get(name).copied(), 2),
            cell(ratio(cpu.get(name).copied(), cpu.get("yardstick").copied()), 2),
        ]);
        per_server.insert(
            name.into(),
            json!({
                "pingpong_msgs_per_sec": ping.get(name), "pingpong_median": med(ping, name),
                "pipelined16_msgs_per_sec": piped.get(name), "pipelined16_median": med(piped, name),
                "stress_client_peak": peaks.get(name), "fixed_rate": latency.get(name),
                "cpu_us_per_msg": cpu.get(name),
            }),
        );
    }
    let table = report::markdown_table(
        &[
            "server",
            "ping-pong kmsg/s (median)",
            "× yardstick",
            "× tokio-ct",
            "pipelined ×16 kmsg/s",
            "× yardstick",
            "stress-client peak kmsg/s",
            "p50/p99/p99.9 µs at 50%",
            "p50/p99/p99.9 µs at 90%",
            &format!("server CPU µs/msg at {cpu_rate:.0}/s"),
            "CPU × yardstick",
        ],
        &rows,
    );
    println!(
        "\n64 B, {CONNECTIONS} connections, {rounds} interleaved rounds, server on core 0, client on core 1:\n{table}"
    );
    report::write_json(
        "latency.json",
        &json!({
            "machine": report::machine(),
            "workload": { "size": SIZE, "connections": CONNECTIONS, "rounds": rounds, "cpu_rate": cpu_rate },
            "servers": per_server,
        }),
    );
    report::write_markdown("latency.md", &table);
}
