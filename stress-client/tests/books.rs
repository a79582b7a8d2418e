//! Every report balances its books, checked here from its JSON apart from the client's own check: each
//! subcommand, in each client model, against the workspace's reactor `echo-server` and against an
//! independent echo written here with std threads (accept, copy back). A server that drops connections
//! mid-run makes the client count the bytes it lost and name them.

mod util;

use std::cell::Cell;
use std::net::SocketAddr;

use serde_json::Value;
use util::{Fault, ReactorServer, TestServer, assert_books, run};

/// The client models: one reactor loop, two loops, a thread per connection, two processes merged.
const MODELS: [(&str, &str); 4] = [
    ("reactor", ""),
    ("reactor, 2 loops", "--threads 2"),
    ("blocking", "--blocking"),
    ("2 processes", "--processes 2"),
];

/// Runs `check` against the reactor echo-server and against the std echo; `check` returns how many
/// combinations it covered, and the total is printed (`--nocapture` shows it).
fn against_both_servers(what: &str, check: impl Fn(&str, SocketAddr) -> u64) {
    let reactor = ReactorServer::start();
    let mut covered = check("echo-server", reactor.addr);
    let independent = TestServer::start(Fault::None);
    covered += check("std echo", independent.addr);
    println!("{what}: books balance in {covered} combinations (model or command × server)");
}

/// Runs `args` against `addr` with `--json`; the run must succeed and its books balance.
#[track_caller]
fn balanced_run(label: &str, args: &str, addr: SocketAddr) -> Value {
    let out = run(&format!("{args} --target {addr} --json"));
    assert_eq!(out.code, Some(0), "{label}: {out:?}");
    let r = out.json();
    assert_books(&r, label);
    r
}

fn num(r: &Value, key: &str) -> u64 {
    r[key].as_u64().unwrap_or_else(|| panic!("no {key}: {r}"))
}

#[test]
fn echo_balances_its_books_in_every_model_against_either_server() {
    against_both_servers("echo", |server, addr| {
        let covered = Cell::new(0);
        for (model, flags) in MODELS {
            covered.set(covered.get() + 1);
            let label = format!("echo, {model}, {server}");
            let r = balanced_run(&label, &format!("echo --connections 6 --duration 0.3 {flags}"), addr);
            assert!(num(&r, "messages") > 0, "{label}: {r}");
            // A faithful server on loopback: everything sent came back within the drain.
            assert_eq!(num(&r, "bytes_sent"), num(&r, "bytes_received"), "{label}: {r}");
            assert_eq!((num(&r, "established"), num(&r, "open_at_end")), (6, 6), "{label}: {r}");
        }
        covered.get()
    });
}

#[test]
fn connect_balances_its_books_in_every_model_against_either_server() {
    against_both_servers("connect", |server, addr| {
        let covered = Cell::new(0);
        for (model, flags) in MODELS {
            covered.set(covered.get() + 1);
            let label = format!("connect, {model}, {server}");
            let r = balanced_run(&label, &format!("connect --connections 6 --hold 0.1 {flags}"), addr);
            assert_eq!((num(&r, "established"), num(&r, "open_at_end")), (6, 6), "{label}: {r}");
            assert_eq!(num(&r, "bytes_sent"), 0, "{label}: {r}");
        }
        covered.get()
    });
}

#[test]
fn churn_balances_its_books_in_every_model_against_either_server() {
    against_both_servers("churn", |server, addr| {
        let covered = Cell::new(0);
        // Churn has no blocking model.
        for (model, flags) in MODELS.iter().filter(|(_, flags)| !flags.contains("blocking")) {
            covered.set(covered.get() + 1);
            let label = format!("churn, {model}, {server}");
            let r = balanced_run(&label, &format!("churn --connections 4 --duration 0.3 {flags}"), addr);
            assert!(num(&r, "established") > 4, "{label}: {r}");
            assert_eq!(num(&r, "messages"), num(&r, "established"), "{label}: one message per cycle: {r}");
            assert_eq!(num(&r, "closed_by_client"), num(&r, "established"), "{label}: {r}");
        }
        covered.get()
    });
}

