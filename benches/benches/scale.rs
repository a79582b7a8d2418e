//! Idle connections at scale: 1,000, 10,000 and 19,000 held against each server in one process (the
//! hard descriptor limit per process is 20,000 here), and 50,000 against the reactor with
//! `--workers 4` (memory summed over the workers). For each: server RSS and threads, per connection,
//! and the time until the server had accepted them all.
//!
//! The load comes from `stress-client connect`, split over several processes (each under its own
//! descriptor limit) and several loopback source addresses (each with its own ephemeral ports), a fresh
//! set of addresses per run so that no run inherits another's TIME_WAIT sockets.
//!
//! Prints a table and writes `target/bench-report/scale.json`, `scale.md` and `scale-rss.svg`.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use benches::report::{self, cell};
use benches::stress::{self, StressRun, number};
use benches::{BenchResult, Server, ServerKind};
use hostinfo::process;
use plotters::prelude::*;
use serde_json::{Value, json};

/// Connections one client process opens at most: well under its 20,000 descriptors.
const PER_CLIENT_PROCESS: u64 = 9_000;
/// Seconds the clients hold the connections once all are up; the server is measured meanwhile.
const HOLD_SECONDS: f64 = 3.0;

/// One measured point.
#[derive(Debug)]
struct Point {
    server: String,
    connections: u64,
    established: Option<f64>,
    seconds_to_establish: Option<f64>,
    /// Connections the server itself held when sampled (its descriptors above the baseline).
    held: u64,
    rss_kib: u64,
    base_rss_kib: u64,
    threads: u64,
    base_threads: u64,
    note: String,
}

fn main() {
    let settings = benches::prepare();
    let counts: Vec<u64> = settings.pick(vec![1_000, 19_000], vec![1_000, 10_000, 19_000]);
    let mut points = Vec::new();
    let mut run_index = 0u8;
    for &count in &counts {
        for &kind in settings.servers.iter().filter(|k| **k != ServerKind::TokioMultiThread) {
            run_index += 1;
            match measure(kind, &[], count, run_index) {
                Ok(p) => points.push(print(p)),
                Err(e) => println!("note: {} × {count}: {e}", kind.name()),
            }
        }
    }
    if !settings.quick && settings.servers.contains(&ServerKind::Reactor) {
        run_index += 1;
        match measure(ServerKind::Reactor, &["--workers", "4"], 50_000, run_index) {
            Ok(p) => points.push(print(p)),
            Err(e) => println!("note: reactor --workers 4 × 50000: {e}"),
        }
    }
    write_reports(&points);
}

