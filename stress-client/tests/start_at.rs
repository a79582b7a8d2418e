//! `--start-at`: clients started apart measure one interval, their reports say which, and `merge` says
//! when the intervals of its inputs do not describe one moment.

mod util;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use util::{ReactorServer, Run, run};

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Where a test keeps the reports it merges; removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("stress-client-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    /// Writes the report a run printed; returns its path.
    fn save(&self, name: &str, run: &Run) -> String {
        let path = self.0.join(format!("{name}.json"));
        std::fs::write(&path, &run.stdout).unwrap();
        path.display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn interval(report: &serde_json::Value) -> (f64, f64) {
    let at = |key: &str| report[key].as_f64().unwrap_or_else(|| panic!("no {key}: {report}"));
    (at("interval_start"), at("interval_end"))
}

#[test]
fn clients_given_one_start_at_measure_the_same_interval() {
    let server = ReactorServer::start();
    let start_at = unix_now() + 5.0;
    let args =
        format!("echo --target {} --connections 2 --duration 1 --start-at {start_at:.3} --json", server.addr);
    // Two clients, started apart as a scheduler would start them.
    let runs: Vec<Run> = std::thread::scope(|s| {
        let first = s.spawn(|| run(&args));
        std::thread::sleep(std::time::Duration::from_millis(300));
        let second = s.spawn(|| run(&args));
        [first, second].map(|h| h.join().unwrap()).into()
    });
    let dir = Dir::new("start-at");
    let mut paths = Vec::new();
    for (i, out) in runs.iter().enumerate() {
        assert_eq!(out.code, Some(0), "{out:?}");
        let report = out.json();
        util::assert_books(&report, "client");
        let (start, end) = interval(&report);
        assert!(start >= start_at - 0.05, "interval_start {start} is before --start-at {start_at}");
        assert!(end > start, "{report}");
        assert!(!report["host"].as_str().unwrap().is_empty(), "{report}");
        paths.push(dir.save(&i.to_string(), out));
    }
    let out = run(&format!("merge {} {} --json", paths[0], paths[1]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let merged = out.json();
    let warnings = merged["warnings"].as_array().unwrap();
    assert!(!warnings.iter().any(|w| w.as_str().unwrap().contains("overlap")), "{warnings:?}");
    let (start, end) = interval(&merged);
    for report in runs.iter().map(Run::json) {
        let (s, e) = interval(&report);
        assert!(s <= start && start <= end && end <= e, "common {start}..{end} is not within {s}..{e}");
    }
    let messages: u64 = runs.iter().map(|r| r.json()["messages"].as_u64().unwrap()).sum();
    assert_eq!(merged["messages"].as_u64(), Some(messages));
}

#[test]
fn connect_churn_and_child_processes_measure_from_the_start() {
    let server = ReactorServer::start();
    for command in [
        "connect --hold 0.2",
        "churn --duration 0.2",
        "echo --duration 0.2 --processes 2",
        "connect --hold 0.2 --processes 2",
        "echo --duration 0.2 --blocking",
        "connect --hold 0.2 --blocking",
    ] {
        // Ahead by more than a loaded machine takes to start the client and its children.
        let start_at = unix_now() + 3.0;
        let out = run(&format!(
            "{command} --target {} --connections 2 --start-at {start_at:.3} --json",
            server.addr
        ));
        assert_eq!(out.code, Some(0), "{command}: {out:?}");
        let report = out.json();
        let (start, end) = interval(&report);
        assert!(start >= start_at - 0.05, "{command}: interval_start {start} is before {start_at}");
        assert!(end >= start + 0.15, "{command}: {report}");
        if command.starts_with("echo") {
            assert!(report["messages"].as_u64().unwrap() > 0, "{command}: {report}");
        }
    }
}

#[test]
fn the_readable_summary_and_merge_say_when_and_where_they_measured() {
    let server = ReactorServer::start();
    let start_at = unix_now() + 3.0;
    let args =
        format!("echo --target {} --connections 1 --duration 0.3 --start-at {start_at:.3}", server.addr);
    let out = run(&args);
    assert_eq!(out.code, Some(0), "{out:?}");
    let host = hostname();
    let line = out.stdout.lines().find(|l| l.starts_with("measured: ")).unwrap_or_else(|| panic!("{out:?}"));
    assert!(line.ends_with(&format!(" on host {host}")), "{line}");
    // Both ends in the form --start-at takes: YYYY-MM-DDTHH:MM:SS.mmmZ.
    let words: Vec<&str> = line.split(' ').collect();
    for moment in [words[1], words[3]] {
        let b = moment.as_bytes();
        assert!(b.len() == 24 && b[10] == b'T' && b[19] == b'.' && b[23] == b'Z', "{line}");
    }

    let dir = Dir::new("summary");
    let start_at = unix_now() + 3.0;
    let json = format!(
        "echo --target {} --connections 1 --duration 0.3 --start-at {start_at:.3} --json",
        server.addr
    );
    let paths: Vec<String> = std::thread::scope(|s| {
        let runs = [s.spawn(|| run(&json)), s.spawn(|| run(&json))].map(|h| h.join().unwrap());
        runs.iter().enumerate().map(|(i, r)| dir.save(&i.to_string(), r)).collect()
    });
    let out = run(&format!("merge {} {}", paths[0], paths[1]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let line = out.stdout.lines().find(|l| l.starts_with("measured: ")).unwrap_or_else(|| panic!("{out:?}"));
    assert!(line.contains(" to ") && line.ends_with(&format!(" on host {host}")), "{line}");
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned()
}

#[test]
fn a_merge_of_reports_measured_apart_warns() {
    let server = ReactorServer::start();
    let dir = Dir::new("apart");
    let args = format!("echo --target {} --connections 1 --duration 0.2 --json", server.addr);
    // One after the other: the second begins after the first has ended.
    let paths: Vec<String> = ["a", "b"].iter().map(|name| dir.save(name, &run(&args))).collect();
    let out = run(&format!("merge {} {} --json", paths[0], paths[1]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let merged = out.json();
    let warnings = merged["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("do not overlap")), "{warnings:?}");
    assert!(out.stderr.contains("do not overlap"), "{}", out.stderr);
    assert!(merged["interval_start"].is_null() && merged["interval_end"].is_null(), "{merged}");
    let out = run(&format!("merge {} {}", paths[0], paths[1]));
    assert!(out.stdout.contains("measured: no moment common to the reports merged"), "{}", out.stdout);
}

#[test]
fn a_bad_start_at_is_a_usage_error() {
    let now = unix_now();
    for (value, says) in [
        ("soon".to_owned(), "expected a time in UTC"),
        ("2026-02-30T05:00:00Z".to_owned(), "expected a time in UTC"),
        (format!("{:.0}", now - 60.0), "in the past"),
        ("2000-01-01T00:00:00Z".to_owned(), "in the past"),
        (format!("{:.0}", now + 3.0 * 86_400.0), "24 h"),
    ] {
        let out = run(&format!("echo --target 127.0.0.1:1 --start-at {value}"));
        assert_eq!(out.code, Some(2), "{value}: {out:?}");
        assert!(out.stderr.contains(says), "{value}: {}", out.stderr);
    }
    let soon = format!("{:.0}", now + 60.0);
    let out = run(&format!("echo --target 127.0.0.1:1 --start-at {soon} --warmup 1"));
    assert_eq!(out.code, Some(2), "--warmup: {out:?}");
}
