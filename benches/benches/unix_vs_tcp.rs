//! Local IPC against loopback TCP for the same server: the reactor's echo, 64 B ping-pong over 50
//! connections, on a Unix domain socket and on 127.0.0.1, in messages per second.
//!
//! Server on core 0, this client on core 1; the two transports alternate round by round (a fresh
//! server each round, warmed up before timing), so that drift on a shared machine falls on both; the
//! figure is the median of the rounds. Syscalls and instructions per message for the same pair come
//! from `syscalls_and_instructions` (`reactor` and `reactor-unix`).
//!
//! Writes `target/bench-report/unix_vs_tcp.json` and `.md`.
#![forbid(unsafe_code)]

use benches::client::EchoClient;
use benches::report::{self, cell, median, ratio};
use benches::{BenchResult, Server, ServerKind};
use serde_json::json;

const CONNECTIONS: usize = 50;
const SIZE: usize = 64;

fn main() {
    let settings = benches::prepare();
    let rounds: usize = settings.pick(3, 7);
    let messages: u64 = settings.pick(100_000, 400_000);
    if let Err(note) = ServerKind::Reactor.available() {
        println!("note: skipping: {note}");
        return;
    }
    let path = std::env::temp_dir().join(format!("bench-unix-vs-tcp-{}.sock", std::process::id()));
    let (mut tcp, mut unix) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for over_unix in [false, true] {
            match rate(over_unix, &path, messages) {
                Ok(r) => {
                    let name = if over_unix { "unix" } else { "tcp" };
                    println!("round {round}: {name:>4} {r:>10.0} msgs/s");
                    if over_unix { &mut unix } else { &mut tcp }.push(r);
                }
                Err(e) => println!("note: round {round}: {e}"),
            }
        }
    }
    let (tcp_median, unix_median) = (median(&tcp), median(&unix));
    let rows = vec![
        vec!["TCP loopback".to_string(), cell(tcp_median, 0), "1.00".to_string()],
        vec!["Unix socket".to_string(), cell(unix_median, 0), cell(ratio(unix_median, tcp_median), 2)],
    ];
    let table = report::markdown_table(&["reactor echo over", "msgs/s (median)", "× TCP"], &rows);
    println!(
        "\n64 B ping-pong, {CONNECTIONS} connections, {messages} messages a round, {rounds} rounds interleaved:\n{table}"
    );
    report::write_json(
        "unix_vs_tcp.json",
        &json!({
            "machine": report::machine(),
            "workload": { "size": SIZE, "connections": CONNECTIONS, "messages_per_round": messages, "rounds": rounds },
            "msgs_per_sec": { "tcp": tcp, "unix": unix },
            "median": { "tcp": tcp_median, "unix": unix_median },
        }),
    );
    report::write_markdown("unix_vs_tcp.md", &table);
}

/// One round: a fresh reactor echo server on TCP loopback or on the Unix socket `path`, warmed up,
/// then `messages` ping-pong messages timed.
fn rate(over_unix: bool, path: &std::path::Path, messages: u64) -> BenchResult<f64> {
    let server = if over_unix { Server::start_unix(&[], path)? } else { Server::start(ServerKind::Reactor)? };
    let mut client = EchoClient::connect_to(&server, CONNECTIONS)?;
    client.run(5_000, SIZE, 1)?;
    let took = client.run(messages, SIZE, 1)?;
    Ok(messages as f64 / took.as_secs_f64())
}
