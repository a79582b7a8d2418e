//! `connect`, `backlog`, `sockets`: limits named by what the kernel said.

mod util;

use std::net::TcpListener;

use util::{ReactorServer, non_accepting_listener, run, run_with_fd_limit};

#[test]
fn connect_classifies_emfile_when_the_fd_limit_is_lowered() {
    let (_listener, addr) = non_accepting_listener(512);
    let out = run_with_fd_limit(64, &format!("connect --target {addr} --connections 100 --hold 0 --json"));
    // Connections that could not be made fail the run, and the report says how many and why.
    assert_eq!(out.code, Some(4), "{out:?}");
    let r = out.json();
    let emfile = r["errors"]["EMFILE"].as_u64().unwrap();
    assert!(emfile > 0, "{r}");
    let shortfall = format!("could not be made (EMFILE: {emfile}");
    assert!(r["warnings"].to_string().contains(&shortfall), "{r}");
    assert_eq!(r["environment"]["nofile_soft"], 64);
    let established = r["established"].as_u64().unwrap();
    assert!(established > 0 && established < 64, "{r}");
    let diagnosis = r["diagnosis"].to_string();
    assert!(diagnosis.contains("RLIMIT_NOFILE soft 64"), "{diagnosis}");
    assert!(!r["preflight"].as_array().unwrap().is_empty(), "the pre-flight check warns: {r}");
}

#[test]
fn until_failure_names_the_descriptor_limit() {
    let (_listener, addr) = non_accepting_listener(1024);
    let out = run_with_fd_limit(
        64,
        &format!("connect --target {addr} --connections 400 --ramp 4000 --hold 0 --until-failure --json"),
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let limit = out.json()["limit"].as_str().unwrap().to_owned();
    assert!(limit.starts_with("this process's RLIMIT_NOFILE (64)"), "{limit}");
}

#[test]
fn connect_holds_and_counts_peak() {
    let (_listener, addr) = non_accepting_listener(64);
    let out = run(&format!("connect --target {addr} --connections 20 --hold 0.2 --json"));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    assert_eq!(r["established"], 20);
    assert_eq!(r["peak_concurrent"], 20);
    assert_eq!(r["connect_us"]["count"], 20);
}

#[test]
fn an_unreachable_target_is_a_clear_error() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = run(&format!("echo --target {closed} --connections 3 --duration 10"));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("ECONNREFUSED"), "{}", out.stderr);
}

// Linux's backlog + 1, and the accept queue read from /proc/net/tcp.
#[cfg(target_os = "linux")]
#[test]
fn backlog_of_a_non_accepting_listener_is_backlog_plus_one() {
    let (_listener, addr) = non_accepting_listener(8);
    let out = run(&format!("backlog --target {addr} --connect-timeout 300 --backlog 8 --json"));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    assert_eq!(r["completed"], 9, "{r}");
    assert_eq!(r["accept_queue"], 9, "{r}");
    assert_eq!(r["configured_backlog"], 8);
    assert!(r["somaxconn"].as_u64().unwrap() >= 8);
    assert!(r["explanation"].as_str().unwrap().contains("plus one"), "{r}");
}

// Socket states come from /proc/net/tcp.
#[cfg(target_os = "linux")]
#[test]
fn sockets_counts_established_for_held_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    use std::net::TcpStream;
    let clients: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let accepted: Vec<TcpStream> = (0..5).map(|_| listener.accept().unwrap().0).collect();
    let out = run(&format!("sockets --port {} --json", addr.port()));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    // Both ends of each connection have the port: as local port (server side) or remote (client side).
    assert_eq!(r["ESTABLISHED"], 10, "{r}");
    assert_eq!(r["LISTEN"], 1, "{r}");
    drop((clients, accepted));
}

