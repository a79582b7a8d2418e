//! Bad input gets one clear line and a non-zero exit.

mod util;

#[track_caller]
fn fails_with(args: &[&str], code: i32, says: &str) {
    let output = util::run(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(stderr.contains(says), "{args:?} should say {says:?}, said: {stderr}");
}

#[test]
fn an_unparsable_address_is_refused() {
    fails_with(&["--addr", "localhost:port"], 2, "invalid socket address");
}

#[test]
fn a_zero_backlog_is_refused() {
    fails_with(&["--addr", "127.0.0.1:0", "--backlog", "0"], 2, "--backlog");
}

#[test]
fn a_port_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    fails_with(&["--addr", &addr], 1, &format!("cannot bind {addr}"));
    fails_with(&["--addr", &addr, "--mode", "blocking"], 1, &format!("cannot bind {addr}"));
}

#[test]
fn threads_with_blocking_mode_are_refused() {
    fails_with(&["--addr", "127.0.0.1:0", "--mode", "blocking", "--threads", "2"], 1, "--threads");
}

#[test]
fn the_first_line_names_the_real_port() {
    let server = util::start(&[]);
    assert_ne!(server.addr.port(), 0);
    assert!(server.addr.ip().is_loopback());
}
