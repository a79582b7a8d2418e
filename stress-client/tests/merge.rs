//! `merge`: reports of several clients become one.

mod util;

use util::{Fault, TestServer, run};

#[test]
fn merge_of_two_reports_adds_them_up() {
    let server = TestServer::start(Fault::None);
    let dir = std::env::temp_dir().join(format!("stress-client-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths = Vec::new();
    let mut reports = Vec::new();
    for name in ["a", "b"] {
        let out = run(&format!("echo --target {} --connections 2 --duration 0.3 --json", server.addr));
        assert_eq!(out.code, Some(0), "{out:?}");
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, &out.stdout).unwrap();
        reports.push(out.json());
        paths.push(path.display().to_string());
    }
    let merged = run(&format!("merge {} {} --json", paths[0], paths[1])).json();
    let sum = |f: &dyn Fn(&serde_json::Value) -> u64| reports.iter().map(f).sum::<u64>();
    assert_eq!(merged["messages"].as_u64().unwrap(), sum(&|r| r["messages"].as_u64().unwrap()));
    assert_eq!(merged["established"], 4);
    assert_eq!(
        merged["latency_us"]["count"].as_u64().unwrap(),
        sum(&|r| r["latency_us"]["count"].as_u64().unwrap())
    );
    let max = reports.iter().map(|r| r["latency_us"]["max"].as_u64().unwrap()).max().unwrap();
    assert_eq!(merged["latency_us"]["max"].as_u64().unwrap(), max);
    // Merging one report with itself only doubles the counts: the percentiles stay.
    let same = run(&format!("merge {} {} --json", paths[0], paths[0])).json();
    assert_eq!(same["latency_us"]["p99"], reports[0]["latency_us"]["p99"]);
    assert_eq!(same["messages"].as_u64().unwrap(), 2 * reports[0]["messages"].as_u64().unwrap());
    let summary = run(&format!("merge {} {}", paths[0], paths[1]));
    assert!(summary.stdout.contains("latency µs: p50"), "{summary:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn merge_refuses_what_is_not_a_report() {
    let path = std::env::temp_dir().join(format!("stress-client-not-a-report-{}", std::process::id()));
    std::fs::write(&path, "{}").unwrap();
    let out = run(&format!("merge {}", path.display()));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("not a report"), "{}", out.stderr);
    std::fs::remove_file(&path).unwrap();
}

/// The report format is a contract with scripts and with reports already on disk. This one was written
/// by an earlier build (a merge of one report, so merging it again changes nothing), then given the
/// fields of the books (`open_at_end`, `preflight`, ...); merged alone it must come back byte for byte:
/// same keys, same order, same error names, and books that balance.
#[test]
fn a_saved_report_merges_back_byte_for_byte() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/report.json");
    let saved = std::fs::read_to_string(path).unwrap();
    let out = run(&format!("merge {path} --json"));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, saved);
}