#[test]
fn until_failure_is_warned_once_on_stderr_about_the_limit_it_will_meet_first() {
    let (_listener, addr) = non_accepting_listener(1024);
    let args = format!("connect --target {addr} --ramp 4000 --hold 0 --until-failure");
    let out = run_with_fd_limit(64, &args);
    assert_eq!(out.code, Some(0), "{out:?}");
    let warnings: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 1, "{}", out.stderr);
    assert!(
        warnings[0]
            .contains("expect it near 48 connections, where it meets this client's RLIMIT_NOFILE (soft 64"),
        "{}",
        warnings[0]
    );
    assert!(!warnings[0].contains("fs.file-max") && !warnings[0].contains("conntrack"), "{}", warnings[0]);
    assert!(!out.stdout.contains("warning: --until-failure"), "said again on stdout: {}", out.stdout);
    // The same warning goes into the JSON. Its later figures (the next limit, ports already in use) follow
    // the machine, which other tests load meanwhile, so only the limit met first is compared.
    let json = run_with_fd_limit(64, &format!("{args} --json")).json();
    let preflight = json["preflight"].as_array().expect("a preflight list");
    assert_eq!(preflight.len(), 1, "{json}");
    let first_limit = "expect it near 48 connections, where it meets this client's RLIMIT_NOFILE (soft 64";
    assert!(preflight[0].as_str().is_some_and(|w| w.contains(first_limit)), "{json}");
}

#[test]
fn connect_reports_the_servers_memory_threads_and_descriptors_while_it_holds_them() {
    let server = ReactorServer::start();
    let out = run(&format!("connect --target {} --connections 40 --hold 0.6 --json", server.addr));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    let s = &r["server"];
    assert_eq!(s["name"], "echo-server", "{s}");
    assert_eq!(s["pids"].as_array().map(Vec::len), Some(1), "{s}");
    assert!(s["fds"].as_u64().unwrap() >= 40, "the 40 held connections are the server's descriptors: {s}");
    assert!(s["threads"].as_u64().unwrap() >= 1 && s["rss_kib"].as_u64().unwrap() > 0, "{s}");
    assert!(s["nofile_soft"].as_u64().unwrap() >= 40, "{s}");
    let summary = run(&format!("connect --target {} --connections 40 --hold 0.6", server.addr));
    let line =
        summary.stdout.lines().find(|l| l.starts_with("server: echo-server, pid ")).unwrap_or_default();
    assert!(
        line.contains(" threads, ") && line.contains(" descriptors at the busiest moment"),
        "{summary:?}"
    );
}

#[test]
fn until_failure_names_the_servers_descriptor_limit_when_the_server_runs_out_first() {
    let server = ReactorServer::start_with_fd_limit(64, "--backlog 16");
    let out = run(&format!(
        "connect --target {} --ramp 4000 --hold 0 --until-failure --connect-timeout 300 --json",
        server.addr
    ));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    let limit = r["limit"].as_str().unwrap();
    assert!(limit.starts_with("the server's RLIMIT_NOFILE (soft 64, echo-server, pid "), "{limit}");
    assert!(
        r["preflight"][0].as_str().unwrap().contains("where it meets the server's RLIMIT_NOFILE (soft 64"),
        "{r}"
    );
    let diagnosis = r["diagnosis"].to_string();
    assert!(
        diagnosis.contains("so it ran out of descriptors (the limit was the server's, not this client's)"),
        "{diagnosis}"
    );
}

/// The summary names the model as the client's (a bare "(reactor model)" read as the server's), and
/// `connect`, which sends no messages, shows no message or CPU-per-message figures.
#[test]
fn the_summary_names_the_client_model_and_connect_shows_no_message_figures() {
    let (_listener, addr) = non_accepting_listener(64);
    let out = run(&format!("connect --target {addr} --connections 3 --hold 0"));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.starts_with(&format!("connect against {addr}; client model: reactor\n")),
        "{}",
        out.stdout
    );
    for absent in ["messages:", "latency µs:", "CPU µs/msg", "model)"] {
        assert!(!out.stdout.contains(absent), "{absent:?} in a connect summary: {}", out.stdout);
    }
    let out = run(&format!("connect --target {addr} --connections 3 --hold 0 --blocking"));
    assert!(
        out.stdout.starts_with(&format!("connect against {addr}; client model: blocking\n")),
        "{}",
        out.stdout
    );
}
