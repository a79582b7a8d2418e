//! One rung: start the server with enough workers, ramp the client's connections up, measure the server
//! and the kernel at the top, let the client echo its sample and close, and say what the rung found.

use std::time::{Duration, Instant};

use benches::report::{self, cell};
use benches::stress::{self, StressRun, number};
use benches::{Server, ServerKind};
use hostinfo::kernel_memory::{self, Slab, TcpSockstat};
use hostinfo::process;
use serde_json::{Value, json};

/// Seconds the client holds the connections from `--start-at`: the top is measured meanwhile.
const HOLD_SECONDS: u64 = 30;
/// A connect that has not completed in this long counts as timed out.
const CONNECT_TIMEOUT_MS: u64 = 20_000;
/// Most source addresses in one rung's /24 (127.N.0.1 to 127.N.0.254).
const MAX_SOURCES: u64 = 254;
/// Source addresses per client process: each gets its own, so ports never run short.
const SOURCES_PER_PROCESS: u64 = 2;

/// What to climb to.
#[derive(Debug)]
pub struct RungPlan {
    /// Concurrent connections.
    pub connections: u64,
    /// Connections per server worker and per client process.
    pub per_process: u64,
    /// Connections per second over all client processes.
    pub ramp: f64,
    /// Every Kth connection echoes once at the top.
    pub echo_every: u64,
    /// The server's address, without a port.
    pub server: String,
    /// The second octet of this rung's source addresses.
    pub source_net: u8,
}

/// What one rung found.
#[derive(Debug)]
pub struct Rung {
    connections: u64,
    workers: u64,
    processes: u64,
    sources: u64,
    /// Connections the server held at the top (its descriptors above its baseline).
    held: u64,
    ramp_s: Option<f64>,
    rss_base_kib: u64,
    rss_top_kib: u64,
    slab: (Option<Slab>, Option<Slab>),
    tcp: (Option<TcpSockstat>, Option<TcpSockstat>),
    sample_expected: u64,
    report: Value,
    kernel_log: Vec<String>,
    /// Why the rung was not reached (empty when it was).
    pub note: String,
}

impl Rung {
    /// The server held every connection, and every sampled one echoed its message back verified.
    pub fn reached(&self) -> bool {
        self.note.is_empty()
    }

    fn sample_verified(&self) -> Option<u64> {
        self.report["messages"].as_u64()
    }

    fn rss_per_conn(&self) -> Option<f64> {
        (self.held > 0)
            .then(|| (self.rss_top_kib.saturating_sub(self.rss_base_kib) * 1024) as f64 / self.held as f64)
    }

    fn slab_per_conn(&self) -> Option<f64> {
        let (Some(before), Some(top)) = self.slab else { return None };
        (self.held > 0)
            .then(|| top.total_kib.saturating_sub(before.total_kib) as f64 * 1024.0 / self.held as f64)
    }

    /// One line for the log as the rung ends.
    pub fn line(&self) -> String {
        format!(
            "  held {} of {} in {} s; server RSS {} MiB ({} B/conn); slab {} MiB → {} MiB ({} B/conn, both \
             ends); sample {}/{} echoed; {}",
            self.held,
            self.connections,
            cell(self.ramp_s, 1),
            cell(Some(self.rss_top_kib as f64 / 1024.0), 1),
            cell(self.rss_per_conn(), 0),
            mib(self.slab.0.map(|s| s.total_kib)),
            mib(self.slab.1.map(|s| s.total_kib)),
            cell(self.slab_per_conn(), 0),
            self.sample_verified().map_or("–".into(), |n| n.to_string()),
            self.sample_expected,
            if self.note.is_empty() { "reached" } else { &self.note },
        )
    }

