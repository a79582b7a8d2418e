//! The throughput benches (`echo_throughput`, `pipelined`): every server, every message size and
//! connection count, interleaved case by case, timed by criterion over connections opened beforehand.
//! Afterwards a summary with medians and ratios goes to `target/bench-report/`.

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use serde_json::{Value, json};

use crate::client::EchoClient;
use crate::fail::OrFail;
use crate::report::{self, cell, ratio};
use crate::servers::{Server, start_all};
use crate::settings::Settings;

/// One throughput bench: its name, the messages in flight per connection, and the cases it covers.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The criterion group and report name.
    pub name: &'static str,
    /// Messages in flight per connection (1: ping-pong).
    pub in_flight: u32,
    /// Message sizes in bytes.
    pub sizes: Vec<usize>,
    /// Connection counts.
    pub connections: Vec<usize>,
}

/// Runs `plan` against every server in `settings`, then writes `NAME.json` and `NAME.md` with
/// messages per second (criterion's median) and the ratios against the yardstick and tokio.
pub fn run(c: &mut Criterion, settings: &Settings, plan: &Plan) {
    let servers = start_all(&settings.servers);
    let mut group = c.benchmark_group(plan.name);
    group.sampling_mode(SamplingMode::Flat);
    for &conns in &plan.connections {
        // Connections stay open across sizes; every server holds its own set all along.
        let mut clients: Vec<(&Server, EchoClient)> =
            servers.iter().map(|s| (s, EchoClient::connect(s.addr, conns).or_fail())).collect();
        for &size in &plan.sizes {
            group.throughput(Throughput::ElementsAndBytes { elements: 1, bytes: size as u64 });
            for (server, client) in &mut clients {
                group.bench_function(BenchmarkId::new(server.kind.name(), case(size, conns)), |b| {
                    b.iter_custom(|messages| client.run(messages, size, plan.in_flight).or_fail())
                });
            }
        }
    }
    group.finish();
    summarize(plan, &servers);
}

/// A case's id: `64B-x50`.
pub fn case(size: usize, conns: usize) -> String {
    format!("{size}B-x{conns}")
}

/// Reads criterion's medians back and writes the summary.
fn summarize(plan: &Plan, servers: &[Server]) {
    let mut cases = Vec::new();
    let mut rows = Vec::new();
    for &conns in &plan.connections {
        for &size in &plan.sizes {
            let rate = |name: &str| median_ns(plan.name, name, &case(size, conns)).map(|ns| 1e9 / ns);
            let rates: Vec<(String, Option<f64>)> =
                servers.iter().map(|s| (s.kind.name().to_string(), rate(s.kind.name()))).collect();
            let get = |name: &str| rates.iter().find(|(n, _)| n == name).and_then(|(_, r)| *r);
            let vs_yardstick = ratio(get("reactor"), get("yardstick"));
            let vs_tokio = ratio(get("reactor"), get("tokio-ct"));
            let mut row = vec![size.to_string(), conns.to_string()];
            row.extend(rates.iter().map(|(_, r)| cell(r.map(|r| r / 1e3), 1)));
            row.push(cell(vs_yardstick, 2));
            row.push(cell(vs_tokio, 2));
            rows.push(row);
            let per_server: serde_json::Map<String, Value> = rates
                .iter()
                .map(|(n, r)| {
                    (n.clone(), json!({ "msgs_per_sec": r, "bytes_per_sec": r.map(|r| r * size as f64) }))
                })
                .collect();
            cases.push(json!({
                "size": size, "connections": conns, "in_flight": plan.in_flight, "servers": per_server,
                "reactor_vs_yardstick": vs_yardstick, "reactor_vs_tokio_ct": vs_tokio,
            }));
        }
    }
    let mut header = vec!["size B".to_string(), "conns".to_string()];
    header.extend(servers.iter().map(|s| format!("{} kmsg/s", s.kind.name())));
    header.extend(["reactor/yardstick".to_string(), "reactor/tokio-ct".to_string()]);
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let table = report::markdown_table(&header, &rows);
    println!("\n{} (criterion medians, {} in flight per connection):\n{table}", plan.name, plan.in_flight);
    report::write_json(
        &format!("{}.json", plan.name),
        &json!({ "machine": report::machine(), "cases": cases }),
    );
    report::write_markdown(&format!("{}.md", plan.name), &table);
}

/// Criterion's median time per iteration (one message) in ns, from its `estimates.json`.
fn median_ns(group: &str, function: &str, parameter: &str) -> Option<f64> {
    let roots = [
        std::env::var_os("CRITERION_HOME").map(std::path::PathBuf::from),
        Some(crate::servers::target_dir().join("criterion")),
        Some(std::path::PathBuf::from("target/criterion")),
    ];
    roots.into_iter().flatten().find_map(|root| {
        let path = root.join(group).join(function).join(parameter).join("new/estimates.json");
        let text = std::fs::read_to_string(path).ok()?;
        let value: Value = serde_json::from_str(&text).ok()?;
        value.pointer("/median/point_estimate")?.as_f64()
    })
}
