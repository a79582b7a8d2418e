//! `--target HOST:PORT`: names are resolved, the address used is reported, and a name that does not
//! resolve is a usage error that names it.

mod util;

use util::{Fault, TestServer, run};

#[test]
fn a_target_given_by_name_is_resolved_and_the_address_used_is_reported() {
    let server = TestServer::start(Fault::None);
    let port = server.addr.port();
    let out = run(&format!("echo --target localhost:{port} --connections 2 --duration 0.3 --json"));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    assert_eq!(r["target"], format!("localhost:{port}"), "{r}");
    // The server listens on 127.0.0.1 only: of localhost's addresses, that is the one that accepts.
    assert_eq!(r["target_addr"], server.addr.to_string(), "{r}");
    assert_eq!(r["established"], 2, "{r}");

    // Child processes are given the address chosen; the merged report still names the target as given.
    let out =
        run(&format!("connect --target localhost:{port} --connections 2 --processes 2 --hold 0 --json"));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    assert_eq!(
        (r["target"].as_str(), r["established"].as_u64()),
        (Some(&*format!("localhost:{port}")), Some(2))
    );
    assert_eq!(r["target_addr"], server.addr.to_string(), "{r}");

    let out = run(&format!("connect --target localhost:{port} --connections 2 --hold 0"));
    assert_eq!(out.code, Some(0), "{out:?}");
    let first = out.stdout.lines().next().unwrap_or_default();
    assert_eq!(first, format!("connect against localhost:{port} at {}; client model: reactor", server.addr));
}

#[test]
fn a_target_given_by_address_is_reported_as_it_was_given() {
    let server = TestServer::start(Fault::None);
    let out = run(&format!("echo --target {} --connections 1 --duration 0.2 --json", server.addr));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    assert_eq!(r["target"], server.addr.to_string(), "{r}");
    assert_eq!(r["target_addr"], server.addr.to_string(), "{r}");
}

#[test]
fn a_name_that_does_not_resolve_is_one_line_naming_it_and_exit_2() {
    for command in ["echo", "connect", "churn", "backlog"] {
        let out = run(&format!("{command} --target no-such-host.invalid:1"));
        assert_eq!(out.code, Some(2), "{command}: {out:?}");
        let naming: Vec<&str> = out.stderr.lines().filter(|l| l.contains("no-such-host.invalid")).collect();
        assert_eq!(naming.len(), 1, "{command}: {}", out.stderr);
        assert!(naming[0].contains("cannot resolve no-such-host.invalid"), "{command}: {}", out.stderr);
        assert_eq!(out.stderr.lines().filter(|l| l.starts_with("error")).count(), 1, "{}", out.stderr);
    }
}