    /// The rung as JSON, for `ladder.json`.
    pub fn json(&self) -> Value {
        let slab = |s: Option<Slab>| {
            s.map(|s| json!({ "slab_kib": s.total_kib, "sunreclaim_kib": s.unreclaimable_kib }))
        };
        let tcp = |t: Option<TcpSockstat>| {
            t.map(|t| json!({ "inuse": t.inuse, "orphan": t.orphan, "tw": t.time_wait, "mem_pages": t.mem_pages }))
        };
        json!({
            "connections": self.connections,
            "server_workers": self.workers,
            "client_processes": self.processes,
            "source_addresses": self.sources,
            "held": self.held,
            "ramp_s": self.ramp_s,
            "server_rss_base_kib": self.rss_base_kib,
            "server_rss_top_kib": self.rss_top_kib,
            "server_rss_b_per_conn": self.rss_per_conn(),
            "kernel_before": { "meminfo": slab(self.slab.0), "sockstat_tcp": tcp(self.tcp.0) },
            "kernel_top": { "meminfo": slab(self.slab.1), "sockstat_tcp": tcp(self.tcp.1) },
            "slab_b_per_conn_both_ends": self.slab_per_conn(),
            "sample_expected": self.sample_expected,
            "sample_verified": self.sample_verified(),
            "client": {
                "established": self.report["established"],
                "errors": self.report["errors"],
                "verify_failures": self.report["verify_failures"],
                "connect_us": self.report["connect_us"],
                "peak_rss_kib": self.report["client"]["peak_rss_kib"],
                "diagnosis": self.report["diagnosis"],
                "warnings": self.report["warnings"],
            },
            "kernel_log": self.kernel_log,
            "note": self.note,
        })
    }
}

