//! Load from several hosts, on one machine: four network namespaces on one bridge stand in for four
//! load hosts, each with its own address (and its own ephemeral ports, conntrack and host name), and a
//! fifth holds the server. The four clients start apart, as a scheduler would start them, with one
//! `--start-at`; their reports must merge into one that adds up and describes one interval.

// The suite is Linux only (see the crate docs).
#![cfg(target_os = "linux")]

mod util;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use util::{float, num, report, run_client};

/// Load hosts.
const HOSTS: usize = 4;
/// The server's address on the LAN; the hosts are .11, .12, ...
const SERVER_IP: &str = "10.99.0.1";

/// Where the reports are kept for the merge; removed when dropped.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `stress-client ARGS` inside `ns`, under a UTS namespace of its own named `host` (so that its report
/// names the host it stands in for, as a pod's or a machine's would).
fn client_in(ns: &faults::Namespace, host: &str, args: &str) -> Command {
    let mut command = ns.command("unshare");
    command
        .args(["--uts", "--", "sh", "-c", r#"hostname "$0" && exec "$@""#, host])
        .arg(faults::stress_client())
        .args(args.split_whitespace())
        .env("RUST_LOG", "error");
    command
}

/// One line of a client's report: its host, counts and interval.
fn part(r: &serde_json::Value) -> String {
    format!(
        "{}: {} established, {} messages, {:.6}..{:.6}",
        r["host"].as_str().unwrap_or("?"),
        num(r, "established"),
        num(r, "messages"),
        float(r, "interval_start"),
        float(r, "interval_end")
    )
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn four_hosts_started_apart_measure_one_interval_and_merge_into_the_sum() {
    if faults::skip("four load hosts", faults::namespaces_unavailable()) {
        return;
    }
    let per_host = faults::scaled("connections per host", 500u64, 10_000);
    let seconds = faults::scaled("seconds measured", 3u64, 10);
    // Each client opens its connections at 1,000 a second: every SYN crosses two veth pairs and a
    // bridge, queued per CPU (net.core.netdev_max_backlog, 1,000 packets), and four hosts at once
    // overflow that queue on two busy cores. A SYN dropped there is sent again after 1 s, then 3 s:
    // the connect timeout lets a connection wait for those. The start is far enough ahead for every
    // connection to be up before it.
    let ramp = 1_000u64;
    let lead = 3.0 + per_host as f64 / ramp as f64;
    // A message every 5 s on each connection, not as fast as they go: four closed loops would keep
    // both cores busy, and a client whose loop waits for a core ends its interval late, which is
    // what the overlap check is there to catch, not what this case is about.
    let rate = per_host / 5;

    let lan = faults::Lan::new("lan");
    let server_ns = faults::Namespace::new("srv");
    lan.attach(&server_ns, &format!("{SERVER_IP}/24"));
    // Room in the accept queues for the hosts' bursts; 4 workers hold 4 × 20,000 descriptors at most.
    server_ns.sysctl("net.core.somaxconn", "65535");
    let server = util::echo_server_in(
        &server_ns,
        &format!("{SERVER_IP}:0"),
        &["--workers", "4", "--backlog", "65535"],
    );
    let hosts: Vec<faults::Namespace> = (0..HOSTS)
        .map(|i| {
            let ns = faults::Namespace::new(&format!("host{i}"));
            lan.attach(&ns, &format!("10.99.0.{}/24", 11 + i));
            ns
        })
        .collect();

    let start_at = unix_now() + lead;
    let args = format!(
        "echo --target {} --connections {per_host} --ramp {ramp} --rate {rate} --connect-timeout 10000 --duration {seconds} \
         --start-at {start_at:.3}",
        server.addr
    );
    let limit = Duration::from_secs_f64(lead + seconds as f64 + 60.0);
    let reports: Vec<serde_json::Value> = std::thread::scope(|s| {
        let runs: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let command = client_in(ns, &format!("load-host-{i}"), &args);
                let handle = s.spawn(move || run_client(command, limit));
                // Started apart, as pods or machines are: the start time, not the launch, lines them up.
                std::thread::sleep(Duration::from_millis(200));
                handle
            })
            .collect();
        runs.into_iter()
            .enumerate()
            .map(|(i, h)| {
                let (code, report) = h.join().unwrap();
                assert_eq!(code, Some(0), "host {i}: {report}");
                report
            })
            .collect()
    });

    let dir = Dir(std::env::temp_dir().join(format!("faults-hosts-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let paths: Vec<String> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let path = dir.0.join(format!("host-{i}.json"));
            std::fs::write(&path, r.to_string()).unwrap();
            path.display().to_string()
        })
        .collect();
    let out = Command::new(faults::stress_client()).arg("merge").arg("--json").args(&paths).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "merge: {stderr}");
    let merged: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for r in &reports {
        println!("{}", part(r));
    }

    // The merge adds up: the sums of the parts, and histograms holding every part's samples.
    let sum = |path: &str| reports.iter().map(|r| num(r, path)).sum::<u64>();
    for path in ["established", "messages", "latency_us.count", "connect_us.count", "bytes_received"] {
        assert_eq!(num(&merged, path), sum(path), "merged {path}");
    }
    assert_eq!(num(&merged, "established"), per_host * HOSTS as u64, "{merged}");
    assert_eq!(num(&merged, "latency_us.count"), num(&merged, "messages"));
    assert!(num(&merged, "messages") > 0, "{merged}");
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r["host"].as_str(), Some(format!("load-host-{i}").as_str()), "host {i}");
    }
    let names: Vec<String> = (0..HOSTS).map(|i| format!("load-host-{i}")).collect();
    assert_eq!(merged["host"].as_str(), Some(names.join(",").as_str()));

    // One interval: merge warns of none, and the common interval lies within every part's.
    assert!(!stderr.contains("overlap"), "merge warned: {stderr}");
    let warnings = merged["warnings"].as_array().unwrap();
    assert!(!warnings.iter().any(|w| w.as_str().unwrap().contains("overlap")), "{warnings:?}");
    let (start, end) = (float(&merged, "interval_start"), float(&merged, "interval_end"));
    assert!(start > 0.0 && end > start, "no common interval: {merged}");
    let mut longest = 0.0f64;
    for r in &reports {
        let (s, e) = (float(r, "interval_start"), float(r, "interval_end"));
        assert!(s <= start && end <= e, "common {start}..{end} is not within {s}..{e}");
        assert!(s >= start_at - 0.05, "a host measured from {s}, before --start-at {start_at}");
        longest = longest.max(e - s);
    }
    let share = (end - start) / longest;
    assert!(share >= 0.9, "the intervals overlap by {:.1}% only", share * 100.0);

    let mut lines: Vec<(&str, String)> = reports.iter().map(|r| ("part", part(r))).collect();
    lines.push((
        "merged",
        format!(
            "{} established, {} messages ({:.0} msg/s), latency p50 {} p99 {} µs over {} samples",
            num(&merged, "established"),
            num(&merged, "messages"),
            float(&merged, "msgs_per_sec"),
            num(&merged, "latency_us.p50"),
            num(&merged, "latency_us.p99"),
            num(&merged, "latency_us.count")
        ),
    ));
    lines.push((
        "interval",
        format!(
            "common {start:.6}..{end:.6} ({:.3} s), {:.2}% of the longest part's; --start-at {start_at:.3}",
            end - start,
            share * 100.0
        ),
    ));
    report(
        "load from four hosts",
        &format!(
            "{HOSTS} namespaces on one bridge, {per_host} connections each, one --start-at {lead:.1} s ahead, \
             clients launched 200 ms apart; echo-server --workers 4 in a fifth namespace; stress-client merge"
        ),
        &lines,
    );
}