/// Starts a fresh server, holds `count` idle connections against it, and samples it while they are up.
fn measure(kind: ServerKind, extra: &[&str], count: u64, run_index: u8) -> BenchResult<Point> {
    let name = if extra.is_empty() {
        kind.name().to_string()
    } else {
        format!("{} {}", kind.name(), extra.join(" "))
    };
    kind.available()?;
    let server = Server::start_with(kind, &[], extra)?;
    let pid = server.pid();
    // Workers start after the supervisor prints its address; let them settle before the baseline.
    std::thread::sleep(Duration::from_millis(300));
    let (base_rss_kib, base_threads, base_fds) = process::tree_totals(pid);
    let processes = count.div_ceil(PER_CLIENT_PROCESS);
    let sources = format!("127.{}.0.1-127.{}.0.4", 20 + run_index, 20 + run_index);
    let args = stress::args(&[
        "connect",
        "--target",
        &server.addr.to_string(),
        "--connections",
        &count.to_string(),
        "--processes",
        &processes.to_string(),
        "--source-ips",
        &sources,
        "--hold",
        &HOLD_SECONDS.to_string(),
        "--connect-timeout",
        "10000",
    ]);
    let mut client = StressRun::start(&args)?;
    let target_fds = base_fds + count as usize;
    let limit = Duration::from_secs(90);
    let mut seconds_to_establish = None;
    // The most the server held, for a server that never reaches `count` (a cap, a crash): sampled while
    // the clients still hold their connections, not after they give up.
    let mut peak = process::tree_totals(pid);
    while client.started().elapsed() < limit && !client.finished() {
        let sample = process::tree_totals(pid);
        if sample.2 >= peak.2 {
            peak = sample;
        }
        if sample.2 >= target_fds {
            seconds_to_establish = Some(client.started().elapsed().as_secs_f64());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Sample once the accept burst has settled (the clients are holding for HOLD_SECONDS).
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(500) && !client.finished() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (rss_kib, threads, fds) =
        if seconds_to_establish.is_some() { process::tree_totals(pid) } else { peak };
    let alive = process::rss_kib(pid).is_some();
    let report = client.finish(limit + Duration::from_secs(30));
    drop(server);
    let report = report.unwrap_or_else(|e| json!({ "error": e }));
    let mut note =
        explain(&report, seconds_to_establish.is_some(), alive, fds.saturating_sub(base_fds), count);
    if !alive {
        note += &last_words(kind);
    }
    Ok(Point {
        server: name,
        connections: count,
        established: number(&report, "/established"),
        seconds_to_establish,
        held: fds.saturating_sub(base_fds) as u64,
        rss_kib,
        base_rss_kib,
        threads,
        base_threads,
        note,
    })
}

/// Why a count was not reached, in the client's words (its limit, errors and diagnosis).
fn explain(report: &Value, reached: bool, alive: bool, held: usize, count: u64) -> String {
    if reached {
        return String::new();
    }
    let mut why = format!("server held {held} of {count}");
    if !alive {
        why += "; the server died";
    }
    for key in ["limit", "error"] {
        if let Some(text) = report.get(key).and_then(Value::as_str) {
            why += &format!("; {text}");
        }
    }
    if let Some(errors) = report.get("errors").and_then(Value::as_object).filter(|e| !e.is_empty()) {
        why += &format!("; client errors {}", Value::Object(errors.clone()));
    }
    if let Some(first) = report.pointer("/diagnosis/0").and_then(Value::as_str) {
        why += &format!("; {first}");
    }
    why
}

/// The server's own last error line from its stderr log, e.g. why it aborted.
fn last_words(kind: ServerKind) -> String {
    let log = std::fs::read_to_string(benches::servers::log_path(kind)).unwrap_or_default();
    log.lines()
        .rev()
        .find(|l| l.contains("failed") || l.contains("error") || l.contains("panicked"))
        .map(|l| format!("; server: {}", l.trim()))
        .unwrap_or_default()
}

fn per_conn_bytes(p: &Point) -> f64 {
    (p.rss_kib.saturating_sub(p.base_rss_kib) as f64 * 1024.0) / p.held.max(1) as f64
}

fn print(p: Point) -> Point {
    println!(
        "{:>26} × {:>6}: RSS {:.1} MiB ({:.0} B per connection), {} threads, established in {} s {}",
        p.server,
        p.connections,
        p.rss_kib as f64 / 1024.0,
        per_conn_bytes(&p),
        p.threads,
        cell(p.seconds_to_establish, 2),
        p.note
    );
    p
}

fn write_reports(points: &[Point]) {
    let rows: Vec<Vec<String>> = points
        .iter()
        .map(|p| {
            vec![
                p.server.clone(),
                p.connections.to_string(),
                cell(p.established, 0),
                cell(p.seconds_to_establish, 2),
                format!("{:.1}", p.rss_kib as f64 / 1024.0),
                format!("{:.0}", per_conn_bytes(p)),
                p.threads.to_string(),
                format!("{:.3}", p.threads.saturating_sub(p.base_threads) as f64 / p.held.max(1) as f64),
                if p.note.is_empty() { "all held".into() } else { p.note.clone() },
            ]
        })
        .collect();
    let table = report::markdown_table(
        &[
            "server",
            "connections",
            "established (client)",
            "s to accept all",
            "RSS MiB",
            "RSS B/conn held",
            "threads",
            "threads/conn",
            "note",
        ],
        &rows,
    );
    println!("\nidle connections (server pinned to core 0):\n{table}");
    let json_points: Vec<Value> = points
        .iter()
        .map(|p| {
            json!({
                "server": p.server, "connections": p.connections, "established": p.established, "held": p.held,
                "seconds_to_establish": p.seconds_to_establish, "rss_kib": p.rss_kib, "base_rss_kib": p.base_rss_kib,
                "rss_bytes_per_conn": per_conn_bytes(p), "threads": p.threads, "base_threads": p.base_threads,
                "note": p.note,
            })
        })
        .collect();
    report::write_json("scale.json", &json!({ "machine": report::machine(), "points": json_points }));
    report::write_markdown("scale.md", &table);
    let svg = report::report_dir().join("scale-rss.svg");
    match chart(points, &svg) {
        Ok(()) => println!("wrote {}", svg.display()),
        Err(e) => println!("note: no chart: {e}"),
    }
}

/// RSS against connections, one line per server, as SVG.
fn chart(points: &[Point], path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut names: Vec<&str> = points.iter().map(|p| p.server.as_str()).collect();
    names.dedup();
    names.sort_unstable();
    names.dedup();
    let max_x = points.iter().map(|p| p.connections).max().unwrap_or(1) as f64 * 1.05;
    let max_y = points.iter().map(|p| p.rss_kib as f64 / 1024.0).fold(1.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Server RSS against idle connections", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..max_x, 0f64..max_y)?;
    chart.configure_mesh().x_desc("idle connections").y_desc("RSS (MiB)").draw()?;
    for (i, name) in names.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let series: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.server == *name)
            .map(|p| (p.connections as f64, p.rss_kib as f64 / 1024.0))
            .collect();
        chart
            .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(series.into_iter().map(|(x, y)| Circle::new((x, y), 4, color.filled())))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