/// Climbs one rung; never panics on what the server, the client or the kernel do.
pub fn climb(plan: &RungPlan) -> Rung {
    let c = plan.connections;
    let workers = c.div_ceil(plan.per_process).max(1);
    let processes = workers;
    let sources = (processes * SOURCES_PER_PROCESS).min(MAX_SOURCES);
    let hold = HOLD_SECONDS;
    // Every client process holds until the same moment and then echoes its sample, well after the
    // planned ramp: one that ramped faster than the slowest (the two cores are shared by all of them)
    // still holds its connections when the slowest is up, and no sample waits behind another process's
    // connections closing.
    let planned = c as f64 / plan.ramp;
    let lead = 3.0 * planned + 20.0;
    let start_at = unix_now() + lead;
    let mut rung = Rung {
        connections: c,
        workers,
        processes,
        sources,
        held: 0,
        ramp_s: None,
        rss_base_kib: 0,
        rss_top_kib: 0,
        slab: (kernel_memory::slab(), None),
        tcp: (kernel_memory::tcp_sockstat(), None),
        sample_expected: (c - 1) / plan.echo_every.max(1) + 1,
        report: Value::Null,
        kernel_log: Vec::new(),
        note: String::new(),
    };
    let log_before = kernel_log().len();
    let listen = format!("{}:0", plan.server);
    let server = match Server::start_on(ServerKind::Reactor, &listen, &["--workers", &workers.to_string()]) {
        Ok(server) => server,
        Err(e) => {
            rung.note = format!("the server did not start: {e}");
            return rung;
        }
    };
    let pid = server.pid();
    wait_for_workers(pid, workers);
    let (rss_base, _, fds_base) = process::tree_totals(pid);
    rung.rss_base_kib = rss_base;
    let client_args = stress::args(&[
        "connect",
        "--target",
        &server.addr.to_string(),
        "--connections",
        &c.to_string(),
        "--processes",
        &processes.to_string(),
        "--source-ips",
        &format!("127.{0}.0.1-127.{0}.0.{sources}", plan.source_net),
        "--ramp",
        &plan.ramp.to_string(),
        "--hold",
        &hold.to_string(),
        "--start-at",
        &format!("{start_at:.0}"),
        "--echo-every",
        &plan.echo_every.to_string(),
        "--connect-timeout",
        &CONNECT_TIMEOUT_MS.to_string(),
    ]);
    let log = report::report_dir().join("logs").join(format!("ladder-{c}.stderr"));
    let mut client = match StressRun::start_logged(&client_args, &log) {
        Ok(client) => client,
        Err(e) => {
            rung.note = format!("the client did not start: {e}");
            return rung;
        }
    };
    // Up at the ramp's rate, with room for the stragglers' retransmitted SYNs.
    // Until shortly before the hold ends: the server may accept the last connections (the kernel
    // completes their handshakes and queues them) well after the client has them all.
    let limit = Duration::from_secs_f64(lead) + Duration::from_secs(HOLD_SECONDS - 5);
    // Counting the server's descriptors takes seconds at the top (a million entries under /proc, on
    // two busy cores), so it is done when the kernel's socket count says the connections may all be
    // there, and otherwise at most a quarter of the time.
    let inuse_before = rung.tcp.0.map_or(0, |t| t.inuse);
    let (mut interval, mut counted) = (Duration::from_secs(1), None::<Instant>);
    while client.started().elapsed() < limit && !client.finished() {
        std::thread::sleep(Duration::from_millis(250));
        // Both ends of every connection, less a little for sockets other programs closed meanwhile.
        let all_there = kernel_memory::tcp_sockstat()
            .is_some_and(|t| t.inuse >= inuse_before + 2 * c - (2 * c).min(1_000));
        if !all_there && counted.is_some_and(|at| at.elapsed() < interval) {
            continue;
        }
        let took = Instant::now();
        counted = Some(took);
        let (rss, _, fds) = process::tree_totals(pid);
        let held = fds.saturating_sub(fds_base) as u64;
        if held >= rung.held {
            // The most the server held, with the kernel's figures of that moment: a rung that is not
            // reached is described at its peak, not after the client gave up.
            (rung.held, rung.rss_top_kib) = (held, rss);
            (rung.slab.1, rung.tcp.1) = (kernel_memory::slab(), kernel_memory::tcp_sockstat());
        }
        if held >= c {
            // As the count that found them all began.
            rung.ramp_s = Some(took.duration_since(client.started()).as_secs_f64());
            break;
        }
        interval = interval.max(took.elapsed() * 4);
    }
    // The top: the server holds them all, and so does the kernel. A rung not reached is counted once
    // more, as the last count may be one interval old.
    if rung.ramp_s.is_none() && !client.finished() {
        let (rss, _, fds) = process::tree_totals(pid);
        let held = fds.saturating_sub(fds_base) as u64;
        if held >= rung.held {
            (rung.held, rung.rss_top_kib) = (held, rss);
            (rung.slab.1, rung.tcp.1) = (kernel_memory::slab(), kernel_memory::tcp_sockstat());
        }
    }
    if rung.ramp_s.is_some() {
        (rung.slab.1, rung.tcp.1) = (kernel_memory::slab(), kernel_memory::tcp_sockstat());
        let (rss, _, fds) = process::tree_totals(pid);
        (rung.held, rung.rss_top_kib) = ((fds.saturating_sub(fds_base) as u64).max(rung.held), rss);
    }
    let alive = process::rss_kib(pid).is_some();
    rung.report =
        client.finish(limit + Duration::from_secs(hold + 120)).unwrap_or_else(|e| json!({ "error": e }));
    drop(server);
    rung.kernel_log = kernel_log().into_iter().skip(log_before).filter(|l| of_interest(l)).collect();
    rung.note = judge(&rung, alive);
    rung
}

