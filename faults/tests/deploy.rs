//! The Kubernetes manifests under `deploy/kubernetes/`: valid against the Kubernetes API schemas
//! (checked offline by `kubernetes-validate`, which ships them, strictly, so that a misspelt field
//! fails too), an Indexed Job whose pods all run at once from one start, and the `collect` script that
//! turns the pods' logs into one merged report.

// The suite is Linux only (see the crate docs).
#![cfg(target_os = "linux")]

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use util::{num, run_client};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn manifests() -> Vec<PathBuf> {
    let dir = repository().join("deploy/kubernetes");
    let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    all.sort();
    assert!(all.len() >= 3, "expected the server and the load Jobs in {}", dir.display());
    all
}

/// Why `kubernetes-validate` cannot run here, if it cannot.
fn validator_unavailable() -> Option<String> {
    match Command::new("kubernetes-validate").arg("--version").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("kubernetes-validate is not installed; scripts/setup installs it with pip".into()),
    }
}

fn validate(path: &Path) -> Output {
    Command::new("kubernetes-validate").args(["--strict", "--quiet"]).arg(path).output().unwrap()
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("faults-deploy-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_manifest_passes_the_kubernetes_schemas() {
    if faults::skip("kubernetes manifests", validator_unavailable()) {
        return;
    }
    for path in manifests() {
        let out = validate(&path);
        let said =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{} fails the schemas: {said}", path.display());
        println!("{}: valid", path.display());
    }
}

/// The validation is not a formality: the same Job with a wrongly typed field, or a misspelt one,
/// fails it.
#[test]
fn a_broken_manifest_fails_the_schemas() {
    if faults::skip("kubernetes manifests", validator_unavailable()) {
        return;
    }
    let job = std::fs::read_to_string(repository().join("deploy/kubernetes/load-job.yaml")).unwrap();
    let scratch = Scratch::new("broken");
    for (what, from, to) in [
        ("a count as a word", "  completions: 4", "  completions: four"),
        ("a misspelt field", "  parallelism: 4", "  paralelism: 4"),
        ("an object for a number", "  backoffLimit: 0", "  backoffLimit: {}"),
    ] {
        assert!(job.contains(from), "load-job.yaml no longer has {from:?}");
        let path = scratch.0.join("job.yaml");
        std::fs::write(&path, job.replacen(from, to, 1)).unwrap();
        let out = validate(&path);
        assert!(!out.status.success(), "{what} passed the schemas");
        println!("{what}: refused: {}", String::from_utf8_lossy(&out.stdout).trim());
    }
}

/// `key: value` lines of a manifest, where `key` is indented by `indent` spaces.
fn field<'a>(text: &'a str, indent: usize, key: &str) -> Vec<&'a str> {
    let prefix = format!("{}{key}: ", " ".repeat(indent));
    text.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::trim).collect()
}

#[test]
fn the_load_jobs_run_every_index_at_once_from_one_start() {
    for name in ["load-job.yaml", "load-job-host-network.yaml"] {
        let text = std::fs::read_to_string(repository().join("deploy/kubernetes").join(name)).unwrap();
        assert_eq!(field(&text, 2, "completionMode"), ["Indexed"], "{name}");
        let completions = field(&text, 2, "completions");
        assert_eq!(completions.len(), 1, "{name}");
        assert_eq!(field(&text, 2, "parallelism"), completions, "{name}: not every pod runs at once");
        assert_eq!(field(&text, 2, "backoffLimit"), ["0"], "{name}: a retried pod measures another interval");
        for arg in ["--start-at", "$(START_AT)", "--json"] {
            assert!(text.lines().any(|l| l.trim() == format!("- {arg}")), "{name}: no {arg}");
        }
        assert!(text.contains("batch.kubernetes.io/job-completion-index"), "{name}: the index is not passed");
    }
    let host =
        std::fs::read_to_string(repository().join("deploy/kubernetes/load-job-host-network.yaml")).unwrap();
    assert!(host.contains("$(INDEX)"), "the host-network Job does not pick addresses by index");
}

/// `collect` against a stand-in for `kubectl` that answers as a cluster would for a finished Job of two
/// pods, whose logs hold real reports behind lines of progress: it must find both and merge them.
#[test]
fn collect_merges_the_reports_in_the_pods_logs() {
    let server = util::echo_server(&[]);
    let scratch = Scratch::new("collect");
    let mut reports = Vec::new();
    for index in 0..2 {
        let args = format!("echo --target {} --connections 2 --duration 0.3", server.addr);
        let (code, report) = run_client(util::stress_client(&args), Duration::from_secs(30));
        assert_eq!(code, Some(0), "{report}");
        let log = format!("[progress] 2 open, 0 errors\nwarning: a line on stderr\n{report}\n");
        std::fs::write(scratch.0.join(format!("echo-load-{index}-x.log")), log).unwrap();
        reports.push(report);
    }
    let kubectl = scratch.0.join("kubectl");
    let fake = format!(
        r#"#!/bin/sh
case "$1 $2" in
  "get job") echo 2 ;;
  "get pods") printf '0 echo-load-0-x\n1 echo-load-1-x\n' ;;
  "logs "*) cat "{}/$2.log" ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
"#,
        scratch.0.display()
    );
    std::fs::write(&kubectl, fake).unwrap();
    std::fs::set_permissions(&kubectl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out_dir = scratch.0.join("reports");
    let out = Command::new(repository().join("deploy/kubernetes/collect"))
        .arg("echo-load")
        .arg(&out_dir)
        .env("KUBECTL", &kubectl)
        .env("STRESS_CLIENT", faults::stress_client())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "collect failed: {stderr}");
    assert!(stderr.contains("2 of 2 reports"), "{stderr}");
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("merged.json")).unwrap()).unwrap();
    for path in ["established", "messages", "latency_us.count"] {
        let sum: u64 = reports.iter().map(|r| num(r, path)).sum();
        assert_eq!(num(&merged, path), sum, "merged {path}");
    }
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("established"), "no readable summary: {summary}");
}