#[test]
fn merge_balances_its_books_for_each_command_against_either_server() {
    let dir = std::env::temp_dir().join(format!("stress-client-books-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    against_both_servers("merge", |server, addr| {
        let covered = Cell::new(0);
        for command in ["echo --duration 0.2", "connect --hold 0", "churn --duration 0.2"] {
            let paths: Vec<String> = (0..2)
                .map(|i| {
                    let out = run(&format!("{command} --connections 3 --target {addr} --json"));
                    assert_eq!(out.code, Some(0), "{out:?}");
                    let path = dir.join(format!("{}-{i}.json", server.replace(' ', "-")));
                    std::fs::write(&path, &out.stdout).unwrap();
                    path.display().to_string()
                })
                .collect();
            let label = format!("merge of {command}, {server}");
            let out = run(&format!("merge {} {} --json", paths[0], paths[1]));
            assert_eq!(out.code, Some(0), "{label}: {out:?}");
            assert_books(&out.json(), &label);
            covered.set(covered.get() + 1);
        }
        covered.get()
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `args` against a server that closes every connection after `after` bytes of echo: the run
/// fails with exit 3, and its report counts the bytes lost and names the connection, offset and why.
#[track_caller]
fn assert_loss_named(label: &str, after: usize, args: &str, offset: u64, bytes: u64) {
    let server = TestServer::start(Fault::TruncateAfter(after));
    let out = run(&format!("{args} --target {} --json", server.addr));
    assert_eq!(out.code, Some(3), "{label}: {out:?}");
    let r = out.json();
    assert_books(&r, label);
    assert!(num(&r, "bytes_lost") >= bytes, "{label}: {r}");
    let losses = r["losses"].as_array().unwrap();
    let named = losses.iter().find(|l| l["offset"] == offset && l["bytes"] == bytes);
    let named =
        named.unwrap_or_else(|| panic!("{label}: no loss of {bytes} B at offset {offset}: {losses:?}"));
    assert_eq!(named["why"], "the server closed the connection", "{label}: {named}");
    let failure = r["failure"].as_str().unwrap();
    assert!(
        failure.contains(&format!("byte offset {offset}: {bytes} bytes sent were never echoed")),
        "{failure}"
    );
}

#[test]
fn a_connection_the_server_drops_mid_run_is_counted_as_lost_and_named() {
    // 64 B ping-pong: the fourth message (bytes 192..256) comes back only as far as byte 200.
    for (model, flags) in [("reactor", ""), ("blocking", "--blocking"), ("2 processes", "--processes 2")] {
        let args = format!("echo --connections 2 --size 64 --duration 5 {flags}");
        assert_loss_named(&format!("echo, {model}"), 200, &args, 200, 56);
    }
    // Churn: each cycle's one message comes back only as far as byte 32.
    assert_loss_named("churn", 32, "churn --connections 2 --size 64 --duration 5", 32, 32);
}

#[test]
fn a_report_whose_books_do_not_balance_exits_5_and_says_which_invariant() {
    let server = TestServer::start(Fault::None);
    let out = run(&format!("echo --target {} --connections 2 --duration 0.2 --json", server.addr));
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut r = out.json();
    r["bytes_received"] = (num(&r, "bytes_received") - 1).into();
    let path = std::env::temp_dir().join(format!("stress-client-unbalanced-{}.json", std::process::id()));
    std::fs::write(&path, r.to_string()).unwrap();
    let out = run(&format!("merge {} --json", path.display()));
    std::fs::remove_file(&path).unwrap();
    assert_eq!(out.code, Some(5), "{out:?}");
    let warnings = out.json()["warnings"].to_string();
    assert!(
        warnings.contains(&format!("books do not balance in {}: bytes_received", path.display())),
        "{warnings}"
    );
    assert!(warnings.contains("books do not balance: bytes_received"), "{warnings}");
}

/// Runs `args` against a server that stops echoing for 4 s: longer than the run and its 2 s drain.
/// What had not come back is in flight at the end — not lost, not silent — and a warning says so.
#[track_caller]
fn assert_in_flight_reported(label: &str, stall_after: usize, args: &str) {
    let server = TestServer::start(Fault::StallAfter(stall_after, std::time::Duration::from_secs(4)));
    let out = run(&format!("{args} --target {} --json", server.addr));
    assert_eq!(out.code, Some(0), "{label}: {out:?}");
    let r = out.json();
    assert_books(&r, label);
    assert!(num(&r, "bytes_in_flight_at_end") > 0, "{label}: {r}");
    assert_eq!(num(&r, "bytes_lost"), 0, "{label}: {r}");
    let warnings = r["warnings"].to_string();
    assert!(warnings.contains("bytes sent were still in flight when the run ended"), "{label}: {warnings}");
}

#[test]
fn echoes_not_back_within_the_drain_are_counted_in_flight_at_the_end() {
    for (model, flags) in [("reactor", ""), ("blocking", "--blocking")] {
        let args = format!("echo --connections 1 --size 64 --duration 0.3 {flags}");
        assert_in_flight_reported(&format!("echo, {model}"), 640, &args);
    }
    assert_in_flight_reported("churn", 1, "churn --connections 2 --size 64 --duration 0.3");
}