/// Why the rung failed, or empty: every connection held by the server, every sample echoed verified.
fn judge(rung: &Rung, alive: bool) -> String {
    let r = &rung.report;
    let mut why = Vec::new();
    if !alive {
        why.push("the server died".to_owned());
    }
    if rung.ramp_s.is_none() {
        why.push(format!("server held {} of {}", rung.held, rung.connections));
    }
    if let Some(e) = r["error"].as_str() {
        why.push(format!("client: {e}"));
    }
    if let Some(errors) = r["errors"].as_object().filter(|e| !e.is_empty()) {
        why.push(format!("client errors {}", Value::Object(errors.clone())));
    }
    if number(r, "/verify_failures").unwrap_or(0.0) > 0.0 {
        why.push(format!("verification failed: {}", r["failure"]));
    }
    if rung.sample_verified() != Some(rung.sample_expected) {
        let echoed = rung.sample_verified().map_or("none".to_owned(), |n| n.to_string());
        why.push(format!("sample echoed {echoed} of {}", rung.sample_expected));
    }
    if let Some(limit) = r["limit"].as_str() {
        why.push(format!("limit: {limit}"));
    }
    if !why.is_empty() {
        why.extend(rung.kernel_log.iter().map(|l| format!("kernel: {l}")));
    }
    why.join("; ")
}

/// Now, in Unix seconds.
fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Waits (at most 30 s) until the supervisor has started its workers and they have settled.
fn wait_for_workers(pid: u32, workers: u64) {
    let start = Instant::now();
    while (process::children(pid).len() as u64) < workers && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
}

/// The kernel's log, one line each (empty when `dmesg` cannot be read).
fn kernel_log() -> Vec<String> {
    std::process::Command::new("dmesg")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// A kernel message about what limits connections: TCP memory, orphans, ports, files, the OOM killer.
fn of_interest(line: &str) -> bool {
    ["TCP", "orphan", "Out of memory", "oom", "file-max", "VFS", "net_ratelimit", "nf_conntrack"]
        .iter()
        .any(|w| line.contains(w))
}

/// KiB as MiB for a table cell.
fn mib(kib: Option<u64>) -> String {
    cell(kib.map(|k| k as f64 / 1024.0), 0)
}

/// The ladder's table, one row per rung.
pub fn table(rungs: &[Rung]) -> String {
    let header = [
        "connections",
        "server workers / client processes / source addresses",
        "s to ramp",
        "held by server",
        "sample echoed (verified)",
        "server RSS MiB",
        "server RSS B/conn",
        "Slab MiB before → top",
        "SUnreclaim MiB before → top",
        "slab B/conn (both ends)",
        "sockstat TCP inuse before → top",
        "sockstat TCP mem pages before → top",
        "note",
    ];
    let rows: Vec<Vec<String>> = rungs
        .iter()
        .map(|r| {
            let pair = |f: fn(&Rung) -> (Option<u64>, Option<u64>)| {
                let (a, b) = f(r);
                format!(
                    "{} → {}",
                    a.map_or("–".into(), |v| v.to_string()),
                    b.map_or("–".into(), |v| v.to_string())
                )
            };
            vec![
                r.connections.to_string(),
                format!("{} / {} / {}", r.workers, r.processes, r.sources),
                cell(r.ramp_s, 1),
                r.held.to_string(),
                format!(
                    "{} of {}",
                    r.sample_verified().map_or("–".into(), |n| n.to_string()),
                    r.sample_expected
                ),
                cell(Some(r.rss_top_kib as f64 / 1024.0), 1),
                cell(r.rss_per_conn(), 0),
                format!("{} → {}", mib(r.slab.0.map(|s| s.total_kib)), mib(r.slab.1.map(|s| s.total_kib))),
                format!(
                    "{} → {}",
                    mib(r.slab.0.map(|s| s.unreclaimable_kib)),
                    mib(r.slab.1.map(|s| s.unreclaimable_kib))
                ),
                cell(r.slab_per_conn(), 0),
                pair(|r| (r.tcp.0.map(|t| t.inuse), r.tcp.1.map(|t| t.inuse))),
                pair(|r| (r.tcp.0.map(|t| t.mem_pages), r.tcp.1.map(|t| t.mem_pages))),
                if r.note.is_empty() { "reached".into() } else { r.note.clone() },
            ]
        })
        .collect();
    report::markdown_table(&header, &rows)
}
