//! docs/lifecycle.md, run: every command of its ```console blocks, each checked for its exit status and
//! the lines the document says it prints (conventions in `doc`), so the walkthrough cannot drift from
//! the binaries.

mod doc;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory holding this profile's `echo-server` and `stress-client`, the latter built first
/// (a build with nothing to do takes a moment).
fn binaries() -> PathBuf {
    let server = Path::new(env!("CARGO_BIN_EXE_echo-server"));
    let dir = server.parent().expect("the profile directory").to_path_buf();
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "-p", "stress-client"]);
    if dir.ends_with("release") {
        build.arg("--release");
    }
    assert!(build.status().expect("run cargo build").success(), "cargo build -p stress-client failed");
    dir
}

/// Why the walkthrough cannot run here, if it cannot: it half-closes with OpenBSD's netcat (`-N`).
fn missing_tools() -> Option<String> {
    let help = Command::new("nc").arg("-h").output().ok()?;
    let text = String::from_utf8_lossy(&help.stdout) + String::from_utf8_lossy(&help.stderr);
    (!text.contains("-N")).then(|| "no OpenBSD netcat (nc -N); scripts/setup installs netcat-openbsd".into())
}

#[test]
fn the_lifecycle_walkthrough_runs_as_written() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/lifecycle.md");
    let text = std::fs::read_to_string(&path).expect("docs/lifecycle.md");
    let blocks = doc::parse(&text).unwrap_or_else(|e| panic!("docs/lifecycle.md: {e}"));
    assert!(blocks.len() >= 8, "docs/lifecycle.md has {} console blocks", blocks.len());
    if let Some(why) =
        Command::new("nc").arg("-h").output().err().map(|e| format!("no nc: {e}")).or_else(missing_tools)
    {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!("the walkthrough must run in CI but cannot: {why}");
        }
        println!("SKIPPED (not passed): the walkthrough: {why}");
        return;
    }
    let runner = doc::run::Runner { bin: binaries() };
    if let Err(e) = runner.run(&blocks) {
        panic!("docs/lifecycle.md: {e}");
    }
}

/// The harness fails a document whose promise is broken: a wrong line, a wrong exit status.
#[test]
fn a_broken_promise_fails() {
    let runner = doc::run::Runner { bin: PathBuf::from("/nonexistent") };
    let good =
        doc::parse("```console\n$ printf 'a 1\\nb 2\\n'\na [..]\nb 2\n$ false # exit 1\n```\n").unwrap();
    assert_eq!(runner.run(&good), Ok(()));
    for broken in [
        "```console\n$ printf 'a 1\\n'\na 2\n```\n",
        "```console\n$ false\n```\n",
        "```console\n$ printf 'b\\na\\n'\na\nb\n```\n",
    ] {
        let blocks = doc::parse(broken).unwrap();
        assert!(runner.run(&blocks).is_err(), "{broken}");
    }
}
