//! `connect`, `backlog`, `sockets`: limits named by what the kernel said.

mod util;

use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Socket, Type};
use util::{run, run_with_fd_limit};

/// A listener with `backlog` that never accepts.
fn non_accepting_listener(backlog: i32) -> (Socket, SocketAddr) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    socket.listen(backlog).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    (socket, addr)
}

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
    assert!(!r["warnings"].as_array().unwrap().is_empty(), "the pre-flight check warns: {r}");
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
