//! A run that could not make every connection it was asked for exits 4 and says why, unless the user
//! said that was expected (`--allow-errors`, `connect --until-failure`).

mod util;

use std::io::ErrorKind;
use std::net::TcpListener;

use util::{Fault, TestServer, run};

/// A documentation address (TEST-NET-1) that no interface here has: binding a socket to it fails with
/// EADDRNOTAVAIL, so with `--source-ips 127.0.0.1,BAD` every second connection cannot be made.
const BAD_SOURCE: &str = "192.0.2.1";

/// `--source-ips` that make exactly half of the connections fail, checked to do so here.
fn half_failing_sources() -> String {
    let bind = TcpListener::bind((BAD_SOURCE, 0)).map(drop);
    assert_eq!(
        bind.map_err(|e| e.kind()),
        Err(ErrorKind::AddrNotAvailable),
        "{BAD_SOURCE} must not be a local address for this test"
    );
    format!("--source-ips 127.0.0.1,{BAD_SOURCE}")
}

/// The load runs that must judge a shortfall, each over 20 connections (churn: 4 slots).
const MODES: [&str; 6] = [
    "echo --connections 20 --duration 0.3",
    "echo --connections 20 --duration 0.3 --blocking",
    "echo --connections 20 --duration 0.3 --threads 2",
    "echo --connections 20 --duration 0.3 --processes 2",
    "connect --connections 20 --hold 0",
    "churn --connections 4 --duration 0.3",
];

fn warnings(r: &serde_json::Value) -> Vec<String> {
    r["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_owned()).collect()
}

#[test]
fn connections_that_could_not_be_made_fail_the_run_with_exit_4_and_say_why() {
    let server = TestServer::start(Fault::None);
    let sources = half_failing_sources();
    for mode in MODES {
        let out = run(&format!("{mode} --target {} {sources} --json", server.addr));
        assert_eq!(out.code, Some(4), "{mode}: {out:?}");
        let r = out.json();
        let failed = r["connect_errors"]["EADDRNOTAVAIL"].as_u64().unwrap_or(0);
        assert!(failed > 0, "{mode}: {r}");
        assert_eq!(r["errors"]["EADDRNOTAVAIL"].as_u64(), Some(failed), "{mode}: {r}");
        let expected = if mode.starts_with("churn") {
            format!("connects failed (EADDRNOTAVAIL: {failed}): exit code 4")
        } else {
            assert_eq!((failed, &r["established"]), (10, &serde_json::json!(10)), "{mode}: {r}");
            "10 of 20 connections could not be made (EADDRNOTAVAIL: 10): exit code 4".to_owned()
        };
        let warnings = warnings(&r);
        assert!(warnings.iter().any(|w| w.ends_with(&expected)), "{mode}: {expected:?} not in {warnings:?}");
    }
    // The readable summary says it too.
    let out = run(&format!("{} --target {} {sources}", MODES[0], server.addr));
    assert_eq!(out.code, Some(4), "{out:?}");
    assert!(
        out.stdout
            .contains("warning: 10 of 20 connections could not be made (EADDRNOTAVAIL: 10): exit code 4"),
        "{}",
        out.stdout
    );
}

#[test]
fn allow_errors_exits_0_and_the_report_still_names_the_failures() {
    let server = TestServer::start(Fault::None);
    let sources = half_failing_sources();
    for mode in MODES {
        let out = run(&format!("{mode} --target {} {sources} --allow-errors --json", server.addr));
        assert_eq!(out.code, Some(0), "{mode}: {out:?}");
        let r = out.json();
        assert!(r["errors"]["EADDRNOTAVAIL"].as_u64().unwrap_or(0) > 0, "{mode}: {r}");
        let warnings = warnings(&r);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("(EADDRNOTAVAIL: ") && w.ends_with("; allowed by --allow-errors")),
            "{mode}: {warnings:?}"
        );
    }
}

#[test]
fn until_failure_expects_connections_to_fail() {
    let server = TestServer::start(Fault::None);
    let sources = half_failing_sources();
    let out = run(&format!(
        "connect --connections 20 --hold 0 --until-failure --target {} {sources} --json",
        server.addr
    ));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.json()["errors"]["EADDRNOTAVAIL"], 10);
}

#[test]
fn a_target_nobody_listens_on_fails_every_connection_and_the_run_even_over_processes() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    for extra in ["", "--allow-errors", "--processes 2", "--processes 2 --blocking"] {
        let out = run(&format!("echo --target {closed} --connections 4 --duration 5 {extra}"));
        assert_eq!(out.code, Some(1), "{extra}: {out:?}");
        assert!(
            out.stderr.contains("no connection to") && out.stderr.contains("ECONNREFUSED ×4"),
            "{extra}: {}",
            out.stderr
        );
    }
}
